//! The exec and Ansible inventory providers through `ferry check`/`ferry eval` (real processes, real files).
use std::process::Command;

fn ferry(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(args)
        .output()
        .unwrap()
}

fn site(dir: &std::path::Path, inventory: &str) {
    std::fs::write(
        dir.join("site.conf"),
        format!("site = \"inv\"\nclass web {{ }}\nclass db {{ }}\ninventory = {inventory}\n"),
    )
    .unwrap();
}

#[test]
fn exec_inventory_runs_in_the_site_dir_and_feeds_the_evaluator() {
    let dir = tempfile::tempdir().unwrap();
    site(dir.path(), r#"exec(["sh", "hosts.sh"])"#);
    std::fs::write(
        dir.path().join("hosts.sh"),
        r#"echo '{"hosts": [{"name": "w1", "class": "web", "address": "10.0.0.5", "labels": {"datacenter": "eu1"}},
                           {"name": "d1", "class": "db", "address": "db1.internal", "user": "deploy", "port": 2222}]}'"#,
    )
    .unwrap();
    let out = ferry(&["eval", "--json", dir.path().to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let site: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let hosts = &site["inventory"]["hosts"];
    assert_eq!(hosts[0]["labels"]["datacenter"], "eu1");
    assert_eq!(hosts[1]["address"], "db1.internal");
    assert_eq!(hosts[1]["user"], "deploy");
    assert_eq!(hosts[1]["port"], 2222);
}

#[test]
fn a_failing_exec_inventory_is_bad_input_with_its_stderr() {
    let dir = tempfile::tempdir().unwrap();
    site(
        dir.path(),
        r#"exec(["sh", "-c", "echo 'CMDB unreachable' >&2; exit 4"])"#,
    );
    let out = ferry(&["check", dir.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("exit status: 4"), "{stderr}");
    assert!(stderr.contains("CMDB unreachable"), "{stderr}");
}

#[test]
fn ansible_inventory_groups_become_classes() {
    let dir = tempfile::tempdir().unwrap();
    site(dir.path(), r#"ansible("hosts.ini")"#);
    std::fs::write(
        dir.path().join("hosts.ini"),
        "[web]\nw1 ansible_host=10.0.0.5 datacenter=eu1\n[db]\nd1 ansible_host=10.0.0.6 ansible_user=deploy\n",
    )
    .unwrap();
    let out = ferry(&["eval", "--json", dir.path().to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let site: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let hosts = &site["inventory"]["hosts"];
    assert_eq!(hosts[0]["class"], "web");
    assert_eq!(hosts[0]["labels"]["datacenter"], "eu1");
    assert_eq!(hosts[1]["class"], "db");
    assert_eq!(hosts[1]["user"], "deploy");
}

#[test]
fn an_ambiguous_ansible_host_gets_a_hint() {
    let dir = tempfile::tempdir().unwrap();
    site(dir.path(), r#"ansible("hosts.ini")"#);
    std::fs::write(dir.path().join("hosts.ini"), "[web]\nw1\n[db]\nw1\n").unwrap();
    let out = ferry(&["check", dir.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr).replace('│', " ");
    let flat = stderr.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(
        flat.contains("is in groups `web`, `db`, so its class is ambiguous"),
        "{flat}"
    );
    assert!(flat.contains("ferry_class=<class>"), "{flat}");
}

/// `ferry check` of a site whose `hosts.ini` is `ini`, read by the built-in
/// reader: it must be refused (exit 2); its report, on one line.
fn refused_by_the_built_in_reader(ini: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    site(dir.path(), r#"ansible("hosts.ini")"#);
    std::fs::write(dir.path().join("hosts.ini"), ini).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(["check", dir.path().to_str().unwrap()])
        .env("FERRY_ANSIBLE_READER", "builtin")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr).replace('│', " ");
    stderr.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// A group named `tomcat-servers` was taken as a class name the language
/// cannot spell; it is refused now, with how to name the class instead.
#[test]
fn a_group_name_the_language_cannot_spell_is_refused_with_a_hint() {
    let flat = refused_by_the_built_in_reader("[tomcat-servers]\nt1\n");
    assert!(
        flat.contains("has class `tomcat-servers`, which is not a class name"),
        "{flat}"
    );
    assert!(flat.contains("no `-`"), "{flat}");
    assert!(flat.contains("ferry_class=<class>"), "{flat}");
}

/// What the built-in reader refuses says where (file:line:col) and that
/// Ansible itself would read the file where it is installed.
#[test]
fn a_line_the_built_in_ansible_reader_refuses_names_its_place_and_the_way_out() {
    let flat = refused_by_the_built_in_reader("[web]\n  w1 broken\n");
    assert!(
        flat.contains("hosts.ini:2:3: expected `key=value`, found `broken`"),
        "{flat}"
    );
    assert!(flat.contains("Ansible itself reads the file"), "{flat}");
}
