//! The YAML format (`all:` → `hosts`, `vars`, `children`), read as YAML 1.1
//! as Ansible reads it (`yaml11`).
use std::collections::BTreeMap;
use std::path::Path;

use super::super::InventoryError;
use super::patterns::hosts_of;
use super::{Inventory, VAULT_HEADER};

fn yaml_text(value: &serde_yaml::Value) -> String {
    match value {
        // `!vault |` ciphertext: kept recognisable, so it is never a label.
        serde_yaml::Value::Tagged(tagged) if tagged.tag == "vault" => {
            let text = yaml_text(&tagged.value);
            if text.trim_start().starts_with(VAULT_HEADER) {
                text
            } else {
                format!("{VAULT_HEADER} {text}")
            }
        }
        serde_yaml::Value::String(s) => s.clone(),
        serde_yaml::Value::Bool(b) => b.to_string(),
        serde_yaml::Value::Number(n) => n.to_string(),
        serde_yaml::Value::Null => String::new(),
        other => serde_json::to_string(other).unwrap_or_default(),
    }
}

fn yaml_vars(value: Option<&serde_yaml::Value>) -> BTreeMap<String, String> {
    let Some(serde_yaml::Value::Mapping(map)) = value else {
        return BTreeMap::new();
    };
    map.iter()
        .map(|(k, v)| (yaml_text(k), yaml_text(v)))
        .collect()
}

pub(super) fn parse_yaml(path: &Path, text: &str) -> Result<Inventory, InventoryError> {
    let err = |detail: String| InventoryError::AnsibleYaml {
        path: path.to_path_buf(),
        detail,
    };
    let root = super::yaml11::load(text).map_err(err)?;
    let serde_yaml::Value::Mapping(groups) = root else {
        return Err(err(
            "the top level must map group names (usually `all`) to groups".to_string(),
        ));
    };
    let mut inventory = Inventory::default();
    let mut pending: Vec<(String, serde_yaml::Value)> = groups
        .into_iter()
        .map(|(k, v)| (yaml_text(&k), v))
        .collect();
    pending.reverse();
    while let Some((group, body)) = pending.pop() {
        let body = match body {
            serde_yaml::Value::Null => continue,
            serde_yaml::Value::Mapping(m) => m,
            _ => {
                return Err(err(format!(
                    "group `{group}` must be a mapping with hosts, vars or children"
                )))
            }
        };
        for key in body.keys() {
            let key = yaml_text(key);
            if !matches!(key.as_str(), "hosts" | "vars" | "children") {
                return Err(err(format!(
                    "group `{group}` has `{key}`; a group has only hosts, vars and children"
                )));
            }
        }
        inventory
            .group_vars
            .entry(group.clone())
            .or_default()
            .extend(yaml_vars(body.get("vars")));
        if let Some(hosts) = body.get("hosts") {
            let serde_yaml::Value::Mapping(hosts) = hosts else {
                return Err(err(format!(
                    "`hosts` of group `{group}` must map host names to their variables"
                )));
            };
            for (name, vars) in hosts {
                // Host keys take ranges and `:port` here too.
                let name = yaml_text(name);
                let (hosts, vars) = hosts_of(&name, yaml_vars(Some(vars)))
                    .map_err(|e| err(format!("host `{name}` of group `{group}`: {e}")))?;
                for host in hosts {
                    inventory.add_host(&host, &group, vars.clone());
                }
            }
        }
        if let Some(children) = body.get("children") {
            let serde_yaml::Value::Mapping(children) = children else {
                return Err(err(format!(
                    "`children` of group `{group}` must map group names to groups"
                )));
            };
            let mut next = Vec::new();
            for (child, child_body) in children {
                let child = yaml_text(child);
                inventory
                    .parents
                    .entry(child.clone())
                    .or_default()
                    .insert(group.clone());
                next.push((child, child_body.clone()));
            }
            next.reverse();
            pending.extend(next);
        }
    }
    Ok(inventory)
}

/// Reads `group_vars/` and `host_vars/` next to the inventory file, as
/// Ansible's `host_group_vars` plugin does: `NAME`, `NAME.yml`,
/// `NAME.yaml` or `NAME.json`, or a directory `NAME/` whose files are
/// merged in name order. A Vault-encrypted file is refused: only Ansible
/// can open it.
pub(super) fn load_var_dirs(inventory: &mut Inventory, dir: &Path) -> Result<(), InventoryError> {
    inventory.dir_group_vars = var_dir(&dir.join("group_vars"))?;
    inventory.dir_host_vars = var_dir(&dir.join("host_vars"))?;
    Ok(())
}

type VarsByName = BTreeMap<String, BTreeMap<String, String>>;

fn var_dir(dir: &Path) -> Result<VarsByName, InventoryError> {
    let mut out = VarsByName::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(out);
    };
    let mut entries: Vec<std::path::PathBuf> = entries.flatten().map(|e| e.path()).collect();
    entries.sort();
    for entry in entries {
        let Some(file_name) = entry.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        if file_name.starts_with('.') {
            continue;
        }
        let name = [".yml", ".yaml", ".json"]
            .iter()
            .find_map(|ext| file_name.strip_suffix(ext))
            .unwrap_or(file_name);
        let files: Vec<std::path::PathBuf> = if entry.is_dir() {
            let mut inner: Vec<_> = std::fs::read_dir(&entry)
                .map_err(|source| InventoryError::Read {
                    path: entry.clone(),
                    source,
                })?
                .flatten()
                .map(|e| e.path())
                .filter(|p| {
                    p.is_file()
                        && p.file_name()
                            .and_then(|n| n.to_str())
                            .is_some_and(|n| !n.starts_with('.'))
                })
                .collect();
            inner.sort();
            inner
        } else {
            vec![entry.clone()]
        };
        let vars = out.entry(name.to_string()).or_default();
        for file in files {
            vars.extend(var_file(&file)?);
        }
    }
    Ok(out)
}

fn var_file(path: &Path) -> Result<BTreeMap<String, String>, InventoryError> {
    let text = std::fs::read_to_string(path).map_err(|source| InventoryError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let err = |detail: String| InventoryError::AnsibleYaml {
        path: path.to_path_buf(),
        detail,
    };
    if text.trim_start().starts_with(VAULT_HEADER) {
        return Err(err(
            "the file is Vault-encrypted, which only Ansible can open: install Ansible (`ansible-inventory` on PATH) to read this inventory".to_string(),
        ));
    }
    let value = super::yaml11::load(&text).map_err(err)?;
    match value {
        serde_yaml::Value::Null => Ok(BTreeMap::new()),
        serde_yaml::Value::Mapping(_) => Ok(yaml_vars(Some(&value))),
        _ => Err(err(
            "a variables file must be a mapping of names to values".to_string()
        )),
    }
}
