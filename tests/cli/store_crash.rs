//! Crash safety of `ferry store add`: the real binary is SIGKILLed at random moments while it
//! adds a tree; after every kill the store must verify clean and, once reopened, hold no
//! temporary directory. Completed adds must stay valid.
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const ITERATIONS: usize = 60;

fn ferry(root: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_ferry"));
    command
        .arg("--store-dir")
        .arg(root.join("store"))
        .arg("--state-dir")
        .arg(root.join("var"));
    command
}

/// A tree of a few hundred files (some large enough to take a while), distinct per `variant`.
fn make_tree(at: &Path, variant: usize) {
    for dir in 0..8 {
        let sub = at.join(format!("dir{dir}"));
        std::fs::create_dir_all(&sub).unwrap();
        for file in 0..40 {
            let size = if file % 10 == 0 { 96 * 1024 } else { 700 };
            let byte = (dir * 40 + file) as u8;
            std::fs::write(sub.join(format!("f{file}")), vec![byte; size]).unwrap();
        }
    }
    std::fs::write(at.join("variant"), variant.to_string()).unwrap();
    std::os::unix::fs::symlink("dir0/f1", at.join("link")).unwrap();
}

/// xorshift, seeded from the clock; the seed is printed so a failure can be replayed.
struct Random(u64);

impl Random {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn temporaries(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with(".tmp-")
        })
        .collect()
}

fn verify_clean(root: &Path) {
    let output = ferry(root).args(["store", "verify"]).output().unwrap();
    assert!(
        output.status.success(),
        "verify failed after a kill:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    // `verify` reopened the store, which purges what killed runs left behind.
    assert_eq!(temporaries(&root.join("store")), Vec::<PathBuf>::new());
    let staging: Vec<PathBuf> = std::fs::read_dir(root.join("store/.tmp"))
        .map(|entries| entries.map(|e| e.unwrap().path()).collect())
        .unwrap_or_default();
    assert_eq!(
        staging,
        Vec::<PathBuf>::new(),
        "staging directories survived"
    );
    assert_eq!(temporaries(&root.join("var/db")), Vec::<PathBuf>::new());
}

#[test]
fn killing_store_add_at_random_moments_never_corrupts_the_store() {
    let root = tempfile::tempdir().unwrap();
    let trees: Vec<PathBuf> = (0..4)
        .map(|variant| {
            let tree = root.path().join(format!("tree{variant}"));
            make_tree(&tree, variant);
            tree
        })
        .collect();

    // How long one uninterrupted add takes here, to spread the kills over its whole life.
    // The first add also creates the store and warms caches, so time a second, full add
    // (new content) of the same tree.
    let add = |name: &str| {
        let output = ferry(root.path())
            .args(["store", "add"])
            .arg(&trees[0])
            .args(["--name", name])
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        output
    };
    add("t0-warmup");
    std::fs::write(trees[0].join("variant"), "0.timed").unwrap();
    let started = Instant::now();
    let output = add("t0");
    let mut span = started.elapsed().as_micros() as u64 + 1;
    let first_path = String::from_utf8(output.stdout).unwrap().trim().to_string();

    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    eprintln!("crash test seed: {seed}, add takes {span} µs");
    let mut random = Random(seed);
    let mut completed = vec![first_path];
    let mut killed = 0;
    for iteration in 0..ITERATIONS {
        let variant = 1 + iteration % 3;
        // A new content every time: a repeated add would be a cheap no-op, not worth killing.
        std::fs::write(
            trees[variant].join("variant"),
            format!("{variant}.{iteration}"),
        )
        .unwrap();
        let spawned = Instant::now();
        let mut child = ferry(root.path())
            .args(["store", "add"])
            .arg(&trees[variant])
            .args(["--name", &format!("t{variant}")])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_micros(random.next() % span));
        let _ = child.kill();
        let output = child.wait_with_output().unwrap();
        if output.status.success() {
            // Aim the next kills within the shortest uninterrupted run seen so far.
            span = span.min(spawned.elapsed().as_micros() as u64 + 1);
            completed.push(String::from_utf8(output.stdout).unwrap().trim().to_string());
        } else {
            killed += 1;
        }
        verify_clean(root.path());
    }
    assert!(
        killed >= ITERATIONS / 4,
        "only {killed} of {ITERATIONS} runs were actually interrupted"
    );

    // Every add that reported success is still valid, and every tree can still be added.
    for (variant, tree) in trees.iter().enumerate() {
        let output = ferry(root.path())
            .args(["store", "add"])
            .arg(tree)
            .args(["--name", &format!("t{variant}")])
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        completed.push(String::from_utf8(output.stdout).unwrap().trim().to_string());
    }
    for path in &completed {
        let output = ferry(root.path())
            .args(["store", "path-info", path])
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{path} lost: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    verify_clean(root.path());
}

/// Ten chains of twelve paths, each link referring to the one before; none rooted.
/// Returns the archive of all of them, for cheap re-population by import.
fn populate_chains(root: &Path) -> Vec<u8> {
    let store = ferry_store::Store::open(&root.join("store"), &root.join("var")).unwrap();
    let mut heads = Vec::new();
    for chain in 0..10 {
        let mut previous: Option<ferry_store::StorePath> = None;
        for link in 0..12 {
            let mut text = format!("chain {chain} link {link}\n").into_bytes();
            text.extend_from_slice(&vec![b'x'; 4096]);
            if let Some(previous) = &previous {
                text.extend_from_slice(previous.as_str().as_bytes());
            }
            let references: Vec<_> = previous.iter().cloned().collect();
            previous = Some(
                store
                    .add_bytes(&format!("c{chain}-l{link}"), &text, false, &references)
                    .unwrap(),
            );
        }
        heads.extend(previous);
    }
    let mut archive = Vec::new();
    store.export_closure(&heads, &mut archive).unwrap();
    archive
}

#[test]
fn killing_gc_at_random_moments_never_leaves_a_dangling_reference() {
    let root = tempfile::tempdir().unwrap();
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    eprintln!("gc crash test seed: {seed}");
    let mut random = Random(seed);
    let archive = populate_chains(root.path());
    let import = || {
        let store =
            ferry_store::Store::open(&root.path().join("store"), &root.path().join("var")).unwrap();
        store
            .import(archive.as_slice(), ferry_store::ImportMode::Atomic)
            .unwrap();
    };

    let mut span = u64::MAX;
    let mut killed = 0;
    const RUNS: usize = 30;
    for run in 0..RUNS {
        import();
        let started = Instant::now();
        let mut child = ferry(root.path())
            .arg("gc")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // The first run is timed whole; later ones are killed within the shortest run seen.
        if run > 0 {
            std::thread::sleep(Duration::from_micros(random.next() % span));
            let _ = child.kill();
        }
        if child.wait().unwrap().success() {
            span = span.min(started.elapsed().as_micros() as u64 + 1);
        } else {
            killed += 1;
        }
        // Whatever survived: every valid path's references are valid and its bytes verify.
        let store =
            ferry_store::Store::open(&root.path().join("store"), &root.path().join("var")).unwrap();
        let report = store.verify(false).unwrap();
        assert!(report.is_clean(), "after a killed gc: {report:?}");
    }
    eprintln!("{killed} of {RUNS} gc runs interrupted");
    assert!(
        killed >= RUNS / 5,
        "only {killed} of {RUNS} gc runs were interrupted"
    );
}
