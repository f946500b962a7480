//! Tests of reading apt's configuration from a made-up root.

use super::*;

fn write(root: &Path, rel: &str, text: &str) {
    let p = root.join(rel);
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    fs::write(p, text).unwrap();
}

#[test]
fn reads_one_line_and_deb822_sources_with_keys() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write(root, "usr/share/keyrings/debian-archive-keyring.gpg", "k");
    write(root, "etc/apt/trusted.gpg.d/extra.gpg", "k");
    write(root, "etc/apt/trusted.gpg.d/ignored.asc", "k");
    write(
        root,
        "etc/apt/sources.list",
        "# comment\ndeb http://repo.invalid/debian/ stable main contrib # tail\n\
         deb-src http://repo.invalid/debian stable main\n\
         deb [arch=amd64 signed-by=/etc/k.gpg] http://other.invalid/x nodistro main\n",
    );
    write(
        root,
        "etc/apt/sources.list.d/a.sources",
        "Types: deb deb-src\nURIs: http://a.invalid/d\nSuites: s1 s1-updates\nComponents: main\n\
         Signed-By: /usr/share/keyrings/a.gpg\n\n# off\nTypes: deb\nURIs: http://off.invalid\n\
         Suites: s\nComponents: main\nEnabled: no\n\nTypes: deb-src\nURIs: http://src.invalid\nSuites: s\n",
    );
    write(
        root,
        "etc/apt/sources.list.d/b.list.disabled",
        "deb http://never.invalid s main\n",
    );
    let cfg = AptConfig::read(root).unwrap();
    let summary: Vec<String> = cfg
        .sources
        .iter()
        .map(|s| {
            let keys: Vec<String> = s
                .signed_by
                .iter()
                .map(|k| k.strip_prefix(root).unwrap().display().to_string())
                .collect();
            format!(
                "{} {} {:?} {:?} {:?}",
                s.uri, s.suite, s.components, s.architectures, keys
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            r#"http://repo.invalid/debian stable ["main", "contrib"] [] ["usr/share/keyrings/debian-archive-keyring.gpg", "etc/apt/trusted.gpg.d/extra.gpg"]"#,
            r#"http://other.invalid/x nodistro ["main"] ["amd64"] ["etc/k.gpg"]"#,
            r#"http://a.invalid/d s1 ["main"] [] ["usr/share/keyrings/a.gpg"]"#,
            r#"http://a.invalid/d s1-updates ["main"] [] ["usr/share/keyrings/a.gpg"]"#,
        ]
    );
    assert!(cfg.check_valid_until);
    let s = &cfg.sources[0];
    assert_eq!(
        s.dists_url("InRelease"),
        "http://repo.invalid/debian/dists/stable/InRelease"
    );
    assert_eq!(
        s.pool_url("pool/main/a/a.deb"),
        "http://repo.invalid/debian/pool/main/a/a.deb"
    );
}

#[test]
fn check_valid_until_follows_the_last_setting() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write(
        root,
        "etc/apt/apt.conf",
        "Acquire::Check-Valid-Until \"true\";\n",
    );
    write(
        root,
        "etc/apt/apt.conf.d/50off",
        "// why\nAcquire { check-valid-until \"false\"; };\n",
    );
    write(
        root,
        "etc/apt/apt.conf.d/60ignored.bak",
        "Acquire::Check-Valid-Until \"true\";\n",
    );
    assert!(!AptConfig::read(root).unwrap().check_valid_until);
}

#[test]
fn apt_conf_forms_and_comments() {
    let key = "Acquire::Check-Valid-Until";
    assert_eq!(
        conf_bool("Acquire::Check-Valid-Until \"false\";", key),
        Some(false)
    );
    assert_eq!(
        conf_bool("/* Acquire::Check-Valid-Until \"false\"; */", key),
        None
    );
    assert_eq!(
        conf_bool("# Acquire::Check-Valid-Until \"false\";\n", key),
        None
    );
    assert_eq!(
        conf_bool(
            "Acquire { Other \"1\"; http { x \"y\"; }; Check-Valid-Until no; };",
            key
        ),
        Some(false)
    );
    assert_eq!(conf_bool("APT::Check-Valid-Until \"false\";", key), None);
}

#[test]
fn malformed_lines_say_where() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write(root, "etc/apt/sources.list", "\ndeb http://x.invalid\n");
    let err = AptConfig::read(root).unwrap_err().to_string();
    assert!(
        err.ends_with("sources.list:2: expected `deb URI suite component…`"),
        "{err}"
    );
    write(root, "etc/apt/sources.list", "");
    write(
        root,
        "etc/apt/sources.list.d/x.sources",
        "Types: deb\nSuites: s\n",
    );
    let err = AptConfig::read(root).unwrap_err().to_string();
    assert!(
        err.ends_with("x.sources: paragraph at line 1 has no URIs field"),
        "{err}"
    );
}
