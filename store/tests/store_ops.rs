//! Store operations end to end on real directories: add, query, closure, realisations, roots, GC, verify.
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use ferry_store::{GcOptions, RecipeId, Store, StoreError, StorePath};

fn open(root: &Path) -> Store {
    Store::open(&root.join("store"), &root.join("var")).unwrap()
}

/// `dep`, and `app` referencing it.
fn dep_and_app(store: &Store) -> (StorePath, StorePath) {
    let dep = store.add_bytes("dep", b"dep", false, &[]).unwrap();
    let app = store
        .add_bytes(
            "app",
            dep.as_str().as_bytes(),
            false,
            std::slice::from_ref(&dep),
        )
        .unwrap();
    (dep, app)
}

fn write_tree(dir: &Path) {
    std::fs::create_dir_all(dir.join("bin")).unwrap();
    std::fs::create_dir_all(dir.join("empty")).unwrap();
    std::fs::write(dir.join("bin/tool"), b"#!/bin/sh\necho hi\n").unwrap();
    std::fs::set_permissions(
        dir.join("bin/tool"),
        std::fs::Permissions::from_mode(0o4755),
    )
    .unwrap();
    std::fs::write(dir.join("README"), b"hello").unwrap();
    std::os::unix::fs::symlink("bin/tool", dir.join("link")).unwrap();
}

#[test]
fn added_tree_is_normalized_and_valid() {
    let root = tempfile::tempdir().unwrap();
    let store = open(root.path());
    let source = root.path().join("src");
    write_tree(&source);
    let path = store.add_path(&source, "tool-1.0", &[]).unwrap();
    assert!(store.is_valid(&path));
    assert_eq!(path.name(), "tool-1.0");
    let real = store.real_path(&path);
    let tool = std::fs::metadata(real.join("bin/tool")).unwrap();
    assert_eq!(
        tool.permissions().mode() & 0o7777,
        0o555,
        "setuid dropped, executable kept"
    );
    assert_eq!(
        std::fs::metadata(real.join("README"))
            .unwrap()
            .permissions()
            .mode()
            & 0o7777,
        0o444
    );
    assert_eq!(
        std::fs::metadata(&real).unwrap().permissions().mode() & 0o7777,
        0o555
    );
    use std::os::unix::fs::MetadataExt;
    assert_eq!(tool.mtime(), 1);
    assert_eq!(
        std::fs::read_link(real.join("link")).unwrap(),
        Path::new("bin/tool")
    );
    assert!(real.join("empty").is_dir());
    // Adding the same tree again gives the same path and changes nothing.
    let info = store.path_info(&path).unwrap();
    assert_eq!(store.add_path(&source, "tool-1.0", &[]).unwrap(), path);
    assert_eq!(store.path_info(&path).unwrap(), info);
    assert!(store.verify(false).unwrap().is_clean());
}

#[test]
fn references_are_found_only_among_candidates_and_closure_is_ordered() {
    let root = tempfile::tempdir().unwrap();
    let store = open(root.path());
    let lib = store.add_bytes("lib", b"library", false, &[]).unwrap();
    let other = store.add_bytes("other", b"unrelated", false, &[]).unwrap();
    let script = format!("#!/bin/sh\nexec {}/x {}\n", lib, other);
    // `other` occurs in the text but is not declared: it is not a reference.
    let app = store
        .add_bytes("app", script.as_bytes(), true, std::slice::from_ref(&lib))
        .unwrap();
    assert_eq!(store.path_info(&app).unwrap().references, vec![lib.clone()]);
    let top = store
        .add_bytes(
            "top",
            format!("{app}").as_bytes(),
            false,
            &[app.clone(), lib.clone(), other.clone()],
        )
        .unwrap();
    assert_eq!(
        store.closure(std::slice::from_ref(&top)).unwrap(),
        vec![lib.clone(), app.clone(), top.clone()]
    );
    assert_eq!(store.referrers(&lib).unwrap(), vec![app.clone()]);
    assert_eq!(
        store
            .missing(&[
                lib.clone(),
                StorePath::parse(&format!(
                    "{}/00000000000000000000000000000000-gone",
                    store.store_dir()
                ))
                .unwrap()
            ])
            .len(),
        1
    );
    // An undeclared-but-invalid candidate is refused.
    let ghost = StorePath::parse(&format!(
        "{}/00000000000000000000000000000000-ghost",
        store.store_dir()
    ))
    .unwrap();
    assert!(matches!(
        store.add_bytes("x", b"x", false, &[ghost]),
        Err(StoreError::InvalidReference { .. })
    ));
}

#[test]
fn self_reference_is_refused_with_the_file_named() {
    let root = tempfile::tempdir().unwrap();
    let store = open(root.path());
    let source = root.path().join("out");
    std::fs::create_dir_all(source.join("etc")).unwrap();
    let marker = source.display().to_string();
    std::fs::write(source.join("etc/conf"), format!("root={marker}/share")).unwrap();
    let options = ferry_store::AddOptions {
        self_markers: std::slice::from_ref(&marker),
        ..Default::default()
    };
    let error = store.add_path_with(&source, "out", &options).unwrap_err();
    assert!(matches!(error, StoreError::SelfReference { .. }), "{error}");
    assert!(error.to_string().contains("etc/conf"), "{error}");
    assert!(store.all_valid_paths().unwrap().is_empty());
}

#[test]
fn realisations_return_only_valid_outputs() {
    let root = tempfile::tempdir().unwrap();
    let store = open(root.path());
    let out = store.add_bytes("out", b"built", false, &[]).unwrap();
    let recipe = RecipeId([7; 32]);
    assert_eq!(store.realisation(&recipe), None);
    store.set_realisation(&recipe, &out).unwrap();
    assert_eq!(store.realisation(&recipe), Some(out));
    store.gc(&GcOptions::default()).unwrap();
    assert_eq!(
        store.realisation(&recipe),
        None,
        "collected output is no longer a realisation"
    );
}

#[test]
fn gc_keeps_everything_reachable_from_roots_and_deletes_the_rest() {
    let root = tempfile::tempdir().unwrap();
    let store = open(root.path());
    let (dep, app) = dep_and_app(&store);
    let profiled = store.add_bytes("profiled", b"p", false, &[]).unwrap();
    let pinned = store.add_bytes("pinned", b"t", false, &[]).unwrap();
    let garbage = store.add_bytes("garbage", b"g", false, &[]).unwrap();
    store.add_root("app", &app).unwrap();
    std::os::unix::fs::symlink(
        profiled.as_path(),
        store.profiles_dir().join("system-1-link"),
    )
    .unwrap();
    std::os::unix::fs::symlink("system-1-link", store.profiles_dir().join("system")).unwrap();
    let temp = store.temp_roots(std::slice::from_ref(&pinned)).unwrap();
    let report = store.gc(&GcOptions::default()).unwrap();
    assert_eq!(report.deleted, vec![garbage.clone()]);
    for kept in [&dep, &app, &profiled, &pinned] {
        assert!(
            store.is_valid(kept) && store.real_path(kept).exists(),
            "{kept} was collected"
        );
    }
    assert!(!store.is_valid(&garbage) && !store.real_path(&garbage).exists());
    drop(temp);
    assert!(store.remove_root("app").unwrap());
    let report = store.gc(&GcOptions::default()).unwrap();
    let mut expected = vec![app, dep, pinned];
    expected.sort();
    assert_eq!(report.deleted, expected);
    assert!(store.verify(false).unwrap().is_clean());
}

#[test]
fn keep_generations_trims_old_ones_but_never_the_current() {
    let root = tempfile::tempdir().unwrap();
    let store = open(root.path());
    let mut generations = Vec::new();
    for n in 1..=4 {
        let path = store
            .add_bytes("system", format!("gen {n}").as_bytes(), false, &[])
            .unwrap();
        std::os::unix::fs::symlink(
            path.as_path(),
            store.profiles_dir().join(format!("system-{n}-link")),
        )
        .unwrap();
        generations.push(path);
    }
    // The current generation is an old one (after a rollback).
    std::os::unix::fs::symlink("system-1-link", store.profiles_dir().join("system")).unwrap();
    let dry = store
        .gc(&GcOptions {
            keep_generations: Some(2),
            dry_run: true,
        })
        .unwrap();
    assert_eq!(
        dry.deleted,
        vec![generations[1].clone()].into_iter().collect::<Vec<_>>()
    );
    assert!(
        store.profiles_dir().join("system-2-link").exists(),
        "dry run removes nothing"
    );
    let report = store
        .gc(&GcOptions {
            keep_generations: Some(2),
            dry_run: false,
        })
        .unwrap();
    assert_eq!(
        report.removed_generations,
        vec![store.profiles_dir().join("system-2-link")]
    );
    assert!(!store.is_valid(&generations[1]));
    for kept in [0, 2, 3] {
        assert!(store.is_valid(&generations[kept]));
    }
}

#[test]
fn verify_repair_quarantines_corrupt_paths_and_invalidates_dependents() {
    let root = tempfile::tempdir().unwrap();
    let store = open(root.path());
    let dep = store.add_bytes("dep", b"original", false, &[]).unwrap();
    let app = store
        .add_bytes(
            "app",
            dep.as_str().as_bytes(),
            false,
            std::slice::from_ref(&dep),
        )
        .unwrap();
    let fine = store.add_bytes("fine", b"fine", false, &[]).unwrap();
    let real = store.real_path(&dep);
    std::fs::set_permissions(&real, std::fs::Permissions::from_mode(0o644)).unwrap();
    std::fs::write(&real, b"tampered").unwrap();
    let report = store.verify(false).unwrap();
    assert_eq!(report.corrupt.len(), 1, "{:?}", report.corrupt);
    assert_eq!(report.corrupt[0].path, dep);
    assert!(
        store.is_valid(&dep),
        "verify without repair changes nothing"
    );
    let report = store.verify(true).unwrap();
    assert_eq!(
        report.invalidated,
        vec![app.clone(), dep.clone()]
            .into_iter()
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect::<Vec<_>>()
    );
    assert_eq!(report.quarantined.len(), 1);
    assert_eq!(
        std::fs::read(&report.quarantined[0]).unwrap(),
        b"tampered",
        "the corrupt bytes are kept"
    );
    assert!(!store.is_valid(&dep) && !store.is_valid(&app) && store.is_valid(&fine));
    assert!(store.verify(false).unwrap().is_clean());
    assert_eq!(store.invalidation_count().unwrap(), 1, "repair is counted");
}

#[test]
fn verify_closure_checks_one_closure_and_repair_invalidates_referrers_outside_it() {
    let root = tempfile::tempdir().unwrap();
    let store = open(root.path());
    let dep = store.add_bytes("dep", b"original", false, &[]).unwrap();
    let refs = std::slice::from_ref(&dep);
    let app = store
        .add_bytes("app", dep.as_str().as_bytes(), false, refs)
        .unwrap();
    // Another system that uses `dep` too, outside `app`'s closure.
    let other = store
        .add_bytes("other", format!("{dep} too").as_bytes(), false, refs)
        .unwrap();
    let unrelated = store.add_bytes("unrelated", b"u", false, &[]).unwrap();
    let real = store.real_path(&unrelated);
    std::fs::set_permissions(&real, std::fs::Permissions::from_mode(0o644)).unwrap();
    std::fs::write(&real, b"tampered").unwrap();
    let report = store
        .verify_closure(std::slice::from_ref(&app), false)
        .unwrap();
    assert!(report.is_clean(), "{:?}", report.corrupt);
    assert_eq!(report.checked, 2);

    std::fs::remove_file(store.real_path(&dep)).unwrap();
    let report = store
        .verify_closure(std::slice::from_ref(&app), false)
        .unwrap();
    assert_eq!(report.corrupt.len(), 1, "{:?}", report.corrupt);
    assert_eq!(report.corrupt[0].path, dep);
    assert_eq!(
        report.corrupt[0].problem,
        "its object is missing from the store directory"
    );
    let report = store
        .verify_closure(std::slice::from_ref(&app), true)
        .unwrap();
    let mut expected = vec![app.clone(), dep.clone(), other.clone()];
    expected.sort();
    assert_eq!(report.invalidated, expected);
    assert!(
        store.is_valid(&unrelated),
        "outside the closure and its referrers"
    );
    let gone = store
        .verify_closure(std::slice::from_ref(&app), false)
        .unwrap();
    assert_eq!(
        gone.corrupt[0].problem,
        "it is not a valid path of this store"
    );
}

#[test]
fn the_invalidation_count_rises_exactly_when_gc_makes_paths_invalid() {
    let root = tempfile::tempdir().unwrap();
    let store = open(root.path());
    assert_eq!(store.invalidation_count().unwrap(), 0);
    let kept = store.add_bytes("kept", b"k", false, &[]).unwrap();
    store.add_root("kept", &kept).unwrap();
    store.gc(&GcOptions::default()).unwrap();
    assert_eq!(
        store.invalidation_count().unwrap(),
        0,
        "nothing was deleted"
    );
    store.add_bytes("garbage", b"g", false, &[]).unwrap();
    let dry = GcOptions {
        dry_run: true,
        ..GcOptions::default()
    };
    store.gc(&dry).unwrap();
    assert_eq!(
        store.invalidation_count().unwrap(),
        0,
        "a dry run deletes nothing"
    );
    store.gc(&GcOptions::default()).unwrap();
    assert_eq!(store.invalidation_count().unwrap(), 1);
    // The count is durable state: a new handle sees it.
    assert_eq!(open(root.path()).invalidation_count().unwrap(), 1);
}

#[test]
fn stale_temporary_directories_are_purged_on_open() {
    let root = tempfile::tempdir().unwrap();
    let store = open(root.path());
    let stale = store.store_dir().as_path().join(".tmp/999-dead");
    std::fs::create_dir_all(stale.join("sub")).unwrap();
    std::fs::set_permissions(stale.join("sub"), std::fs::Permissions::from_mode(0o555)).unwrap();
    drop(store);
    let store = open(root.path());
    assert!(!stale.exists());
    // Staging dirs of older versions sat in the store dir itself; gc removes those.
    let legacy = store.store_dir().as_path().join(".tmp-998-dead");
    std::fs::create_dir(&legacy).unwrap();
    store.gc(&GcOptions::default()).unwrap();
    assert!(!legacy.exists());
}

#[test]
fn stale_temp_roots_of_dead_processes_do_not_pin_anything() {
    let root = tempfile::tempdir().unwrap();
    let store = open(root.path());
    let path = store.add_bytes("orphan", b"o", false, &[]).unwrap();
    // A temp-roots file nobody holds a lock on: its process died.
    let stale = root.path().join("var/temproots/424242-dead");
    std::fs::write(&stale, format!("{path}\n")).unwrap();
    let report = store.gc(&GcOptions::default()).unwrap();
    assert_eq!(report.deleted, vec![path]);
    assert!(
        !stale.exists(),
        "the stale temp-roots file was not cleaned up"
    );
}

#[test]
fn temp_roots_can_pin_paths_before_they_arrive() {
    let root = tempfile::tempdir().unwrap();
    let store = open(root.path());
    let expected = ferry_store::hash::canonical::object_path(
        store.store_dir(),
        "later",
        &ferry_store::hash::canonical::file_digest(false, b"later"),
        &[],
    );
    let mut roots = store.temp_roots(&[]).unwrap();
    roots.add(&store, std::slice::from_ref(&expected)).unwrap();
    assert_eq!(
        store.add_bytes("later", b"later", false, &[]).unwrap(),
        expected
    );
    assert!(store.gc(&GcOptions::default()).unwrap().deleted.is_empty());
    drop(roots);
    assert_eq!(
        store.gc(&GcOptions::default()).unwrap().deleted,
        vec![expected]
    );
}

#[test]
fn concurrent_adds_of_the_same_tree_agree_and_leave_one_valid_copy() {
    let root = tempfile::tempdir().unwrap();
    let source = root.path().join("src");
    write_tree(&source);
    for file in 0..200 {
        std::fs::write(source.join(format!("f{file}")), vec![file as u8; 3000]).unwrap();
    }
    let paths: Vec<StorePath> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let root = root.path();
                let source = &source;
                scope.spawn(move || open(root).add_path(source, "shared", &[]).unwrap())
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(paths.windows(2).all(|w| w[0] == w[1]));
    let store = open(root.path());
    assert_eq!(store.all_valid_paths().unwrap(), vec![paths[0].clone()]);
    assert!(store.verify(false).unwrap().is_clean());
}

/// Deletes the metadata record of `path` behind the store's back, as a crash between moving
/// an object into place and committing its record leaves things.
fn forget_record(root: &Path, path: &StorePath) {
    let db = rusqlite::Connection::open(root.join("var/db/store.sqlite")).unwrap();
    let deleted = db
        .execute("DELETE FROM paths WHERE base_name = ?1", [path.base_name()])
        .unwrap();
    assert_eq!(deleted, 1);
}

#[test]
fn gc_removes_debris_of_a_crash_between_rename_and_metadata() {
    let root = tempfile::tempdir().unwrap();
    let store = open(root.path());
    let path = store.add_bytes("half", b"half", false, &[]).unwrap();
    // Simulate the crash: the object is in place but its record never became durable.
    forget_record(root.path(), &path);
    assert!(!store.is_valid(&path));
    // Adding it again replaces the debris and makes it valid.
    assert_eq!(store.add_bytes("half", b"half", false, &[]).unwrap(), path);
    assert!(store.is_valid(&path));
    forget_record(root.path(), &path);
    let report = store.gc(&GcOptions::default()).unwrap();
    assert_eq!(report.debris, vec![path.base_name().to_string()]);
    assert!(!store.real_path(&path).exists());
}

#[test]
fn a_store_with_metadata_files_is_migrated_into_the_database_on_open() {
    let root = tempfile::tempdir().unwrap();
    let (dep, app, recipe) = {
        let store = open(root.path());
        let (dep, app) = dep_and_app(&store);
        let recipe = RecipeId([7; 32]);
        // The layout before the database: one JSON record per file, one output per recipe.
        let legacy = root.path().join("var/db");
        std::fs::create_dir_all(legacy.join("paths")).unwrap();
        std::fs::create_dir_all(legacy.join("realisations")).unwrap();
        for path in [&dep, &app] {
            let info = store.path_info(path).unwrap();
            std::fs::write(
                legacy.join("paths").join(path.base_name()),
                ferry_store::db::PathDb::encode(&info),
            )
            .unwrap();
        }
        std::fs::write(legacy.join("paths/.tmp-half-written"), b"{").unwrap();
        std::fs::write(
            legacy.join("realisations").join(recipe.to_string()),
            format!("{app}\n"),
        )
        .unwrap();
        (dep, app, recipe)
    };
    for file in ["store.sqlite", "store.sqlite-wal", "store.sqlite-shm"] {
        let _ = std::fs::remove_file(root.path().join("var/db").join(file));
    }

    let store = open(root.path());
    assert_eq!(store.all_valid_paths().unwrap(), {
        let mut both = vec![dep.clone(), app.clone()];
        both.sort();
        both
    });
    assert_eq!(store.path_info(&app).unwrap().references, vec![dep.clone()]);
    assert_eq!(store.realisation(&recipe), Some(app.clone()));
    assert!(store.verify(false).unwrap().is_clean());
    assert!(!root.path().join("var/db/paths").exists());
    assert!(
        root.path().join("var/db/paths.migrated").is_dir(),
        "the old records are kept aside"
    );
    // An older ferry writing records as files again after the migration: they are picked up
    // by the next open, not left to look like debris.
    let late = store.add_bytes("late", b"late", false, &[]).unwrap();
    let late_record = ferry_store::db::PathDb::encode(&store.path_info(&late).unwrap());
    drop(store);
    forget_record(root.path(), &late);
    std::fs::create_dir_all(root.path().join("var/db/paths")).unwrap();
    std::fs::write(
        root.path().join("var/db/paths").join(late.base_name()),
        late_record,
    )
    .unwrap();
    let store = open(root.path());
    assert!(store.is_valid(&late));
    assert!(root.path().join("var/db/paths.migrated-2").is_dir());
    assert!(!root.path().join("var/db/paths").exists());
    // gc must see the migrated records: nothing rooted, so all go, as valid paths (not debris).
    let report = store.gc(&GcOptions::default()).unwrap();
    assert_eq!(report.deleted.len(), 3);
    assert!(report.debris.is_empty());
}

#[test]
fn debris_of_another_kind_in_the_way_of_an_object_is_replaced() {
    let root = tempfile::tempdir().unwrap();
    let store = open(root.path());
    let path = store.add_bytes("thing", b"a file", false, &[]).unwrap();
    forget_record(root.path(), &path);
    // A crash left a (sealed, non-empty) directory where the file object goes.
    let real = store.real_path(&path);
    std::fs::remove_file(&real).unwrap();
    std::fs::create_dir_all(real.join("sub")).unwrap();
    std::fs::set_permissions(&real, std::fs::Permissions::from_mode(0o555)).unwrap();
    assert_eq!(
        store.add_bytes("thing", b"a file", false, &[]).unwrap(),
        path
    );
    assert!(real.is_file());
    assert!(store.verify(false).unwrap().is_clean());

    // And a file where a directory object goes.
    let tree = root.path().join("tree");
    write_tree(&tree);
    let dir_path = store.add_path(&tree, "tree", &[]).unwrap();
    forget_record(root.path(), &dir_path);
    let real = store.real_path(&dir_path);
    fsops_remove(&real);
    std::fs::write(&real, b"debris").unwrap();
    assert_eq!(store.add_path(&tree, "tree", &[]).unwrap(), dir_path);
    assert!(real.is_dir());
    assert!(store.verify(false).unwrap().is_clean());
}

/// Removes a sealed tree (directories 0555) as the store's own removal does.
fn fsops_remove(path: &Path) {
    for entry in walkdir::WalkDir::new(path) {
        let entry = entry.unwrap();
        if entry.file_type().is_dir() {
            std::fs::set_permissions(entry.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        }
    }
    std::fs::remove_dir_all(path).unwrap();
}

#[test]
fn a_one_pass_add_of_content_already_there_changes_nothing() {
    let root = tempfile::tempdir().unwrap();
    let store = open(root.path());
    let tree = root.path().join("tree");
    write_tree(&tree);
    let one_pass = ferry_store::AddOptions {
        probably_new: true,
        ..ferry_store::AddOptions::default()
    };
    let first = store.add_path_with(&tree, "tree", &one_pass).unwrap();
    assert_eq!(store.add_path(&tree, "tree", &[]).unwrap(), first);
    let before = store.path_info(&first).unwrap();
    assert_eq!(
        store.add_path_with(&tree, "tree", &one_pass).unwrap(),
        first
    );
    assert_eq!(store.path_info(&first).unwrap(), before, "re-registered");
    let staging: Vec<_> = std::fs::read_dir(store.store_dir().as_path().join(".tmp"))
        .unwrap()
        .collect();
    assert!(staging.is_empty(), "the discarded copy was left behind");
    assert!(store.verify(false).unwrap().is_clean());
}

#[test]
fn a_staging_dir_that_is_a_symlink_is_refused_and_what_it_points_to_is_untouched() {
    let root = tempfile::tempdir().unwrap();
    drop(open(root.path()));
    let victim = root.path().join("victim");
    std::fs::create_dir(&victim).unwrap();
    std::fs::write(victim.join("keep-me"), b"mine").unwrap();
    let staging = root.path().join("store").join(ferry_store::STAGING_DIR);
    let _ = std::fs::remove_dir(&staging);
    std::os::unix::fs::symlink(&victim, &staging).unwrap();

    let err = Store::open(&root.path().join("store"), &root.path().join("var")).unwrap_err();
    assert!(
        matches!(err, StoreError::StagingNotADirectory { ref path } if path == &staging),
        "{err}"
    );
    assert_eq!(std::fs::read(victim.join("keep-me")).unwrap(), b"mine");
    assert_eq!(std::fs::read_dir(&victim).unwrap().count(), 1);

    // Once the link is gone, the store makes its own staging dir again.
    std::fs::remove_file(&staging).unwrap();
    let store = open(root.path());
    let (_, app) = dep_and_app(&store);
    assert!(store.is_valid(&app));
    assert!(std::fs::symlink_metadata(&staging).unwrap().is_dir());
    assert_eq!(std::fs::read_dir(&victim).unwrap().count(), 1);
}

#[test]
fn a_state_dir_belongs_to_one_store_dir_and_another_is_refused() {
    let root = tempfile::tempdir().unwrap();
    let state = root.path().join("var");
    let store = Store::open(&root.path().join("store"), &state).unwrap();
    let (_, app) = dep_and_app(&store);
    drop(store);

    let other = root.path().join("other-store");
    let err = Store::open(&other, &state).unwrap_err();
    assert!(
        matches!(&err, StoreError::StateOfAnotherStore { recorded, given, .. }
            if recorded == &root.path().join("store") && given == &other),
        "{err}"
    );
    assert!(err.is_bad_input());
    // The first store's records are untouched and still valid.
    let store = open(root.path());
    assert!(store.is_valid(&app));
    assert!(
        store.verify(false).unwrap().is_clean(),
        "verify stays clean"
    );
}

#[test]
fn a_tree_whose_paths_an_import_would_refuse_is_refused_by_add_too() {
    let root = tempfile::tempdir().unwrap();
    let store = open(root.path());
    let source = root.path().join("long");
    let mut deep = source.clone();
    for level in 0..15u8 {
        deep = deep.join(String::from_utf8(vec![b'a' + level; 220]).unwrap());
    }
    std::fs::create_dir_all(&deep).unwrap();
    std::fs::write(deep.join("f"), b"x").unwrap();
    let err = store.add_path(&source, "long", &[]).unwrap_err();
    assert!(
        matches!(&err, StoreError::PathTooLong { len, .. } if *len > 3072),
        "{err}"
    );
    assert!(store.all_valid_paths().unwrap().is_empty());
}

/// The other side of the PATH_MAX refusal: a tree just under the limit is
/// added, verified as intact (`verify --repair` quarantined such a valid
/// object before), exported, and imported again. Add, import, verify and
/// export agree on one limit.
#[test]
fn a_tree_just_under_the_path_limit_is_added_verified_exported_and_imported() {
    let root = tempfile::tempdir().unwrap();
    let store = open(root.path());
    let source = root.path().join("long");
    let mut deep = source.clone();
    for level in 0..13u8 {
        deep = deep.join(String::from_utf8(vec![b'a' + level; 220]).unwrap());
    }
    deep = deep.join("z".repeat(150));
    std::fs::create_dir_all(&deep).unwrap();
    std::fs::write(deep.join("f"), b"deep file").unwrap();
    let inside = deep
        .join("f")
        .strip_prefix(&source)
        .unwrap()
        .as_os_str()
        .len();
    assert!((3000..=3072).contains(&inside), "{inside}");

    let path = store.add_path(&source, "long", &[]).unwrap();
    let report = store.verify(true).unwrap();
    assert!(report.is_clean(), "{report:?}");
    assert!(report.quarantined.is_empty());
    assert!(store.is_valid(&path));

    let mut archive = Vec::new();
    store
        .export_closure(std::slice::from_ref(&path), &mut archive)
        .unwrap();
    drop(store);
    let other = tempfile::tempdir().unwrap();
    std::fs::rename(root.path().join("store"), other.path().join("old-store")).unwrap();
    let again = Store::open(&root.path().join("store"), &other.path().join("var")).unwrap();
    again
        .import(archive.as_slice(), ferry_store::ImportMode::Atomic)
        .unwrap();
    assert!(again.is_valid(&path));
    let file = again
        .real_path(&path)
        .join(deep.join("f").strip_prefix(&source).unwrap());
    assert_eq!(std::fs::read(file).unwrap(), b"deep file");
    assert!(again.verify(false).unwrap().is_clean());
}
