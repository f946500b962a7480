//! Fetching and adding many `.deb`s at once ([`fetch_and_add`]): while downloads go on, each
//! `.deb` that arrived is unpacked in memory by one of a few workers (about one per core,
//! biggest first) and streamed into the store through that worker's own incremental import,
//! which writes one package while the worker unpacks the next.
//!
//! Invariants:
//! - What is registered is exactly what [`super::add_deb`] would register: the same checks of
//!   sha256 and control fields, the same tree, the same path, and the same realisation.
//! - The store writes each file once (no scratch copy) and keeps its crash-safe order: staged,
//!   made durable, then registered; a realisation is recorded only for a valid path.
//! - A package whose files exceed [`MEMORY_LIMIT`] goes the way [`super::add_deb`] goes, through
//!   a scratch directory, so memory stays bounded by a few packages whatever their size.
use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::sync::mpsc;
use std::sync::{Condvar, Mutex, MutexGuard};

use ferry_store::{ImportMode, ImportReport, Store, StoreError, StorePath};

use super::stream::{ArchiveStream, ObjectRecord};
use super::{
    add_fetched, deb_recipe_id, find_deb_object, object_name, unpack_deb_in_memory,
    ExpectedPackage, ObjectError,
};
use crate::fetch::{FetchError, FetchItem, FetchObserver, FetchedFile, Fetcher, Sha256};
use crate::unpack::UnpackError;

/// The most bytes of file contents one package may unpack to in memory; a bigger one is
/// unpacked on disk. The biggest packages of common closures (LLVM's library, perl's modules)
/// unpack to about 100 MB. Each unpack worker holds at most three packages at once: the one
/// it unpacks, one queued, and the one its import writes.
pub const MEMORY_LIMIT: u64 = 256 * 1024 * 1024;

/// Records waiting for the import beyond the one it is reading: each holds a whole unpacked
/// package, so this bounds memory, and one is enough to keep the import busy.
const QUEUED_RECORDS: usize = 1;

/// A `.deb` to fetch and add: where it is, and what the lock says it contains.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WantedDeb {
    /// The file to fetch (with its sha256 and size).
    pub item: FetchItem,
    /// The control fields it must have.
    pub expected: ExpectedPackage,
}

/// Why [`fetch_and_add`] failed: the first input, in the order given, that could not be
/// fetched (`ObjectError::Fetch`) or added.
#[derive(Debug, thiserror::Error)]
#[error("{error}")]
pub struct FetchAddError {
    /// The input's position in the list given.
    pub index: usize,
    /// What went wrong.
    pub error: ObjectError,
}

/// About one unpack worker per core.
pub fn default_unpack_jobs() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Makes every `.deb` of `debs` a store object and returns their paths, one per input in the
/// order given. A `.deb` whose object the store has already (by its sha256,
/// [`find_deb_object`]) is not fetched. The others are fetched by `fetcher` (its cache first,
/// `fetcher.jobs()` at once); each one that arrives is unpacked by one of `unpack_jobs`
/// workers and added while the downloads go on. `scratch` is used only for packages too big
/// to unpack in memory. A failure of one input does not stop the others: what could be added
/// is added (and found again next time); the first failure in input order is returned.
pub fn fetch_and_add(
    store: &Store,
    fetcher: &Fetcher,
    debs: &[WantedDeb],
    scratch: &Path,
    unpack_jobs: usize,
    observer: &dyn FetchObserver,
) -> Result<Vec<StorePath>, FetchAddError> {
    fetch_and_add_within(
        store,
        fetcher,
        debs,
        scratch,
        unpack_jobs,
        observer,
        MEMORY_LIMIT,
    )
}

/// Where an input's store path comes from.
enum Slot {
    /// The store had it already.
    Present(StorePath),
    /// Number `k` of the `.deb`s to fetch (one per sha256).
    Fetched(usize),
}

/// What became of one fetched `.deb`.
enum Outcome {
    /// Valid in the store, its realisation recorded.
    Added(StorePath),
    /// Handed to the import (or already on its way there under another sha256): valid once
    /// the import registered it.
    Streamed(StorePath),
    Failed(ObjectError),
}

/// [`fetch_and_add`] with `memory_limit` instead of [`MEMORY_LIMIT`].
fn fetch_and_add_within(
    store: &Store,
    fetcher: &Fetcher,
    debs: &[WantedDeb],
    scratch: &Path,
    unpack_jobs: usize,
    observer: &dyn FetchObserver,
    memory_limit: u64,
) -> Result<Vec<StorePath>, FetchAddError> {
    // What the store holds already, by sha256 (each asked once).
    let mut present: HashMap<Sha256, Option<StorePath>> = HashMap::new();
    // The inputs to fetch, one per sha256 (its first input), as positions in `debs`.
    let mut wanted: Vec<usize> = Vec::new();
    for (index, deb) in debs.iter().enumerate() {
        let sha256 = deb.item.sha256;
        if let Entry::Vacant(entry) = present.entry(sha256) {
            let path = entry.insert(find_deb_object(store, &sha256));
            if path.is_none() {
                wanted.push(index);
            }
        }
    }
    // Biggest first: the longest unpacks start early instead of ending up alone at the end.
    wanted.sort_by_key(|&index| std::cmp::Reverse(debs[index].item.size));
    let number: HashMap<Sha256, usize> = wanted
        .iter()
        .enumerate()
        .map(|(k, &index)| (debs[index].item.sha256, k))
        .collect();
    let slots: Vec<Slot> = debs
        .iter()
        .map(|deb| match &present[&deb.item.sha256] {
            Some(path) => Slot::Present(path.clone()),
            None => Slot::Fetched(number[&deb.item.sha256]),
        })
        .collect();
    // Every wanted `.deb` is settled by a worker or by its fetch failing.
    let mut outcomes = if wanted.is_empty() {
        Vec::new()
    } else {
        let pipeline = Pipeline {
            store,
            debs,
            wanted: &wanted,
            scratch,
            memory_limit,
            streamed: Mutex::new(HashSet::new()),
        };
        pipeline.run(fetcher, unpack_jobs.max(1), observer)
    };
    let mut paths = Vec::with_capacity(debs.len());
    for (index, slot) in slots.into_iter().enumerate() {
        match slot {
            Slot::Present(path) => paths.push(path),
            // The first input of each sha256 comes before its repeats, so a failure is
            // returned (and taken) before any repeat of it is reached.
            Slot::Fetched(k) => match outcomes[k].take() {
                Some(Ok(path)) => {
                    outcomes[k] = Some(Ok(path.clone()));
                    paths.push(path);
                }
                Some(Err(error)) => return Err(FetchAddError { index, error }),
                // Each wanted `.deb` is settled once, and a failure is returned at its
                // first input, before any repeat of it.
                None => unreachable!("a settled outcome for every wanted .deb"),
            },
        }
    }
    Ok(paths)
}

/// One run of [`fetch_and_add`] over the `.deb`s not in the store.
struct Pipeline<'a> {
    store: &'a Store,
    debs: &'a [WantedDeb],
    /// The positions in `debs` of the `.deb`s to fetch.
    wanted: &'a [usize],
    scratch: &'a Path,
    memory_limit: u64,
    /// Paths handed to the import so far (two `.deb`s may make the same object, which an
    /// archive must not carry twice).
    streamed: Mutex<HashSet<StorePath>>,
}

impl Pipeline<'_> {
    /// Fetches, unpacks and imports; one result per wanted `.deb`.
    fn run(
        &self,
        fetcher: &Fetcher,
        unpack_jobs: usize,
        observer: &dyn FetchObserver,
    ) -> Vec<Option<Result<StorePath, ObjectError>>> {
        let items: Vec<FetchItem> = self
            .wanted
            .iter()
            .map(|&i| self.debs[i].item.clone())
            .collect();
        let outcomes: Mutex<Vec<Option<Outcome>>> =
            Mutex::new((0..items.len()).map(|_| None).collect());
        let settle = |k: usize, outcome: Outcome| {
            // A poisoned lock means a worker panicked; the scope re-raises that panic.
            if let Ok(mut outcomes) = outcomes.lock() {
                outcomes[k] = Some(outcome);
            }
        };
        let observer = Reindexed {
            inner: observer,
            positions: self.wanted,
        };
        let arrivals = Arrivals::default();
        let imports = std::thread::scope(|scope| {
            let workers: Vec<_> = (0..unpack_jobs)
                .map(|_| {
                    let (arrivals, settle) = (&arrivals, &settle);
                    scope.spawn(move || self.unpack_worker(arrivals, settle))
                })
                .collect();
            // However the fetch ends (even by a panic), the workers stop once every arrival is
            // taken; the scope waits for them.
            let closing = CloseOnDrop(&arrivals);
            fetcher.fetch_each_then(&items, &observer, &|k, result| match result {
                Ok(file) => arrivals.push(k, file),
                Err(error) => settle(k, Outcome::Failed(ObjectError::Fetch(Box::new(error)))),
            });
            drop(closing);
            let imports: Vec<_> = workers
                .into_iter()
                .map(|worker| match worker.join() {
                    Ok(imported) => imported,
                    Err(panic) => std::panic::resume_unwind(panic),
                })
                .collect();
            imports
        });
        let mut import_error = imports.into_iter().find_map(Result::err);
        let outcomes = outcomes.into_inner().unwrap_or_else(|p| p.into_inner());
        outcomes
            .into_iter()
            .enumerate()
            .map(|(k, outcome)| match outcome? {
                Outcome::Streamed(path) => {
                    let sha256 = &self.debs[self.wanted[k]].item.sha256;
                    Some(
                        match self.store.set_realisation(&deb_recipe_id(sha256), &path) {
                            Ok(()) => Ok(path),
                            // Not valid: the import stopped before it; its error says why.
                            Err(error) => {
                                Err(ObjectError::from(import_error.take().unwrap_or(error)))
                            }
                        },
                    )
                }
                Outcome::Added(path) => Some(Ok(path)),
                Outcome::Failed(error) => Some(Err(error)),
            })
            .collect()
    }

    /// One unpack worker: takes the `.deb`s that arrived, one at a time, until there are no
    /// more, and streams those it unpacked into an import of its own, so that the store's
    /// writing of one package overlaps the unpacking of the next. Returns how the import ended.
    fn unpack_worker(
        &self,
        arrivals: &Arrivals,
        settle: &(dyn Fn(usize, Outcome) + Sync),
    ) -> Result<ImportReport, StoreError> {
        std::thread::scope(|scope| {
            let (records, queue) = mpsc::sync_channel::<ObjectRecord>(QUEUED_RECORDS);
            let importer = scope.spawn(move || {
                self.store
                    .import_buffered(ArchiveStream::new(queue), ImportMode::Incremental)
            });
            while let Some((k, file)) = arrivals.take() {
                let outcome = self.add(&file, k, &records).unwrap_or_else(Outcome::Failed);
                settle(k, outcome);
            }
            // The import's stream ends with its sender.
            drop(records);
            match importer.join() {
                Ok(imported) => imported,
                Err(panic) => std::panic::resume_unwind(panic),
            }
        })
    }

    /// Unpacks fetched `.deb` number `k` and hands it to the import, or adds it from disk when
    /// it is too big for memory.
    fn add(
        &self,
        file: &FetchedFile,
        k: usize,
        records: &mpsc::SyncSender<ObjectRecord>,
    ) -> Result<Outcome, ObjectError> {
        let expected = &self.debs[self.wanted[k]].expected;
        let unpacked =
            match unpack_deb_in_memory(&file.path, &file.sha256, Some(expected), self.memory_limit)
            {
                Ok(unpacked) => unpacked,
                Err(ObjectError::Unpack {
                    source: UnpackError::OverMemoryLimit { .. },
                    ..
                }) => {
                    let object = add_fetched(self.store, file, Some(expected), self.scratch)?;
                    return Ok(Outcome::Added(object.path));
                }
                Err(error) => return Err(error),
            };
        let name = object_name(&unpacked.control.package, &unpacked.control.version)?;
        let record = ObjectRecord::new(self.store.store_dir(), &name, unpacked.tree);
        let path = record.path.clone();
        if self.store.is_valid(&path) {
            self.store
                .set_realisation(&deb_recipe_id(&file.sha256), &path)?;
            return Ok(Outcome::Added(path));
        }
        let first = self
            .streamed
            .lock()
            .map(|mut streamed| streamed.insert(path.clone()))
            .unwrap_or(false);
        if first {
            // A send fails only when the import stopped; its error is reported for this path,
            // which then is not valid.
            let _ = records.send(record);
        }
        Ok(Outcome::Streamed(path))
    }
}

/// The fetched `.deb`s waiting for an unpack worker. Workers take the biggest first (the
/// smallest number: `.deb`s are numbered biggest first), since small ones arrive first
/// (a cache hit is checked faster, a download ends sooner) and the longest unpack must not
/// start last.
#[derive(Default)]
struct Arrivals {
    state: Mutex<ArrivalState>,
    changed: Condvar,
}

#[derive(Default)]
struct ArrivalState {
    waiting: BTreeMap<usize, FetchedFile>,
    /// No more will arrive.
    closed: bool,
}

impl Arrivals {
    fn lock(&self) -> MutexGuard<'_, ArrivalState> {
        // Poisoned only by a panic in this module's short critical sections, which the scope
        // re-raises; the state itself stays consistent.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn push(&self, k: usize, file: FetchedFile) {
        self.lock().waiting.insert(k, file);
        self.changed.notify_one();
    }

    fn close(&self) {
        self.lock().closed = true;
        self.changed.notify_all();
    }

    /// The biggest waiting `.deb`, waiting for one to arrive; `None` once closed and empty.
    fn take(&self) -> Option<(usize, FetchedFile)> {
        let mut state = self.lock();
        loop {
            if let Some(next) = state.waiting.pop_first() {
                return Some(next);
            }
            if state.closed {
                return None;
            }
            state = self.changed.wait(state).unwrap_or_else(|p| p.into_inner());
        }
    }
}

/// Closes [`Arrivals`] when dropped.
struct CloseOnDrop<'a>(&'a Arrivals);

impl Drop for CloseOnDrop<'_> {
    fn drop(&mut self) {
        self.0.close();
    }
}

/// Passes a fetch's progress on with each item's position in the caller's list.
struct Reindexed<'a> {
    inner: &'a dyn FetchObserver,
    positions: &'a [usize],
}

impl FetchObserver for Reindexed<'_> {
    fn started(&self, index: usize, item: &FetchItem) {
        self.inner.started(self.positions[index], item);
    }
    fn progress(&self, index: usize, done: u64, total: u64) {
        self.inner.progress(self.positions[index], done, total);
    }
    fn finished(&self, index: usize, file: &FetchedFile) {
        self.inner.finished(self.positions[index], file);
    }
    fn retrying(&self, index: usize, attempt: u32, error: &FetchError) {
        self.inner.retrying(self.positions[index], attempt, error);
    }
    fn failed(&self, index: usize, error: &FetchError) {
        self.inner.failed(self.positions[index], error);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// A `.deb` at `<dir>/<package>.deb` holding `files` (name, content) under `usr/`.
    fn hand_made_deb(dir: &Path, package: &str, files: &[(&str, &[u8])]) -> std::path::PathBuf {
        let tar_of = |entries: &[(String, &[u8])]| {
            let mut builder = tar::Builder::new(Vec::new());
            for (name, content) in entries {
                let mut header = tar::Header::new_gnu();
                header.set_mode(0o644);
                header.set_size(content.len() as u64);
                builder.append_data(&mut header, name, *content).unwrap();
            }
            builder.into_inner().unwrap()
        };
        let control = format!("Package: {package}\nVersion: 1.0\nArchitecture: all\n");
        let control_tar = tar_of(&[("./control".to_string(), control.as_bytes())]);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(&control_tar).unwrap();
        let control_gz = gz.finish().unwrap();
        let data: Vec<(String, &[u8])> = files
            .iter()
            .map(|(name, content)| (format!("./usr/{name}"), *content))
            .collect();
        let data_tar = tar_of(&data);
        let path = dir.join(format!("{package}.deb"));
        let mut ar = ar::Builder::new(std::fs::File::create(&path).unwrap());
        for (name, bytes) in [
            (&b"debian-binary"[..], &b"2.0\n"[..]),
            (b"control.tar.gz", &control_gz),
            (b"data.tar", &data_tar),
        ] {
            ar.append(&ar::Header::new(name.to_vec(), bytes.len() as u64), bytes)
                .unwrap();
        }
        path
    }

    fn wanted(deb: &Path, package: &str) -> WantedDeb {
        let bytes = std::fs::read(deb).unwrap();
        let dir = deb.parent().unwrap();
        WantedDeb {
            item: FetchItem {
                base_uri: format!("file://{}", dir.display()),
                filename: deb.file_name().unwrap().to_str().unwrap().to_string(),
                sha256: Sha256::of(&bytes),
                size: bytes.len() as u64,
            },
            expected: ExpectedPackage {
                package: package.to_string(),
                version: "1.0".to_string(),
                architecture: "all".to_string(),
            },
        }
    }

    #[test]
    fn package_over_the_memory_limit_is_added_from_disk_with_the_same_tree() {
        let temp = tempfile::tempdir().unwrap();
        let repo = temp.path().join("repo");
        let scratch = temp.path().join("scratch");
        std::fs::create_dir_all(&repo).unwrap();
        std::fs::create_dir_all(&scratch).unwrap();
        let small = hand_made_deb(&repo, "small", &[("s", b"12345")]);
        let large = hand_made_deb(&repo, "large", &[("a", &[7; 600]), ("b", &[8; 600])]);
        let debs = [wanted(&small, "small"), wanted(&large, "large")];

        let in_memory =
            Store::open(&temp.path().join("a/store"), &temp.path().join("a/state")).unwrap();
        let fetcher = Fetcher::new(&temp.path().join("cache")).unwrap();
        let reference = fetch_and_add(
            &in_memory,
            &fetcher,
            &debs,
            &scratch,
            2,
            &crate::fetch::NoProgress,
        )
        .unwrap();

        // 1,000 bytes: the small package fits in memory, the large one does not.
        let store =
            Store::open(&temp.path().join("b/store"), &temp.path().join("b/state")).unwrap();
        let paths = fetch_and_add_within(
            &store,
            &fetcher,
            &debs,
            &scratch,
            2,
            &crate::fetch::NoProgress,
            1000,
        )
        .unwrap();
        assert_eq!(
            paths.iter().map(|p| p.name()).collect::<Vec<_>>(),
            ["small-1.0", "large-1.0"]
        );
        for (path, other) in paths.iter().zip(&reference) {
            assert_eq!(
                store.path_info(path).unwrap().tree_digest,
                in_memory.path_info(other).unwrap().tree_digest
            );
        }
        assert_eq!(
            find_deb_object(&store, &debs[1].item.sha256).as_ref(),
            Some(&paths[1])
        );
        assert_eq!(std::fs::read_dir(&scratch).unwrap().count(), 0);
    }
}
