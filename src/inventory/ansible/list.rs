//! Ansible's own reading of an inventory: the JSON of `ansible-inventory
//! --list`, run on the file or printed by any dynamic inventory (through
//! the exec provider). Ansible has already applied `group_vars/`,
//! `host_vars/`, precedence and its plugins, so each host's variables are
//! final; only the groups a host is listed under directly are left to read.
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use super::super::InventoryError;
use super::{Inventory, VAULT_HEADER};
use crate::activate::process::{wait_within, DeadlineError};

/// How long `ansible-inventory` may take (a cloud plugin asks an API).
pub const ANSIBLE_INVENTORY_TIMEOUT: Duration = Duration::from_secs(120);

/// The `ansible-inventory` on `PATH`, if any.
pub fn find_ansible_inventory() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join("ansible-inventory"))
        .find(|candidate| {
            use std::os::unix::fs::PermissionsExt;
            std::fs::metadata(candidate)
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

/// Runs `program -i path --list` and reads its answer. An inventory
/// Ansible cannot parse is an error here, not a warning and no hosts.
pub(super) fn run(program: &Path, path: &Path) -> Result<Inventory, InventoryError> {
    let shown = format!("{} -i {} --list", program.display(), path.display());
    // Ansible's scratch files go to a directory of ours, removed after.
    let scratch = tempfile::tempdir().map_err(|source| InventoryError::CommandStart {
        command: shown.clone(),
        dir: std::env::temp_dir(),
        source,
    })?;
    let dir = path.parent().unwrap_or(Path::new("."));
    let cannot_start = |source: std::io::Error| InventoryError::CommandStart {
        command: shown.clone(),
        dir: dir.to_path_buf(),
        source,
    };
    // Its answer and its complaints go to files of ours, read once it ended.
    let mut stdout = tempfile::tempfile().map_err(cannot_start)?;
    let mut stderr = tempfile::tempfile().map_err(cannot_start)?;
    let mut command = Command::new(program);
    command
        .arg("-i")
        .arg(path)
        .arg("--list")
        .current_dir(dir)
        .env("ANSIBLE_INVENTORY_UNPARSED_FAILED", "True")
        .env("ANSIBLE_INVENTORY_ANY_UNPARSED_IS_FAILED", "True")
        .env("ANSIBLE_NOCOLOR", "1")
        .env("ANSIBLE_LOCALHOST_WARNING", "False")
        .env("ANSIBLE_LOCAL_TEMP", scratch.path())
        .env("ANSIBLE_HOME", scratch.path())
        .stdout(stdout.try_clone().map_err(cannot_start)?)
        .stderr(stderr.try_clone().map_err(cannot_start)?);
    let failed = |status: String, stderr: &mut std::fs::File| InventoryError::CommandFailed {
        command: shown.clone(),
        status,
        stderr: String::from_utf8_lossy(&read_back(stderr))
            .trim()
            .to_string(),
    };
    let status = match wait_within(command, ANSIBLE_INVENTORY_TIMEOUT) {
        Ok(status) => status,
        Err(DeadlineError::Spawn(e) | DeadlineError::TempFile(e)) => return Err(cannot_start(e)),
        Err(DeadlineError::TimedOut) => {
            return Err(failed(
                format!("no answer within {ANSIBLE_INVENTORY_TIMEOUT:?}"),
                &mut stderr,
            ))
        }
        Err(DeadlineError::Wait(e)) => return Err(failed(format!("waiting: {e}"), &mut stderr)),
    };
    if !status.success() {
        return Err(failed(status.to_string(), &mut stderr));
    }
    let stdout = read_back(&mut stdout);
    let json: Value = serde_json::from_slice(&stdout).map_err(|e| InventoryError::BadJson {
        command: shown.clone(),
        detail: e.to_string(),
    })?;
    from_json(&json).map_err(|detail| InventoryError::BadJson {
        command: shown,
        detail,
    })
}

/// What a command wrote into `file`.
fn read_back(file: &mut std::fs::File) -> Vec<u8> {
    let mut bytes = Vec::new();
    let _ = file.seek(SeekFrom::Start(0));
    let _ = file.read_to_end(&mut bytes);
    bytes
}

/// True when `json` looks like `ansible-inventory --list` output.
pub fn is_ansible_list(json: &Value) -> bool {
    json.get("_meta")
        .is_some_and(|m| m.get("hostvars").is_some())
}

/// Groups and final host variables from `--list` JSON: hosts in the order
/// Ansible lists them, walking its groups from `all`.
pub(super) fn from_json(json: &Value) -> Result<Inventory, String> {
    let empty = serde_json::Map::new();
    let hostvars = json
        .get("_meta")
        .and_then(|m| m.get("hostvars"))
        .and_then(Value::as_object)
        .ok_or("no `_meta.hostvars` (ansible-inventory --list always prints it)")?;
    let mut inventory = Inventory::default();
    let mut visited = std::collections::BTreeSet::new();
    let mut pending = vec!["all".to_string()];
    // Groups nobody lists as a child hang from `all` too (older scripts).
    if let Some(groups) = json.as_object() {
        let mut orphans: Vec<String> = groups
            .keys()
            .filter(|g| *g != "_meta" && *g != "all")
            .cloned()
            .collect();
        orphans.reverse();
        pending.splice(0..0, orphans);
    }
    while let Some(group) = pending.pop() {
        if !visited.insert(group.clone()) {
            continue;
        }
        let Some(body) = json.get(&group) else {
            continue;
        };
        // A group is `{hosts, children, vars}`, or just a list of hosts.
        let (hosts, children) = match body {
            Value::Array(hosts) => (Some(hosts), None),
            Value::Object(_) => (
                body.get("hosts").and_then(Value::as_array),
                body.get("children").and_then(Value::as_array),
            ),
            _ => return Err(format!("group `{group}` is neither a mapping nor a list")),
        };
        for host in hosts.into_iter().flatten() {
            let name = host.as_str().ok_or_else(|| {
                format!("group `{group}` lists a host that is not a name: {host}")
            })?;
            let vars = hostvars
                .get(name)
                .and_then(Value::as_object)
                .unwrap_or(&empty)
                .iter()
                .map(|(k, v)| (k.clone(), text(v)))
                .collect();
            inventory.add_host(name, &group, vars);
        }
        if let Some(vars) = body.get("vars").and_then(Value::as_object) {
            inventory
                .group_vars
                .entry(group.clone())
                .or_default()
                .extend(vars.iter().map(|(k, v)| (k.clone(), text(v))));
        }
        let mut next: Vec<String> = children
            .into_iter()
            .flatten()
            .filter_map(|c| c.as_str().map(str::to_string))
            .collect();
        for child in &next {
            inventory
                .parents
                .entry(child.clone())
                .or_default()
                .insert(group.clone());
        }
        next.reverse();
        pending.extend(next);
    }
    Ok(inventory)
}

/// A variable's value as a label's text; Vault ciphertext stays
/// recognisable as such, so it never becomes a label.
fn text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        Value::Object(o) if o.contains_key("__ansible_vault") => {
            format!("{VAULT_HEADER} (vaulted)")
        }
        Value::Bool(_) | Value::Number(_) | Value::Array(_) | Value::Object(_) => value.to_string(),
    }
}
