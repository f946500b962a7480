//! Signed `InRelease` files: checking the signature with `gpgv` against the
//! source's keyrings, then reading the suite, dates and the SHA256 index list.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use thiserror::Error;

use crate::deb822::{self, Deb822Error};

/// One line of the `SHA256` list: a file of the suite with its hash and size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexFile {
    /// Lower-case hex SHA256.
    pub sha256: String,
    /// Size in bytes.
    pub size: u64,
    /// Path under `dists/SUITE/` (`main/binary-amd64/Packages.xz`).
    pub path: String,
}

/// A verified and parsed `Release`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Release {
    /// `Suite`.
    pub suite: Option<String>,
    /// `Codename`.
    pub codename: Option<String>,
    /// `Date`.
    pub date: Option<SystemTime>,
    /// `Valid-Until`.
    pub valid_until: Option<SystemTime>,
    /// The `SHA256` list.
    pub files: Vec<IndexFile>,
}

/// Why an `InRelease` is refused.
#[derive(Debug, Error)]
pub enum ReleaseError {
    /// gpgv could not be run.
    #[error("cannot run gpgv (install the `gpgv` package): {0}")]
    Gpgv(std::io::Error),
    /// The signature does not match the content.
    #[error("bad signature on InRelease: the file was changed after signing")]
    BadSignature,
    /// None of the keyrings holds the signing key.
    #[error("InRelease is signed by a key not in {keyrings:?} ({detail})")]
    NoKey {
        /// The keyrings tried.
        keyrings: Vec<PathBuf>,
        /// gpgv's word on it.
        detail: String,
    },
    /// No keyring was given or none exists.
    #[error("no keyring to verify InRelease with (looked for {0:?})")]
    NoKeyring(Vec<PathBuf>),
    /// gpgv refused for another reason (not signed, expired key, …).
    #[error("gpgv refused InRelease: {0}")]
    Refused(String),
    /// The signed text is not a Release paragraph.
    #[error("InRelease content: {0}")]
    Syntax(#[from] Deb822Error),
    /// A field has a bad value.
    #[error("InRelease: bad {field}: {value:?}")]
    BadField {
        /// The field.
        field: &'static str,
        /// Its value.
        value: String,
    },
    /// `Valid-Until` has passed and apt is configured to check it.
    #[error("InRelease of {suite} expired {} s ago (Valid-Until)\n  hint: run `apt-get update`, or set Acquire::Check-Valid-Until \"false\" for an archive snapshot", .expired_for.as_secs())]
    Expired {
        /// The suite.
        suite: String,
        /// How long ago it expired.
        expired_for: Duration,
    },
    /// The index is not listed in the Release.
    #[error("the Release lists no {0}")]
    NotListed(String),
    /// An index's bytes do not match the Release's hash.
    #[error("{path}: sha256 {got} does not match the signed Release's {want}")]
    HashMismatch {
        /// The index path.
        path: String,
        /// The hash of the bytes given.
        got: String,
        /// The hash the Release lists.
        want: String,
    },
}

/// Checks the clear-signed `inrelease` with `gpgv` against `keyrings` and returns
/// the signed text (only the text covered by the signature).
pub fn verify_signature(inrelease: &[u8], keyrings: &[PathBuf]) -> Result<Vec<u8>, ReleaseError> {
    let existing: Vec<&PathBuf> = keyrings.iter().filter(|k| k.exists()).collect();
    if existing.is_empty() {
        return Err(ReleaseError::NoKeyring(keyrings.to_vec()));
    }
    // gpgv wants a home; an empty private one keeps the user's ~/.gnupg out of it.
    let home = tempfile::tempdir().map_err(ReleaseError::Gpgv)?;
    let input = home.path().join("InRelease");
    std::fs::write(&input, inrelease).map_err(ReleaseError::Gpgv)?;
    let mut cmd = Command::new("gpgv");
    cmd.arg("--homedir")
        .arg(home.path())
        .args(["--status-fd", "2"]);
    for k in &existing {
        cmd.arg("--keyring").arg(absolute(k));
    }
    let out = cmd
        .args(["--output", "-"])
        .arg(&input)
        .stdin(Stdio::null())
        .output()
        .map_err(ReleaseError::Gpgv)?;
    let status = String::from_utf8_lossy(&out.stderr);
    let has = |word: &str| {
        status
            .lines()
            .any(|l| l.starts_with(&format!("[GNUPG:] {word}")))
    };
    if out.status.success() && has("GOODSIG") && has("VALIDSIG") {
        return Ok(out.stdout);
    }
    if has("BADSIG") {
        return Err(ReleaseError::BadSignature);
    }
    if has("NO_PUBKEY") {
        let detail = status
            .lines()
            .find(|l| l.starts_with("[GNUPG:] NO_PUBKEY"))
            .unwrap_or("")
            .trim_start_matches("[GNUPG:] ")
            .to_string();
        return Err(ReleaseError::NoKey {
            keyrings: existing.into_iter().cloned().collect(),
            detail,
        });
    }
    let reason: Vec<&str> = status
        .lines()
        .filter(|l| !l.starts_with("[GNUPG:]"))
        .collect();
    Err(ReleaseError::Refused(reason.join("; ")))
}

fn absolute(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}

impl Release {
    /// Verifies `inrelease` against `keyrings`, parses it, and enforces
    /// `Valid-Until` at `now` when `check_valid_until` is set.
    pub fn verify(
        inrelease: &[u8],
        keyrings: &[PathBuf],
        check_valid_until: bool,
        now: SystemTime,
    ) -> Result<Release, ReleaseError> {
        let text = verify_signature(inrelease, keyrings)?;
        let release = Release::parse(&text)?;
        if check_valid_until {
            release.check_valid_until(now)?;
        }
        Ok(release)
    }

    /// Refuses a Release whose `Valid-Until` is before `now`.
    pub fn check_valid_until(&self, now: SystemTime) -> Result<(), ReleaseError> {
        match self.valid_until.map(|until| now.duration_since(until)) {
            Some(Ok(expired_for)) if !expired_for.is_zero() => {
                let suite = self
                    .suite
                    .clone()
                    .or(self.codename.clone())
                    .unwrap_or_default();
                Err(ReleaseError::Expired { suite, expired_for })
            }
            _ => Ok(()),
        }
    }

    /// Parses the (already verified) text of a Release file.
    pub fn parse(text: &[u8]) -> Result<Release, ReleaseError> {
        let paras = deb822::parse_bytes(text)?;
        let p = paras.first().ok_or(ReleaseError::BadField {
            field: "Release",
            value: String::new(),
        })?;
        let date = |field: &'static str| {
            p.get(field)
                .map(|v| {
                    parse_date(v).ok_or(ReleaseError::BadField {
                        field,
                        value: v.to_string(),
                    })
                })
                .transpose()
        };
        let mut files = Vec::new();
        for line in p
            .get("SHA256")
            .unwrap_or("")
            .lines()
            .filter(|l| !l.trim().is_empty())
        {
            let bad = || ReleaseError::BadField {
                field: "SHA256",
                value: line.to_string(),
            };
            let [sha, size, path] = line.split_whitespace().collect::<Vec<_>>()[..] else {
                return Err(bad());
            };
            if sha.len() != 64 || !sha.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(bad());
            }
            files.push(IndexFile {
                sha256: sha.to_ascii_lowercase(),
                size: size.parse().map_err(|_| bad())?,
                path: path.to_string(),
            });
        }
        Ok(Release {
            suite: p.get("Suite").map(str::to_string),
            codename: p.get("Codename").map(str::to_string),
            date: date("Date")?,
            valid_until: date("Valid-Until")?,
            files,
        })
    }

    /// The listed file at `path` (under `dists/SUITE/`).
    pub fn file(&self, path: &str) -> Option<&IndexFile> {
        self.files.iter().find(|f| f.path == path)
    }

    /// The `Packages` index to fetch for `component` and `arch`: `Packages.xz`,
    /// else `Packages.gz`, else the plain `Packages`.
    pub fn index_for(&self, component: &str, arch: &str) -> Option<&IndexFile> {
        ["Packages.xz", "Packages.gz", "Packages"]
            .iter()
            .find_map(|name| self.file(&format!("{component}/binary-{arch}/{name}")))
    }

    /// Checks `bytes` against the listed hash and size of `path`.
    pub fn check(&self, path: &str, bytes: &[u8]) -> Result<(), ReleaseError> {
        let want = self
            .file(path)
            .ok_or_else(|| ReleaseError::NotListed(path.to_string()))?;
        let got = sha256_hex(bytes);
        if got != want.sha256 || bytes.len() as u64 != want.size {
            return Err(ReleaseError::HashMismatch {
                path: path.to_string(),
                got,
                want: want.sha256.clone(),
            });
        }
        Ok(())
    }
}

/// Lower-case hex SHA256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    crate::fetch::Sha256::of(bytes).to_string()
}

/// Parses Release dates, RFC 2822 as Debian writes them:
/// `Sat, 17 May 2025 08:51:23 UTC` (also `GMT`, `Z` or `+0000`-style offsets).
pub fn parse_date(text: &str) -> Option<SystemTime> {
    let rest = text.split_once(',').map_or(text, |(_, r)| r);
    let w: Vec<&str> = rest.split_whitespace().collect();
    let [day, month, year, time, zone @ ..] = w.as_slice() else {
        return None;
    };
    let day: i64 = day.parse().ok()?;
    let month = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ]
    .iter()
    .position(|m| m.eq_ignore_ascii_case(month))? as i64
        + 1;
    let year: i64 = year.parse().ok()?;
    let hms: Vec<i64> = time
        .split(':')
        .map(|x| x.parse().ok())
        .collect::<Option<_>>()?;
    let [h, m, s] = hms[..] else { return None };
    let offset = match zone {
        [] | ["UTC"] | ["GMT"] | ["Z"] => 0,
        [z] if z.len() == 5 && (z.starts_with('+') || z.starts_with('-')) => {
            let n: i64 = z[1..].parse().ok()?;
            let secs = (n / 100) * 3600 + (n % 100) * 60;
            if z.starts_with('-') {
                -secs
            } else {
                secs
            }
        }
        _ => return None,
    };
    if !(1..=31).contains(&day) || h > 23 || m > 59 || s > 60 {
        return None;
    }
    let secs = days_from_civil(year, month, day) * 86_400 + h * 3600 + m * 60 + s - offset;
    Some(UNIX_EPOCH + Duration::from_secs(u64::try_from(secs).ok()?))
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_parse_to_golden_unix_times() {
        let secs = |t: &str| {
            parse_date(t)
                .unwrap()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_secs()
        };
        assert_eq!(secs("Thu, 01 Jan 1970 00:00:00 UTC"), 0);
        // `date -u -d '2025-05-17 08:51:23' +%s`
        assert_eq!(secs("Sat, 17 May 2025 08:51:23 UTC"), 1_747_471_883);
        assert_eq!(secs("Sat, 29 Feb 2020 12:00:00 GMT"), 1_582_977_600);
        assert_eq!(secs("Sat, 29 Feb 2020 13:00:00 +0100"), 1_582_977_600);
        assert!(parse_date("Sat, 17 Mai 2025 08:51:23 UTC").is_none());
        assert!(parse_date("yesterday").is_none());
    }

    const RELEASE: &str = "Origin: Test\nSuite: stable\nCodename: trixie\n\
        Date: Sat, 17 May 2025 08:51:23 UTC\nValid-Until: Sat, 24 May 2025 08:51:23 UTC\n\
        MD5Sum:\n 00000000000000000000000000000000 1 main/binary-amd64/Packages\nSHA256:\n \
        2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824 5 main/binary-amd64/Packages\n \
        1111111111111111111111111111111111111111111111111111111111111111 9 main/binary-amd64/Packages.gz\n";

    #[test]
    fn parses_fields_and_picks_compressed_indexes() {
        let r = Release::parse(RELEASE.as_bytes()).unwrap();
        assert_eq!(r.suite.as_deref(), Some("stable"));
        assert_eq!(r.codename.as_deref(), Some("trixie"));
        assert_eq!(r.files.len(), 2);
        assert_eq!(
            r.index_for("main", "amd64").unwrap().path,
            "main/binary-amd64/Packages.gz"
        );
        assert!(r.index_for("contrib", "amd64").is_none());
        r.check("main/binary-amd64/Packages", b"hello").unwrap();
        let err = r.check("main/binary-amd64/Packages", b"hellO").unwrap_err();
        assert!(matches!(err, ReleaseError::HashMismatch { .. }));
    }

    #[test]
    fn valid_until_is_enforced() {
        let r = Release::parse(RELEASE.as_bytes()).unwrap();
        let until = r.valid_until.unwrap();
        r.check_valid_until(until).unwrap();
        r.check_valid_until(until - Duration::from_secs(86_400))
            .unwrap();
        let err = r
            .check_valid_until(until + Duration::from_secs(3600))
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "InRelease of stable expired 3600 s ago (Valid-Until)\n  hint: run `apt-get update`, or set Acquire::Check-Valid-Until \"false\" for an archive snapshot"
        );
    }

    #[test]
    fn sha256_matches_the_standard_vector() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
