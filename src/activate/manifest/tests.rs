//! Unit tests of the manifest: parsing, validation, diff and start order.
use super::*;

fn service(exec: &str, requires: &[&str]) -> Service {
    Service {
        exec: exec.into(),
        env: BTreeMap::new(),
        user: None,
        state_dirs: vec![],
        health: vec![],
        hooks: Hooks::default(),
        requires: Requires {
            local: requires.iter().map(|s| s.to_string()).collect(),
            remote: vec![],
        },
        secrets: vec![],
        oneshot: false,
        restart: RestartPolicy::default(),
    }
}

fn manifest(services: &[(&str, Service)]) -> Manifest {
    Manifest {
        version: MANIFEST_VERSION,
        site: "demo".into(),
        class: "web".into(),
        services: services
            .iter()
            .map(|(n, s)| (n.to_string(), s.clone()))
            .collect(),
        packages: vec![],
        files: vec![],
        usr: None,
        debian: Default::default(),
    }
}

#[test]
fn start_order_puts_requirements_first_and_breaks_ties_by_name() {
    let m = manifest(&[
        ("web", service("w", &["db", "cache"])),
        ("db", service("d", &[])),
        ("cache", service("c", &["db"])),
        ("zz", service("z", &[])),
    ]);
    assert_eq!(m.start_order().unwrap(), ["db", "zz", "cache", "web"]);
}

#[test]
fn a_cycle_is_refused_with_the_cycle_named() {
    let m = manifest(&[
        ("a", service("a", &["b"])),
        ("b", service("b", &["c"])),
        ("c", service("c", &["a"])),
        ("d", service("d", &[])),
    ]);
    let err = m.validate().unwrap_err();
    assert_eq!(
        err.to_string(),
        "services require each other in a cycle: a -> b -> c -> a"
    );
}

#[test]
fn a_missing_local_requirement_is_refused() {
    let m = manifest(&[("a", service("a", &["nope"]))]);
    assert_eq!(
        m.validate().unwrap_err().to_string(),
        "service a requires nope, which this class does not have"
    );
}

#[test]
fn diff_sorts_services_into_four_sets() {
    let old = manifest(&[
        ("keep", service("k", &[])),
        ("edit", service("e1", &[])),
        ("gone", service("g", &[])),
    ]);
    let mut edited = service("e1", &[]);
    edited.env.insert("X".into(), "1".into());
    let new = manifest(&[
        ("keep", service("k", &[])),
        ("edit", edited),
        ("fresh", service("f", &[])),
    ]);
    let d = diff(Some(&old), &new);
    assert_eq!(d.added, BTreeSet::from(["fresh".to_string()]));
    assert_eq!(d.removed, BTreeSet::from(["gone".to_string()]));
    assert_eq!(d.changed, BTreeSet::from(["edit".to_string()]));
    assert_eq!(d.unchanged, BTreeSet::from(["keep".to_string()]));
    let first = diff(None, &new);
    assert_eq!(first.added.len(), 3);
}

#[test]
fn json_round_trips_and_is_deterministic() {
    let mut s = service("exec /store/abc-web/bin/web", &[]);
    s.health.push(HealthCheck {
        probe: HealthProbe::Http {
            url: "http://127.0.0.1:8080/".into(),
            expect_status: 200,
            ca: None,
        },
        timeout_ms: 500,
        retries: 2,
        interval_ms: 100,
    });
    s.env.insert("B".into(), "2".into());
    s.env.insert("A".into(), "1".into());
    let m = manifest(&[("web", s)]);
    let text = m.to_json();
    let back = Manifest::from_json(text.as_bytes()).unwrap();
    assert_eq!(back, m);
    assert_eq!(back.to_json(), text);
    assert!(text.find("\"A\"").unwrap() < text.find("\"B\"").unwrap());
    assert!(text.contains("\"kind\": \"http\""));
}

#[test]
fn minimal_manifest_gets_documented_defaults() {
    let text = br#"{"version":1,"site":"s","class":"c","services":{"a":{"exec":"true","health":[{"kind":"tcp","host":"127.0.0.1","port":1}]}}}"#;
    let m = Manifest::from_json(text).unwrap();
    let a = &m.services["a"];
    assert_eq!(a.restart, RestartPolicy::default());
    assert_eq!(a.health[0].timeout_ms, 10_000);
    assert_eq!(a.health[0].retries, 3);
    assert!(!a.oneshot);
}

#[test]
fn the_example_in_manifest_md_is_a_valid_manifest() {
    let doc = include_str!("../MANIFEST.md");
    let example = doc.split("## Example").nth(1).unwrap();
    let json = example
        .split("```json")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .unwrap();
    let m = Manifest::from_json(json.as_bytes()).unwrap();
    assert_eq!(m.services["webapp"].user.as_deref(), Some("webapp"));
    assert_eq!(
        m.services["webapp"].requires.remote,
        [RemoteDependency {
            class: "db".into(),
            service: "postgres".into()
        }]
    );
}

#[test]
fn other_versions_and_unknown_fields_are_refused() {
    let v2 = br#"{"version":2,"site":"s","class":"c","whatever":[]}"#;
    assert_eq!(
        Manifest::from_json(v2).unwrap_err().to_string(),
        "manifest version 2 is not supported (this ferry reads version 1); deploy with a matching ferry"
    );
    let bad_dir = br#"{"version":1,"site":"s","class":"c","services":{"a":{"exec":"x","state_dirs":["../etc"]}}}"#;
    assert_eq!(
        Manifest::from_json(bad_dir).unwrap_err().to_string(),
        "service a: state dir \"../etc\" must be a relative path without '..'"
    );
    let typo =
        br#"{"version":1,"site":"s","class":"c","services":{"a":{"exec":"x","ueser":"bob"}}}"#;
    let err = Manifest::from_json(typo).unwrap_err().to_string();
    assert!(err.contains("ueser"), "{err}");
}

#[test]
fn a_new_package_tree_changes_every_service_that_stays() {
    let old = manifest(&[("a", service("a", &[])), ("b", service("b", &[]))]);
    let mut new = old.clone();
    new.usr = Some("/ferry/store/abc-usr-web".into());
    let d = diff(Some(&old), &new);
    assert_eq!(d.changed.len(), 2);
    assert!(d.unchanged.is_empty());
    // The same tree again: nothing to restart.
    assert_eq!(diff(Some(&new), &new).unchanged.len(), 2);
}

#[test]
fn a_system_without_a_package_tree_keeps_its_json_bytes() {
    let m = manifest(&[("a", service("a", &[]))]);
    assert!(!m.to_json().contains("usr"));
    let mut with_tree = m.clone();
    with_tree.usr = Some("usr-relative".into());
    assert!(matches!(
        with_tree.validate(),
        Err(ManifestError::UsrTree { .. })
    ));
    with_tree.usr = Some("/ferry/store/abc-usr-web".into());
    let back = Manifest::from_json(with_tree.to_json().as_bytes()).unwrap();
    assert_eq!(back.usr.as_deref(), Some("/ferry/store/abc-usr-web"));
}
