//! `--on SELECTOR`: which hosts a command touches.
//!
//! A selector is a comma-separated list of terms; a host is selected when any
//! term matches it. A term is a host name, a class name, `class=NAME`,
//! `host=NAME`, or a label `KEY=VALUE`. Names may use `*` as a wildcard.
use ferry_lang::inventory::HostEntry;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Term {
    Name(String),
    Class(String),
    Host(String),
    Label(String, String),
}

/// A parsed `--on` selector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selector {
    terms: Vec<Term>,
}

/// A `--on` selector that does not parse.
#[derive(Debug, thiserror::Error, miette::Diagnostic, PartialEq, Eq)]
#[error("bad selector `{text}`: {reason}")]
#[diagnostic(help("a selector is host or class names, `class=C`, `host=H` or labels `KEY=VALUE`, comma-separated; `*` matches anything"))]
pub struct SelectorError {
    /// The selector as given.
    pub text: String,
    /// What is wrong with it.
    pub reason: String,
}

fn glob(pattern: &str, text: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == text,
        Some((head, rest)) => {
            let Some(tail) = text.strip_prefix(head) else {
                return false;
            };
            (0..=tail.len()).any(|i| tail.is_char_boundary(i) && glob(rest, &tail[i..]))
        }
    }
}

impl Selector {
    /// Parses comma-separated terms: names, `class=C`, `host=H`, `KEY=VALUE` (with `*` globs).
    pub fn parse(text: &str) -> Result<Selector, SelectorError> {
        let bad = |reason: &str| SelectorError {
            text: text.to_string(),
            reason: reason.to_string(),
        };
        let mut terms = Vec::new();
        for raw in text.split(',') {
            let raw = raw.trim();
            if raw.is_empty() {
                return Err(bad("an empty term; separate terms with single commas"));
            }
            let term = match raw.split_once('=') {
                Some(("class", v)) => Term::Class(v.to_string()),
                Some(("host", v)) => Term::Host(v.to_string()),
                Some((k, v)) if !k.is_empty() && !v.is_empty() => {
                    Term::Label(k.to_string(), v.to_string())
                }
                Some(_) => {
                    return Err(bad(
                        "a label term needs both a key and a value, like `datacenter=eu1`",
                    ))
                }
                None => Term::Name(raw.to_string()),
            };
            terms.push(term);
        }
        Ok(Selector { terms })
    }

    /// Whether any term matches `host`.
    pub fn matches(&self, host: &HostEntry) -> bool {
        self.terms.iter().any(|term| match term {
            Term::Name(n) => glob(n, &host.name) || glob(n, &host.class),
            Term::Class(c) => glob(c, &host.class),
            Term::Host(h) => glob(h, &host.name),
            Term::Label(k, v) => host.labels.get(k).is_some_and(|value| glob(v, value)),
        })
    }
}

/// The hosts `selector` picks (all when `None`), in inventory order; an
/// error when a selector picks nothing (almost always a typo).
pub fn select<'a>(
    hosts: &'a [HostEntry],
    selector: Option<&Selector>,
    text: Option<&str>,
) -> Result<Vec<&'a HostEntry>, SelectorError> {
    let picked: Vec<&HostEntry> = hosts
        .iter()
        .filter(|h| selector.is_none_or(|s| s.matches(h)))
        .collect();
    if picked.is_empty() {
        return Err(SelectorError {
            text: text.unwrap_or("").to_string(),
            reason: format!(
                "it matches none of the site's hosts ({})",
                hosts
                    .iter()
                    .map(|h| h.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        });
    }
    Ok(picked)
}

/// `--on TEXT` in one step: parse (if given) and select.
pub fn select_on<'a>(
    hosts: &'a [HostEntry],
    on: Option<&str>,
) -> Result<Vec<&'a HostEntry>, SelectorError> {
    let selector = on.map(Selector::parse).transpose()?;
    select(hosts, selector.as_ref(), on)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(name: &str, class: &str, dc: &str) -> HostEntry {
        HostEntry {
            name: name.into(),
            class: class.into(),
            address: "192.0.2.1".into(),
            user: None,
            port: None,
            labels: [("datacenter".to_string(), dc.to_string())].into(),
            identity_file: None,
        }
    }

    #[test]
    fn selects_by_name_class_label_and_wildcard() {
        let hosts = vec![
            host("web1", "web", "dc1"),
            host("web2", "web", "dc2"),
            host("db1", "db", "dc1"),
        ];
        let names = |sel: &str| -> Vec<String> {
            let s = Selector::parse(sel).unwrap();
            select(&hosts, Some(&s), Some(sel))
                .unwrap()
                .iter()
                .map(|h| h.name.clone())
                .collect()
        };
        assert_eq!(names("web"), ["web1", "web2"]);
        assert_eq!(names("db1"), ["db1"]);
        assert_eq!(names("datacenter=dc1"), ["web1", "db1"]);
        assert_eq!(names("class=db,web2"), ["web2", "db1"]);
        assert_eq!(names("host=web*"), ["web1", "web2"]);
        assert_eq!(names("*1"), ["web1", "db1"]);
    }

    #[test]
    fn a_selector_matching_nothing_is_an_error() {
        let hosts = vec![host("web1", "web", "dc1")];
        let s = Selector::parse("wbe1").unwrap();
        let err = select(&hosts, Some(&s), Some("wbe1")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "bad selector `wbe1`: it matches none of the site's hosts (web1)"
        );
        assert!(Selector::parse("web,,db").is_err());
        assert!(Selector::parse("=x").is_err());
    }
}
