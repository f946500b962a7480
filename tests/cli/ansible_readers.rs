//! ferry's built-in Ansible reader against real Ansible (`ansible-inventory
//! --list`, Debian's ansible-core, installed by scripts/setup.sh): one
//! inventory per feature the built-in reader claims, and both must give the
//! same hosts, classes, addresses, ports, users and labels.
use std::path::{Path, PathBuf};
use std::process::Command;

use ferry::inventory::ansible::{list::find_ansible_inventory, resolve_builtin, resolve_with};
use ferry_lang::inventory::HostEntry;

fn ansible_inventory() -> PathBuf {
    find_ansible_inventory().expect(
        "these tests compare with real Ansible: install Debian's ansible-core (scripts/setup.sh does)",
    )
}

/// Writes `files` (relative path → text) into a new directory.
fn inventory(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (path, text) in files {
        let path = dir.path().join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    dir
}

fn by_name(mut hosts: Vec<HostEntry>) -> Vec<HostEntry> {
    hosts.sort_by(|a, b| a.name.cmp(&b.name));
    hosts
}

/// Both readers on `file` of `dir`: the same hosts, returned.
fn agree(dir: &Path, file: &str) -> Vec<HostEntry> {
    let path = dir.join(file);
    let ours = resolve_builtin(&path).unwrap_or_else(|e| panic!("built-in reader: {e}"));
    let theirs =
        resolve_with(&ansible_inventory(), &path).unwrap_or_else(|e| panic!("ansible: {e}"));
    let (ours, theirs) = (by_name(ours), by_name(theirs));
    assert_eq!(
        ours,
        theirs,
        "{file}: the built-in reader (left) differs from ansible-inventory (right)\n{}",
        std::fs::read_to_string(&path).unwrap()
    );
    ours
}

fn names(hosts: &[HostEntry]) -> Vec<&str> {
    hosts.iter().map(|h| h.name.as_str()).collect()
}

#[test]
fn ranges_numeric_with_and_without_start_letters_and_steps() {
    let dir = inventory(&[(
        "hosts.ini",
        "[web]\nw[01:03]\nmail[:2]\ndb[a:c]\nn[1:9:4]\nx[1:2]y[a:b]\n",
    )]);
    let hosts = agree(dir.path(), "hosts.ini");
    assert_eq!(
        names(&hosts),
        [
            "dba", "dbb", "dbc", "mail0", "mail1", "mail2", "n1", "n5", "n9", "w01", "w02", "w03",
            "x1ya", "x1yb", "x2ya", "x2yb"
        ]
    );
}

#[test]
fn comments_anywhere() {
    let dir = inventory(&[(
        "hosts.ini",
        "# top\n; also a comment\n[web] # the front\nw1 tier=a # after a host\nw2 note=\"x # y\"\n\
         [all:children]  # a header comment\nweb # a child\n",
    )]);
    let hosts = agree(dir.path(), "hosts.ini");
    assert_eq!(hosts[1].labels["note"], "x # y");
    assert_eq!(hosts[0].labels["tier"], "a");
}

#[test]
fn host_port_and_the_ansible_ssh_names() {
    let dir = inventory(&[(
        "hosts.ini",
        "[web]\nedge:2222\nold ansible_ssh_host=10.0.0.9 ansible_ssh_user=ops ansible_ssh_port=2200\n\
         both ansible_host=10.0.0.1 ansible_ssh_host=10.0.0.2 ansible_port=22 ansible_ssh_port=23\n\
         10.0.0.7:2201\n",
    )]);
    let hosts = agree(dir.path(), "hosts.ini");
    let edge = hosts.iter().find(|h| h.name == "edge").unwrap();
    assert_eq!((edge.address.as_str(), edge.port), ("edge", Some(2222)));
    let old = hosts.iter().find(|h| h.name == "old").unwrap();
    assert_eq!(old.address, "10.0.0.9");
    assert_eq!(old.user.as_deref(), Some("ops"));
    let both = hosts.iter().find(|h| h.name == "both").unwrap();
    assert_eq!((both.address.as_str(), both.port), ("10.0.0.1", Some(22)));
}

#[test]
fn group_and_host_var_directories_next_to_the_file() {
    let dir = inventory(&[
        (
            "hosts.ini",
            "[web]\nw1 from_file=host\nw2\n[web:vars]\nlayer=file\nonly_file=yes\n[all:vars]\nsite=f\n",
        ),
        ("group_vars/web.yml", "layer: dir\nweight: 3\n"),
        ("group_vars/all/01.yaml", "site: dir\nregion: eu\n"),
        ("group_vars/all/02", "region: us\n"),
        ("host_vars/w1.yml", "from_file: host_vars\nrack: r4\n"),
    ]);
    let hosts = agree(dir.path(), "hosts.ini");
    let w1 = &hosts[0].labels;
    assert_eq!(
        w1["layer"], "dir",
        "group_vars/ wins over the file's group vars"
    );
    assert_eq!(
        w1["from_file"], "host_vars",
        "host_vars/ wins over the host line"
    );
    assert_eq!(
        w1["region"], "us",
        "a directory's files merge in name order"
    );
    assert_eq!(w1["site"], "dir");
    assert_eq!(w1["only_file"], "yes");
}

#[test]
fn precedence_between_siblings_and_across_depths() {
    let dir = inventory(&[(
        "hosts.ini",
        "[b]\nh ferry_class=a\n[a]\nh\n[c]\nh\n[a:vars]\nx=from_a\n[b:vars]\nx=from_b\n\
         [c:vars]\ny=from_c\n[parent:children]\nc\n[parent:vars]\ny=from_parent\nz=from_parent\n",
    )]);
    let hosts = agree(dir.path(), "hosts.ini");
    let labels = &hosts[0].labels;
    assert_eq!(labels["x"], "from_b", "siblings combine by name: b after a");
    assert_eq!(labels["y"], "from_c", "the deeper group wins");
    assert_eq!(labels["z"], "from_parent");
}

#[test]
fn vars_values_with_spaces_quotes_and_python_literals() {
    let dir = inventory(&[(
        "hosts.ini",
        "[web]\nw1 flag=True quoted=\"two words\"\n[web:vars]\nmotd = hello there world\n\
         single = 'in quotes'\noff = False\n",
    )]);
    let hosts = agree(dir.path(), "hosts.ini");
    let labels = &hosts[0].labels;
    assert_eq!(labels["motd"], "hello there world");
    assert_eq!(labels["single"], "in quotes");
    assert_eq!(labels["flag"], "true");
}

#[test]
fn yaml_groups_children_numbers_ranges_and_ports() {
    let dir = inventory(&[(
        "hosts.yml",
        "all:\n  vars:\n    env: prod\n  children:\n    web:\n      vars: {tier: front, weight: 3, enabled: true}\n      hosts:\n        web[1:2]:\n        edge:2201:\n          ansible_host: 10.0.0.5\n    db:\n      hosts:\n        db1: {ansible_user: deploy}\n",
    )]);
    let hosts = agree(dir.path(), "hosts.yml");
    assert_eq!(names(&hosts), ["db1", "edge", "web1", "web2"]);
    assert_eq!(hosts[1].port, Some(2201));
    assert_eq!(hosts[2].labels["weight"], "3");
}

#[test]
fn secrets_and_vault_values_are_never_labels() {
    let dir = inventory(&[(
        "hosts.yml",
        "web:\n  hosts:\n    w1:\n      role: app\n      db_password: hunter2\n      api_token: t\n      vaulted: !vault |\n        $ANSIBLE_VAULT;1.1;AES256\n        3132\n",
    )]);
    let hosts = agree(dir.path(), "hosts.yml");
    assert_eq!(hosts[0].labels.keys().collect::<Vec<_>>(), ["role"]);
}

/// Any Ansible dynamic inventory feeds ferry through the exec provider: here
/// a script that prints `ansible-inventory --list` itself. `ferry check`
/// says which reader read an `ansible(…)` inventory.
#[test]
fn an_exec_inventory_printing_ansible_json_reads_as_the_ansible_provider() {
    let program = ansible_inventory();
    let dir = inventory(&[
        (
            "hosts.ini",
            "[web]\nw1 ansible_host=10.0.0.5 tier=a\n[db]\nd1:2222 ansible_user=deploy\n",
        ),
        ("group_vars/db.yml", "backup: nightly\n"),
        (
            "list.sh",
            &format!("exec {} -i hosts.ini --list\n", program.display()),
        ),
    ]);
    let eval = |inventory: &str| -> serde_json::Value {
        std::fs::write(
            dir.path().join("site.conf"),
            format!("site = \"inv\"\nclass web {{ }}\nclass db {{ }}\ninventory = {inventory}\n"),
        )
        .unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_ferry"))
            .args(["eval", "--json", dir.path().to_str().unwrap()])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let site: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        site["inventory"]["hosts"].clone()
    };
    let through_exec = eval(r#"exec(["sh", "list.sh"])"#);
    let through_ansible = eval(r#"ansible("hosts.ini")"#);
    assert_eq!(through_exec, through_ansible);
    assert_eq!(
        through_exec[1]["labels"]["backup"], "nightly",
        "{through_exec}"
    );
    assert_eq!(through_exec[1]["port"], 2222);

    let check = Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(["check", dir.path().to_str().unwrap()])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&check.stdout);
    assert!(
        text.contains(&format!("hosts.ini: read by {}", program.display())),
        "{text}"
    );
    let builtin = Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(["check", dir.path().to_str().unwrap()])
        .env("FERRY_ANSIBLE_READER", "builtin")
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&builtin.stdout).contains("read by ferry's built-in reader"),
        "{}",
        String::from_utf8_lossy(&builtin.stdout)
    );
}

/// YAML 1.1 (Ansible's) reads a plain `yes`, `on`, `0644` or `1:30` as a
/// boolean or a number, where YAML 1.2 reads text or a decimal: the
/// built-in reader reads them as Ansible does, and quoted ones as text.
#[test]
fn yaml_1_1_scalars_read_as_ansible_reads_them() {
    let dir = inventory(&[(
        "hosts.yml",
        "web:\n  vars:\n    mode: 0644\n    quoted_mode: \"0644\"\n  hosts:\n    w1:\n      enabled: yes\n      quoted: 'yes'\n      on: x\n      at: 1:30\n      big: 1_000\n      hex: 0x1F\n      ratio: 1.5\n      nothing: ~\n",
    )]);
    let hosts = agree(dir.path(), "hosts.yml");
    let labels = &hosts[0].labels;
    assert_eq!(labels["mode"], "420");
    assert_eq!(labels["quoted_mode"], "0644");
    assert_eq!(labels["enabled"], "true");
    assert_eq!(labels["quoted"], "yes");
    assert_eq!(labels["true"], "x", "a plain `on` key is the boolean true");
    assert_eq!(labels["at"], "90");
    assert_eq!(labels["big"], "1000");
    assert_eq!(labels["hex"], "31");
    assert_eq!(labels["ratio"], "1.5");
    assert_eq!(labels["nothing"], "");
}

/// Connection settings go to the transport: `ansible_connection=local` is
/// the deployer itself (ferry's local transport), a key file is the SSH
/// identity, and a connection ferry cannot use is refused by name.
#[test]
fn connection_settings_go_to_the_transport_not_to_labels() {
    let home = std::env::var("HOME").unwrap();
    let dir = inventory(&[(
        "hosts.ini",
        "[web]\nself ansible_connection=local ansible_host=10.0.0.1 ansible_user=x\n\
         keyed ansible_host=10.0.0.2 ansible_ssh_private_key_file=~/.ssh/fleet\n\
         newer ansible_host=10.0.0.3 ansible_private_key_file=/etc/ferry/key ansible_ssh_private_key_file=/old\n",
    )]);
    let hosts = agree(dir.path(), "hosts.ini");
    let keyed = hosts.iter().find(|h| h.name == "keyed").unwrap();
    assert_eq!(
        keyed.identity_file.as_deref(),
        Some(Path::new(&format!("{home}/.ssh/fleet")))
    );
    let newer = hosts.iter().find(|h| h.name == "newer").unwrap();
    assert_eq!(
        newer.identity_file.as_deref(),
        Some(Path::new("/etc/ferry/key"))
    );
    let local = hosts.iter().find(|h| h.name == "self").unwrap();
    assert_eq!(
        (local.address.as_str(), local.user.as_deref(), local.port),
        ("localhost", None, None)
    );
    assert!(hosts.iter().all(|h| h.labels.is_empty()), "{hosts:?}");

    let dir = inventory(&[("hosts.ini", "[web]\nwin ansible_connection=winrm\n")]);
    let err = resolve_builtin(&dir.path().join("hosts.ini"))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("has ansible_connection `winrm`: ferry reaches hosts over SSH"),
        "{err}"
    );
}
