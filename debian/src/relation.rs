//! Relation fields (`Depends`, `Pre-Depends`, `Provides`, `Build-Depends`):
//! `a (>= 1.0) | b:any, c [amd64] <!nocheck>`.
//!
//! A field is a comma-separated list of relations; a relation is a `|`-separated
//! list of alternatives, of which one must hold.

use std::fmt;

use thiserror::Error;

use crate::version::{Version, VersionError};

/// A comparison operator of a versioned relation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `<<`
    Less,
    /// `<=`
    LessEq,
    /// `=`
    Eq,
    /// `>=`
    GreaterEq,
    /// `>>`
    Greater,
}

impl Op {
    fn parse(s: &str) -> Option<Op> {
        Some(match s {
            "<<" => Op::Less,
            // `<` and `>` are obsolete spellings of `<=` and `>=` (policy §7.1).
            "<=" | "<" => Op::LessEq,
            "=" => Op::Eq,
            ">=" | ">" => Op::GreaterEq,
            ">>" => Op::Greater,
            _ => return None,
        })
    }

    fn as_str(self) -> &'static str {
        match self {
            Op::Less => "<<",
            Op::LessEq => "<=",
            Op::Eq => "=",
            Op::GreaterEq => ">=",
            Op::Greater => ">>",
        }
    }
}

/// A version constraint such as `(>= 1.0)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Constraint {
    /// The operator.
    pub op: Op,
    /// The version it compares with.
    pub version: Version,
}

impl Constraint {
    /// Whether `v` satisfies the constraint.
    pub fn admits(&self, v: &Version) -> bool {
        let ord = v.cmp(&self.version);
        match self.op {
            Op::Less => ord.is_lt(),
            Op::LessEq => ord.is_le(),
            Op::Eq => ord.is_eq(),
            Op::GreaterEq => ord.is_ge(),
            Op::Greater => ord.is_gt(),
        }
    }
}

impl fmt::Display for Constraint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "({} {})", self.op.as_str(), self.version)
    }
}

/// An architecture qualifier after the name: `b:any`, `b:native`, `b:amd64`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ArchQualifier {
    /// `:any`: any architecture's package (Multi-Arch: allowed).
    Any,
    /// `:native`: the native architecture.
    Native,
    /// A named architecture.
    Named(String),
}

/// One alternative of a relation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Alternative {
    /// The package (or virtual package) name.
    pub name: String,
    /// `:any`, `:native` or `:ARCH`, if given.
    pub arch_qualifier: Option<ArchQualifier>,
    /// The version constraint, if any.
    pub constraint: Option<Constraint>,
    /// `[amd64 !i386]`: architectures the alternative is limited to; `true` = negated.
    pub arch_restrictions: Vec<(bool, String)>,
    /// `<!nocheck> <stage1 cross>`: build-profile formulas; each inner list is an AND.
    pub profiles: Vec<Vec<(bool, String)>>,
}

impl Alternative {
    /// Whether this alternative applies when building for `arch` with the given
    /// build `profiles` active (binary packages: no profiles).
    pub fn applies(&self, arch: &str, profiles: &[&str]) -> bool {
        let arch_ok = if self.arch_restrictions.is_empty() {
            true
        } else if self.arch_restrictions.iter().all(|(neg, _)| *neg) {
            self.arch_restrictions.iter().all(|(_, a)| a != arch)
        } else {
            self.arch_restrictions
                .iter()
                .any(|(neg, a)| !*neg && a == arch)
        };
        let profile_ok = self.profiles.is_empty()
            || self.profiles.iter().any(|and| {
                and.iter()
                    .all(|(neg, p)| profiles.contains(&p.as_str()) != *neg)
            });
        arch_ok && profile_ok
    }
}

impl fmt::Display for Alternative {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)?;
        match &self.arch_qualifier {
            Some(ArchQualifier::Any) => f.write_str(":any")?,
            Some(ArchQualifier::Native) => f.write_str(":native")?,
            Some(ArchQualifier::Named(a)) => write!(f, ":{a}")?,
            None => {}
        }
        if let Some(c) = &self.constraint {
            write!(f, " {c}")?;
        }
        if !self.arch_restrictions.is_empty() {
            let list: Vec<String> = self
                .arch_restrictions
                .iter()
                .map(|(neg, a)| format!("{}{a}", if *neg { "!" } else { "" }))
                .collect();
            write!(f, " [{}]", list.join(" "))?;
        }
        for and in &self.profiles {
            let list: Vec<String> = and
                .iter()
                .map(|(neg, p)| format!("{}{p}", if *neg { "!" } else { "" }))
                .collect();
            write!(f, " <{}>", list.join(" "))?;
        }
        Ok(())
    }
}

/// A relation: alternatives of which the first satisfiable one is taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Relation {
    /// The alternatives, in the order written.
    pub alternatives: Vec<Alternative>,
}

impl fmt::Display for Relation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self.alternatives.iter().map(|a| a.to_string()).collect();
        f.write_str(&parts.join(" | "))
    }
}

/// Why a relation field does not parse.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum RelationError {
    /// A malformed alternative.
    #[error("bad relation {text:?}: {reason}")]
    Syntax {
        /// The alternative's text.
        text: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// A bad version inside a constraint.
    #[error("bad relation {text:?}: {source}")]
    Version {
        /// The alternative's text.
        text: String,
        /// The version error.
        source: VersionError,
    },
}

/// Parses a whole relation field (empty field: no relations).
pub fn parse_relations(field: &str) -> Result<Vec<Relation>, RelationError> {
    field
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|rel| {
            let alternatives = rel
                .split('|')
                .map(|a| parse_alternative(a.trim()))
                .collect::<Result<_, _>>()?;
            Ok(Relation { alternatives })
        })
        .collect()
}

/// Parses one alternative such as `libc6 (>= 2.36) [amd64] <!nocheck>`.
pub fn parse_alternative(text: &str) -> Result<Alternative, RelationError> {
    let syntax = |reason| RelationError::Syntax {
        text: text.to_string(),
        reason,
    };
    let name_end = text
        .find(|c: char| c.is_whitespace() || "([<".contains(c))
        .unwrap_or(text.len());
    let (full_name, mut rest) = text.split_at(name_end);
    let (name, qualifier) = match full_name.split_once(':') {
        Some((n, "any")) => (n, Some(ArchQualifier::Any)),
        Some((n, "native")) => (n, Some(ArchQualifier::Native)),
        Some((n, a)) if is_name(a) => (n, Some(ArchQualifier::Named(a.to_string()))),
        Some(_) => return Err(syntax("bad architecture qualifier")),
        None => (full_name, None),
    };
    if !is_name(name) {
        return Err(syntax(
            "a package name is lower-case letters, digits and + - .",
        ));
    }
    let mut alt = Alternative {
        name: name.to_string(),
        arch_qualifier: qualifier,
        constraint: None,
        arch_restrictions: Vec::new(),
        profiles: Vec::new(),
    };
    rest = rest.trim_start();
    if let Some(r) = rest.strip_prefix('(') {
        let (inner, after) = r.split_once(')').ok_or(syntax("unclosed `(`"))?;
        let inner = inner.trim();
        let op_end = inner
            .find(|c: char| !"<=>".contains(c))
            .ok_or(syntax("a constraint needs a version"))?;
        let op = Op::parse(&inner[..op_end]).ok_or(syntax("unknown operator"))?;
        let version = inner[op_end..]
            .trim()
            .parse()
            .map_err(|source| RelationError::Version {
                text: text.to_string(),
                source,
            })?;
        alt.constraint = Some(Constraint { op, version });
        rest = after.trim_start();
    }
    if let Some(r) = rest.strip_prefix('[') {
        let (inner, after) = r.split_once(']').ok_or(syntax("unclosed `[`"))?;
        alt.arch_restrictions = negatable_words(inner);
        rest = after.trim_start();
    }
    while let Some(r) = rest.strip_prefix('<') {
        let (inner, after) = r.split_once('>').ok_or(syntax("unclosed `<`"))?;
        alt.profiles.push(negatable_words(inner));
        rest = after.trim_start();
    }
    if !rest.is_empty() {
        return Err(syntax("unexpected text after the relation"));
    }
    Ok(alt)
}

fn negatable_words(s: &str) -> Vec<(bool, String)> {
    s.split_whitespace()
        .map(|w| match w.strip_prefix('!') {
            Some(w) => (true, w.to_string()),
            None => (false, w.to_string()),
        })
        .collect()
}

fn is_name(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "+-.".contains(c))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_the_full_syntax() {
        let rels =
            parse_relations("a (>= 1.0) | b:any, c [amd64] <!nocheck>, d:native (<< 2~)").unwrap();
        assert_eq!(rels.len(), 3);
        assert_eq!(rels[0].alternatives.len(), 2);
        let a = &rels[0].alternatives[0];
        assert_eq!(a.name, "a");
        assert_eq!(a.constraint.as_ref().unwrap().op, Op::GreaterEq);
        assert_eq!(
            rels[0].alternatives[1].arch_qualifier,
            Some(ArchQualifier::Any)
        );
        let c = &rels[1].alternatives[0];
        assert_eq!(c.arch_restrictions, vec![(false, "amd64".to_string())]);
        assert_eq!(c.profiles, vec![vec![(true, "nocheck".to_string())]]);
        assert_eq!(rels[2].to_string(), "d:native (<< 2~)");
        assert_eq!(rels[1].to_string(), "c [amd64] <!nocheck>");
    }

    #[test]
    fn restrictions_apply_as_policy_says() {
        let alt = |s| parse_alternative(s).unwrap();
        assert!(alt("c [amd64]").applies("amd64", &[]));
        assert!(!alt("c [i386 arm64]").applies("amd64", &[]));
        assert!(!alt("c [!amd64]").applies("amd64", &[]));
        assert!(alt("c [!i386]").applies("amd64", &[]));
        assert!(alt("c <!nocheck>").applies("amd64", &[]));
        assert!(!alt("c <!nocheck>").applies("amd64", &["nocheck"]));
        assert!(!alt("c <stage1>").applies("amd64", &[]));
        assert!(alt("c <stage1> <!cross>").applies("amd64", &[]));
    }

    #[test]
    fn constraints_admit_versions() {
        let c = |s: &str| parse_alternative(s).unwrap().constraint.unwrap();
        let v = |s: &str| s.parse::<Version>().unwrap();
        assert!(c("a (>= 1.0)").admits(&v("1.0")));
        assert!(!c("a (>> 1.0)").admits(&v("1.0")));
        assert!(c("a (<< 1.0)").admits(&v("1.0~rc1")));
        assert!(c("a (= 1.0)").admits(&v("1.0-0")));
        assert!(c("a (<= 1:0)").admits(&v("9.9")));
    }

    #[test]
    fn rejects_malformed_relations() {
        for bad in [
            "A", "a (>= )", "a (=> 1)", "a (>= 1", "a [amd64", "a b", "a:", "a (~ 1)",
        ] {
            assert!(parse_relations(bad).is_err(), "{bad:?} accepted");
        }
        assert_eq!(parse_relations(" , ").unwrap(), vec![]);
    }

    fn alternative() -> impl Strategy<Value = String> {
        (
            "[a-z0-9][a-z0-9+.-]{1,8}",
            "(:any|:native)?",
            "( \\((<<|<=|=|>=|>>) [0-9][0-9a-z.~+]{0,5}\\))?",
            "( \\[!?[a-z0-9]{2,6}\\])?",
            "( <!?[a-z]{2,6}>)?",
        )
            .prop_map(|(a, b, c, d, e)| format!("{a}{b}{c}{d}{e}"))
    }

    proptest! {
        #[test]
        fn display_then_parse_is_identity(
            rels in proptest::collection::vec(proptest::collection::vec(alternative(), 1..3), 0..4)
        ) {
            let text = rels.iter().map(|r| r.join(" | ")).collect::<Vec<_>>().join(", ");
            let parsed = parse_relations(&text).unwrap();
            let shown = parsed.iter().map(|r| r.to_string()).collect::<Vec<_>>().join(", ");
            prop_assert_eq!(shown, text);
        }
    }
}
