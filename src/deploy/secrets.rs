//! The deployer's side of secrets: reads the values of the secrets one host's system references from their declared sources (file, environment variable, command).
//!
//! Invariants: only secrets the manifest's services reference are read (a
//! host never receives a secret its system does not use); values are never
//! put into an error message — errors name the secret and its source only.
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use ferry_lang::model::SecretSource;
use ferry_lang::Site;

use crate::activate::secrets::secret_digest;
use crate::activate::Manifest;
use crate::deploy::plan::CurrentHost;

/// Why a secret could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// A system uses a secret the site does not declare.
    #[error(
        "secret {name} is used by the system of class {class} but the site does not declare it"
    )]
    Undeclared {
        /// The secret.
        name: String,
        /// The class whose system uses it.
        class: String,
    },
    /// The secret's file could not be read.
    #[error("secret {name}: cannot read the file {path}: {source}")]
    File {
        /// The secret.
        name: String,
        /// Its file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The secret's environment variable is not set.
    #[error("secret {name}: the environment variable {var} is not set")]
    EnvMissing {
        /// The secret.
        name: String,
        /// Its environment variable.
        var: String,
    },
    /// The secret's environment variable is not UTF-8.
    #[error("secret {name}: the environment variable {var} is not valid UTF-8")]
    EnvNotUnicode {
        /// The secret.
        name: String,
        /// Its environment variable.
        var: String,
    },
    /// The secret's command is empty.
    #[error("secret {name}: the command has no program to run")]
    EmptyCommand {
        /// The secret.
        name: String,
    },
    /// The secret's command did not start.
    #[error("secret {name}: cannot run {program}: {source}")]
    CommandStart {
        /// The secret.
        name: String,
        /// The command's program.
        program: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The secret's command failed.
    #[error("secret {name}: {program} failed ({status}){}", stderr_suffix(stderr))]
    CommandFailed {
        /// The secret.
        name: String,
        /// The command's program.
        program: String,
        /// How it ended.
        status: String,
        /// What it wrote to stderr.
        stderr: String,
    },
}

fn stderr_suffix(stderr: &str) -> String {
    if stderr.is_empty() {
        String::new()
    } else {
        format!(": {stderr}")
    }
}

impl SecretError {
    /// What the user can do about it.
    pub fn hint(&self) -> Option<&'static str> {
        match self {
            SecretError::Undeclared { .. } => {
                Some("declare it with `secret NAME { file = … }` (or env/command) in the site")
            }
            SecretError::File { .. } => {
                Some("the path is relative to the site file that declares the secret")
            }
            SecretError::EnvMissing { .. } | SecretError::EnvNotUnicode { .. } => {
                Some("export the variable in the deployer's environment")
            }
            _ => None,
        }
    }
}

/// Reads the value of every secret `manifest`'s services reference, by name.
pub fn read_secrets(
    site: &Site,
    manifest: &Manifest,
) -> Result<BTreeMap<String, Vec<u8>>, SecretError> {
    let mut values = BTreeMap::new();
    for name in manifest.secret_names() {
        let secret = site
            .secrets
            .get(&name)
            .ok_or_else(|| SecretError::Undeclared {
                name: name.clone(),
                class: manifest.class.clone(),
            })?;
        let value = read_source(&name, &secret.source)?;
        values.insert(name, value);
    }
    Ok(values)
}

/// The secret values of every system in `systems`, by system, read once
/// each before anything is copied, so a missing source stops a deploy
/// before it touches a host.
pub fn read_for_systems<'p>(
    store: &ferry_store::Store,
    site: &Site,
    systems: impl IntoIterator<Item = &'p ferry_store::StorePath>,
) -> Result<SecretValues, SystemSecretError> {
    let mut values = BTreeMap::new();
    for system in systems {
        if values.contains_key(system) {
            continue;
        }
        let manifest = Manifest::load(&store.real_path(system)).map_err(|e| SystemSecretError {
            system: system.to_string(),
            reason: e.to_string(),
            hint: None,
        })?;
        let read = read_secrets(site, &manifest).map_err(|e| SystemSecretError {
            system: format!("class `{}`", manifest.class),
            reason: e.to_string(),
            hint: e.hint(),
        })?;
        values.insert(system.clone(), read);
    }
    Ok(values)
}

/// host → the secrets whose value it must get again: every secret its target
/// reads whose salted digest ([`secret_digest`]) differs from what the host
/// says it has installed, or that it lacks. A fresh host, or one whose agent
/// does not report digests, has none (it gets every secret on activation).
pub fn rotated_secrets(
    current: &BTreeMap<String, CurrentHost>,
    targets: &BTreeMap<String, ferry_store::StorePath>,
    values: &SecretValues,
) -> BTreeMap<String, Vec<String>> {
    let mut rotated = BTreeMap::new();
    for (host, target) in targets {
        let Some(now) = current.get(host).filter(|c| c.system.is_some()) else {
            continue;
        };
        let (Some(installed), Some(wanted)) = (&now.secrets, values.get(target)) else {
            continue;
        };
        let names: Vec<String> = wanted
            .iter()
            .filter(|(name, value)| {
                installed.digests.get(*name) != secret_digest(&installed.salt, value).as_ref()
            })
            .map(|(name, _)| name.clone())
            .collect();
        if !names.is_empty() {
            rotated.insert(host.clone(), names);
        }
    }
    rotated
}

/// system → secret name → value.
pub type SecretValues = BTreeMap<ferry_store::StorePath, BTreeMap<String, Vec<u8>>>;

/// A system's secrets could not be read; nothing was copied or activated.
#[derive(Debug, thiserror::Error)]
#[error("cannot read the secrets of {system}: {reason}; no host was touched")]
pub struct SystemSecretError {
    /// The system's class (or, when its manifest is unreadable, its path).
    pub system: String,
    /// Why, naming the secret and its source, never its value.
    pub reason: String,
    /// What the user can do about it.
    pub hint: Option<&'static str>,
}

fn read_source(name: &str, source: &SecretSource) -> Result<Vec<u8>, SecretError> {
    match source {
        SecretSource::File { path } => std::fs::read(path).map_err(|source| SecretError::File {
            name: name.to_string(),
            path: path.clone(),
            source,
        }),
        SecretSource::Env { var } => match std::env::var(var) {
            Ok(value) => Ok(value.into_bytes()),
            Err(std::env::VarError::NotPresent) => Err(SecretError::EnvMissing {
                name: name.to_string(),
                var: var.clone(),
            }),
            Err(std::env::VarError::NotUnicode(_)) => Err(SecretError::EnvNotUnicode {
                name: name.to_string(),
                var: var.clone(),
            }),
        },
        SecretSource::Command { argv } => {
            let Some((program, args)) = argv.split_first() else {
                return Err(SecretError::EmptyCommand {
                    name: name.to_string(),
                });
            };
            let output = Command::new(program)
                .args(args)
                .stdin(Stdio::null())
                .output()
                .map_err(|source| SecretError::CommandStart {
                    name: name.to_string(),
                    program: program.clone(),
                    source,
                })?;
            if !output.status.success() {
                return Err(SecretError::CommandFailed {
                    name: name.to_string(),
                    program: program.clone(),
                    status: output.status.to_string(),
                    stderr: String::from_utf8_lossy(&output.stderr).trim().to_string(),
                });
            }
            Ok(output.stdout)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_source_kind_is_read_and_failures_name_the_secret_not_the_value() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("token");
        std::fs::write(&file, b"from-file\n").unwrap();
        assert_eq!(
            read_source("a", &SecretSource::File { path: file.clone() }).unwrap(),
            b"from-file\n"
        );
        assert_eq!(
            read_source(
                "b",
                &SecretSource::Command {
                    argv: vec!["printf".into(), "from-%s".into(), "command".into()]
                }
            )
            .unwrap(),
            b"from-command"
        );
        assert_eq!(
            read_source("c", &SecretSource::Env { var: "PATH".into() }).unwrap(),
            std::env::var("PATH").unwrap().into_bytes()
        );
        let missing = read_source(
            "d",
            &SecretSource::Env {
                var: "FERRY_TEST_SURELY_UNSET_VARIABLE".into(),
            },
        )
        .unwrap_err();
        assert_eq!(
            missing.to_string(),
            "secret d: the environment variable FERRY_TEST_SURELY_UNSET_VARIABLE is not set"
        );
        let failed = read_source(
            "e",
            &SecretSource::Command {
                argv: vec![
                    "sh".into(),
                    "-c".into(),
                    "echo value; echo nope >&2; exit 3".into(),
                ],
            },
        )
        .unwrap_err()
        .to_string();
        assert!(failed.starts_with("secret e: sh failed ("), "{failed}");
        assert!(failed.ends_with(": nope"), "{failed}");
        assert!(!failed.contains("value"), "{failed}");
        let gone = read_source(
            "f",
            &SecretSource::File {
                path: dir.path().join("absent"),
            },
        )
        .unwrap_err();
        assert!(matches!(gone, SecretError::File { .. }));
    }
}
