//! The Ansible provider: INI and YAML inventories; groups become classes, host variables labels.
//!
//! Where `ansible-inventory` is on `PATH`, Ansible itself reads the file
//! (`list`): its `group_vars/` and `host_vars/`, precedence, vault and
//! plugins are then exactly Ansible's. Elsewhere ferry's own reader takes
//! the INI (`ini`) and YAML (`yaml`) subset it agrees with Ansible on, and
//! refuses the rest. `FERRY_ANSIBLE_READER=builtin|ansible` forces one.
//!
//! A host's class is the one group it is listed under directly (`all` and
//! `ungrouped` do not count); a host listed under several groups must say
//! which is its class with the variable `ferry_class`. Variables of the
//! host's groups and their parent groups, then the host's own (which win),
//! become labels, except connection settings (`ansible_host`, `ansible_user`,
//! `ansible_port` and their `ansible_ssh_*` forms: the address, login user
//! and port; every other `ansible_*`) and secrets (`is_secret`).
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use ferry_lang::inventory::HostEntry;

use super::{check_hosts, InventoryError};

mod ini;
pub mod list;
mod patterns;
mod yaml;
pub mod yaml11;

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
    /// Variables of `group_vars/<group>` next to the file (built-in reader;
    /// Ansible's answer has them merged already).
    dir_group_vars: BTreeMap<String, BTreeMap<String, String>>,
    /// Variables of `host_vars/<host>` next to the file.
    dir_host_vars: BTreeMap<String, BTreeMap<String, String>>,
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

    /// Each group's depth as Ansible counts it: `all` is 0, a group is one
    /// deeper than its deepest parent (a top-level group's parent is `all`).
    fn depths(&self) -> BTreeMap<String, usize> {
        let mut names: BTreeSet<&String> = self.group_vars.keys().collect();
        names.extend(self.parents.keys());
        names.extend(self.parents.values().flatten());
        names.extend(self.host_groups.values().flatten());
        let mut depth: BTreeMap<String, usize> = names.iter().map(|n| ((*n).clone(), 1)).collect();
        depth.insert("all".to_string(), 0);
        // Relax until nothing deepens; a cycle stops at the bound.
        for _ in 0..=depth.len() {
            let mut changed = false;
            for (child, parents) in &self.parents {
                let wanted = parents
                    .iter()
                    .map(|p| depth.get(p).copied().unwrap_or(1) + 1)
                    .max()
                    .unwrap_or(1);
                if child != "all" && depth.get(child).copied().unwrap_or(1) < wanted {
                    depth.insert(child.clone(), wanted);
                    changed = true;
                }
            }
            if !changed {
                break;
            }
        }
        depth
    }

    /// Every group a host belongs to, with their ancestors, sorted as
    /// Ansible combines them: by depth, then by name (later wins).
    fn groups_of(&self, direct: &[String], depths: &BTreeMap<String, usize>) -> Vec<String> {
        let mut all: BTreeSet<String> = BTreeSet::new();
        let mut pending: Vec<String> = direct.to_vec();
        while let Some(group) = pending.pop() {
            if group != "all" && all.insert(group.clone()) {
                pending.extend(self.parents.get(&group).into_iter().flatten().cloned());
            }
        }
        let mut sorted: Vec<String> = all.into_iter().collect();
        sorted.sort_by_key(|g| (depths.get(g).copied().unwrap_or(1), g.clone()));
        sorted
    }

    fn into_hosts(self, place: &str) -> Result<Vec<HostEntry>, InventoryError> {
        let depths = self.depths();
        let mut hosts = Vec::new();
        for name in &self.host_order {
            let groups = &self.host_groups[name];
            let sorted = self.groups_of(groups, &depths);
            // Ansible's precedence, lowest first: `all`'s variables in the
            // file, then `group_vars/all`, then the host's other groups' in
            // the file and in `group_vars/`, each by depth and name; then
            // the host's own in the file, then `host_vars/`.
            let mut vars = BTreeMap::new();
            let layer = |vars: &mut BTreeMap<String, String>,
                         from: &BTreeMap<String, BTreeMap<String, String>>,
                         key: &str| {
                if let Some(v) = from.get(key) {
                    vars.extend(v.clone());
                }
            };
            layer(&mut vars, &self.group_vars, "all");
            layer(&mut vars, &self.dir_group_vars, "all");
            for group in &sorted {
                layer(&mut vars, &self.group_vars, group);
            }
            for group in &sorted {
                layer(&mut vars, &self.dir_group_vars, group);
            }
            layer(&mut vars, &self.host_vars, name);
            layer(&mut vars, &self.dir_host_vars, name);
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
            // Ansible still honours the `ansible_ssh_*` names; the short
            // ones win where both are set.
            let mut connection = |short: &str, long: &str| {
                let old = vars.remove(long);
                vars.remove(short).or(old)
            };
            let address =
                connection("ansible_host", "ansible_ssh_host").unwrap_or_else(|| name.clone());
            let user = connection("ansible_user", "ansible_ssh_user");
            let port = match connection("ansible_port", "ansible_ssh_port") {
                Some(p) => Some(p.parse::<u16>().map_err(|_| InventoryError::BadPort {
                    host: name.clone(),
                    place: place.to_string(),
                    port: p.clone(),
                })?),
                None => None,
            };
            let identity_file =
                connection("ansible_private_key_file", "ansible_ssh_private_key_file")
                    .map(|key| expand_home(&key));
            // `local` runs on the deployer itself, without SSH (ferry's
            // local transport); ferry reaches other hosts only over SSH.
            let (address, user, port) = match vars.remove("ansible_connection").as_deref() {
                Some("local") => ("localhost".to_string(), None, None),
                None | Some("ssh" | "smart" | "paramiko" | "ansible.builtin.ssh") => {
                    (address, user, port)
                }
                Some(other) => {
                    return Err(InventoryError::Connection {
                        host: name.clone(),
                        place: place.to_string(),
                        connection: other.to_string(),
                    })
                }
            };
            let labels = vars
                .into_iter()
                .filter(|(k, v)| !k.starts_with("ansible_") && !is_secret(k, v))
                .collect();
            hosts.push(HostEntry {
                name: name.clone(),
                class,
                address,
                user,
                port,
                labels,
                identity_file,
            });
        }
        check_hosts(&hosts, place)?;
        Ok(hosts)
    }
}

/// A variable that must never become a label (labels are printed by
/// `ferry eval` and reach every host): Vault ciphertext, or a name with a
/// word that says password, secret, token or key (`db_password`,
/// `api-token`, `ssh_key`, `apikey`).
fn is_secret(name: &str, value: &str) -> bool {
    const WORDS: [&str; 6] = ["password", "passwd", "secret", "token", "key", "credential"];
    value.trim_start().starts_with(VAULT_HEADER)
        || name
            .to_ascii_lowercase()
            .split(|c: char| !c.is_ascii_alphanumeric())
            .any(|word| WORDS.iter().any(|w| word.ends_with(w)) || word == "pass" || word == "pw")
}

/// `~/key` → `$HOME/key`, as Ansible expands a key file's path.
fn expand_home(path: &str) -> PathBuf {
    match (path.strip_prefix("~/"), std::env::var_os("HOME")) {
        (Some(rest), Some(home)) => PathBuf::from(home).join(rest),
        _ => PathBuf::from(path),
    }
}

/// How Ansible Vault ciphertext starts (inline, or in YAML under `!vault`).
const VAULT_HEADER: &str = "$ANSIBLE_VAULT";

/// Which reader reads an Ansible inventory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reader {
    /// `ansible-inventory --list`, at this path.
    Ansible(PathBuf),
    /// ferry's own INI and YAML reader; `forced` by `FERRY_ANSIBLE_READER`,
    /// else because there is no `ansible-inventory`.
    Builtin {
        /// Chosen although Ansible may be installed.
        forced: bool,
    },
}

impl std::fmt::Display for Reader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Reader::Ansible(program) => write!(f, "read by {}", program.display()),
            Reader::Builtin { forced: true } => write!(
                f,
                "read by ferry's built-in reader (FERRY_ANSIBLE_READER=builtin)"
            ),
            Reader::Builtin { forced: false } => write!(
                f,
                "read by ferry's built-in reader (no ansible-inventory on PATH)"
            ),
        }
    }
}

/// The reader `resolve` uses: `FERRY_ANSIBLE_READER` (`builtin` or
/// `ansible`), else `ansible-inventory` when it is on `PATH`.
pub fn reader() -> Result<Reader, InventoryError> {
    match std::env::var("FERRY_ANSIBLE_READER").ok().as_deref() {
        Some("builtin") => Ok(Reader::Builtin { forced: true }),
        Some("ansible") => list::find_ansible_inventory()
            .map(Reader::Ansible)
            .ok_or(InventoryError::NoAnsible),
        _ => Ok(list::find_ansible_inventory()
            .map_or(Reader::Builtin { forced: false }, Reader::Ansible)),
    }
}

/// Reads the Ansible inventory at `path` with [`reader`]'s choice.
pub fn resolve(path: &Path) -> Result<Vec<HostEntry>, InventoryError> {
    match reader()? {
        Reader::Ansible(program) => resolve_with(&program, path),
        Reader::Builtin { .. } => resolve_builtin(path),
    }
}

/// Reads it through `ansible-inventory` (`program`).
pub fn resolve_with(program: &Path, path: &Path) -> Result<Vec<HostEntry>, InventoryError> {
    list::run(program, path)?.into_hosts(&path.display().to_string())
}

/// Hosts from JSON in `ansible-inventory --list` form (a dynamic inventory's
/// output); `place` names where it came from.
pub fn from_list_json(
    json: &serde_json::Value,
    place: &str,
) -> Result<Vec<HostEntry>, InventoryError> {
    list::from_json(json)
        .map_err(|detail| InventoryError::BadJson {
            command: place.to_string(),
            detail,
        })?
        .into_hosts(place)
}

/// Reads it with ferry's own reader (YAML when the name ends in `.yml`,
/// `.yaml` or `.json`, INI otherwise).
pub fn resolve_builtin(path: &Path) -> Result<Vec<HostEntry>, InventoryError> {
    let text = std::fs::read_to_string(path).map_err(|source| InventoryError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let yaml = matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("yml" | "yaml" | "json")
    );
    let mut inventory = if yaml {
        yaml::parse_yaml(path, &text)?
    } else {
        ini::parse_ini(path, &text)?
    };
    yaml::load_var_dirs(&mut inventory, path.parent().unwrap_or(Path::new(".")))?;
    inventory.into_hosts(&path.display().to_string())
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
        let hosts = resolve_builtin(&path).unwrap();
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
        let hosts = resolve_builtin(&path).unwrap();
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
        let err = resolve_builtin(&path).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "host `a` in {} is in groups `web`, `eu1`, so its class is ambiguous",
                path.display()
            )
        );
        let (_dir, path) = write("hosts.ini", "[web]\na ferry_class=web\n[eu1]\na\n");
        assert_eq!(resolve_builtin(&path).unwrap()[0].class, "web");
    }

    #[test]
    fn ungrouped_hosts_and_syntax_errors_are_clear() {
        let (_dir, path) = write("hosts.ini", "lonely ansible_host=10.0.0.9\n");
        let err = resolve_builtin(&path).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "host `lonely` in {} is in no group, so it has no class",
                path.display()
            )
        );
        let (_dir, path) = write("hosts.ini", "[web]\nweb1 ansible_host\n");
        let err = resolve_builtin(&path).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "Ansible inventory {}:2:1: expected `key=value`, found `ansible_host`",
                path.display()
            )
        );
        let (_dir, path) = write("hosts.yaml", "all:\n  hostz: {}\n");
        let err = resolve_builtin(&path).unwrap_err();
        assert!(
            err.to_string()
                .ends_with("group `all` has `hostz`; a group has only hosts, vars and children"),
            "{err}"
        );
    }

    /// Refused or misread although Ansible reads them: trailing comments,
    /// `[:5]` and letter and step ranges, `:vars` values with spaces, a
    /// comment after a `[g:children]` header, `host:port`, and the
    /// `ansible_ssh_*` names (as `ansible-inventory --list` reads them).
    #[test]
    fn ini_lines_are_read_as_ansible_reads_them() {
        let (_dir, path) = write(
            "hosts.ini",
            "[web]  # the front\n\
             mail[:2] tier=mx   # three hosts\n\
             db[a:b] ansible_ssh_host=10.0.0.9 ansible_ssh_user=ops ansible_ssh_port=2200\n\
             n[1:5:2]\n\
             edge:2222 note=\"a # b\"\n\
             [web:vars]\n\
             motd = hello there world\n\
             quoted = 'two words'\n\
             [prod:children] # every tier\n\
             web # the only one\n\
             [prod:vars]\n\
             env=prod\n",
        );
        let hosts = resolve_builtin(&path).unwrap();
        let names: Vec<_> = hosts.iter().map(|h| h.name.as_str()).collect();
        assert_eq!(
            names,
            ["mail0", "mail1", "mail2", "dba", "dbb", "n1", "n3", "n5", "edge"]
        );
        assert_eq!(hosts[0].labels["tier"], "mx");
        assert_eq!(hosts[0].labels["motd"], "hello there world");
        assert_eq!(hosts[0].labels["quoted"], "two words");
        assert_eq!(
            hosts[0].labels["env"], "prod",
            "the child group kept its name"
        );
        assert_eq!(hosts[3].address, "10.0.0.9");
        assert_eq!(hosts[3].user.as_deref(), Some("ops"));
        assert_eq!(hosts[3].port, Some(2200));
        assert_eq!(hosts[8].port, Some(2222));
        assert_eq!(hosts[8].address, "edge");
        assert_eq!(hosts[8].labels["note"], "a # b");
        let (_dir, path) = write("hosts.ini", "[web]\nw[01:3]\n");
        assert!(resolve_builtin(&path)
            .unwrap_err()
            .to_string()
            .contains("host range `[01:3]` has ends of different widths"),);
    }

    #[test]
    fn secrets_never_become_labels() {
        let (_dir, path) = write(
            "hosts.ini",
            "[web]\nw1 db_password=hunter2 api-token=t ssh_key=k apikey=a role=app blob=\"$ANSIBLE_VAULT;1.1;AES256\"\n",
        );
        let hosts = resolve_builtin(&path).unwrap();
        assert_eq!(
            hosts[0].labels.keys().collect::<Vec<_>>(),
            ["role"],
            "{:?}",
            hosts[0].labels
        );
        let (_dir, path) = write(
            "hosts.yml",
            "web:\n  hosts:\n    w1:\n      role: app\n      vaulted: !vault |\n        $ANSIBLE_VAULT;1.1;AES256\n        6162\n",
        );
        let hosts = resolve_builtin(&path).unwrap();
        assert_eq!(hosts[0].labels.keys().collect::<Vec<_>>(), ["role"]);
    }

    #[test]
    fn yaml_host_names_take_ranges_and_ports() {
        let (_dir, path) = write(
            "hosts.yml",
            "web:\n  hosts:\n    web[1:2]:\n    edge:2201:\n",
        );
        let hosts = resolve_builtin(&path).unwrap();
        let names: Vec<_> = hosts.iter().map(|h| h.name.as_str()).collect();
        assert_eq!(names, ["web1", "web2", "edge"]);
        assert_eq!(hosts[2].port, Some(2201));
    }

    #[test]
    fn a_missing_file_names_it() {
        let err = resolve_builtin(Path::new("/nonexistent/hosts.ini")).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("cannot read Ansible inventory /nonexistent/hosts.ini: "),
            "{err}"
        );
    }
}
