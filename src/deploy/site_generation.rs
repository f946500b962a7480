//! Site generations on the deployer: which system each host got in one run.
//!
//! Layout: `<state_dir>/sites/<site>/<N>/record.json` plus one symlink per
//! host, `<N>/hosts/<host> → <system store path>`; the symlinks are GC roots
//! (the store follows links under `sites/`), so every system a site
//! generation names stays in the deployer's store for `rollback`. A
//! generation directory is written under a temporary name and renamed into
//! place, so a crash never leaves a half-written record.
use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use ferry_store::durable::{io_err, IoError};
use serde::{Deserialize, Serialize};

/// Version of `record.json`.
pub const RECORD_VERSION: u32 = 1;

/// What a run did to one host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum HostOutcome {
    /// The host switched to the system and confirmed it.
    Activated,
    /// The host already ran the system; nothing was done.
    Unchanged,
    /// The host tried and went back to its previous system.
    RolledBack,
    /// The run never reached the host (stopped earlier, or not selected).
    NotTouched,
    /// The host failed in a way that left it unreachable or unknown.
    Failed,
}

/// One host in a site generation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostRecord {
    /// The host's class.
    pub class: String,
    /// The system the host runs after this run.
    pub system: String,
    /// The host's own profile generation number, when known.
    pub host_generation: Option<u64>,
    /// What this run did to the host.
    pub outcome: HostOutcome,
}

/// One recorded run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SiteGeneration {
    /// The record's format version.
    pub version: u32,
    /// Its number, counting up from 1 per site.
    pub number: u64,
    /// The site's name.
    pub site: String,
    /// Seconds since the Unix epoch.
    pub created: u64,
    /// `deploy` or `rollback to N`, for humans.
    pub command: String,
    /// True when every host ended on its target system.
    pub complete: bool,
    /// host → what it runs after the run.
    pub hosts: BTreeMap<String, HostRecord>,
}

/// Errors of reading or writing site generations.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum SiteGenerationError {
    /// A file or directory of the records could not be read or written.
    #[error("cannot {0}")]
    Io(#[from] IoError),
    /// A record does not parse.
    #[error("site generation record {} is damaged: {source}", path.display())]
    Damaged {
        /// The record.
        path: PathBuf,
        /// Why.
        #[source]
        source: serde_json::Error,
    },
    /// No such generation was recorded.
    #[error("site `{site}` has no generation {number}")]
    NoSuchGeneration {
        /// The site.
        site: String,
        /// The generation asked for.
        number: u64,
    },
    /// The site was never deployed from here.
    #[error("site `{site}` has no generations yet")]
    NoGenerations {
        /// The site.
        site: String,
    },
}

/// The site generations of one site.
#[derive(Debug, Clone)]
pub struct SiteGenerations {
    site: String,
    dir: PathBuf,
}

impl SiteGenerations {
    /// The site generations of `site` under `state_dir`.
    pub fn new(state_dir: &Path, site: &str) -> SiteGenerations {
        SiteGenerations {
            site: site.to_string(),
            dir: state_dir.join("sites").join(site),
        }
    }

    /// Generation numbers, oldest first.
    pub fn numbers(&self) -> Result<Vec<u64>, SiteGenerationError> {
        let entries = match fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io_err("list", &self.dir)(e).into()),
        };
        let mut numbers: Vec<u64> = entries
            .flatten()
            .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse().ok()))
            .collect();
        numbers.sort_unstable();
        Ok(numbers)
    }

    /// Generation `number`.
    pub fn get(&self, number: u64) -> Result<SiteGeneration, SiteGenerationError> {
        let path = self.dir.join(number.to_string()).join("record.json");
        let text = match fs::read(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(SiteGenerationError::NoSuchGeneration {
                    site: self.site.clone(),
                    number,
                })
            }
            Err(e) => return Err(io_err("read", &path)(e).into()),
        };
        serde_json::from_slice(&text)
            .map_err(|source| SiteGenerationError::Damaged { path, source })
    }

    /// Every generation, oldest first.
    pub fn list(&self) -> Result<Vec<SiteGeneration>, SiteGenerationError> {
        self.numbers()?.into_iter().map(|n| self.get(n)).collect()
    }

    /// The newest generation, if any.
    pub fn latest(&self) -> Result<Option<SiteGeneration>, SiteGenerationError> {
        match self.numbers()?.last() {
            Some(&n) => self.get(n).map(Some),
            None => Ok(None),
        }
    }

    /// Records a host-level rollback (`ferry rollback --host-generation`)
    /// as the next generation: the latest one's hosts as it said (not
    /// touched), with each host of `switched` on the system it runs now. Such
    /// a generation is never complete: its hosts are off the site's target.
    pub fn record_host_switches(
        &self,
        command: &str,
        switched: BTreeMap<String, HostRecord>,
        now: u64,
    ) -> Result<SiteGeneration, SiteGenerationError> {
        let mut hosts: BTreeMap<String, HostRecord> = self
            .latest()?
            .map(|g| g.hosts)
            .unwrap_or_default()
            .into_iter()
            .map(|(name, r)| {
                let record = HostRecord {
                    outcome: HostOutcome::NotTouched,
                    ..r
                };
                (name, record)
            })
            .collect();
        hosts.extend(switched);
        self.record(command, hosts, false, now)
    }

    /// Records a new generation (numbered after the latest) and returns it.
    /// `complete` says whether the run got every host it meant to move onto
    /// its target (hosts that never had a system are not in `hosts`).
    pub fn record(
        &self,
        command: &str,
        hosts: BTreeMap<String, HostRecord>,
        complete: bool,
        now: u64,
    ) -> Result<SiteGeneration, SiteGenerationError> {
        fs::create_dir_all(&self.dir).map_err(io_err("create", &self.dir))?;
        let number = self.numbers()?.last().copied().unwrap_or(0) + 1;
        let complete = complete
            && hosts.values().all(|h| {
                matches!(
                    h.outcome,
                    HostOutcome::Activated | HostOutcome::Unchanged | HostOutcome::NotTouched
                )
            });
        let generation = SiteGeneration {
            version: RECORD_VERSION,
            number,
            site: self.site.clone(),
            created: now,
            command: command.to_string(),
            complete,
            hosts,
        };
        let temp = tempfile::Builder::new()
            .prefix(".new-")
            .tempdir_in(&self.dir)
            .map_err(io_err("create", &self.dir))?;
        let links = temp.path().join("hosts");
        fs::create_dir(&links).map_err(io_err("create", &links))?;
        for (host, record) in &generation.hosts {
            symlink(&record.system, links.join(host)).map_err(io_err("link", &links))?;
        }
        let record_path = temp.path().join("record.json");
        let mut file = fs::File::create(&record_path).map_err(io_err("write", &record_path))?;
        let json = serde_json::to_vec_pretty(&generation).map_err(|e| {
            SiteGenerationError::from(io_err("write", &record_path)(io::Error::other(e)))
        })?;
        file.write_all(&json)
            .and_then(|_| file.sync_all())
            .map_err(io_err("write", &record_path))?;
        let final_dir = self.dir.join(number.to_string());
        let temp_path = temp.keep();
        fs::rename(&temp_path, &final_dir).map_err(io_err("rename", &final_dir))?;
        fs::File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(io_err("sync", &self.dir))?;
        Ok(generation)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(system: &str, outcome: HostOutcome) -> HostRecord {
        HostRecord {
            class: "web".into(),
            system: system.into(),
            host_generation: Some(1),
            outcome,
        }
    }

    #[test]
    fn records_are_numbered_listed_and_linked() {
        let state = tempfile::tempdir().unwrap();
        let gens = SiteGenerations::new(state.path(), "demo");
        assert!(gens.latest().unwrap().is_none());
        let first = gens
            .record(
                "deploy",
                [(
                    "web1".to_string(),
                    host("/ferry/store/a-system-web", HostOutcome::Activated),
                )]
                .into(),
                true,
                100,
            )
            .unwrap();
        assert_eq!(first.number, 1);
        assert!(first.complete);
        let second = gens
            .record(
                "deploy",
                [(
                    "web1".to_string(),
                    host("/ferry/store/b-system-web", HostOutcome::RolledBack),
                )]
                .into(),
                true,
                200,
            )
            .unwrap();
        assert_eq!(second.number, 2);
        assert!(!second.complete);
        assert_eq!(gens.numbers().unwrap(), vec![1, 2]);
        assert_eq!(gens.get(1).unwrap(), first);
        assert_eq!(gens.latest().unwrap().unwrap(), second);
        let link = state.path().join("sites/demo/2/hosts/web1");
        assert_eq!(
            fs::read_link(link).unwrap(),
            Path::new("/ferry/store/b-system-web")
        );
        assert!(matches!(
            gens.get(7),
            Err(SiteGenerationError::NoSuchGeneration { number: 7, .. })
        ));
    }

    #[test]
    fn a_leftover_temporary_directory_is_not_a_generation() {
        let state = tempfile::tempdir().unwrap();
        let gens = SiteGenerations::new(state.path(), "demo");
        fs::create_dir_all(state.path().join("sites/demo/.new-crashed/hosts")).unwrap();
        assert!(gens.numbers().unwrap().is_empty());
        let first = gens.record("deploy", BTreeMap::new(), true, 1).unwrap();
        assert!(first.complete);
        let failed = gens.record("deploy", BTreeMap::new(), false, 2).unwrap();
        assert!(
            !failed.complete,
            "a run whose fresh hosts all failed records nothing per host, and is not complete"
        );
        assert_eq!(first.number, 1);
    }
}
