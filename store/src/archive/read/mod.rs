//! Reading the archive stream: parse, stage with `*at` calls only, re-hash, re-derive every
//! path from content and declared references, and register only what verifies.
//!
//! `input` reads the primitive fields, `object` one object record, `node` and `file` its node
//! tree; `batch` hands verified objects to the registration thread, `descriptors` raises the
//! descriptor limit that incremental imports need.
use std::collections::HashSet;
use std::io::{BufRead, BufReader, Read};

use super::{limits, ArchiveError, MAGIC, TAG_END, TAG_OBJECT, VERSION};
use crate::error::{Result, StoreError};
use crate::fsops::{self, DirHandle};
use crate::path::StorePath;
use crate::register::{StagedObject, Staging};
use crate::store::Store;
use descriptors::{DescriptorLimit, MAX_UNNAMED_FILES};
use file::CHUNK;
use input::Input;

mod batch;
mod descriptors;
mod file;
mod input;
mod node;
mod object;

/// How verified objects become valid.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImportMode {
    /// Nothing is registered unless the whole stream verifies (`ferry store import`).
    Atomic,
    /// Objects are registered in small batches as soon as they and their references verify, so
    /// a stream cut at any point keeps what fully arrived (the SSH copy protocol). On an error,
    /// the objects verified before it are registered, then the error is returned.
    Incremental,
}

/// What an import did.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct ImportReport {
    /// Every object of the stream, in stream order.
    pub paths: Vec<StorePath>,
    /// Those that became valid by this import.
    pub registered: Vec<StorePath>,
    /// Those that were valid already (still read and verified, but not written).
    pub already_valid: Vec<StorePath>,
    /// Bytes read from the stream.
    pub bytes: u64,
}

impl Store {
    /// Imports an archive from any reader (buffered internally). It may read past the end of
    /// the archive; use `import_buffered` when the stream continues after it.
    pub fn import(&self, input: impl Read, mode: ImportMode) -> Result<ImportReport> {
        self.import_buffered(BufReader::with_capacity(256 * 1024, input), mode)
    }

    /// Imports an archive from a buffered reader without consuming anything after its end.
    pub fn import_buffered(&self, input: impl BufRead, mode: ImportMode) -> Result<ImportReport> {
        let _shared = self.shared_lock()?;
        let staging = Staging::create(self)?;
        // Only incremental imports hold unnamed files open (see `unnamed_files`).
        let descriptors = (mode == ImportMode::Incremental).then(DescriptorLimit::raise);
        let store_dir = DirHandle::open(self.store_dir.as_path())?;
        std::thread::scope(|scope| {
            // Batches are made durable and registered on their own thread while the stream
            // goes on: a `syncfs` is mostly waiting for the disk, and linking a batch into
            // place can use another core. The channel holds nothing: a batch is handed over
            // only when the thread is free to take it.
            let (batches, queue) = std::sync::mpsc::sync_channel::<Vec<StagedObject>>(0);
            let staging = &staging;
            let registrar = scope.spawn(move || batch::register_batches(self, staging, queue));
            // The batch being read and the one being registered may both hold their unnamed
            // files open.
            let max_unnamed = descriptors
                .as_ref()
                .map_or(MAX_UNNAMED_FILES, |d| d.unnamed_file_budget() / 2);
            let mut importer =
                Importer::new(self, input, mode, staging, batches, max_unnamed, store_dir);
            let outcome = importer.run();
            // An incremental import keeps what fully arrived and verified, even when the
            // stream then failed; an atomic one registers nothing unless all of it verified.
            let handed_over = match (&outcome, mode) {
                (Ok(()), _) | (Err(_), ImportMode::Incremental) => importer.flush(),
                (Err(_), ImportMode::Atomic) => Ok(()),
            };
            importer.batches = None;
            let registered = registrar.join().unwrap_or_else(|_| {
                Err(stream_failure(
                    "internal error: the registration thread panicked",
                ))
            });
            // A stopped registration explains the stream's "registration stopped"; otherwise
            // the stream's own error matters most, then the registration's.
            let registered = match (registered, importer.registration_stopped) {
                (Err(error), true) => return Err(error),
                (registered, _) => registered,
            };
            outcome?;
            let registered = registered?;
            handed_over?;
            importer.report.registered = registered;
            importer.report.bytes = importer.input.offset;
            Ok(importer.report)
        })
    }
}

/// One import's state: the stream, what verified so far, and the batch waiting for
/// registration.
struct Importer<'s, R: BufRead> {
    store: &'s Store,
    input: Input<R>,
    mode: ImportMode,
    staging: &'s Staging,
    /// Where finished batches go to be made durable and registered (`None` once closed).
    batches: Option<std::sync::mpsc::SyncSender<Vec<StagedObject>>>,
    /// Set when a batch could not be handed over: the registration thread stopped on an error.
    registration_stopped: bool,
    /// When the oldest object still waiting for registration arrived.
    oldest_pending: std::time::Instant,
    /// Whether single-file objects are written as unnamed files in the store dir (incremental
    /// imports only, and only until the file system says it cannot).
    unnamed_files: bool,
    /// The current object's unnamed file, once written.
    unnamed: Option<std::fs::File>,
    /// Pending objects holding an open unnamed file, and how many may (descriptor limit).
    unnamed_pending: usize,
    max_unnamed: usize,
    /// The store dir, open.
    store_dir: DirHandle,
    /// Objects of this stream that verified so far.
    seen: HashSet<StorePath>,
    /// References to paths outside the stream found valid so far.
    valid_outside: HashSet<StorePath>,
    pending: Vec<StagedObject>,
    pending_bytes: u64,
    report: ImportReport,
    buffer: Vec<u8>,
    /// Node bytes read of the current object, and what its header declared.
    node_bytes: u64,
    declared_size: u64,
    current: Option<String>,
}

impl<'s, R: BufRead> Importer<'s, R> {
    fn new(
        store: &'s Store,
        input: R,
        mode: ImportMode,
        staging: &'s Staging,
        batches: std::sync::mpsc::SyncSender<Vec<StagedObject>>,
        max_unnamed: usize,
        store_dir: DirHandle,
    ) -> Self {
        Importer {
            store,
            input: Input {
                inner: input,
                offset: 0,
            },
            mode,
            staging,
            batches: Some(batches),
            registration_stopped: false,
            oldest_pending: std::time::Instant::now(),
            // An atomic import registers at the very end: it would hold every file open.
            unnamed_files: mode == ImportMode::Incremental,
            unnamed: None,
            unnamed_pending: 0,
            max_unnamed,
            store_dir,
            seen: HashSet::new(),
            valid_outside: HashSet::new(),
            pending: Vec::new(),
            pending_bytes: 0,
            report: ImportReport::default(),
            // Room to start the chunk at an address direct writes accept.
            buffer: vec![0; CHUNK + fsops::DIRECT_ALIGN],
            node_bytes: 0,
            declared_size: 0,
            current: None,
        }
    }

    /// Reads the whole stream: magic, version, object records, and the end record's count.
    fn run(&mut self) -> Result<()> {
        let mut magic = [0u8; 8];
        self.input.exact(&mut magic).map_err(|e| match e {
            ArchiveError::Truncated { .. } => ArchiveError::BadMagic,
            other => other,
        })?;
        if &magic != MAGIC {
            return Err(ArchiveError::BadMagic.into());
        }
        let mut version = [0u8; 4];
        self.input.exact(&mut version)?;
        let version = u32::from_le_bytes(version);
        if version != VERSION {
            return Err(ArchiveError::UnsupportedVersion(version).into());
        }
        loop {
            let offset = self.input.offset;
            match self.input.u8()? {
                TAG_OBJECT => self.object()?,
                TAG_END => {
                    let declared = self.input.u64()?;
                    let actual = self.report.paths.len() as u64;
                    if declared != actual {
                        return Err(ArchiveError::CountMismatch { declared, actual }.into());
                    }
                    return Ok(());
                }
                tag => return Err(ArchiveError::BadTag { tag, offset }.into()),
            }
        }
    }

    /// Reads a store path field, refused unless it parses and is in this store's directory.
    fn store_path(&mut self, field: &'static str) -> Result<StorePath> {
        let offset = self.input.offset;
        let text = self.input.text(field, limits::PATH_LEN)?;
        let path = StorePath::parse(&text).map_err(|e| ArchiveError::BadField {
            field,
            offset,
            reason: e.to_string(),
        })?;
        if path.store_dir() != self.store.store_dir.as_str() {
            return Err(ArchiveError::WrongStoreDir {
                path: text,
                store_dir: self.store.store_dir.to_string(),
            }
            .into());
        }
        Ok(path)
    }

    /// Whether a reference from outside the stream is valid, asking the database once per path.
    fn known_valid(&mut self, reference: &StorePath) -> bool {
        if self.valid_outside.contains(reference) {
            return true;
        }
        let valid = self.store.db.exists(reference);
        if valid {
            // Stays valid: gc and repair cannot run while this import holds the shared lock.
            self.valid_outside.insert(reference.clone());
        }
        valid
    }

    /// Counts node bytes against the declared object size, refusing to read past it.
    fn charge(&mut self, bytes: u64) -> Result<()> {
        self.node_bytes = self.node_bytes.saturating_add(bytes);
        if self.node_bytes > self.declared_size {
            return Err(ArchiveError::SizeMismatch {
                path: self.current.clone().unwrap_or_default(),
                declared: self.declared_size,
                actual: self.node_bytes,
            }
            .into());
        }
        Ok(())
    }
}

/// A failure of the stream as a whole rather than of one object.
fn stream_failure(reason: &str) -> StoreError {
    StoreError::CorruptObject {
        path: "<archive>".to_string(),
        reason: reason.to_string(),
    }
}
