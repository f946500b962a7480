//! `object::fetch_and_add`: many `.deb`s fetched over HTTP, unpacked in memory while the
//! others download, and imported; the same store paths as the sequential fetch-then-add,
//! one per input in input order, and nothing fetched for what the store holds.
mod fixtures_deb;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

use ferry_debian::fetch::{FetchItem, FetchObserver, Fetcher, NoProgress, Sha256};
use ferry_debian::object::{
    add_fetched, fetch_and_add, find_deb_object, ExpectedPackage, FetchAddError, ObjectError,
    WantedDeb,
};
use ferry_store::{Store, StorePath};
use fixtures_deb::{build_deb, digest_of, listing, make_writable, populate_features, HttpServer};

/// Debs of different compressions and shapes under `<repo>/pool/`, as wanted inputs (not in
/// size order, one of them twice).
fn repository(repo: &Path, base_uri: &str) -> Vec<WantedDeb> {
    let pool = repo.join("pool");
    fs::create_dir_all(&pool).unwrap();
    let build = temp_build_dir(repo);
    let debs = [
        build_deb(&build, "features", "1:2.0~rc1-3", "xz", populate_features),
        build_deb(&build, "tiny", "1.0", "gzip", |root| {
            fs::write(root.join("only-file"), "tiny\n").unwrap();
        }),
        build_deb(&build, "big", "3.1-1", "zstd", |root| {
            let lib = root.join("usr/lib/big");
            fs::create_dir_all(&lib).unwrap();
            // Over the size that travels as a chunk of its own, and not compressible to
            // nothing.
            let bytes: Vec<u8> = (0..700_000u32)
                .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
                .collect();
            fs::write(lib.join("libbig.so.3"), &bytes).unwrap();
            fs::set_permissions(lib.join("libbig.so.3"), fs::Permissions::from_mode(0o755))
                .unwrap();
            std::os::unix::fs::symlink("libbig.so.3", lib.join("libbig.so")).unwrap();
            fs::create_dir_all(root.join("usr/share/big/empty")).unwrap();
        }),
        build_deb(&build, "plain", "0.5", "none", |root| {
            let deep = root.join("a/b/c/d/e");
            fs::create_dir_all(&deep).unwrap();
            fs::write(deep.join("leaf"), "deep\n").unwrap();
        }),
    ];
    let mut wanted: Vec<WantedDeb> = debs
        .iter()
        .map(|deb| {
            let name = deb.file_name().unwrap().to_str().unwrap().to_string();
            fs::copy(deb, pool.join(&name)).unwrap();
            let (sha256, size) = digest_of(deb);
            let control = ferry_debian::unpack::unpack_deb(deb, &build.join(format!("x-{name}")))
                .unwrap()
                .0;
            WantedDeb {
                item: FetchItem {
                    base_uri: base_uri.to_string(),
                    filename: format!("pool/{name}"),
                    sha256,
                    size,
                },
                expected: ExpectedPackage {
                    package: control.package,
                    version: control.version,
                    architecture: control.architecture,
                },
            }
        })
        .collect();
    wanted.push(wanted[1].clone());
    wanted
}

fn temp_build_dir(repo: &Path) -> std::path::PathBuf {
    let build = repo.with_file_name("build");
    fs::create_dir_all(&build).unwrap();
    build
}

/// Counts the items a fetch started.
#[derive(Default)]
struct Started(AtomicUsize);

impl FetchObserver for Started {
    fn started(&self, _: usize, _: &FetchItem) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// What a store says about each path: its tree, as files, and its digest and size.
fn describe(store: &Store, paths: &[StorePath]) -> Vec<(Vec<String>, String, u64)> {
    paths
        .iter()
        .map(|path| {
            let info = store.path_info(path).unwrap();
            (
                listing(&store.real_path(path)),
                info.tree_digest.to_hex(),
                info.nar_size,
            )
        })
        .collect()
}

#[test]
fn fetch_and_add_gives_the_sequential_paths_in_input_order_and_then_fetches_nothing() {
    let temp = tempfile::tempdir().unwrap();
    let repo = temp.path().join("repo");
    let server = HttpServer::serve(&repo);
    let wanted = repository(&repo, &server.base_uri());
    let items: Vec<FetchItem> = wanted.iter().map(|w| w.item.clone()).collect();
    let root = temp.path().join("deployer");
    let scratch = temp.path().join("scratch");
    fs::create_dir_all(&scratch).unwrap();

    // Deployer A: fetch everything, then add one by one.
    let store_a = Store::open(&root.join("store"), &root.join("state-a")).unwrap();
    let fetched = Fetcher::new(&temp.path().join("cache-a"))
        .unwrap()
        .fetch_all(&items, &NoProgress)
        .unwrap();
    let sequential: Vec<StorePath> = fetched
        .iter()
        .zip(&wanted)
        .map(|(file, w)| {
            add_fetched(&store_a, file, Some(&w.expected), &scratch)
                .unwrap()
                .path
        })
        .collect();
    let described_a = describe(&store_a, &sequential);
    drop(store_a);
    make_writable(&root);
    fs::remove_dir_all(&root).unwrap();

    // Deployer B, the same store dir: fetch and add at once.
    let store = Store::open(&root.join("store"), &root.join("state-b")).unwrap();
    let requests_before = server.requests.load(Ordering::SeqCst);
    let fetcher = Fetcher::new(&temp.path().join("cache-b"))
        .unwrap()
        .with_jobs(3);
    let paths = fetch_and_add(&store, &fetcher, &wanted, &scratch, 2, &NoProgress).unwrap();
    assert_eq!(paths, sequential);
    assert_eq!(paths[1], paths[4], "a repeated input gets the same path");
    assert_eq!(
        paths.iter().map(|p| p.name()).collect::<Vec<_>>(),
        [
            "features-1=2.0_rc1-3",
            "tiny-1.0",
            "big-3.1-1",
            "plain-0.5",
            "tiny-1.0"
        ]
    );
    assert_eq!(describe(&store, &paths), described_a);
    // The repeated input was fetched once.
    assert_eq!(server.requests.load(Ordering::SeqCst) - requests_before, 4);
    for (w, path) in wanted.iter().zip(&paths) {
        assert_eq!(find_deb_object(&store, &w.item.sha256).as_ref(), Some(path));
    }
    assert_eq!(fs::read_dir(&scratch).unwrap().count(), 0);

    // Again, with the repository gone and an empty cache: nothing is even looked up.
    drop(server);
    let started = Started::default();
    let empty_cache = temp.path().join("cache-c");
    let fetcher = Fetcher::new(&empty_cache).unwrap();
    let again = fetch_and_add(&store, &fetcher, &wanted, &scratch, 2, &started).unwrap();
    assert_eq!(again, paths);
    assert_eq!(started.0.load(Ordering::SeqCst), 0);
    assert_eq!(fs::read_dir(&empty_cache).unwrap().count(), 0);
}

#[test]
fn fetch_and_add_returns_the_first_failure_in_input_order_and_adds_the_rest() {
    let temp = tempfile::tempdir().unwrap();
    let repo = temp.path().join("repo");
    let server = HttpServer::serve(&repo);
    let mut wanted = repository(&repo, &server.base_uri());
    wanted.truncate(4);
    // Input 1 is not the package the lock says; input 2 is gone from the repository.
    wanted[1].expected.version = "9.9".to_string();
    wanted[2].item.filename = "pool/gone_1.0_all.deb".to_string();
    wanted[2].item.sha256 = Sha256::of(b"gone");
    let store = Store::open(&temp.path().join("store"), &temp.path().join("state")).unwrap();
    let fetcher = Fetcher::new(&temp.path().join("cache")).unwrap();
    let error = fetch_and_add(&store, &fetcher, &wanted, temp.path(), 2, &NoProgress).unwrap_err();
    match &error {
        FetchAddError {
            index: 1,
            error: ObjectError::ControlMismatch { field, .. },
        } => assert_eq!(*field, "Version"),
        other => panic!("expected input 1's version to be refused, got {other:?}"),
    }
    assert!(find_deb_object(&store, &wanted[1].item.sha256).is_none());
    // The others were added all the same, and are found next time.
    assert!(find_deb_object(&store, &wanted[0].item.sha256).is_some());
    assert!(find_deb_object(&store, &wanted[3].item.sha256).is_some());
    assert_eq!(store.all_valid_paths().unwrap().len(), 2);

    // With input 1 fixed, input 2's fetch failure comes first.
    wanted[1].expected.version = "1.0".to_string();
    let error = fetch_and_add(&store, &fetcher, &wanted, temp.path(), 2, &NoProgress).unwrap_err();
    match &error {
        FetchAddError {
            index: 2,
            error: ObjectError::Fetch(fetch),
        } => assert!(
            matches!(
                **fetch,
                ferry_debian::fetch::FetchError::Http { status: 404, .. }
            ),
            "{fetch:?}"
        ),
        other => panic!("expected input 2's fetch to fail, got {other:?}"),
    }
    assert!(find_deb_object(&store, &wanted[1].item.sha256).is_some());
}
