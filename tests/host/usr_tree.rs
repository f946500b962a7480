//! Services, hooks and command health checks over a class's package tree:
//! a tree unpacked from real Debian packages (dash, busybox, libc6) is
//! their `/usr`, the host's own `/usr` (with its python3) is out of sight,
//! and the deployer's namespace is untouched. Needs root (mount namespaces).
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::activate_support::*;
use ferry::activate::backend::{systemd, ServiceDefinition, SystemdBackend};
use ferry::activate::engine::{ActivationError, Outcome};
use ferry::activate::manifest::{RestartMode, RestartPolicy};
use ferry::build::elf_check::{check_tree, Unresolved};
use ferry::build::package_tree::{build_package_tree, PackageTree};
use ferry_store::{Store, StorePath};

fn run(command: &mut Command) {
    let out = command.output().expect("command runs");
    assert!(
        out.status.success(),
        "{command:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The current Debian packages `names` (fetched through this machine's apt
/// configuration), each unpacked into a store object of its own.
fn package_objects(store: &Store, dir: &Path, names: &[&str]) -> Vec<StorePath> {
    let debs = dir.join("debs");
    fs::create_dir_all(&debs).unwrap();
    run(Command::new("apt-get")
        .args(["download", "-q"])
        .args(names)
        .current_dir(&debs));
    let mut debs: Vec<PathBuf> = fs::read_dir(&debs)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    debs.sort();
    let mut packages = Vec::new();
    for deb in debs {
        let name = deb.file_name().unwrap().to_string_lossy().into_owned();
        let name = name.split('_').next().unwrap().to_string();
        let root = dir.join(&name);
        run(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&root));
        packages.push(store.add_path(&root, &name, &[]).unwrap());
    }
    packages
}

/// `dash`, `busybox`, `libc6` and libc6's dependency `libgcc-s1`, merged
/// into a class's package tree by `build::package_tree`.
fn package_tree(host: &Host) -> (PathBuf, PackageTree) {
    let store = Store::open(&host.store, &host.root.path().join("deployer-var")).unwrap();
    let dir = host.root.path().join("packages");
    let mut packages = package_objects(&store, &dir, &["dash", "busybox", "libc6", "libgcc-s1"]);
    let tree = build_package_tree(&store, "test", &packages).unwrap();
    let mut closure = store.closure(std::slice::from_ref(&tree.path)).unwrap();
    closure.retain(|p| p != &tree.path);
    closure.sort();
    packages.sort();
    assert_eq!(
        closure, packages,
        "the tree references exactly its packages"
    );
    let usr = store.real_path(&tree.path);
    assert!(usr.join("bin/sh").exists(), "dash ships /bin/sh");
    (usr, tree)
}

#[test]
fn every_elf_file_of_a_real_package_tree_resolves_inside_it() {
    let host = Host::new();
    let (tree, _) = package_tree(&host);
    let report = check_tree(&tree).unwrap();
    // dash, busybox, the loader, libc and libc6's other programs and modules.
    assert!(report.checked >= 10, "{report:?}");
    assert_eq!(report.unresolved, vec![]);
}

#[test]
fn a_tree_without_libc_names_what_busybox_cannot_find() {
    let host = Host::new();
    let store = Store::open(&host.store, &host.root.path().join("deployer-var")).unwrap();
    let packages = package_objects(&store, &host.root.path().join("packages"), &["busybox"]);
    let tree = build_package_tree(&store, "no-libc", &packages).unwrap();
    let report = check_tree(&store.real_path(&tree.path)).unwrap();
    let missing = |what: &str| Unresolved {
        file: "/usr/bin/busybox".into(),
        missing: what.into(),
    };
    assert_eq!(report.checked, 1);
    assert_eq!(
        report.unresolved,
        vec![
            missing("interpreter /lib64/ld-linux-x86-64.so.2"),
            missing("library libc.so.6"),
            missing("library libresolv.so.2"),
        ]
    );
}

/// A store object with `bin/uses-png`: a program linked against libpng,
/// whose libz it reaches only through libpng.
fn program_using_libpng(store: &Store, dir: &Path, libpng: &Path) -> StorePath {
    let out = dir.join("uses-png");
    fs::create_dir_all(out.join("bin")).unwrap();
    let source = dir.join("uses-png.c");
    fs::write(
        &source,
        "extern unsigned long png_access_version_number(void);\n\
         int main(void) { return png_access_version_number() == 0; }\n",
    )
    .unwrap();
    run(Command::new("cc")
        .arg(&source)
        .arg("-o")
        .arg(out.join("bin/uses-png"))
        .arg("-L")
        .arg(libpng.join("usr/lib/x86_64-linux-gnu"))
        .args(["-l:libpng16.so.16", "-Wl,--allow-shlib-undefined"]));
    store.add_path(&out, "uses-png", &[]).unwrap()
}

#[test]
fn a_plugin_no_program_loads_does_not_make_the_tree_unrunnable_but_a_library_a_program_loads_does()
{
    let host = Host::new();
    let store = Store::open(&host.store, &host.root.path().join("deployer-var")).unwrap();
    let dir = host.root.path().join("packages");
    // libpng needs libz, and zlib1g is not in the tree: as tc's q_atm.so
    // needs the libatm1 that iproute2 only recommends.
    let mut packages = package_objects(
        &store,
        &dir,
        &["dash", "busybox", "libc6", "libgcc-s1", "libpng16-16"],
    );
    let tree = build_package_tree(&store, "plugin", &packages).unwrap();
    let report = check_tree(&store.real_path(&tree.path)).unwrap();
    assert_eq!(report.unresolved, vec![], "no program loads libpng");
    let libpng_misses: Vec<_> = report
        .unloadable
        .iter()
        .map(|u| (u.file.as_str(), u.missing.as_str()))
        .collect();
    assert!(
        matches!(&libpng_misses[..], [(file, "library libz.so.1")]
            if file.starts_with("/usr/lib/x86_64-linux-gnu/libpng16.so")),
        "{libpng_misses:?}"
    );

    // A program that loads libpng: libz is now needed to run it.
    packages.push(program_using_libpng(&store, &dir, &dir.join("libpng16-16")));
    let tree = build_package_tree(&store, "program", &packages).unwrap();
    let report = check_tree(&store.real_path(&tree.path)).unwrap();
    assert_eq!(report.unloadable, vec![]);
    assert_eq!(report.unresolved.len(), 1, "{report:?}");
    assert!(
        report.unresolved[0]
            .file
            .starts_with("/usr/lib/x86_64-linux-gnu/libpng16.so")
            && report.unresolved[0].missing == "library libz.so.1",
        "{report:?}"
    );
}

#[test]
fn services_hooks_and_health_checks_run_over_the_class_package_tree_needs_root() {
    assert!(nix::unistd::geteuid().is_root(), "needs root (CI is root)");
    let host = Host::new();
    let (tree, built) = package_tree(&host);
    // The tree is links only: the packages stay in their own objects, and
    // the tree references exactly them.
    assert!(built.replaced.is_empty(), "{:?}", built.replaced);
    assert!(built.left_out.contains_key("etc"), "{:?}", built.left_out);
    assert!(fs::symlink_metadata(tree.join("bin/dash"))
        .unwrap()
        .is_symlink());
    let mut service = service(
        r#"[ ! -e /usr/bin/python3 ] && [ -e /usr/share/doc/dash/copyright ] && echo tree > "$STATE_DIRECTORY/seen"
           if [ -e /usr/bin/python3 ]; then echo visible > "$STATE_DIRECTORY/python"; fi
           /usr/bin/busybox id -u > "$STATE_DIRECTORY/uid"
           exec /usr/bin/busybox sleep 100000"#,
    );
    service.user = Some("nobody".into());
    service.hooks.post_upgrade =
        vec![r#"[ ! -e /usr/bin/python3 ] && echo tree > "$STATE_DIRECTORY/hook""#.into()];
    service.health = vec![command_check(
        r#"[ -e /usr/share/doc/busybox/copyright ] && [ ! -e /usr/bin/python3 ]"#,
        100,
    )];
    let mut manifest = manifest(vec![("app", service)]);
    manifest.usr = Some(tree.display().to_string());
    let system = host.system("tree", &manifest, &[]);

    let report = host.activator().activate(&system).unwrap();
    assert!(
        matches!(report.outcome, Outcome::Activated { .. }),
        "{report:?}"
    );
    let state = host.state.join("lib/app");
    let read = |name: &str| fs::read_to_string(state.join(name)).unwrap_or_default();
    assert_eq!(read("seen").trim(), "tree");
    assert_eq!(read("hook").trim(), "tree");
    assert!(!state.join("python").exists(), "the host's /usr leaked in");
    let nobody = nix::unistd::User::from_name("nobody").unwrap().unwrap();
    assert_eq!(read("uid").trim(), nobody.uid.to_string());
    // The running process is the tree's busybox, not the host's.
    let pid = host.pid_of("app").expect("app runs");
    let exe = fs::metadata(format!("/proc/{pid}/exe")).unwrap();
    // (metadata follows the tree's link into busybox's own object)
    let tree_busybox = fs::metadata(tree.join("bin/busybox")).unwrap();
    assert_eq!(
        (exe.dev(), exe.ino()),
        (tree_busybox.dev(), tree_busybox.ino())
    );
    // The deployer's own namespace still has its /usr.
    assert!(Path::new(PYTHON).exists());
    let mountinfo = fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!mountinfo.contains(built.path.name()), "{mountinfo}");
}

#[test]
fn a_system_whose_package_tree_is_missing_is_refused_before_anything_changes() {
    let host = Host::new();
    let mut manifest = manifest(vec![("app", sleeper("1"))]);
    manifest.usr = Some(host.root.path().join("no-such-tree").display().to_string());
    let system = host.system("missing-tree", &manifest, &[]);
    let err = host.activator().activate(&system).unwrap_err();
    assert!(matches!(err, ActivationError::UsrTree(_)), "{err:?}");
    assert!(err.to_string().contains("is not a directory"), "{err}");
    assert!(!host.state.join("profiles/system").exists());
}

#[test]
fn systemd_units_mount_the_package_tree_read_only_on_usr() {
    let dir = tempfile::tempdir().unwrap();
    let units = dir.path().join("units");
    let backend = SystemdBackend::new(&units);
    let working_dir = dir.path().join("lib/app");
    fs::create_dir_all(&working_dir).unwrap();
    let def = ServiceDefinition {
        name: "app".into(),
        exec: "exec /usr/bin/busybox sleep 100".into(),
        env: Default::default(),
        user: None,
        working_dir,
        oneshot: false,
        restart: RestartPolicy {
            mode: RestartMode::OnFailure,
            ..RestartPolicy::default()
        },
        usr: Some(PathBuf::from(
            "/ferry/store/0000000000000000000000000000000-usr-web",
        )),
    };
    let path = backend.write_unit(&def).unwrap();
    assert_eq!(
        path.file_name().unwrap(),
        systemd::unit_name("app").as_str()
    );
    let text = fs::read_to_string(&path).unwrap();
    assert!(
        text.contains(
            "BindReadOnlyPaths=/ferry/store/0000000000000000000000000000000-usr-web:/usr\n"
        ),
        "{text}"
    );
    let output = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .env("SYSTEMD_LOG_LEVEL", "notice")
        .output()
        .expect("systemd-analyze (Debian package systemd) is installed");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}
