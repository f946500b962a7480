//! Reading the archive stream: parse, stage with `*at` calls only, re-hash, re-derive every
//! path from content and declared references, and register only what verifies.
use std::collections::HashSet;
use std::io::{BufRead, BufReader, Read};

use super::{limits, ArchiveError, MAGIC, TAG_END, TAG_OBJECT, VERSION};
use crate::db::PathInfo;
use crate::error::{Result, StoreError};
use crate::fsops::{self, DirHandle};
use crate::hash::canonical::{self, Digest, DirectoryHasher, TAG_DIRECTORY, TAG_FILE, TAG_SYMLINK};
use crate::path::StorePath;
use crate::realisation::RecipeId;
use crate::register::{StagedObject, Staging};
use crate::store::Store;

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

/// Incremental mode hands pending objects over for registration (on its own thread) once this
/// many objects or bytes are pending, or objects have been pending this long, if the registration
/// thread is idle; while it is busy, the batch grows. Each registration costs a `syncfs` and a
/// database commit whatever its size, so a slow disk gets fewer, bigger batches by itself.
const OFFER_OBJECTS: usize = 1024;
const OFFER_BYTES: u64 = 8 * 1024 * 1024;
const OFFER_INTERVAL: std::time::Duration = std::time::Duration::from_millis(250);

/// Pending objects are handed over, waiting for the registration thread if need be, once this
/// many bytes are pending or objects have been pending this long, so a cut stream keeps what
/// arrived a moment ago; or once the unnamed files they hold open reach the descriptor budget.
const FLUSH_BYTES: u64 = 64 * 1024 * 1024;
const FLUSH_INTERVAL: std::time::Duration = std::time::Duration::from_secs(2);

/// The most unnamed files an import holds open (see `DescriptorLimit`).
const MAX_UNNAMED_FILES: usize = 16384;

/// Size of the buffer file contents are copied through.
const CHUNK: usize = 1024 * 1024;

/// Files from this size on are written bypassing the page cache (see `fsops::DirectWriter`).
const DIRECT_MIN: u64 = CHUNK as u64;

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
            let registrar = scope.spawn(move || -> Result<Vec<StorePath>> {
                let mut registered = Vec::new();
                for batch in queue {
                    staging.handle().syncfs()?;
                    registered.extend(self.register(staging, batch)?);
                }
                Ok(registered)
            });
            let mut importer = Importer {
                store: self,
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
                // The batch being read and the one being registered may both hold their
                // unnamed files open.
                max_unnamed: descriptors
                    .as_ref()
                    .map_or(MAX_UNNAMED_FILES, |d| d.unnamed_file_budget() / 2),
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
            };
            let outcome = importer.run();
            // An incremental import keeps what fully arrived and verified, even when the
            // stream then failed; an atomic one registers nothing unless all of it verified.
            let handed_over = match (&outcome, mode) {
                (Ok(()), _) | (Err(_), ImportMode::Incremental) => importer.flush(),
                (Err(_), ImportMode::Atomic) => Ok(()),
            };
            importer.batches = None;
            let registered = registrar.join().unwrap_or_else(|_| {
                Err(StoreError::CorruptObject {
                    path: "<archive>".to_string(),
                    reason: "internal error: the registration thread panicked".to_string(),
                })
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

struct Input<R: BufRead> {
    inner: R,
    offset: u64,
}

impl<R: BufRead> Input<R> {
    fn exact(&mut self, buffer: &mut [u8]) -> Result<(), ArchiveError> {
        match self.inner.read_exact(buffer) {
            Ok(()) => {
                self.offset += buffer.len() as u64;
                Ok(())
            }
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                Err(ArchiveError::Truncated {
                    offset: self.offset,
                })
            }
            Err(source) => Err(ArchiveError::Read {
                offset: self.offset,
                source,
            }),
        }
    }

    fn u8(&mut self) -> Result<u8, ArchiveError> {
        let mut byte = [0u8];
        self.exact(&mut byte)?;
        Ok(byte[0])
    }

    fn u64(&mut self) -> Result<u64, ArchiveError> {
        let mut bytes = [0u8; 8];
        self.exact(&mut bytes)?;
        Ok(u64::from_le_bytes(bytes))
    }

    fn digest(&mut self) -> Result<[u8; 32], ArchiveError> {
        let mut bytes = [0u8; 32];
        self.exact(&mut bytes)?;
        Ok(bytes)
    }

    /// A length (checked against `limit` before anything is allocated) and that many bytes.
    fn bytes(&mut self, what: &'static str, limit: u64) -> Result<Vec<u8>, ArchiveError> {
        let offset = self.offset;
        let len = self.u64()?;
        if len > limit {
            return Err(ArchiveError::LimitExceeded {
                what,
                value: len,
                limit,
                offset,
            });
        }
        let mut bytes = vec![0u8; len as usize];
        self.exact(&mut bytes)?;
        Ok(bytes)
    }

    fn text(&mut self, what: &'static str, limit: u64) -> Result<String, ArchiveError> {
        let offset = self.offset;
        let bytes = self.bytes(what, limit)?;
        String::from_utf8(bytes).map_err(|_| ArchiveError::BadField {
            field: what,
            offset,
            reason: "not UTF-8".to_string(),
        })
    }
}

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

impl<R: BufRead> Importer<'_, R> {
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

    fn object(&mut self) -> Result<()> {
        let path = self.store_path("store path")?;
        if self.seen.contains(&path) {
            return Err(ArchiveError::DuplicateObject {
                path: path.to_string(),
            }
            .into());
        }
        let offset = self.input.offset;
        let count = self.input.u64()?;
        if count > limits::REFERENCES {
            return Err(ArchiveError::LimitExceeded {
                what: "reference count",
                value: count,
                limit: limits::REFERENCES,
                offset,
            }
            .into());
        }
        let mut references: Vec<StorePath> = Vec::new();
        for _ in 0..count {
            let offset = self.input.offset;
            let reference = self.store_path("reference")?;
            if references.last().is_some_and(|last| *last >= reference) {
                return Err(ArchiveError::BadField {
                    field: "references",
                    offset,
                    reason: "not strictly sorted".to_string(),
                }
                .into());
            }
            if reference == path {
                return Err(ArchiveError::SelfReference {
                    path: path.to_string(),
                }
                .into());
            }
            if !self.seen.contains(&reference) && !self.known_valid(&reference) {
                return Err(ArchiveError::UnknownReference {
                    path: path.to_string(),
                    reference: reference.to_string(),
                }
                .into());
            }
            references.push(reference);
        }
        let offset = self.input.offset;
        let deriver = match self.input.u8()? {
            0 => None,
            1 => Some(RecipeId(self.input.digest()?)),
            other => {
                return Err(ArchiveError::BadField {
                    field: "deriver flag",
                    offset,
                    reason: format!("{other} is neither 0 nor 1"),
                }
                .into())
            }
        };
        let offset = self.input.offset;
        let count = self.input.u64()?;
        if count > limits::SIGNATURES {
            return Err(ArchiveError::LimitExceeded {
                what: "signature count",
                value: count,
                limit: limits::SIGNATURES,
                offset,
            }
            .into());
        }
        let mut signatures = Vec::new();
        for _ in 0..count {
            signatures.push(self.input.text("signature", limits::SIGNATURE_LEN)?);
        }
        let tree_digest = Digest(self.input.digest()?);
        let offset = self.input.offset;
        let nar_size = self.input.u64()?;
        if nar_size > limits::OBJECT_SIZE {
            return Err(ArchiveError::LimitExceeded {
                what: "object size",
                value: nar_size,
                limit: limits::OBJECT_SIZE,
                offset,
            }
            .into());
        }

        // A valid path always has its entry in the store dir: where there is none (the
        // common case in a copy), the database need not be asked.
        let already_valid =
            self.store_dir.has_entry(path.base_name().as_bytes()) && self.store.db.exists(&path);
        let entry = format!("o{}", self.report.paths.len());
        self.node_bytes = 0;
        self.declared_size = nar_size;
        self.current = Some(path.to_string());
        let staging_handle = self.staging.handle();
        let sink = if already_valid {
            None
        } else {
            Some(staging_handle)
        };
        let result = self.node(sink, entry.as_bytes()).and_then(|actual| {
            if self.node_bytes != nar_size {
                return Err(ArchiveError::SizeMismatch {
                    path: path.to_string(),
                    declared: nar_size,
                    actual: self.node_bytes,
                }
                .into());
            }
            if actual != tree_digest {
                return Err(ArchiveError::DigestMismatch {
                    path: path.to_string(),
                    declared: tree_digest.to_hex(),
                    actual: actual.to_hex(),
                }
                .into());
            }
            let derived =
                canonical::object_path(&self.store.store_dir, path.name(), &actual, &references);
            if derived != path {
                return Err(ArchiveError::PathMismatch {
                    path: path.to_string(),
                    derived: derived.to_string(),
                }
                .into());
            }
            Ok(())
        });
        let unnamed = self.unnamed.take();
        if let Err(error) = result {
            // Nothing of a refused object is kept (an unnamed file vanishes when dropped).
            let _ = fsops::remove_tree(&self.staging.path().join(&entry));
            return Err(error);
        }

        self.seen.insert(path.clone());
        self.report.paths.push(path.clone());
        if already_valid {
            self.report.already_valid.push(path);
        } else {
            let info = PathInfo {
                path,
                references,
                tree_digest,
                nar_size,
                registration_time: 0,
                deriver,
                signatures,
            };
            if self.pending.is_empty() {
                self.oldest_pending = std::time::Instant::now();
            }
            self.unnamed_pending += usize::from(unnamed.is_some());
            self.pending.push(StagedObject {
                entry,
                unnamed,
                info,
            });
            self.pending_bytes += nar_size;
            if self.mode == ImportMode::Incremental {
                self.hand_over_if_due()?;
            }
        }
        Ok(())
    }

    /// Hands the pending batch over when it is due (see `OFFER_*` and `FLUSH_*`).
    fn hand_over_if_due(&mut self) -> Result<()> {
        let age = self.oldest_pending.elapsed();
        if self.unnamed_pending >= self.max_unnamed
            || self.pending_bytes >= FLUSH_BYTES
            || age >= FLUSH_INTERVAL
        {
            return self.flush();
        }
        if self.pending.len() >= OFFER_OBJECTS
            || self.pending_bytes >= OFFER_BYTES
            || age >= OFFER_INTERVAL
        {
            let Some(batches) = &self.batches else {
                return Ok(());
            };
            match batches.try_send(std::mem::take(&mut self.pending)) {
                Ok(()) => {
                    self.pending_bytes = 0;
                    self.unnamed_pending = 0;
                }
                // Busy registering the previous batch: this one keeps growing.
                Err(std::sync::mpsc::TrySendError::Full(batch)) => self.pending = batch,
                Err(std::sync::mpsc::TrySendError::Disconnected(batch)) => {
                    self.pending = batch;
                    return self.flush();
                }
            }
        }
        Ok(())
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

    /// Hands pending objects over to be made durable and registered.
    fn flush(&mut self) -> Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let batch = std::mem::take(&mut self.pending);
        self.pending_bytes = 0;
        self.unnamed_pending = 0;
        let sent = match &self.batches {
            Some(batches) => batches.send(batch).is_ok(),
            None => false,
        };
        if sent {
            Ok(())
        } else {
            // The registration thread stopped on an error, which the caller reports.
            self.registration_stopped = true;
            Err(StoreError::CorruptObject {
                path: "<archive>".to_string(),
                reason: "registration stopped".to_string(),
            })
        }
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

    /// Reads one node tree; creates it as `name` in `parent` unless `parent` is `None`
    /// (verify only). Iterative, with an explicit stack, so hostile nesting cannot overflow
    /// the caller's stack (the depth is limited anyway).
    fn node(&mut self, parent: Option<&DirHandle>, name: &[u8]) -> Result<Digest> {
        let mut stack: Vec<OpenDirectory> = Vec::new();
        let mut started = self.node_start(parent, name, 0)?;
        loop {
            let mut digest = match started {
                NodeStart::Leaf(digest) => digest,
                NodeStart::Directory(directory) => {
                    stack.push(*directory);
                    match self.next_entry(&mut stack)? {
                        Some(next) => {
                            started = next;
                            continue;
                        }
                        None => return Err(missing_directory()),
                    }
                }
            };
            // Attach finished nodes to their parents, closing every directory that is complete.
            loop {
                let Some(top) = stack.last_mut() else {
                    return Ok(digest);
                };
                let entry = std::mem::take(&mut top.current);
                top.hasher.entry(&entry, &digest);
                top.previous = Some(entry);
                if top.remaining > 0 {
                    break;
                }
                let Some(done) = stack.pop() else {
                    return Err(missing_directory());
                };
                if let Some(dir) = &done.dir {
                    dir.seal()?;
                }
                digest = done.hasher.finish();
            }
            match self.next_entry(&mut stack)? {
                Some(next) => started = next,
                None => return Err(missing_directory()),
            }
        }
    }

    /// Reads the next entry name of the innermost open directory and starts its node; an empty
    /// directory is finished on the spot (returned as a leaf).
    fn next_entry(&mut self, stack: &mut Vec<OpenDirectory>) -> Result<Option<NodeStart>> {
        let Some(top) = stack.last_mut() else {
            return Ok(None);
        };
        if top.remaining == 0 {
            let Some(done) = stack.pop() else {
                return Ok(None);
            };
            if let Some(dir) = &done.dir {
                dir.seal()?;
            }
            return Ok(Some(NodeStart::Leaf(done.hasher.finish())));
        }
        let name_offset = self.input.offset;
        let entry = self
            .input
            .bytes("entry name length", limits::ENTRY_NAME_LEN)?;
        check_entry_name(&entry, name_offset)?;
        if top.previous.as_ref().is_some_and(|p| *p >= entry) {
            return Err(ArchiveError::UnsortedEntry {
                name: String::from_utf8_lossy(&entry).into_owned(),
                offset: name_offset,
            }
            .into());
        }
        self.charge(canonical::entry_header_size(entry.len() as u64))?;
        top.remaining -= 1;
        let depth = stack.len();
        let started = {
            let top = &stack[depth - 1];
            self.node_start(top.dir.as_ref(), &entry, depth)?
        };
        if let Some(top) = stack.last_mut() {
            top.current = entry;
        }
        Ok(Some(started))
    }

    /// Reads a node's header: a file or symlink completely, a directory up to its entry count.
    fn node_start(
        &mut self,
        parent: Option<&DirHandle>,
        name: &[u8],
        depth: usize,
    ) -> Result<NodeStart> {
        let offset = self.input.offset;
        match self.input.u8()? {
            TAG_FILE => {
                let flag_offset = self.input.offset;
                let executable = match self.input.u8()? {
                    0 => false,
                    1 => true,
                    other => {
                        return Err(ArchiveError::BadField {
                            field: "executable flag",
                            offset: flag_offset,
                            reason: format!("{other} is neither 0 nor 1"),
                        }
                        .into())
                    }
                };
                let size = self.input.u64()?;
                self.charge(canonical::file_node_size(size))?;
                // A single-file object goes straight into the store dir as an unnamed file:
                // no staging entry, no rename later (directory operations are most of the
                // cost of many small objects).
                let mut unnamed_root = false;
                let created = match parent {
                    None => None,
                    Some(dir) => {
                        let unnamed = match (self.unnamed_files, depth) {
                            (true, 0) => self.store_dir.create_unnamed_file()?,
                            _ => None,
                        };
                        if depth == 0 && unnamed.is_none() {
                            self.unnamed_files = false;
                        }
                        unnamed_root = unnamed.is_some();
                        Some(match unnamed {
                            Some(file) => file,
                            None => dir.create_file(name)?,
                        })
                    }
                };
                let mut file =
                    created.map(|file| fsops::DirectWriter::new(file, size >= DIRECT_MIN));
                let mut hasher = canonical::file_hasher(executable, size);
                let mut remaining = size;
                // The buffer has DIRECT_ALIGN bytes of slack; should the address
                // not be alignable, the writer just falls back to plain writes.
                let start = self
                    .buffer
                    .as_ptr()
                    .align_offset(fsops::DIRECT_ALIGN)
                    .min(fsops::DIRECT_ALIGN);
                while remaining > 0 {
                    let want = remaining.min(CHUNK as u64) as usize;
                    let mut buffer = std::mem::take(&mut self.buffer);
                    let chunk = &mut buffer[start..start + want];
                    let read = self.input.exact(chunk);
                    if read.is_ok() {
                        if self.mode == ImportMode::Incremental {
                            // The copy protocol: ssh's encryption already keeps
                            // the other cores busy, so splitting the hash over
                            // them only adds hand-offs and spinning.
                            hasher.update(chunk);
                        } else {
                            canonical::feed(&mut hasher, chunk);
                        }
                        if let Some(file) = file.as_mut() {
                            file.write_all(chunk)
                                .map_err(StoreError::io("write", self.staging.path()))?;
                        }
                    }
                    self.buffer = buffer;
                    read?;
                    remaining -= want as u64;
                }
                if let Some(file) = file {
                    fsops::normalize_fd(
                        file.file(),
                        fsops::file_mode(executable),
                        self.staging.path(),
                    )?;
                    if unnamed_root {
                        self.unnamed = Some(file.into_file());
                    }
                }
                Ok(NodeStart::Leaf(Digest(*hasher.finalize().as_bytes())))
            }
            TAG_SYMLINK => {
                let target_offset = self.input.offset;
                let target = self
                    .input
                    .bytes("symlink target length", limits::SYMLINK_TARGET_LEN)?;
                if target.is_empty() || target.contains(&0) {
                    return Err(ArchiveError::BadField {
                        field: "symlink target",
                        offset: target_offset,
                        reason: "empty or contains NUL".to_string(),
                    }
                    .into());
                }
                self.charge(canonical::symlink_node_size(target.len() as u64))?;
                if let Some(dir) = parent {
                    dir.create_symlink(name, &target)?;
                }
                Ok(NodeStart::Leaf(canonical::symlink_digest(&target)))
            }
            TAG_DIRECTORY => {
                if depth >= limits::DEPTH {
                    return Err(ArchiveError::LimitExceeded {
                        what: "directory depth",
                        value: depth as u64,
                        limit: limits::DEPTH as u64,
                        offset,
                    }
                    .into());
                }
                let count_offset = self.input.offset;
                let count = self.input.u64()?;
                if count > limits::DIRECTORY_ENTRIES {
                    return Err(ArchiveError::LimitExceeded {
                        what: "directory entry count",
                        value: count,
                        limit: limits::DIRECTORY_ENTRIES,
                        offset: count_offset,
                    }
                    .into());
                }
                self.charge(canonical::directory_node_size())?;
                let dir = parent.map(|p| p.create_dir(name)).transpose()?;
                Ok(NodeStart::Directory(Box::new(OpenDirectory {
                    dir,
                    hasher: DirectoryHasher::new(count),
                    remaining: count,
                    previous: None,
                    current: Vec::new(),
                })))
            }
            tag => Err(ArchiveError::BadNodeTag { tag, offset }.into()),
        }
    }
}

/// The descriptor limit, raised to its hard maximum for the length of an import (objects wait
/// open until their batch is registered) and put back afterwards, so that processes started
/// later (services, hooks) get the limit they would have had.
struct DescriptorLimit {
    current: u64,
    restore: Option<libc::rlimit>,
}

impl DescriptorLimit {
    fn raise() -> DescriptorLimit {
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: plain system calls reading and writing a local struct.
        unsafe {
            if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
                return DescriptorLimit {
                    current: 1024,
                    restore: None,
                };
            }
            let raised = libc::rlimit {
                rlim_cur: limit.rlim_max.min(1 << 16).max(limit.rlim_cur),
                rlim_max: limit.rlim_max,
            };
            if raised.rlim_cur > limit.rlim_cur
                && libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0
            {
                return DescriptorLimit {
                    current: raised.rlim_cur,
                    restore: Some(limit),
                };
            }
        }
        DescriptorLimit {
            current: limit.rlim_cur,
            restore: None,
        }
    }

    /// How many unnamed files may be open at once, leaving room for everything else.
    fn unnamed_file_budget(&self) -> usize {
        (self.current as usize)
            .saturating_sub(256)
            .clamp(16, MAX_UNNAMED_FILES)
    }
}

impl Drop for DescriptorLimit {
    fn drop(&mut self) {
        if let Some(original) = self.restore {
            // SAFETY: as in `raise`. (Lowering the soft limit closes nothing; it only bounds
            // descriptors opened from now on, and the importer's files are closed by now.)
            unsafe {
                libc::setrlimit(libc::RLIMIT_NOFILE, &original);
            }
        }
    }
}

/// A directory whose entries are being read.
struct OpenDirectory {
    /// Where its entries are created (`None` when only verifying).
    dir: Option<DirHandle>,
    hasher: DirectoryHasher,
    remaining: u64,
    previous: Option<Vec<u8>>,
    /// Name of the entry being read now.
    current: Vec<u8>,
}

enum NodeStart {
    /// A finished node (file, symlink, or empty directory).
    Leaf(Digest),
    /// A directory with entries still to read.
    Directory(Box<OpenDirectory>),
}

/// The explicit stack lost a directory: a bug in this module, reported instead of panicking.
fn missing_directory() -> StoreError {
    StoreError::CorruptObject {
        path: "<archive>".to_string(),
        reason: "internal error: directory stack underflow".to_string(),
    }
}

/// Entry names are single path components: never empty, `.`, `..`, and without `/` or NUL.
fn check_entry_name(name: &[u8], offset: u64) -> Result<(), ArchiveError> {
    let reason = if name.is_empty() {
        "it is empty"
    } else if name == b"." || name == b".." {
        "it is `.` or `..`"
    } else if name.contains(&b'/') {
        "it contains `/`"
    } else if name.contains(&0) {
        "it contains a NUL byte"
    } else {
        return Ok(());
    };
    Err(ArchiveError::BadEntryName {
        name: String::from_utf8_lossy(name).into_owned(),
        offset,
        reason,
    })
}
