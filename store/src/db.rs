//! Path metadata and realisations in one SQLite database, `<state_dir>/db/store.sqlite`
//! (FORMAT.md §4). A path is valid exactly when its record exists.
//!
//! One database instead of a file per record: registering or removing a batch is one
//! transaction (atomic, so no ordering of records inside a batch is needed, and one `fsync`
//! instead of a file, a rename and an inode per path), and `open` never lists anything.
//! Stores made before the database (records as files in `db/paths/`, realisations in
//! `db/realisations/`) are migrated on first open.
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use rusqlite::{params, Connection, OptionalExtension};

use crate::error::{Result, StoreError};
use crate::hash::Digest;
use crate::path::{StoreDir, StorePath};
use crate::realisation::RecipeId;

/// Version written into every metadata record.
pub const METADATA_VERSION: u32 = 1;

/// `PRAGMA user_version` of the database schema below.
const SCHEMA_VERSION: i64 = 1;

const SCHEMA: &str = "
    CREATE TABLE IF NOT EXISTS paths (
        base_name TEXT PRIMARY KEY NOT NULL,
        record TEXT NOT NULL
    ) WITHOUT ROWID;
    CREATE TABLE IF NOT EXISTS realisations (
        recipe TEXT PRIMARY KEY NOT NULL,
        path TEXT NOT NULL
    ) WITHOUT ROWID;
";

/// How long a writer waits for another one before giving up (SQLite's busy timeout).
const BUSY_TIMEOUT: Duration = Duration::from_secs(300);

/// What the store knows about one valid path.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PathInfo {
    /// The valid path this record describes.
    pub path: StorePath,
    /// Sorted, without duplicates, never the path itself.
    pub references: Vec<StorePath>,
    /// The tree digest (FORMAT.md §1).
    pub tree_digest: Digest,
    /// Length of the object's node encoding in the archive stream ("NAR-like size").
    pub nar_size: u64,
    /// Seconds since the Unix epoch when the path became valid.
    pub registration_time: u64,
    /// The recipe that built it, if any.
    pub deriver: Option<RecipeId>,
    /// Free-form signatures (none are made in v1; kept for forward compatibility).
    pub signatures: Vec<String>,
}

#[derive(serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Record {
    version: u32,
    #[serde(flatten)]
    info: PathInfo,
}

/// The metadata database, opened on first use.
#[derive(Debug)]
pub struct PathDb {
    db_dir: PathBuf,
    file: PathBuf,
    connection: OnceLock<Mutex<Connection>>,
}

impl PathDb {
    /// The database of the store whose metadata lives in `db_dir` (`<state_dir>/db`).
    pub fn new(db_dir: PathBuf) -> PathDb {
        PathDb {
            file: db_dir.join("store.sqlite"),
            db_dir,
            connection: OnceLock::new(),
        }
    }

    /// The database file (for error messages and tests).
    pub fn file(&self) -> &Path {
        &self.file
    }

    fn sql_error(&self, action: &'static str) -> impl Fn(rusqlite::Error) -> StoreError + '_ {
        move |e| StoreError::Database {
            action,
            path: self.file.clone(),
            reason: e.to_string(),
        }
    }

    fn connection(&self) -> Result<MutexGuard<'_, Connection>> {
        if self.connection.get().is_none() {
            let opened = self.open()?;
            // Another thread may have won the race; its connection is as good as ours.
            let _ = self.connection.set(Mutex::new(opened));
        }
        let slot = self.connection.get().ok_or_else(|| StoreError::Database {
            action: "open",
            path: self.file.clone(),
            reason: "the connection vanished".to_string(),
        })?;
        // A panic while holding the lock cannot leave SQLite half-way: a statement either
        // ran or it did not, and open transactions roll back when dropped.
        Ok(slot.lock().unwrap_or_else(|poisoned| poisoned.into_inner()))
    }

    fn open(&self) -> Result<Connection> {
        let error = self.sql_error("open");
        let mut connection = Connection::open(&self.file).map_err(&error)?;
        connection.busy_timeout(BUSY_TIMEOUT).map_err(&error)?;
        // A rollback journal that stays in place (TRUNCATE), not WAL: with WAL every process
        // either deletes and re-creates the `-wal`/`-shm` files (two new inodes and an fsync
        // per ferry command) or, if they persist, re-reads the whole log to rebuild its index
        // when it opens the database. Transactions here are short, so readers blocking a
        // writer for a moment costs nothing. FULL: a committed transaction is on disk.
        connection
            .pragma_update(None, "journal_mode", "TRUNCATE")
            .map_err(&error)?;
        connection
            .pragma_update(None, "synchronous", "FULL")
            .map_err(&error)?;
        // Reads through a memory map instead of a `pread` per page.
        connection
            .pragma_update(None, "mmap_size", 1i64 << 30)
            .map_err(&error)?;
        let version: i64 = connection
            .pragma_query_value(None, "user_version", |row| row.get(0))
            .map_err(&error)?;
        if version > SCHEMA_VERSION {
            return Err(StoreError::Database {
                action: "open",
                path: self.file.clone(),
                reason: format!(
                    "its schema version {version} is newer than this ferry's \
                     ({SCHEMA_VERSION}); use a newer ferry"
                ),
            });
        }
        // Records as files are migrated on the first open, and again whenever they reappear
        // (an older ferry wrote to this store after it was migrated).
        let legacy = ["paths", "realisations"]
            .iter()
            .any(|dir| self.db_dir.join(dir).is_dir());
        if version < SCHEMA_VERSION || legacy {
            let transaction = connection.transaction().map_err(&error)?;
            transaction.execute_batch(SCHEMA).map_err(&error)?;
            migrate_files(&transaction, &self.db_dir).map_err(&error)?;
            transaction
                .pragma_update(None, "user_version", SCHEMA_VERSION)
                .map_err(&error)?;
            transaction.commit().map_err(&error)?;
            retire_migrated_dirs(&self.db_dir);
        }
        Ok(connection)
    }

    /// Whether `path` has a record (is valid); a failed query counts as not valid.
    pub fn exists(&self, path: &StorePath) -> bool {
        self.exist_many(std::slice::from_ref(path))
            .is_ok_and(|found| found.first() == Some(&true))
    }

    /// The record of `path`, or `None` if the path is not valid.
    pub fn read(&self, path: &StorePath) -> Result<Option<PathInfo>> {
        let mut records = self.read_many(std::slice::from_ref(&path))?;
        Ok(records.pop().flatten())
    }

    /// Runs `sql` once per item of `items`, all in one transaction (one lock round with the
    /// other processes instead of one per statement, and one durable commit for writes),
    /// collecting what `each` makes of it. `action` names the work in errors.
    fn each_in_transaction<I, T>(
        &self,
        action: &'static str,
        sql: &str,
        items: impl ExactSizeIterator<Item = I>,
        mut each: impl FnMut(&mut rusqlite::CachedStatement<'_>, I) -> rusqlite::Result<T>,
    ) -> Result<Vec<T>> {
        let error = self.sql_error(action);
        let mut connection = self.connection()?;
        let transaction = connection.transaction().map_err(&error)?;
        let results = {
            let mut statement = transaction.prepare_cached(sql).map_err(&error)?;
            let mut results = Vec::with_capacity(items.len());
            for item in items {
                results.push(each(&mut statement, item).map_err(&error)?);
            }
            results
        };
        transaction.commit().map_err(&error)?;
        Ok(results)
    }

    /// The records of `paths`, in order (`None` where a path is not valid), read in one
    /// transaction.
    pub fn read_many(&self, paths: &[&StorePath]) -> Result<Vec<Option<PathInfo>>> {
        let texts: Vec<Option<String>> = self.each_in_transaction(
            "query",
            "SELECT record FROM paths WHERE base_name = ?1",
            paths.iter().map(|p| p.base_name()),
            |statement, name| {
                statement
                    .query_row(params![name], |row| row.get(0))
                    .optional()
            },
        )?;
        paths
            .iter()
            .zip(texts)
            .map(|(path, text)| text.map(|text| self.decode(path, &text)).transpose())
            .collect()
    }

    /// Which of `paths` have a record, in order, checked in one transaction.
    pub fn exist_many(&self, paths: &[StorePath]) -> Result<Vec<bool>> {
        self.each_in_transaction(
            "query",
            "SELECT 1 FROM paths WHERE base_name = ?1",
            paths.iter().map(|p| p.base_name()),
            |statement, name| statement.exists(params![name]),
        )
    }

    fn decode(&self, path: &StorePath, text: &str) -> Result<PathInfo> {
        let corrupt = |reason: String| StoreError::CorruptMetadata {
            path: self.file.join(path.base_name()),
            reason,
        };
        let record: Record = serde_json::from_str(text).map_err(|e| corrupt(e.to_string()))?;
        if record.version != METADATA_VERSION {
            return Err(corrupt(format!("unknown version {}", record.version)));
        }
        if record.info.path != *path {
            return Err(corrupt(format!("it describes {}", record.info.path)));
        }
        Ok(record.info)
    }

    /// The encoded record (FORMAT.md §4).
    pub fn encode(info: &PathInfo) -> Vec<u8> {
        let record = Record {
            version: METADATA_VERSION,
            info: info.clone(),
        };
        let mut bytes = match serde_json::to_vec_pretty(&record) {
            Ok(bytes) => bytes,
            // Strings, numbers and lists only: serialization cannot fail.
            Err(e) => unreachable!("path metadata does not serialize: {e}"),
        };
        bytes.push(b'\n');
        bytes
    }

    /// Makes every path of `infos` valid at once: one durable transaction. Records that exist
    /// already are kept as they are. The caller has made the objects durable first.
    pub fn insert(&self, infos: &[PathInfo]) -> Result<()> {
        // In key order: neighbouring rows share b-tree pages, so fewer pages are touched
        // (and copied to the rollback journal) than in content-hash order.
        let mut sorted: Vec<&PathInfo> = infos.iter().collect();
        sorted.sort_by(|a, b| a.path.base_name().cmp(b.path.base_name()));
        self.each_in_transaction(
            "register",
            "INSERT OR IGNORE INTO paths (base_name, record) VALUES (?1, ?2)",
            sorted.into_iter(),
            |statement, info| {
                let record = Self::encode(info);
                // `encode` writes JSON, which is UTF-8.
                let record = String::from_utf8_lossy(&record);
                statement.execute(params![info.path.base_name(), record])
            },
        )
        .map(drop)
    }

    /// Makes every path of `paths` invalid at once: one durable transaction.
    pub fn remove(&self, paths: &[&StorePath]) -> Result<()> {
        self.each_in_transaction(
            "invalidate",
            "DELETE FROM paths WHERE base_name = ?1",
            paths.iter(),
            |statement, path| statement.execute(params![path.base_name()]),
        )
        .map(drop)
    }

    /// Every path with a record, sorted.
    pub fn list(&self, store_dir: &StoreDir) -> Result<Vec<StorePath>> {
        let error = self.sql_error("list");
        let connection = self.connection()?;
        let mut statement = connection
            .prepare_cached("SELECT base_name FROM paths")
            .map_err(&error)?;
        let names = statement
            .query_map([], |row| row.get::<_, String>(0))
            .map_err(&error)?;
        let mut paths = Vec::new();
        for name in names {
            let name = name.map_err(&error)?;
            if let Ok(path) = StorePath::parse(&format!("{}/{}", store_dir.as_str(), name)) {
                paths.push(path);
            }
        }
        paths.sort();
        Ok(paths)
    }

    /// The output recorded for `recipe` (valid or not).
    pub fn realisation(&self, recipe: &RecipeId) -> Result<Option<String>> {
        let connection = self.connection()?;
        let mut statement = connection
            .prepare_cached("SELECT path FROM realisations WHERE recipe = ?1")
            .map_err(self.sql_error("query"))?;
        statement
            .query_row(params![recipe.to_string()], |row| row.get(0))
            .optional()
            .map_err(self.sql_error("query"))
    }

    /// Records (durably) that `recipe` builds `path`, replacing an earlier record.
    pub fn set_realisation(&self, recipe: &RecipeId, path: &StorePath) -> Result<()> {
        let connection = self.connection()?;
        let mut statement = connection
            .prepare_cached("INSERT OR REPLACE INTO realisations (recipe, path) VALUES (?1, ?2)")
            .map_err(self.sql_error("record a realisation"))?;
        statement
            .execute(params![recipe.to_string(), path.as_str()])
            .map_err(self.sql_error("record a realisation"))?;
        Ok(())
    }

    /// Forgets every realisation whose output is no longer valid.
    pub fn forget_dead_realisations(&self) -> Result<usize> {
        let error = self.sql_error("forget realisations");
        let mut connection = self.connection()?;
        let transaction = connection.transaction().map_err(&error)?;
        let dead: Vec<String> = {
            let mut statement = transaction
                .prepare("SELECT recipe, path FROM realisations")
                .map_err(&error)?;
            let rows = statement
                .query_map([], |row| {
                    Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?))
                })
                .map_err(&error)?;
            let mut valid = transaction
                .prepare("SELECT 1 FROM paths WHERE base_name = ?1")
                .map_err(&error)?;
            let mut dead = Vec::new();
            for row in rows {
                let (recipe, path) = row.map_err(&error)?;
                let base_name = path.rsplit('/').next().unwrap_or_default();
                if !valid.exists(params![base_name]).map_err(&error)? {
                    dead.push(recipe);
                }
            }
            dead
        };
        for recipe in &dead {
            transaction
                .execute(
                    "DELETE FROM realisations WHERE recipe = ?1",
                    params![recipe],
                )
                .map_err(&error)?;
        }
        transaction.commit().map_err(&error)?;
        Ok(dead.len())
    }
}

/// Legacy layout: one JSON record per file in `db/paths/`, one `path\n` per file in
/// `db/realisations/`. Copied into the database inside the schema-creating transaction.
fn migrate_files(transaction: &rusqlite::Transaction<'_>, db_dir: &Path) -> rusqlite::Result<()> {
    for (dir, sql) in [
        (
            "paths",
            "INSERT OR IGNORE INTO paths (base_name, record) VALUES (?1, ?2)",
        ),
        (
            "realisations",
            "INSERT OR IGNORE INTO realisations (recipe, path) VALUES (?1, ?2)",
        ),
    ] {
        let Ok(entries) = std::fs::read_dir(db_dir.join(dir)) else {
            continue;
        };
        let mut statement = transaction.prepare(sql)?;
        for entry in entries.flatten() {
            let Some(name) = entry.file_name().to_str().map(str::to_string) else {
                continue;
            };
            // `.tmp-*` files were records being written when a process died: never valid.
            if name.starts_with('.') {
                continue;
            }
            let Ok(text) = std::fs::read_to_string(entry.path()) else {
                continue;
            };
            let value = if dir == "realisations" {
                text.trim_end().to_string()
            } else {
                text
            };
            statement.execute(params![name, value])?;
        }
    }
    Ok(())
}

/// After a committed migration the old directories are kept, renamed, for the operator:
/// `paths.migrated`, then `paths.migrated-2`, … if an older ferry wrote records again.
fn retire_migrated_dirs(db_dir: &Path) {
    for dir in ["paths", "realisations"] {
        let old = db_dir.join(dir);
        if !old.is_dir() {
            continue;
        }
        for attempt in 1..1000 {
            let name = match attempt {
                1 => format!("{dir}.migrated"),
                n => format!("{dir}.migrated-{n}"),
            };
            let target = db_dir.join(name);
            if !target.exists() {
                let _ = std::fs::rename(&old, &target);
                break;
            }
        }
    }
}
