//! The exec provider: an external program (cloud tags, a CMDB) prints the hosts as JSON.
//!
//! The program runs in the directory of the site file that declares it,
//! with no stdin; its stdout must be
//! `{"hosts": [{"name", "class", "address", "user"?, "port"?, "labels"?, "identity_file"?}]}`,
//! or what an Ansible dynamic inventory prints (`ansible-inventory --list`
//! JSON, with `_meta.hostvars`), read as the Ansible provider reads it.
use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};

use ferry_lang::inventory::HostEntry;
use serde::Deserialize;

use super::{check_hosts, InventoryError};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExecInventory {
    hosts: Vec<ExecHost>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExecHost {
    name: String,
    class: String,
    address: String,
    #[serde(default)]
    user: Option<String>,
    #[serde(default)]
    port: Option<u16>,
    #[serde(default)]
    labels: BTreeMap<String, LabelValue>,
    #[serde(default)]
    identity_file: Option<std::path::PathBuf>,
}

/// Labels are text; numbers and booleans from JSON are accepted as their text.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum LabelValue {
    Text(String),
    Number(serde_json::Number),
    Bool(bool),
}

impl LabelValue {
    fn into_text(self) -> String {
        match self {
            LabelValue::Text(t) => t,
            LabelValue::Number(n) => n.to_string(),
            LabelValue::Bool(b) => b.to_string(),
        }
    }
}

/// Runs `command` in `dir` and reads the hosts it prints.
pub fn resolve(command: &[String], dir: &Path) -> Result<Vec<HostEntry>, InventoryError> {
    let shown = command.join(" ");
    let Some((program, args)) = command.split_first() else {
        return Err(InventoryError::EmptyCommand);
    };
    let output = Command::new(program)
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .map_err(|source| InventoryError::CommandStart {
            command: shown.clone(),
            dir: dir.to_path_buf(),
            source,
        })?;
    if !output.status.success() {
        return Err(InventoryError::CommandFailed {
            command: shown,
            status: output.status.to_string(),
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_string(),
        });
    }
    let bad_json = |e: serde_json::Error| InventoryError::BadJson {
        command: shown.clone(),
        detail: e.to_string(),
    };
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).map_err(bad_json)?;
    // Any Ansible dynamic inventory (or `ansible-inventory --list` itself)
    // feeds ferry as it is, read as the Ansible provider reads it.
    if super::ansible::list::is_ansible_list(&json) {
        return super::ansible::from_list_json(&json, &format!("the output of `{shown}`"));
    }
    let parsed: ExecInventory = serde_json::from_value(json).map_err(bad_json)?;
    let hosts: Vec<HostEntry> = parsed
        .hosts
        .into_iter()
        .map(|h| HostEntry {
            name: h.name,
            class: h.class,
            address: h.address,
            user: h.user,
            port: h.port,
            labels: h
                .labels
                .into_iter()
                .map(|(k, v)| (k, v.into_text()))
                .collect(),
            identity_file: h.identity_file,
        })
        .collect();
    check_hosts(&hosts, &format!("the output of `{shown}`"))?;
    Ok(hosts)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn script(dir: &Path, body: &str) -> Vec<String> {
        let path = dir.join("hosts.sh");
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        vec!["sh".to_string(), "hosts.sh".to_string()]
    }

    #[test]
    fn reads_hosts_from_the_program_run_in_the_site_dir() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("data.json"), r#"{"hosts": [
            {"name": "web1", "class": "web", "address": "10.0.0.5", "labels": {"datacenter": "eu1", "rack": 4}},
            {"name": "db1", "class": "db", "address": "db1.example.org", "user": "deploy", "port": 2222}
        ]}"#)
        .unwrap();
        let hosts = resolve(&script(dir.path(), "cat data.json"), dir.path()).unwrap();
        assert_eq!(hosts.len(), 2);
        assert_eq!(hosts[0].labels["datacenter"], "eu1");
        assert_eq!(hosts[0].labels["rack"], "4");
        assert_eq!(hosts[0].user, None);
        assert_eq!(hosts[1].user.as_deref(), Some("deploy"));
        assert_eq!(hosts[1].port, Some(2222));
    }

    #[test]
    fn a_missing_program_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let err = resolve(&["./no-such-inventory".to_string()], dir.path()).unwrap_err();
        assert!(
            err.to_string().starts_with(&format!(
                "cannot run inventory command `./no-such-inventory` in {}: No such file",
                dir.path().display()
            )),
            "{err}"
        );
    }

    #[test]
    fn a_failing_program_shows_its_stderr() {
        let dir = tempfile::tempdir().unwrap();
        let err = resolve(
            &script(dir.path(), "echo 'cloud API: token expired' >&2; exit 3"),
            dir.path(),
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "inventory command `sh hosts.sh` failed (exit status: 3): cloud API: token expired"
        );
    }

    #[test]
    fn bad_json_names_the_place() {
        let dir = tempfile::tempdir().unwrap();
        let err = resolve(
            &script(dir.path(), r#"echo '{"hosts": [{"name": "a"}'"#),
            dir.path(),
        )
        .unwrap_err();
        assert!(
            err.to_string()
                .starts_with("inventory command `sh hosts.sh` printed bad JSON: "),
            "{err}"
        );
        let err = resolve(
            &script(
                dir.path(),
                r#"echo '{"hosts": [{"name": "a", "class": "web", "adress": "x"}]}'"#,
            ),
            dir.path(),
        )
        .unwrap_err();
        assert!(err.to_string().contains("unknown field `adress`"), "{err}");
    }

    #[test]
    fn duplicate_hosts_and_bad_classes_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let twice = r#"echo '{"hosts": [{"name": "a", "class": "web", "address": "10.0.0.1"},
                                       {"name": "a", "class": "db", "address": "10.0.0.2"}]}'"#;
        let err = resolve(&script(dir.path(), twice), dir.path()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "host `a` appears twice in the output of `sh hosts.sh`"
        );
        let bad_class =
            r#"echo '{"hosts": [{"name": "a", "class": "web servers", "address": "10.0.0.1"}]}'"#;
        let err = resolve(&script(dir.path(), bad_class), dir.path()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "host `a` in the output of `sh hosts.sh` has class `web servers`, which is not a class name"
        );
    }
}
