//! Debian version numbers (`[epoch:]upstream[-revision]`) ordered as dpkg orders them.
//!
//! Parsing and comparison come from the `debversion` crate (Debian policy §5.6.12:
//! `~` sorts before everything, letters before non-letters, digits compared as
//! numbers); this type keeps the text as written so that it prints and locks
//! exactly as the archive spells it.

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

use thiserror::Error;

/// A Debian package version.
#[derive(Debug, Clone)]
pub struct Version {
    text: String,
    parsed: debversion::Version,
}

/// A version string that is not a Debian version.
#[derive(Debug, Error, PartialEq, Eq)]
#[error("{text:?} is not a Debian version: {reason}")]
pub struct VersionError {
    /// The rejected text.
    pub text: String,
    /// What is wrong with it.
    pub reason: String,
}

impl Version {
    /// The version as written in the index.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl FromStr for Version {
    type Err = VersionError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let error = |reason: &str| VersionError {
            text: text.to_string(),
            reason: reason.to_string(),
        };
        if text.is_empty() || text.contains(char::is_whitespace) {
            return Err(error("empty or contains white space"));
        }
        let upstream_start = match text.split_once(':') {
            Some((epoch, _)) if epoch.is_empty() || !epoch.bytes().all(|b| b.is_ascii_digit()) => {
                return Err(error("the epoch must be a number"));
            }
            Some((epoch, _)) => epoch.len() + 1,
            None => 0,
        };
        if !text[upstream_start..].starts_with(|c: char| c.is_ascii_digit()) {
            return Err(error("the upstream part must start with a digit"));
        }
        let parsed = text
            .parse::<debversion::Version>()
            .map_err(|e| error(&e.to_string()))?;
        Ok(Version {
            text: text.to_string(),
            parsed,
        })
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl Ord for Version {
    fn cmp(&self, other: &Self) -> Ordering {
        self.parsed.cmp(&other.parsed)
    }
}

impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// Equal as dpkg sees it: `1.0` equals `1.0-0` and `0:1.0`.
impl PartialEq for Version {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Version {}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn v(s: &str) -> Version {
        s.parse().unwrap()
    }

    /// Pairs `(a, b)` with `a < b`, from Debian policy §5.6.12 and dpkg's own tests.
    const ASCENDING: &[(&str, &str)] = &[
        ("1.0~rc1", "1.0"),
        ("1.0~~", "1.0~"),
        ("1.0~", "1.0"),
        ("1.0", "1.0+b1"),
        ("1.0", "1.0a"),
        ("1.0a", "1.0+"),
        ("1.0", "1.0.1"),
        ("1.9", "1.10"),
        ("1.0-1", "1.0-2"),
        ("1.0-9", "1.0-10"),
        ("1.0-1", "1.0.0-1"),
        ("2.0", "1:0.1"),
        ("1:1.0", "2:0.1"),
        ("15.18-0+deb12u1", "15.20-0+deb12u1"),
        ("2.36-9+deb12u9", "2.36-9+deb12u10"),
        ("1.2.3-1~bpo12+1", "1.2.3-1"),
        ("0.9", "0.10~beta"),
        ("1a", "1b"),
        ("1.0-1a", "1.0-1+"),
    ];

    #[test]
    fn golden_pairs_order_as_policy_says() {
        for (a, b) in ASCENDING {
            assert!(v(a) < v(b), "{a} < {b}");
            assert!(v(b) > v(a), "{b} > {a}");
        }
    }

    /// The table agrees with the real `dpkg --compare-versions` of this machine.
    #[test]
    fn golden_pairs_agree_with_dpkg() {
        for (a, b) in ASCENDING {
            let status = std::process::Command::new("dpkg")
                .args(["--compare-versions", a, "lt", b])
                .status()
                .expect("dpkg is part of every Debian machine");
            assert!(status.success(), "dpkg disagrees: {a} < {b}");
        }
    }

    #[test]
    fn equal_spellings_are_equal() {
        assert_eq!(v("1.0"), v("0:1.0"));
        assert_eq!(v("1.0"), v("1.0-0"));
        assert_eq!(v("1.0").as_str(), "1.0");
    }

    #[test]
    fn rejects_non_versions() {
        for bad in ["", "a1.0", "1.0 2", ":1.0", "a:1.0"] {
            assert!(bad.parse::<Version>().is_err(), "{bad:?} accepted");
        }
    }

    fn version() -> impl Strategy<Value = Version> {
        ("([0-9]:)?", "[0-9][0-9a-z.+~]{0,6}", "(-[0-9a-z+.~]{1,4})?")
            .prop_map(|(e, u, r)| format!("{e}{u}{r}"))
            .prop_filter_map("a valid version", |s| s.parse().ok())
    }

    proptest! {
        #[test]
        fn order_is_total_and_antisymmetric(a in version(), b in version(), c in version()) {
            prop_assert_eq!(a.cmp(&b), b.cmp(&a).reverse());
            prop_assert_eq!(a.cmp(&a), Ordering::Equal);
            if a <= b && b <= c {
                prop_assert!(a <= c);
            }
        }

        #[test]
        fn tilde_sorts_before_the_end(a in version()) {
            let tilde: Version = format!("{a}~").parse().unwrap();
            prop_assert!(tilde < a);
        }
    }
}
