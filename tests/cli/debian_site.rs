//! Sites with `debian(…)` packages through the CLI: `ferry lock` against this
//! machine's apt sources, builds that refuse a missing or stale lock, bad
//! names, and an offline build from a store that holds the packages.
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Shared with the other CLI tests: downloaded `.deb`s, verified on every use.
const DEB_CACHE: &str = "/var/cache/ferry-test/debian";

struct Deployer {
    dir: tempfile::TempDir,
}

impl Deployer {
    fn new() -> Deployer {
        Deployer {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn site(&self, text: &str) -> PathBuf {
        let path = self.dir.path().join("site.conf");
        std::fs::write(&path, text).unwrap();
        path
    }

    fn ferry_with(&self, args: &[&str], apt_root: &Path, cache: &Path) -> Output {
        Command::new(env!("CARGO_BIN_EXE_ferry"))
            .args(args)
            .env("FERRY_STORE_DIR", self.dir.path().join("store"))
            .env("FERRY_STATE_DIR", self.dir.path().join("var"))
            .env("FERRY_DEB_CACHE", cache)
            .env("FERRY_APT_ROOT", apt_root)
            .output()
            .unwrap()
    }

    fn ferry(&self, args: &[&str]) -> Output {
        self.ferry_with(args, Path::new("/"), Path::new(DEB_CACHE))
    }
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn site_text(packages: &str) -> String {
    format!(
        r#"
site = "deb"
package tools = debian([{packages}])
class app {{
  service hello {{
    oneshot = true
    exec = "${{tools}}/bin/busybox true"
  }}
}}
inventory = lab {{
  subnet = "10.237.99.0/24"
  hosts = [ {{ name = "a1", class = app }} ]
}}
"#
    )
}

#[test]
fn a_site_without_its_lock_is_refused_with_the_command_to_run() {
    let d = Deployer::new();
    let site = d.site(&site_text(r#""dash", "busybox""#));
    let out = d.ferry(&["build", site.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("has no lock file"), "{err}");
    assert!(
        err.contains(&format!("ferry lock {}", site.display())),
        "{err}"
    );
}

#[test]
fn a_stale_lock_is_refused_and_ferry_lock_keeps_what_still_fits() {
    let d = Deployer::new();
    let site = d.site(&site_text(r#""dash", "busybox""#));
    let locked = d.ferry(&["lock", site.to_str().unwrap()]);
    assert!(locked.status.success(), "{}", stderr(&locked));
    let first = std::fs::read_to_string(site.with_extension("lock")).unwrap();
    assert!(first.contains("name = \"busybox\""), "{first}");

    d.site(&site_text(r#""dash", "busybox", "netbase""#));
    let out = d.ferry(&["plan", site.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("is stale"), "{}", stderr(&out));
    assert!(stderr(&out).contains("netbase"), "{}", stderr(&out));

    let again = d.ferry(&["lock", site.to_str().unwrap()]);
    assert!(again.status.success(), "{}", stderr(&again));
    let text = String::from_utf8_lossy(&again.stdout);
    assert!(text.contains("+ netbase "), "{text}");
    let second = std::fs::read_to_string(site.with_extension("lock")).unwrap();
    assert!(second.contains("name = \"netbase\""), "{second}");
}

#[test]
fn an_unknown_debian_package_names_close_ones() {
    let d = Deployer::new();
    let site = d.site(&site_text(r#""dash", "busybx""#));
    let out = d.ferry(&["lock", site.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("unknown package \"busybx\""),
        "{}",
        stderr(&out)
    );
    assert!(stderr(&out).contains("busybox"), "{}", stderr(&out));
}

#[test]
fn a_malformed_debian_name_points_at_its_line_and_column() {
    let d = Deployer::new();
    let site = d.site(&site_text(r#""dash", "Busy Box""#));
    let out = d.ferry(&["check", site.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("\"Busy Box\" is not a Debian package"),
        "{err}"
    );
    assert!(err.contains("site.conf:3:33"), "{err}");
}

#[test]
fn a_locked_site_builds_offline_from_a_store_that_holds_its_packages() {
    let d = Deployer::new();
    let site = d.site(&site_text(r#""dash", "busybox""#));
    let locked = d.ferry(&["lock", site.to_str().unwrap()]);
    assert!(locked.status.success(), "{}", stderr(&locked));
    let first = d.ferry(&["build", site.to_str().unwrap()]);
    assert!(first.status.success(), "{}", stderr(&first));

    // No apt sources and an empty download cache: nothing can be fetched.
    let nowhere = d.dir.path().join("no-apt");
    let empty_cache = d.dir.path().join("empty-cache");
    std::fs::create_dir_all(&nowhere).unwrap();
    // A changed service, so the build really runs (no site cache hit).
    d.site(&site_text(r#""dash", "busybox""#).replace("busybox true", "busybox echo"));
    let offline = d.ferry_with(&["build", site.to_str().unwrap()], &nowhere, &empty_cache);
    assert!(offline.status.success(), "{}", stderr(&offline));
    assert!(!empty_cache.exists() || std::fs::read_dir(&empty_cache).unwrap().count() == 0);

    // The same lock with an empty store and no sources cannot fetch, and says so.
    let fresh = Deployer::new();
    std::fs::copy(&site, fresh.dir.path().join("site.conf")).unwrap();
    std::fs::copy(
        site.with_extension("lock"),
        fresh.dir.path().join("site.lock"),
    )
    .unwrap();
    let out = fresh.ferry_with(
        &[
            "build",
            fresh.dir.path().join("site.conf").to_str().unwrap(),
        ],
        &nowhere,
        &empty_cache,
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("missing packages") || stderr(&out).contains("no apt source serves"),
        "{}",
        stderr(&out)
    );
}

/// The lock of `site` with `name` taken out, and every dependency on it dropped:
/// a closure that claims to be whole but lacks what its binaries load.
fn lock_without(site: &Path, name: &str) {
    let path = site.with_extension("lock");
    let mut lock: toml::Value = std::fs::read_to_string(&path).unwrap().parse().unwrap();
    let packages = lock["package"].as_array_mut().unwrap();
    let before = packages.len();
    packages.retain(|p| p["name"].as_str() != Some(name));
    assert_eq!(packages.len(), before - 1, "{name} was not locked");
    for p in packages.iter_mut() {
        if let Some(depends) = p.get_mut("depends").and_then(|d| d.as_array_mut()) {
            depends.retain(|d| d.as_str() != Some(name));
        }
    }
    std::fs::write(&path, toml::to_string(&lock).unwrap()).unwrap();
}

#[test]
fn a_class_whose_binaries_need_what_its_closure_lacks_is_refused() {
    let d = Deployer::new();
    let site = d.site(&site_text(r#""dash", "busybox""#));
    let locked = d.ferry(&["lock", site.to_str().unwrap()]);
    assert!(locked.status.success(), "{}", stderr(&locked));
    lock_without(&site, "libc6");

    let out = d.ferry(&["build", site.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    // The renderer wraps long lines; compare the words, not the layout.
    let err: String = stderr(&out)
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '│')
        .collect();
    for expected in [
        "class`app`isnotself-contained",
        "/usr/bin/dashneedsinterpreter/lib64/ld-linux-x86-64.so.2",
        "needslibrarylibc.so.6",
        "apt-filesearch",
    ] {
        assert!(err.contains(expected), "{expected}: {}", stderr(&out));
    }
}
