//! Fetching over real HTTP on loopback and from `file:` repositories: verification, the cache,
//! bounded parallelism, kept-alive connections, retries, and the errors a user sees.
mod fixtures_deb;

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Mutex;
use std::time::Duration;

use ferry_debian::fetch::{
    FetchError, FetchItem, FetchObserver, FetchSource, FetchedFile, Fetcher, NoProgress,
    RetryPolicy, Sha256,
};
use fixtures_deb::{dead_port, digest_of, HttpServer, Reply, ScriptedServer};

/// Retries as the default policy does, without the pauses.
fn quick_retries() -> RetryPolicy {
    RetryPolicy {
        base_delay: Duration::from_millis(1),
        max_delay: Duration::from_millis(4),
        ..RetryPolicy::default()
    }
}

/// Writes `count` files of different sizes under `<repo>/pool/main/` and returns their items.
fn repository(repo: &Path, base_uri: &str, count: usize) -> Vec<FetchItem> {
    let pool = repo.join("pool/main/t");
    fs::create_dir_all(&pool).unwrap();
    (0..count)
        .map(|i| {
            let name = format!("pkg{i}_1.0-{i}+b1_amd64.deb");
            let bytes: Vec<u8> = (0..(1000 + i * 70_000))
                .map(|b| (b * 7 + i) as u8)
                .collect();
            fs::write(pool.join(&name), &bytes).unwrap();
            FetchItem {
                base_uri: base_uri.to_string(),
                filename: format!("pool/main/t/{name}"),
                sha256: Sha256::of(&bytes),
                size: bytes.len() as u64,
            }
        })
        .collect()
}

/// Files in the cache dir (including any temp files).
fn cache_entries(cache: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(cache)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Records the last progress of each item and how each ended.
#[derive(Default)]
struct Recorder {
    progress: Mutex<BTreeMap<usize, (u64, u64)>>,
    finished: Mutex<Vec<usize>>,
    failed: Mutex<Vec<usize>>,
    retrying: Mutex<Vec<(usize, u32, String)>>,
}

impl FetchObserver for Recorder {
    fn progress(&self, index: usize, done: u64, total: u64) {
        let mut progress = self.progress.lock().unwrap();
        let last = progress.entry(index).or_insert((0, total));
        assert!(done >= last.0, "progress went backwards");
        *last = (done, total);
    }
    fn finished(&self, index: usize, _: &FetchedFile) {
        self.finished.lock().unwrap().push(index);
    }
    fn failed(&self, index: usize, _: &FetchError) {
        self.failed.lock().unwrap().push(index);
    }
    fn retrying(&self, index: usize, attempt: u32, error: &FetchError) {
        // The next attempt's progress starts again from 0.
        self.progress.lock().unwrap().remove(&index);
        self.retrying
            .lock()
            .unwrap()
            .push((index, attempt, error.to_string()));
    }
}

/// Records only retries and failures (a retried item's progress restarts from 0).
#[derive(Default)]
struct Retries {
    seen: Mutex<Vec<(usize, u32)>>,
}

impl FetchObserver for Retries {
    fn retrying(&self, index: usize, attempt: u32, _: &FetchError) {
        self.seen.lock().unwrap().push((index, attempt));
    }
}

/// One item whose file is `bytes`, at `pool/main/t/x_1.0_amd64.deb` under `base`.
fn item_for(base: &str, bytes: &[u8]) -> FetchItem {
    FetchItem {
        base_uri: base.to_string(),
        filename: "pool/main/t/x_1.0_amd64.deb".to_string(),
        sha256: Sha256::of(bytes),
        size: bytes.len() as u64,
    }
}

fn package_bytes() -> Vec<u8> {
    (0..150_000u32).map(|b| (b * 31 % 251) as u8).collect()
}

#[test]
fn transfer_cut_short_once_is_retried_and_then_fetched() {
    let temp = tempfile::tempdir().unwrap();
    let bytes = package_bytes();
    let body = bytes.clone();
    let server = ScriptedServer::serve(move |n, _| match n {
        0 => Reply::CutShort(body.clone()),
        _ => Reply::Body(body.clone()),
    });
    let item = item_for(&server.base_uri(), &bytes);
    let fetcher = Fetcher::new(&temp.path().join("cache"))
        .unwrap()
        .with_retries(quick_retries());
    let recorder = Recorder::default();
    let fetched = fetcher.fetch_all(&[item], &recorder).unwrap();
    assert_eq!(fetched[0].source, FetchSource::Downloaded);
    assert_eq!(fs::read(&fetched[0].path).unwrap(), bytes);
    let retries = recorder.retrying.lock().unwrap().clone();
    assert_eq!(retries.len(), 1, "{retries:?}");
    assert_eq!((retries[0].0, retries[0].1), (0, 1));
    assert!(retries[0].2.contains("broke off"), "{}", retries[0].2);
    assert_eq!(server.requests.load(Ordering::SeqCst), 2);
    assert_eq!(cache_entries(&temp.path().join("cache")).len(), 1);
}

#[test]
fn server_that_always_answers_503_gives_up_after_every_attempt() {
    let temp = tempfile::tempdir().unwrap();
    let server = ScriptedServer::serve(|_, _| Reply::Status(503));
    let item = item_for(&server.base_uri(), b"never served");
    let fetcher = Fetcher::new(&temp.path().join("cache"))
        .unwrap()
        .with_retries(quick_retries());
    let observer = Retries::default();
    let error = fetcher.fetch_all(&[item], &observer).unwrap_err();
    match &error {
        FetchError::Attempts {
            attempts: 4, last, ..
        } => assert!(
            matches!(**last, FetchError::Http { status: 503, .. }),
            "{last:?}"
        ),
        other => panic!("expected every attempt to fail, got {other:?}"),
    }
    assert_eq!(server.requests.load(Ordering::SeqCst), 4);
    assert_eq!(*observer.seen.lock().unwrap(), vec![(0, 1), (0, 2), (0, 3)]);
    let text = error
        .to_string()
        .replace(&format!(":{}/", server.port), ":PORT/");
    insta::assert_snapshot!(text, @"the repository answered http://127.0.0.1:PORT/pool/main/t/x_1.0_amd64.deb with HTTP status 503 (gave up after 4 attempts)");
    assert!(cache_entries(&temp.path().join("cache")).is_empty());
}

#[test]
fn http_404_is_not_retried() {
    let temp = tempfile::tempdir().unwrap();
    let server = ScriptedServer::serve(|_, _| Reply::Status(404));
    let item = item_for(&server.base_uri(), b"gone");
    let fetcher = Fetcher::new(&temp.path().join("cache"))
        .unwrap()
        .with_retries(quick_retries());
    let observer = Retries::default();
    let error = fetcher.fetch_all(&[item], &observer).unwrap_err();
    assert!(
        matches!(error, FetchError::Http { status: 404, .. }),
        "{error:?}"
    );
    assert!(error.hint().unwrap().contains("ferry lock"));
    assert_eq!(server.requests.load(Ordering::SeqCst), 1);
    assert!(observer.seen.lock().unwrap().is_empty());
}

#[test]
fn sha256_mismatch_is_not_retried_and_leaves_nothing_in_the_cache() {
    let temp = tempfile::tempdir().unwrap();
    let bytes = package_bytes();
    let body = bytes.clone();
    let server = ScriptedServer::serve(move |_, _| Reply::Body(body.clone()));
    let mut item = item_for(&server.base_uri(), &bytes);
    item.sha256 = Sha256::of(b"what the lock says");
    let fetcher = Fetcher::new(&temp.path().join("cache"))
        .unwrap()
        .with_retries(quick_retries());
    let observer = Retries::default();
    let error = fetcher.fetch_all(&[item], &observer).unwrap_err();
    assert!(
        matches!(error, FetchError::HashMismatch { .. }),
        "{error:?}"
    );
    assert_eq!(server.requests.load(Ordering::SeqCst), 1);
    assert!(observer.seen.lock().unwrap().is_empty());
    assert!(cache_entries(&temp.path().join("cache")).is_empty());
}

#[test]
fn items_of_one_host_reuse_kept_alive_connections() {
    let temp = tempfile::tempdir().unwrap();
    let files: Vec<Vec<u8>> = (0..36u8)
        .map(|i| {
            (0..20_000u32)
                .map(|b| (b as u8).wrapping_mul(i + 1))
                .collect()
        })
        .collect();
    let served = files.clone();
    let server = ScriptedServer::serve(move |_, path| {
        let i: usize = path
            .trim_start_matches("/pool/p")
            .trim_end_matches(".deb")
            .parse()
            .unwrap();
        Reply::Body(served[i].clone())
    });
    let items: Vec<FetchItem> = files
        .iter()
        .enumerate()
        .map(|(i, bytes)| FetchItem {
            base_uri: server.base_uri(),
            filename: format!("pool/p{i}.deb"),
            sha256: Sha256::of(bytes),
            size: bytes.len() as u64,
        })
        .collect();
    // More jobs than ureq keeps idle connections per host by default (3).
    let fetcher = Fetcher::new(&temp.path().join("cache"))
        .unwrap()
        .with_jobs(6);
    let fetched = fetcher.fetch_all(&items, &NoProgress).unwrap();
    assert_eq!(fetched.len(), 36);
    assert_eq!(server.requests.load(Ordering::SeqCst), 36);
    // One connection per worker at most, each carrying several items.
    let connections = server.connections.load(Ordering::SeqCst);
    assert!(connections <= 6, "{connections} connections for 6 jobs");
}

#[test]
fn fetch_over_http_verifies_caches_and_then_works_offline() {
    let temp = tempfile::tempdir().unwrap();
    let repo = temp.path().join("repo");
    let cache = temp.path().join("cache");
    let server = HttpServer::serve(&repo);
    let items = repository(&repo, &server.base_uri(), 12);
    let fetcher = Fetcher::new(&cache).unwrap().with_jobs(3);
    let recorder = Recorder::default();

    let fetched = fetcher.fetch_all(&items, &recorder).unwrap();
    assert_eq!(fetched.len(), 12);
    for (item, file) in items.iter().zip(&fetched) {
        assert_eq!(file.source, FetchSource::Downloaded);
        assert_eq!(file.path, cache.join(format!("{}.deb", item.sha256)));
        assert_eq!(digest_of(&file.path), (item.sha256, item.size));
        let original = fs::read(repo.join(&item.filename)).unwrap();
        assert_eq!(fs::read(&file.path).unwrap(), original);
    }
    let progress = recorder.progress.lock().unwrap().clone();
    for (i, item) in items.iter().enumerate() {
        assert_eq!(progress[&i], (item.size, item.size), "item {i} progress");
    }
    assert_eq!(recorder.finished.lock().unwrap().len(), 12);
    assert!(recorder.failed.lock().unwrap().is_empty());
    assert!(
        server
            .max_concurrent
            .load(std::sync::atomic::Ordering::SeqCst)
            <= 3
    );
    assert_eq!(
        server.requests.load(std::sync::atomic::Ordering::SeqCst),
        12
    );

    // The repository goes away: a complete cache still fetches everything, offline.
    drop(server);
    fs::remove_dir_all(&repo).unwrap();
    let again = fetcher.fetch_all(&items, &NoProgress).unwrap();
    assert!(again.iter().all(|f| f.source == FetchSource::Cached));
    assert_eq!(
        again.iter().map(|f| &f.path).collect::<Vec<_>>(),
        fetched.iter().map(|f| &f.path).collect::<Vec<_>>()
    );
    // Only the verified files are in the cache, no temp files.
    assert_eq!(cache_entries(&cache).len(), 12);
}

#[test]
fn sha256_mismatch_is_refused_and_leaves_nothing() {
    let temp = tempfile::tempdir().unwrap();
    let repo = temp.path().join("repo");
    let cache = temp.path().join("cache");
    let server = HttpServer::serve(&repo);
    let mut items = repository(&repo, &server.base_uri(), 1);
    let real = items[0].sha256;
    items[0].sha256 = Sha256::of(b"something else");
    let fetcher = Fetcher::new(&cache).unwrap();
    let error = fetcher.fetch_all(&items, &NoProgress).unwrap_err();
    match &error {
        FetchError::HashMismatch { uri, expected, got } => {
            assert!(uri.ends_with(&items[0].filename), "{uri}");
            assert_eq!(*expected, items[0].sha256);
            assert_eq!(*got, real);
        }
        other => panic!("expected a hash mismatch, got {other:?}"),
    }
    let text = error.to_string();
    assert!(text.contains(&real.to_string()) && text.contains(&items[0].sha256.to_string()));
    assert!(
        cache_entries(&cache).is_empty(),
        "{:?}",
        cache_entries(&cache)
    );
}

#[test]
fn size_mismatch_is_refused_and_leaves_nothing() {
    let temp = tempfile::tempdir().unwrap();
    let repo = temp.path().join("repo");
    let cache = temp.path().join("cache");
    let server = HttpServer::serve(&repo);
    let items = repository(&repo, &server.base_uri(), 2);
    let fetcher = Fetcher::new(&cache).unwrap();
    let mut short = items[1].clone();
    short.size -= 1;
    let mut long = items[1].clone();
    long.size += 1;
    let results = fetcher.fetch_each(&[short.clone(), long.clone()], &NoProgress);
    match &results[0] {
        Err(FetchError::SizeMismatch {
            expected,
            got,
            more: true,
            ..
        }) => {
            assert_eq!((*expected, *got), (short.size, short.size + 1));
        }
        other => panic!("expected a size mismatch, got {other:?}"),
    }
    match &results[1] {
        Err(FetchError::SizeMismatch {
            expected,
            got,
            more: false,
            ..
        }) => {
            assert_eq!((*expected, *got), (long.size, items[1].size));
        }
        other => panic!("expected a size mismatch, got {other:?}"),
    }
    assert!(cache_entries(&cache).is_empty());
}

#[test]
fn transfer_that_breaks_off_is_an_error_and_leaves_nothing() {
    let temp = tempfile::tempdir().unwrap();
    let repo = temp.path().join("repo");
    let cache = temp.path().join("cache");
    let server = HttpServer::serve(&repo);
    let mut items = repository(&repo, &server.base_uri(), 1);
    items[0].filename = format!("broken/{}", items[0].filename);
    items[0].size += 1000;
    let fetcher = Fetcher::new(&cache).unwrap().with_retries(quick_retries());
    let error = fetcher.fetch_all(&items, &NoProgress).unwrap_err();
    let FetchError::Attempts {
        attempts: 4, last, ..
    } = &error
    else {
        panic!("expected every attempt to break off, got {error:?}");
    };
    match &**last {
        FetchError::Transfer { uri, reason } => {
            assert!(uri.contains("/broken/pool/"), "{uri}");
            assert_eq!(reason, "the connection closed early");
        }
        other => panic!("expected a broken transfer, got {other:?}"),
    }
    assert_eq!(server.requests.load(std::sync::atomic::Ordering::SeqCst), 4);
    assert!(
        cache_entries(&cache).is_empty(),
        "{:?}",
        cache_entries(&cache)
    );
}

#[test]
fn missing_file_is_an_http_404() {
    let temp = tempfile::tempdir().unwrap();
    let repo = temp.path().join("repo");
    let server = HttpServer::serve(&repo);
    let mut items = repository(&repo, &server.base_uri(), 1);
    items[0].filename = "pool/main/t/gone_1.0_amd64.deb".to_string();
    let fetcher = Fetcher::new(&temp.path().join("cache")).unwrap();
    let error = fetcher.fetch_all(&items, &NoProgress).unwrap_err();
    assert!(
        matches!(error, FetchError::Http { status: 404, .. }),
        "{error:?}"
    );
    assert!(error.hint().unwrap().contains("ferry lock"));
}

#[test]
fn unreachable_repository_names_the_uri_and_why() {
    let temp = tempfile::tempdir().unwrap();
    let port = dead_port();
    let items = vec![FetchItem {
        base_uri: format!("http://127.0.0.1:{port}/debian"),
        filename: "pool/main/b/busybox/busybox_1.35.0-4_amd64.deb".to_string(),
        sha256: Sha256::of(b"x"),
        size: 1,
    }];
    let fetcher = Fetcher::new(&temp.path().join("cache"))
        .unwrap()
        .with_retries(quick_retries());
    let error = fetcher.fetch_all(&items, &NoProgress).unwrap_err();
    assert!(
        matches!(&error, FetchError::Attempts { attempts: 4, last, .. }
            if matches!(**last, FetchError::Unreachable { .. })),
        "{error:?}"
    );
    let text =
        format!("{error}\nhint: {}", error.hint().unwrap()).replace(&format!(":{port}/"), ":PORT/");
    insta::assert_snapshot!(text, @r"
    cannot reach the repository for http://127.0.0.1:PORT/debian/pool/main/b/busybox/busybox_1.35.0-4_amd64.deb: connection refused (gave up after 4 attempts)
    hint: check the network and the URIs in /etc/apt/sources.list.d/; with a complete cache or store, nothing needs fetching
    ");
    assert!(cache_entries(&temp.path().join("cache")).is_empty());
}

#[test]
fn file_repositories_are_fetched_and_verified() {
    let temp = tempfile::tempdir().unwrap();
    let repo = temp.path().join("repo");
    let cache = temp.path().join("cache");
    let items = repository(&repo, &format!("file://{}", repo.display()), 3);
    let fetcher = Fetcher::new(&cache).unwrap();
    let fetched = fetcher.fetch_all(&items, &NoProgress).unwrap();
    for (item, file) in items.iter().zip(&fetched) {
        assert_eq!(digest_of(&file.path), (item.sha256, item.size));
    }
    // `file:/path` (one slash), as sources.list allows, names the same files.
    let mut single = items[0].clone();
    single.base_uri = format!("file:{}", repo.display());
    fs::remove_file(&fetched[0].path).unwrap();
    let file = fetcher.fetch_one(0, &single, &NoProgress).unwrap();
    assert_eq!(file.source, FetchSource::Downloaded);
    // A missing file of a file: repository is a read error naming it.
    let mut gone = items[0].clone();
    gone.filename = "pool/none.deb".to_string();
    gone.sha256 = Sha256::of(b"none");
    let error = fetcher.fetch_one(0, &gone, &NoProgress).unwrap_err();
    assert!(
        matches!(&error, FetchError::Read { uri, .. } if uri.ends_with("pool/none.deb")),
        "{error:?}"
    );
}

#[test]
fn damaged_cache_file_is_fetched_again() {
    let temp = tempfile::tempdir().unwrap();
    let repo = temp.path().join("repo");
    let cache = temp.path().join("cache");
    let items = repository(&repo, &format!("file://{}", repo.display()), 1);
    let fetcher = Fetcher::new(&cache).unwrap();
    let path = fetcher.cache().path_of(&items[0].sha256);
    fs::create_dir_all(&cache).unwrap();
    fs::write(&path, vec![0u8; items[0].size as usize]).unwrap();
    let file = fetcher.fetch_one(0, &items[0], &NoProgress).unwrap();
    assert_eq!(file.source, FetchSource::Downloaded);
    assert_eq!(digest_of(&path), (items[0].sha256, items[0].size));
}

#[test]
fn unsupported_scheme_is_refused() {
    let temp = tempfile::tempdir().unwrap();
    let fetcher = Fetcher::new(&temp.path().join("cache")).unwrap();
    let item = FetchItem {
        base_uri: "ftp://127.0.0.1/debian".to_string(),
        filename: "pool/x.deb".to_string(),
        sha256: Sha256::of(b"x"),
        size: 1,
    };
    let error = fetcher.fetch_one(0, &item, &NoProgress).unwrap_err();
    assert!(
        matches!(error, FetchError::UnsupportedScheme { .. }),
        "{error:?}"
    );
}
