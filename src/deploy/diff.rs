//! `ferry plan --diff`: what changes inside each class's system, as a
//! reviewer reads it. Text files and service definitions come as unified
//! diffs, Debian packages as versions, and binary or very large files as
//! sizes. Secrets never show: their values are never in a system.
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::Path;

use ferry_store::Store;
use serde::Serialize;

use super::plan::{package_changes, DeployPlan};
use crate::activate::manifest::{Manifest, Service};
use crate::closure::human_size;

/// Files larger than this are summarised, not diffed.
pub const MAX_DIFF_BYTES: u64 = 256 * 1024;

/// What changes between the system some hosts of a class run and the one
/// they move to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ClassDiff {
    /// The class.
    pub class: String,
    /// The hosts that make this move, in plan order.
    pub hosts: Vec<String>,
    /// The system they run now (`None` on a first deploy).
    pub from: Option<String>,
    /// The system they move to.
    pub to: String,
    /// Why nothing could be compared, when the current system is not in
    /// this deployer's store.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unavailable: Option<String>,
    /// Debian package changes: `name old → new`, `+ name version`,
    /// `- name version`; other packages as `+ name` and `- name`.
    pub packages: Vec<String>,
    /// Each changed file or service definition.
    pub entries: Vec<DiffEntry>,
}

/// One file or service definition that changes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DiffEntry {
    /// `file NAME` or `service NAME`.
    pub what: String,
    /// How it changes.
    pub change: EntryChange,
}

/// How one entry changes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum EntryChange {
    /// A unified diff (`---`/`+++` headers, `@@` hunks).
    Text {
        /// The diff.
        unified: String,
    },
    /// Not shown line by line: sizes only (absent on the side that lacks it).
    Summary {
        /// Why it is not diffed: binary, too large, or not a regular file.
        why: String,
        /// Its size now.
        old_size: Option<u64>,
        /// Its size after the move.
        new_size: Option<u64>,
    },
}

/// The diffs of every move in `plan`: one per class and (current, target)
/// pair, for the hosts that change system and could be asked.
pub fn class_diffs(store: &Store, plan: &DeployPlan) -> Vec<ClassDiff> {
    let mut moves: BTreeMap<(String, Option<String>, String), Vec<String>> = BTreeMap::new();
    for host in &plan.hosts {
        if !host.changes
            || host.unreachable.is_some()
            || host.current_system.as_deref() == Some(host.target_system.as_str())
        {
            continue;
        }
        moves
            .entry((
                host.class.clone(),
                host.current_system.clone(),
                host.target_system.clone(),
            ))
            .or_default()
            .push(host.name.clone());
    }
    let mut diffs: Vec<ClassDiff> = moves
        .into_iter()
        .map(|((class, from, to), hosts)| system_diff(store, class, hosts, from, to))
        .collect();
    // In the plan's order of hosts, as the reader met them above.
    let position = |host: &String| plan.hosts.iter().position(|h| &h.name == host);
    diffs.sort_by_key(|d| d.hosts.first().and_then(position));
    diffs
}

/// Compares two systems of the local store.
fn system_diff(
    store: &Store,
    class: String,
    hosts: Vec<String>,
    from: Option<String>,
    to: String,
) -> ClassDiff {
    let mut diff = ClassDiff {
        class,
        hosts,
        from: from.clone(),
        to: to.clone(),
        unavailable: None,
        packages: Vec::new(),
        entries: Vec::new(),
    };
    let load = |text: &str| -> Result<Manifest, String> {
        let path = store.parse_path(text).map_err(|e| format!("{text}: {e}"))?;
        if !store.is_valid(&path) {
            return Err(format!(
                "{text} is not in this deployer's store (built elsewhere, or collected)"
            ));
        }
        Manifest::load(&store.real_path(&path)).map_err(|e| format!("{text}: {e}"))
    };
    let new = match load(&to) {
        Ok(manifest) => manifest,
        Err(why) => {
            diff.unavailable = Some(why);
            return diff;
        }
    };
    let old = match from.as_deref().map(load).transpose() {
        Ok(old) => old,
        Err(why) => {
            diff.unavailable = Some(why);
            return diff;
        }
    };
    let empty = BTreeMap::new();
    let old_debian = old.as_ref().map_or(&empty, |m| &m.debian);
    diff.packages = package_changes(old_debian, &new.debian);
    diff.packages.extend(name_changes(
        old.iter().flat_map(|m| &m.packages),
        &new.packages,
    ));
    diff.entries = service_entries(old.as_ref(), &new);
    diff.entries.extend(file_entries(
        store,
        old.iter().flat_map(|m| &m.files),
        &new.files,
    ));
    diff
}

/// `<store>/<hash>-<name>` → `<name>`.
pub(crate) fn object_name(path: &str) -> &str {
    let base = path.rsplit('/').next().unwrap_or(path);
    base.split_once('-').map_or(base, |(_, name)| name)
}

/// Objects keyed by name; a name used twice keeps its hash, so each side
/// still pairs up (or shows as added and removed).
fn by_name<'a>(paths: impl IntoIterator<Item = &'a String>) -> BTreeMap<String, &'a String> {
    let paths: Vec<&String> = paths.into_iter().collect();
    let mut count: BTreeMap<&str, usize> = BTreeMap::new();
    for path in &paths {
        *count.entry(object_name(path)).or_default() += 1;
    }
    paths
        .into_iter()
        .map(|path| {
            let name = object_name(path);
            let key = if count[name] > 1 {
                let base = path.rsplit('/').next().unwrap_or(path);
                format!("{name} ({})", &base[..base.len().min(8)])
            } else {
                name.to_string()
            };
            (key, path)
        })
        .collect()
}

/// Packages that are not Debian's, by name: `+ name`, `- name`.
fn name_changes<'a>(old: impl IntoIterator<Item = &'a String>, new: &[String]) -> Vec<String> {
    let old: BTreeSet<&str> = old.into_iter().map(|p| object_name(p)).collect();
    let new: BTreeSet<&str> = new.iter().map(|p| object_name(p)).collect();
    let added = new.difference(&old).map(|n| format!("+ {n}"));
    let removed = old.difference(&new).map(|n| format!("- {n}"));
    added.chain(removed).collect()
}

/// The definitions of services that are added, removed or changed, as
/// diffs of their manifest entries (store paths already substituted).
fn service_entries(old: Option<&Manifest>, new: &Manifest) -> Vec<DiffEntry> {
    let none = BTreeMap::new();
    let old_services = old.map_or(&none, |m| &m.services);
    let names: BTreeSet<&String> = old_services.keys().chain(new.services.keys()).collect();
    let text = |s: Option<&Service>| {
        s.map(|s| {
            let mut json = serde_json::to_string_pretty(s)
                .unwrap_or_else(|e| unreachable!("a service always serializes: {e}"));
            json.push('\n');
            json
        })
    };
    names
        .into_iter()
        .filter_map(|name| {
            let (a, b) = (text(old_services.get(name)), text(new.services.get(name)));
            (a != b).then(|| DiffEntry {
                what: format!("service {name}"),
                change: EntryChange::Text {
                    unified: unified(&format!("services/{name}.json"), a.as_deref(), b.as_deref()),
                },
            })
        })
        .collect()
}

/// The configuration files that are added, removed or changed.
fn file_entries<'a>(
    store: &Store,
    old: impl IntoIterator<Item = &'a String>,
    new: &'a [String],
) -> Vec<DiffEntry> {
    let old = by_name(old);
    let new = by_name(new);
    let names: BTreeSet<&String> = old.keys().chain(new.keys()).collect();
    names
        .into_iter()
        .filter(|name| old.get(*name) != new.get(*name))
        .map(|name| {
            let read = |p: Option<&&String>| p.map(|p| read_object(store, p));
            DiffEntry {
                what: format!("file {name}"),
                change: file_change(
                    &format!("files/{name}"),
                    read(old.get(name)),
                    read(new.get(name)),
                ),
            }
        })
        .collect()
}

/// One side of a file comparison.
enum Content {
    Text(String),
    Opaque { why: &'static str, size: u64 },
}

fn read_object(store: &Store, path: &str) -> Content {
    let Ok(parsed) = store.parse_path(path) else {
        return Content::Opaque {
            why: "not a store path",
            size: 0,
        };
    };
    let real = store.real_path(&parsed);
    let Ok(meta) = std::fs::symlink_metadata(&real) else {
        return Content::Opaque {
            why: "not in this deployer's store",
            size: 0,
        };
    };
    if !meta.is_file() {
        return Content::Opaque {
            why: "not a regular file",
            size: meta.len(),
        };
    }
    if meta.len() > MAX_DIFF_BYTES {
        return Content::Opaque {
            why: "larger than 256 KiB",
            size: meta.len(),
        };
    }
    match read_text(&real) {
        Some(text) => Content::Text(text),
        None => Content::Opaque {
            why: "binary",
            size: meta.len(),
        },
    }
}

/// The file as text, or `None` when it is not UTF-8 or holds a NUL byte.
fn read_text(path: &Path) -> Option<String> {
    let bytes = std::fs::read(path).ok()?;
    if bytes.contains(&0) {
        return None;
    }
    String::from_utf8(bytes).ok()
}

fn file_change(name: &str, old: Option<Content>, new: Option<Content>) -> EntryChange {
    let text = |c: &Option<Content>| match c {
        None => Some(None),
        Some(Content::Text(t)) => Some(Some(t.clone())),
        Some(Content::Opaque { .. }) => None,
    };
    if let (Some(a), Some(b)) = (text(&old), text(&new)) {
        return EntryChange::Text {
            unified: unified(name, a.as_deref(), b.as_deref()),
        };
    }
    let size = |c: &Option<Content>| {
        c.as_ref().map(|c| match c {
            Content::Text(t) => t.len() as u64,
            Content::Opaque { size, .. } => *size,
        })
    };
    let why = [&old, &new]
        .into_iter()
        .find_map(|c| match c {
            Some(Content::Opaque { why, .. }) => Some(*why),
            _ => None,
        })
        .unwrap_or("binary");
    EntryChange::Summary {
        why: why.to_string(),
        old_size: size(&old),
        new_size: size(&new),
    }
}

/// A unified diff with three lines of context, under `a/NAME` and
/// `b/NAME` as `git diff` names them (`files/…`, `services/….json`); a
/// missing side is `/dev/null`, as `diff -u` shows an added or removed file.
fn unified(name: &str, old: Option<&str>, new: Option<&str>) -> String {
    let a = old.map_or_else(|| "/dev/null".to_string(), |_| format!("a/{name}"));
    let b = new.map_or_else(|| "/dev/null".to_string(), |_| format!("b/{name}"));
    similar::TextDiff::from_lines(old.unwrap_or(""), new.unwrap_or(""))
        .unified_diff()
        .context_radius(3)
        .header(&a, &b)
        .to_string()
}

impl fmt::Display for ClassDiff {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "\ndiff {} ({}): {} → {}",
            self.class,
            self.hosts.join(", "),
            self.from.as_deref().unwrap_or("(none)"),
            self.to
        )?;
        if let Some(why) = &self.unavailable {
            return writeln!(f, "  not compared: {why}");
        }
        if self.packages.is_empty() && self.entries.is_empty() {
            return writeln!(f, "  no file, service or package changes");
        }
        if !self.packages.is_empty() {
            writeln!(f, "packages:")?;
            for line in &self.packages {
                writeln!(f, "  {line}")?;
            }
        }
        for entry in &self.entries {
            match &entry.change {
                EntryChange::Text { unified } => f.write_str(unified)?,
                EntryChange::Summary {
                    why,
                    old_size,
                    new_size,
                } => {
                    let size = |s: &Option<u64>| s.map_or("(none)".to_string(), human_size);
                    writeln!(
                        f,
                        "{} ({why}): {} → {}",
                        entry.what,
                        size(old_size),
                        size(new_size)
                    )?;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_added_file_is_diffed_from_dev_null_and_a_changed_one_line_by_line() {
        assert_eq!(
            unified("x.conf", None, Some("a\n")),
            "--- /dev/null\n+++ b/x.conf\n@@ -0,0 +1 @@\n+a\n"
        );
        assert_eq!(
            unified("x.conf", Some("a\nb\n"), Some("a\nc\n")),
            "--- a/x.conf\n+++ b/x.conf\n@@ -1,2 +1,2 @@\n a\n-b\n+c\n"
        );
    }

    #[test]
    fn a_binary_side_is_summarised_with_both_sizes() {
        let change = file_change(
            "blob",
            Some(Content::Text("ab".into())),
            Some(Content::Opaque {
                why: "binary",
                size: 9,
            }),
        );
        assert_eq!(
            change,
            EntryChange::Summary {
                why: "binary".into(),
                old_size: Some(2),
                new_size: Some(9)
            }
        );
    }

    #[test]
    fn objects_pair_up_by_name_and_a_name_used_twice_keeps_its_hash() {
        let paths = [
            "/s/aaaaaaaa1-nginx.conf".to_string(),
            "/s/bbbbbbbb2-app.conf".to_string(),
            "/s/cccccccc3-app.conf".to_string(),
        ];
        let keys: Vec<String> = by_name(&paths).into_keys().collect();
        assert_eq!(
            keys,
            ["app.conf (bbbbbbbb)", "app.conf (cccccccc)", "nginx.conf"]
        );
    }
}
