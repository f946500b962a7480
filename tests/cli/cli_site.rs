//! `ferry check` and `ferry eval` as a user sees them (insta snapshots).
use std::path::Path;
use std::process::{Command, Output};

fn ferry(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ferry"))
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .args(args)
        .output()
        .unwrap()
}

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn check_demo_prints_a_one_line_summary() {
    let out = ferry(repo(), &["check", "sites/demo"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    insta::assert_snapshot!(text(&out.stdout));
}

#[test]
fn eval_demo_lists_classes_hosts_services_and_policy() {
    let out = ferry(repo(), &["eval", "sites/demo/site.conf"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    insta::assert_snapshot!(text(&out.stdout));
}

#[test]
fn eval_json_is_the_versioned_model() {
    let out = ferry(repo(), &["eval", "--json", "sites/demo"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let site: ferry_lang::Site = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(site.version, ferry_lang::model::MODEL_VERSION);
    assert_eq!(site.classes["web"].hosts.len(), 3);
    assert_eq!(site.classes["db"].hosts.len(), 1);
    let app = &site.classes["web"].services["app"];
    assert_eq!(
        app.requires,
        vec![ferry_lang::model::ServiceRef {
            class: "db".into(),
            service: "postgres".into()
        }]
    );
    // The db host's address is a literal in the web class's command line.
    let db_address = &site.classes["db"].hosts[0].address;
    assert!(app
        .exec
        .display()
        .contains(&format!("--db {db_address}:5432")));
    // Paths that leave the language are absolute.
    assert!(
        site.packages[&ferry_lang::model::PackageId("webapp".into())]
            .src
            .as_ref()
            .unwrap()
            .is_absolute()
    );
}

#[test]
fn check_reports_every_error_and_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("site.conf"),
        "class web {\n  service app { exec = \"run\", requirs = [db.pg] }\n}\nclass db {\n  service pg { exec = \"pg\", requires = [web.app] }\n}\nrollout { batch = 120% }\n",
    )
    .unwrap();
    let out = ferry(dir.path(), &["check", "site.conf"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    insta::assert_snapshot!(text(&out.stderr));
}

#[test]
fn check_a_missing_site_file_is_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let out = ferry(dir.path(), &["check", "nowhere.conf"]);
    assert_eq!(out.status.code(), Some(2));
    insta::assert_snapshot!(text(&out.stderr));
}

#[test]
fn file_inventory_errors_name_file_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("site.conf"),
        "class web {\n  service app { exec = \"run\" }\n}\ninventory = file(\"hosts.toml\")\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("hosts.toml"),
        "[[host]]\nname = \"web1\"\nclass = web\n",
    )
    .unwrap();
    let out = ferry(dir.path(), &["check", "site.conf"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr).replace(&dir.path().display().to_string(), "$DIR");
    insta::assert_snapshot!(stderr);
}

#[test]
fn file_inventory_host_of_unknown_class_names_the_known_classes() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("site.conf"),
        "class web {\n  service app { exec = \"run\" }\n}\nclass db {\n  service pg { exec = \"pg\" }\n}\ninventory = file(\"hosts.toml\")\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("hosts.toml"),
        "[[host]]\nname = \"cache1\"\nclass = \"cache\"\naddress = \"192.0.2.5\"\n",
    )
    .unwrap();
    let out = ferry(dir.path(), &["check", "site.conf"]);
    assert_eq!(out.status.code(), Some(2));
    insta::assert_snapshot!(text(&out.stderr));
}
