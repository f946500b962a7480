//! Resolution tests on small made-up universes.

use super::*;
use crate::control::parse_packages;
use crate::universe::Origin;

/// A universe from `name version depends [provides]` lines.
pub(crate) fn universe(lines: &[&str]) -> Universe {
    let mut text = String::new();
    for (i, l) in lines.iter().enumerate() {
        let mut parts = l.splitn(3, ';');
        let head: Vec<&str> = parts.next().unwrap().split_whitespace().collect();
        let depends = parts.next().unwrap_or("").trim();
        let provides = parts.next().unwrap_or("").trim();
        text.push_str(&format!(
            "Package: {}\nVersion: {}\nArchitecture: {}\nDepends: {depends}\nProvides: {provides}\n\
             Filename: pool/main/{}_{}.deb\nSize: {}\nSHA256: {:064x}\n\n",
            head[0],
            head[1],
            head.get(2).unwrap_or(&"amd64"),
            head[0],
            head[1],
            100 + i,
            i
        ));
    }
    let mut u = Universe::new("amd64");
    let origin = Origin {
        suite: "stable".into(),
        component: "main".into(),
    };
    u.add_index(&origin, parse_packages(text.as_bytes()).unwrap());
    u
}

fn roots(names: &[&str]) -> Vec<Root> {
    names.iter().map(|n| n.parse().unwrap()).collect()
}

fn closure(u: &Universe, names: &[&str]) -> Vec<String> {
    resolve(u, &roots(names))
        .unwrap()
        .packages
        .iter()
        .map(|c| format!("{} {}", c.entry.name, c.entry.version))
        .collect()
}

#[test]
fn takes_the_highest_satisfying_version() {
    let u = universe(&[
        "app 1;lib (>= 1.5), old (<< 2)",
        "lib 1.0",
        "lib 2.0",
        "lib 1.9",
        "old 1",
        "old 3",
    ]);
    assert_eq!(closure(&u, &["app"]), ["app 1", "lib 2.0", "old 1"]);
    assert_eq!(closure(&u, &["lib (<< 2)"]), ["lib 1.9"]);
}

#[test]
fn alternatives_take_the_first_satisfiable_one() {
    let u = universe(&[
        "app 1;missing | b (>= 2) | c",
        "b 1",
        "c 1",
        "d 1;b | c",
        "e 1;d, c",
    ]);
    assert_eq!(closure(&u, &["app"]), ["app 1", "c 1"]);
    assert_eq!(closure(&u, &["d"]), ["b 1", "d 1"]);
}

#[test]
fn chosen_packages_satisfy_later_alternatives() {
    // `e` pulls in `c` before `d`'s `b | c` is looked at: `c` already fits.
    let u = universe(&["e 1;c, d", "d 1;b | c", "b 1", "c 1"]);
    assert_eq!(closure(&u, &["e"]), ["c 1", "d 1", "e 1"]);
}

#[test]
fn virtual_packages_resolve_through_provides() {
    let u = universe(&[
        "app 1;mail-transport-agent, libvirt (>= 2)",
        "postfix 3;;mail-transport-agent",
        "exim 4;;mail-transport-agent",
        "impl-old 1;;libvirt (= 1)",
        "impl-new 1;;libvirt (= 2.5)",
        "plain 1;;libvirt",
    ]);
    // Among providers the order is by name: exim before postfix.
    assert_eq!(closure(&u, &["app"]), ["app 1", "exim 4", "impl-new 1"]);
    let u = universe(&["app 1;v (>= 1)", "plain 1;;v"]);
    let err = resolve(&u, &roots(&["app"])).unwrap_err();
    assert_eq!(
        err.to_string(),
        "unsatisfiable dependency: app 1 → v (>= 1)\n  available: plain 1 provides v"
    );
}

#[test]
fn unknown_roots_suggest_close_names() {
    let u = universe(&[
        "postgresql-15 15.20",
        "postgresql-client-15 15.20",
        "libpq5 15.20",
    ]);
    let err = resolve(&u, &roots(&["postgresql-16"])).unwrap_err();
    assert_eq!(
        err,
        ResolveError::UnknownPackage {
            name: "postgresql-16".into(),
            suggestions: vec!["postgresql-15".into()]
        }
    );
    assert!(err
        .to_string()
        .starts_with("unknown package \"postgresql-16\" (did you mean postgresql-15?)\n  hint:"));
}

#[test]
fn unsatisfiable_errors_print_the_chain() {
    let u = universe(&[
        "app 1;mid",
        "mid 2.0;libz (>= 9) | libzz",
        "libz 1.0",
        "libz 2.0",
    ]);
    let err = resolve(&u, &roots(&["app"])).unwrap_err();
    assert_eq!(
        err.to_string(),
        "unsatisfiable dependency: app 1 → mid 2.0 → libz (>= 9) | libzz\n  available: libz 2.0, libz 1.0"
    );
    let err = resolve(&u, &roots(&["libz (>= 3)"])).unwrap_err();
    assert_eq!(
        err.to_string(),
        "unsatisfiable dependency: libz (>= 3)\n  available: libz 2.0, libz 1.0"
    );
}

#[test]
fn the_same_name_at_two_versions_is_a_conflict() {
    let u = universe(&["top 1;a, b", "a 1;c (= 1)", "b 1;c (= 2)", "c 1", "c 2"]);
    let err = resolve(&u, &roots(&["top"])).unwrap_err();
    assert_eq!(
        err.to_string(),
        "conflict: top 1 → b 1 → c (= 2) needs c at another version than 1, already chosen"
    );
}

#[test]
fn restrictions_and_foreign_qualifiers_are_honoured() {
    let u = universe(&[
        "app 1;a [i386], b:any, c:native, d:amd64",
        "a 1",
        "b 1",
        "c 1",
        "d 1",
        "x 1;d:arm64",
    ]);
    assert_eq!(closure(&u, &["app"]), ["app 1", "b 1", "c 1", "d 1"]);
    assert!(resolve(&u, &roots(&["x"])).is_err());
}

#[test]
fn other_architectures_are_dropped_and_all_kept() {
    let u = universe(&["a 1 arm64", "a 0.5 all", "b 1 i386"]);
    assert_eq!(closure(&u, &["a"]), ["a 0.5"]);
    assert!(matches!(
        resolve(&u, &roots(&["b"])),
        Err(ResolveError::UnknownPackage { .. })
    ));
}

#[test]
fn pins_hold_a_version_while_it_still_satisfies() {
    let u = universe(&["app 1;lib (>= 1)", "lib 1", "lib 2", "lib 3"]);
    let pins = BTreeMap::from([("lib".to_string(), "2".parse().unwrap())]);
    let r = resolve_pinned(&u, &roots(&["app"]), &pins).unwrap();
    assert_eq!(r.packages[1].entry.version.as_str(), "2");
    let r = resolve_pinned(&u, &roots(&["lib (>= 3)"]), &pins).unwrap();
    assert_eq!(r.packages[0].entry.version.as_str(), "3");
}

#[test]
fn cycles_and_pre_depends_terminate_and_sort() {
    let u = universe(&["z 1;y", "y 1;z, x", "x 1;z"]);
    assert_eq!(closure(&u, &["z", "x"]), ["x 1", "y 1", "z 1"]);
}

#[test]
fn roots_reject_qualifiers() {
    assert!("a:any".parse::<Root>().is_err());
    assert_eq!("a (>= 1)".parse::<Root>().unwrap().to_string(), "a (>= 1)");
}

pub(crate) mod properties {
    use super::*;
    use proptest::prelude::*;

    /// The names [`universe_lines`] uses.
    pub(crate) const NAMES: [&str; 8] = ["a", "b", "c", "d", "e", "f", "g", "h"];

    /// A random universe of up to 8 names with 1–3 versions each, relations among
    /// them with constraints and alternatives, and some Provides.
    pub(crate) fn universe_lines() -> impl Strategy<Value = Vec<String>> {
        let names = NAMES;
        let alt = (0..8usize, 0..4usize, 1..4u32).prop_map(move |(n, op, v)| {
            let op = ["", " (>= ", " (<< ", " (= "][op];
            if op.is_empty() {
                names[n].to_string()
            } else {
                format!("{}{op}{v})", names[n])
            }
        });
        let rel = proptest::collection::vec(alt, 1..3).prop_map(|a| a.join(" | "));
        let pkg = (
            0..8usize,
            1..4u32,
            proptest::collection::vec(rel, 0..3),
            proptest::option::of((0..8usize, any::<bool>())),
        )
            .prop_map(move |(n, v, deps, prov)| {
                let prov = match prov {
                    Some((p, true)) => format!("{} (= {v})", names[p]),
                    Some((p, false)) => names[p].to_string(),
                    None => String::new(),
                };
                format!("{} {v};{};{prov}", names[n], deps.join(", "))
            });
        proptest::collection::vec(pkg, 1..14)
    }

    proptest! {
        #[test]
        fn every_relation_of_a_closure_is_met_inside_it(lines in universe_lines(), root in 0..8usize) {
            let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
            let u = universe(&refs);
            let name = NAMES[root];
            let roots = roots(&[name]);
            let r = match resolve(&u, &roots) {
                Ok(r) => r,
                // A failure must name the real problem, never an empty chain of nothing.
                Err(ResolveError::UnknownPackage { name: n, .. }) => {
                    prop_assert_eq!(n, name);
                    prop_assert!(!u.knows(name));
                    return Ok(());
                }
                Err(_) => return Ok(()),
            };
            let again = resolve(&u, &roots).unwrap();
            prop_assert_eq!(&again, &r, "deterministic");
            let mut names: Vec<&str> = r.packages.iter().map(|c| c.entry.name.as_str()).collect();
            names.dedup();
            prop_assert_eq!(names.len(), r.packages.len(), "one version per name");
            let meets = |alt: &crate::relation::Alternative| {
                r.packages.iter().any(|c| {
                    let e = &c.entry;
                    (e.name == alt.name && alt.constraint.as_ref().is_none_or(|k| k.admits(&e.version)))
                        || e.provides.iter().flat_map(|p| &p.alternatives).any(|p| {
                            p.name == alt.name
                                && match (&alt.constraint, &p.constraint) {
                                    (None, _) => true,
                                    (Some(k), Some(v)) => k.admits(&v.version),
                                    (Some(_), None) => false,
                                }
                        })
                })
            };
            prop_assert!(meets(&roots[0].as_alternative()), "the root is met");
            for c in &r.packages {
                for rel in c.entry.depends.iter().chain(&c.entry.pre_depends) {
                    prop_assert!(rel.alternatives.iter().any(meets), "{} of {} unmet", rel, c.entry.name);
                }
            }
        }
    }
}
