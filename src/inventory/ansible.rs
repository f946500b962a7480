//! The Ansible provider: INI and YAML inventories; groups become classes, host variables labels.
//!
//! A host's class is the one group it is listed under directly (`all` and
//! `ungrouped` do not count); a host listed under several groups must say
//! which is its class with the variable `ferry_class`. Variables of the
//! host's groups and their parent groups, then the host's own (which win),
//! become labels, except `ansible_host`/`ansible_user`/`ansible_port`, which
//! become the address, login user and port.
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use ferry_lang::inventory::HostEntry;

use super::{check_hosts, InventoryError};

/// Groups, hosts and variables as read from either format.
#[derive(Debug, Default)]
struct Inventory {
    /// Host → groups it is listed under directly, in file order of first listing.
    host_groups: BTreeMap<String, Vec<String>>,
    host_order: Vec<String>,
    host_vars: BTreeMap<String, BTreeMap<String, String>>,
    group_vars: BTreeMap<String, BTreeMap<String, String>>,
    /// Child group → its parent groups.
    parents: BTreeMap<String, BTreeSet<String>>,
}

impl Inventory {
    fn add_host(&mut self, host: &str, group: &str, vars: BTreeMap<String, String>) {
        if !self.host_groups.contains_key(host) {
            self.host_order.push(host.to_string());
        }
        let groups = self.host_groups.entry(host.to_string()).or_default();
        if !matches!(group, "all" | "ungrouped") && !groups.iter().any(|g| g == group) {
            groups.push(group.to_string());
        }
        self.host_vars
            .entry(host.to_string())
            .or_default()
            .extend(vars);
    }

    /// The group and all its ancestors, nearest first.
    fn ancestry(&self, group: &str) -> Vec<String> {
        let mut order = vec![group.to_string()];
        let mut i = 0;
        while i < order.len() {
            if let Some(parents) = self.parents.get(&order[i]) {
                for parent in parents {
                    if !order.contains(parent) {
                        order.push(parent.clone());
                    }
                }
            }
            i += 1;
        }
        order
    }

    fn into_hosts(self, place: &str) -> Result<Vec<HostEntry>, InventoryError> {
        let mut hosts = Vec::new();
        for name in &self.host_order {
            let groups = &self.host_groups[name];
            let own = self.host_vars.get(name).cloned().unwrap_or_default();
            // Variables from `all`, then farther ancestors, then nearer ones, then the host.
            let mut vars = self.group_vars.get("all").cloned().unwrap_or_default();
            for group in groups {
                for ancestor in self.ancestry(group).iter().rev() {
                    if let Some(v) = self.group_vars.get(ancestor) {
                        vars.extend(v.clone());
                    }
                }
            }
            vars.extend(own);
            let class = match vars.remove("ferry_class") {
                Some(class) => class,
                None => match groups.as_slice() {
                    [one] => one.clone(),
                    [] => {
                        return Err(InventoryError::NoClass {
                            host: name.clone(),
                            place: place.to_string(),
                        })
                    }
                    many => {
                        return Err(InventoryError::AmbiguousClass {
                            host: name.clone(),
                            place: place.to_string(),
                            groups: many
                                .iter()
                                .map(|g| format!("`{g}`"))
                                .collect::<Vec<_>>()
                                .join(", "),
                        })
                    }
                },
            };
            let address = vars.remove("ansible_host").unwrap_or_else(|| name.clone());
            let user = vars.remove("ansible_user");
            let port = match vars.remove("ansible_port") {
                Some(p) => Some(p.parse::<u16>().map_err(|_| InventoryError::AnsibleYaml {
                    path: PathBuf::from(place),
                    detail: format!(
                        "host `{name}` has ansible_port `{p}`, which is not a port number"
                    ),
                })?),
                None => None,
            };
            let labels = vars
                .into_iter()
                .filter(|(k, _)| !k.starts_with("ansible_"))
                .collect();
            hosts.push(HostEntry {
                name: name.clone(),
                class,
                address,
                user,
                port,
                labels,
            });
        }
        check_hosts(&hosts, place)?;
        Ok(hosts)
    }
}

/// Reads the Ansible inventory at `path` (YAML when it ends in `.yml`,
/// `.yaml` or `.json`, INI otherwise).
pub fn resolve(path: &Path) -> Result<Vec<HostEntry>, InventoryError> {
    let text = std::fs::read_to_string(path).map_err(|source| InventoryError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let yaml = matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("yml" | "yaml" | "json")
    );
    let inventory = if yaml {
        parse_yaml(path, &text)?
    } else {
        parse_ini(path, &text)?
    };
    inventory.into_hosts(&path.display().to_string())
}

fn ini_error(path: &Path, line: usize, detail: impl Into<String>) -> InventoryError {
    InventoryError::AnsibleSyntax {
        path: path.to_path_buf(),
        line,
        detail: detail.into(),
    }
}

/// Splits `key=value key2="quoted value"` into pairs.
fn parse_assignments(
    path: &Path,
    line: usize,
    text: &str,
) -> Result<BTreeMap<String, String>, InventoryError> {
    let mut vars = BTreeMap::new();
    let mut rest = text.trim_start();
    while !rest.is_empty() {
        let Some(eq) = rest.find('=') else {
            return Err(ini_error(
                path,
                line,
                format!("expected `key=value`, found `{rest}`"),
            ));
        };
        let key = rest[..eq].trim();
        if key.is_empty() || key.contains(char::is_whitespace) {
            return Err(ini_error(
                path,
                line,
                format!("expected `key=value`, found `{}`", &rest[..eq]),
            ));
        }
        let after = &rest[eq + 1..];
        let (value, remaining) = if let Some(quote @ ('"' | '\'')) = after.chars().next() {
            let Some(end) = after[1..].find(quote) else {
                return Err(ini_error(
                    path,
                    line,
                    format!("unclosed quote in the value of `{key}`"),
                ));
            };
            (after[1..1 + end].to_string(), &after[end + 2..])
        } else {
            let end = after.find(char::is_whitespace).unwrap_or(after.len());
            (after[..end].to_string(), &after[end..])
        };
        vars.insert(key.to_string(), value);
        rest = remaining.trim_start();
    }
    Ok(vars)
}

/// Expands one numeric range like `web[01:03]` (leading zeros kept).
fn expand_range(path: &Path, line: usize, pattern: &str) -> Result<Vec<String>, InventoryError> {
    let Some(open) = pattern.find('[') else {
        return Ok(vec![pattern.to_string()]);
    };
    let Some(close) = pattern[open..].find(']').map(|c| c + open) else {
        return Err(ini_error(
            path,
            line,
            format!("unclosed `[` in host pattern `{pattern}`"),
        ));
    };
    let range = &pattern[open + 1..close];
    let bad = || {
        ini_error(
            path,
            line,
            format!("host range `[{range}]` is not like `[1:9]`"),
        )
    };
    let (from, to) = range.split_once(':').ok_or_else(bad)?;
    let width = if from.starts_with('0') { from.len() } else { 0 };
    let from: u32 = from.parse().map_err(|_| bad())?;
    let to: u32 = to.parse().map_err(|_| bad())?;
    if to < from || to - from > 10_000 {
        return Err(bad());
    }
    let (head, tail) = (&pattern[..open], &pattern[close + 1..]);
    let mut out = Vec::new();
    for n in from..=to {
        for rest in expand_range(path, line, tail)? {
            out.push(format!("{head}{n:0width$}{rest}"));
        }
    }
    Ok(out)
}

enum Section {
    Hosts(String),
    Vars(String),
    Children(String),
}

fn parse_ini(path: &Path, text: &str) -> Result<Inventory, InventoryError> {
    let mut inventory = Inventory::default();
    let mut section = Section::Hosts("ungrouped".to_string());
    for (index, raw) in text.lines().enumerate() {
        let line = index + 1;
        let content = raw.trim();
        if content.is_empty() || content.starts_with('#') || content.starts_with(';') {
            continue;
        }
        if let Some(header) = content.strip_prefix('[') {
            let Some(header) = header.strip_suffix(']') else {
                return Err(ini_error(
                    path,
                    line,
                    format!("section header `{content}` lacks its `]`"),
                ));
            };
            section = match header.split_once(':') {
                None => Section::Hosts(header.to_string()),
                Some((group, "vars")) => Section::Vars(group.to_string()),
                Some((group, "children")) => Section::Children(group.to_string()),
                Some((_, kind)) => {
                    return Err(ini_error(
                        path,
                        line,
                        format!("unknown section kind `:{kind}` (use `:vars` or `:children`)"),
                    ))
                }
            };
            continue;
        }
        match &section {
            Section::Hosts(group) => {
                let (pattern, vars) = match content.split_once(char::is_whitespace) {
                    Some((p, rest)) => (p, parse_assignments(path, line, rest)?),
                    None => (content, BTreeMap::new()),
                };
                for host in expand_range(path, line, pattern)? {
                    inventory.add_host(&host, group, vars.clone());
                }
            }
            Section::Vars(group) => {
                let vars = parse_assignments(path, line, content)?;
                inventory
                    .group_vars
                    .entry(group.clone())
                    .or_default()
                    .extend(vars);
            }
            Section::Children(group) => {
                inventory
                    .parents
                    .entry(content.to_string())
                    .or_default()
                    .insert(group.clone());
            }
        }
    }
    Ok(inventory)
}

fn yaml_text(value: &serde_yaml::Value) -> String {
    match value {
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

fn parse_yaml(path: &Path, text: &str) -> Result<Inventory, InventoryError> {
    let err = |detail: String| InventoryError::AnsibleYaml {
        path: path.to_path_buf(),
        detail,
    };
    let root: serde_yaml::Value = serde_yaml::from_str(text).map_err(|e| err(e.to_string()))?;
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
                inventory.add_host(&yaml_text(name), &group, yaml_vars(Some(vars)));
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

#[cfg(test)]
mod tests {
    use super::*;

    fn write(name: &str, text: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        (dir, path)
    }

    const INI: &str = r#"
# a small site
[web]
web[1:2] ansible_host=10.0.1.1 datacenter=eu1
web3 ansible_host=10.0.1.3 ansible_user=deploy ansible_port=2222 note="two words"

[db]
db1 ansible_host=10.0.2.1

[web:vars]
tier=frontend

[prod:children]
web
db

[prod:vars]
env=prod
datacenter=us1
"#;

    #[test]
    fn ini_groups_become_classes_and_vars_labels() {
        let (_dir, path) = write("hosts.ini", INI);
        let hosts = resolve(&path).unwrap();
        let names: Vec<_> = hosts.iter().map(|h| h.name.as_str()).collect();
        assert_eq!(names, ["web1", "web2", "web3", "db1"]);
        let web3 = &hosts[2];
        assert_eq!(web3.class, "web");
        assert_eq!(web3.address, "10.0.1.3");
        assert_eq!(web3.user.as_deref(), Some("deploy"));
        assert_eq!(web3.port, Some(2222));
        assert_eq!(web3.labels["note"], "two words");
        assert_eq!(web3.labels["tier"], "frontend");
        assert_eq!(web3.labels["env"], "prod");
        // The parent group's datacenter, the host's own wins where it has one.
        assert_eq!(web3.labels["datacenter"], "us1");
        assert_eq!(hosts[0].labels["datacenter"], "eu1");
        assert!(!hosts[0].labels.contains_key("ansible_host"));
        assert_eq!(hosts[3].class, "db");
        assert_eq!(hosts[3].user, None);
    }

    const YAML: &str = r#"
all:
  vars:
    env: prod
  children:
    web:
      vars: {tier: frontend}
      hosts:
        web1: {ansible_host: 10.0.1.1, datacenter: eu1, weight: 3}
        web2:
    db:
      hosts:
        db1:
          ansible_host: 10.0.2.1
          ansible_user: deploy
"#;

    #[test]
    fn yaml_groups_become_classes_and_vars_labels() {
        let (_dir, path) = write("hosts.yml", YAML);
        let hosts = resolve(&path).unwrap();
        assert_eq!(hosts.len(), 3);
        assert_eq!(hosts[0].name, "web1");
        assert_eq!(hosts[0].class, "web");
        assert_eq!(hosts[0].labels["weight"], "3");
        assert_eq!(hosts[0].labels["env"], "prod");
        assert_eq!(
            hosts[1].address, "web2",
            "no ansible_host: the name is the address"
        );
        assert_eq!(hosts[1].labels["tier"], "frontend");
        assert_eq!(hosts[2].user.as_deref(), Some("deploy"));
    }

    #[test]
    fn a_host_in_two_groups_needs_ferry_class() {
        let (_dir, path) = write("hosts.ini", "[web]\na\n[eu1]\na\n");
        let err = resolve(&path).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "host `a` in {} is in groups `web`, `eu1`, so its class is ambiguous",
                path.display()
            )
        );
        let (_dir, path) = write("hosts.ini", "[web]\na ferry_class=web\n[eu1]\na\n");
        assert_eq!(resolve(&path).unwrap()[0].class, "web");
    }

    #[test]
    fn ungrouped_hosts_and_syntax_errors_are_clear() {
        let (_dir, path) = write("hosts.ini", "lonely ansible_host=10.0.0.9\n");
        let err = resolve(&path).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "host `lonely` in {} is in no group, so it has no class",
                path.display()
            )
        );
        let (_dir, path) = write("hosts.ini", "[web]\nweb1 ansible_host\n");
        let err = resolve(&path).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "Ansible inventory {}, line 2: expected `key=value`, found `ansible_host`",
                path.display()
            )
        );
        let (_dir, path) = write("hosts.yaml", "all:\n  hostz: {}\n");
        let err = resolve(&path).unwrap_err();
        assert!(
            err.to_string()
                .ends_with("group `all` has `hostz`; a group has only hosts, vars and children"),
            "{err}"
        );
    }

    #[test]
    fn a_missing_file_names_it() {
        let err = resolve(Path::new("/nonexistent/hosts.ini")).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("cannot read Ansible inventory /nonexistent/hosts.ini: "),
            "{err}"
        );
    }
}
