//! Reading a `.deb`: an `ar` archive of `debian-binary`, `control.tar[.xz|.zst|.gz]` and
//! `data.tar[.xz|.zst|.gz]`, read front to back in one pass.
//!
//! Only the `control` file of the control archive is read; maintainer scripts and every other
//! control member are skipped unread, never written anywhere.
use std::io::{self, Read};

/// The largest `control` file read (real ones are a few KiB).
const MAX_CONTROL_LEN: u64 = 1 << 20;

/// The fields of a package's `control` file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DebControl {
    /// `Package:`.
    pub package: String,
    /// `Version:` (with its epoch, if any, e.g. `1:1.35.0-4`).
    pub version: String,
    /// `Architecture:` (e.g. `amd64`, `all`).
    pub architecture: String,
    /// Every field in file order, names as written, continuation lines joined with `\n`.
    pub fields: Vec<(String, String)>,
}

impl DebControl {
    /// Parses one deb822 paragraph (a `control` file). Needs `Package`, `Version` and
    /// `Architecture`.
    pub fn parse(text: &str) -> Result<DebControl, DebError> {
        // A binary package's control file has one paragraph; later ones are ignored.
        let fields = crate::deb822::parse(text)?
            .into_iter()
            .next()
            .map(|paragraph| paragraph.fields().to_vec())
            .unwrap_or_default();
        let get = |field: &'static str| {
            fields
                .iter()
                .find(|(name, _)| name.eq_ignore_ascii_case(field))
                .map(|(_, value)| value.clone())
                .filter(|value| !value.is_empty())
                .ok_or(DebError::MissingField { field })
        };
        Ok(DebControl {
            package: get("Package")?,
            version: get("Version")?,
            architecture: get("Architecture")?,
            fields,
        })
    }

    /// The value of field `name` (case-insensitive), if present.
    pub fn field(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(field, _)| field.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }
}

/// How a member of the archive is compressed, from its name's extension.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    /// `.tar`.
    None,
    /// `.tar.gz`.
    Gzip,
    /// `.tar.xz`.
    Xz,
    /// `.tar.zst`.
    Zstd,
}

impl Compression {
    /// The compression of member `name` if it is `<stem>.tar` plus a known extension.
    fn of_member(name: &str, stem: &str) -> Option<Compression> {
        let rest = name.strip_prefix(stem)?.strip_prefix(".tar")?;
        Some(match rest {
            "" => Compression::None,
            ".gz" => Compression::Gzip,
            ".xz" => Compression::Xz,
            ".zst" => Compression::Zstd,
            _ => return None,
        })
    }

    /// `reader`, decompressed.
    fn decoder<'a>(self, reader: impl Read + 'a) -> io::Result<Box<dyn Read + 'a>> {
        Ok(match self {
            Compression::None => Box::new(reader),
            Compression::Gzip => Box::new(flate2::read::GzDecoder::new(reader)),
            Compression::Xz => Box::new(liblzma::read::XzDecoder::new(reader)),
            Compression::Zstd => Box::new(zstd::stream::read::Decoder::new(reader)?),
        })
    }
}

/// Why a `.deb` could not be read.
#[derive(Debug, thiserror::Error)]
pub enum DebError {
    /// The `ar` container is damaged or not an `ar` archive.
    #[error("not a valid .deb (ar archive): {source}")]
    Archive {
        /// The error the `ar` reader gave.
        source: io::Error,
    },
    /// A member is missing or out of order.
    #[error("not a valid .deb: expected member `{expected}`, found {}", found.as_deref().map_or("the end of the archive".to_string(), |f| format!("`{f}`")))]
    UnexpectedMember {
        /// What the format requires at this point, e.g. `data.tar[.xz|.zst|.gz]`.
        expected: &'static str,
        /// The member found instead (`None`: the archive ended).
        found: Option<String>,
    },
    /// `debian-binary` is not format 2.x.
    #[error("unsupported .deb format version `{version}` (only 2.x is supported)")]
    FormatVersion {
        /// What `debian-binary` says.
        version: String,
    },
    /// Reading or decompressing a member failed.
    #[error("cannot read member `{member}` of the .deb: {source}")]
    Member {
        /// The member, e.g. `control.tar.xz`.
        member: String,
        /// The error.
        source: io::Error,
    },
    /// The control archive has no `control` file.
    #[error("the control archive has no `control` file")]
    NoControlFile,
    /// The `control` file is not a deb822 paragraph.
    #[error("the `control` file is malformed: {0}")]
    BadControl(#[from] crate::deb822::Deb822Error),
    /// The `control` file lacks a required field.
    #[error("the `control` file has no `{field}` field")]
    MissingField {
        /// The field, e.g. `Version`.
        field: &'static str,
    },
}

/// An open `.deb` whose `debian-binary` and control archive have been read; the data archive
/// comes next.
pub struct DebArchive<R: Read> {
    archive: ar::Archive<R>,
    control: DebControl,
}

impl<R: Read> DebArchive<R> {
    /// Reads `debian-binary` and the control archive's `control` file from `reader`.
    pub fn new(reader: R) -> Result<DebArchive<R>, DebError> {
        let mut archive = ar::Archive::new(reader);
        {
            let (name, mut entry) = next_member(&mut archive, "debian-binary")?;
            if name != "debian-binary" {
                return Err(unexpected("debian-binary", name));
            }
            let mut text = String::new();
            (&mut entry)
                .take(64)
                .read_to_string(&mut text)
                .map_err(member_error(&name))?;
            if !text.starts_with("2.") {
                return Err(DebError::FormatVersion {
                    version: text.trim().to_string(),
                });
            }
        }
        let control = {
            let expected = "control.tar[.xz|.zst|.gz]";
            let (name, entry) = next_member(&mut archive, expected)?;
            let compression = Compression::of_member(&name, "control")
                .ok_or(unexpected(expected, name.clone()))?;
            let decoder = compression.decoder(entry).map_err(member_error(&name))?;
            read_control(decoder).map_err(|e| match e {
                ControlReadError::Io(source) => DebError::Member {
                    member: name,
                    source,
                },
                ControlReadError::Deb(e) => e,
            })?
        };
        Ok(DebArchive { archive, control })
    }

    /// The package's control fields.
    pub fn control(&self) -> &DebControl {
        &self.control
    }

    /// The data archive, decompressed: a tar stream to unpack. The name of the member is
    /// returned too, for error messages.
    pub fn data(&mut self) -> Result<(String, Box<dyn Read + '_>), DebError> {
        let expected = "data.tar[.xz|.zst|.gz]";
        let (name, entry) = next_member(&mut self.archive, expected)?;
        let compression =
            Compression::of_member(&name, "data").ok_or(unexpected(expected, name.clone()))?;
        let decoder = compression.decoder(entry).map_err(member_error(&name))?;
        Ok((name, decoder))
    }

    /// The underlying reader, positioned after what was read so far.
    pub fn into_inner(self) -> R {
        // ar's into_inner cannot fail (it only hands back the reader).
        match self.archive.into_inner() {
            Ok(reader) => reader,
            Err(_) => unreachable!("ar::Archive::into_inner always succeeds"),
        }
    }
}

/// A failure while reading the control archive: of the stream, or of its content.
enum ControlReadError {
    Io(io::Error),
    Deb(DebError),
}

/// Finds `control` (or `./control`) in the control tar and parses it; reads nothing else.
fn read_control(reader: impl Read) -> Result<DebControl, ControlReadError> {
    let mut tar = tar::Archive::new(reader);
    for entry in tar.entries().map_err(ControlReadError::Io)? {
        let entry = entry.map_err(ControlReadError::Io)?;
        let path = entry.path_bytes();
        let path: &[u8] = path.strip_prefix(b"./").unwrap_or(&path);
        if path != b"control" || entry.header().entry_type() != tar::EntryType::Regular {
            continue;
        }
        let mut text = String::new();
        entry
            .take(MAX_CONTROL_LEN)
            .read_to_string(&mut text)
            .map_err(ControlReadError::Io)?;
        return DebControl::parse(&text).map_err(ControlReadError::Deb);
    }
    Err(ControlReadError::Deb(DebError::NoControlFile))
}

/// The next member with its name (a trailing `/`, as GNU ar writes, removed). Members with
/// names starting with `_` (reserved by the format) are not expected here and refused.
fn next_member<'a, R: Read>(
    archive: &'a mut ar::Archive<R>,
    expected: &'static str,
) -> Result<(String, ar::Entry<'a, R>), DebError> {
    let entry = match archive.next_entry() {
        None => {
            return Err(DebError::UnexpectedMember {
                expected,
                found: None,
            })
        }
        Some(entry) => entry.map_err(|source| DebError::Archive { source })?,
    };
    let raw = entry.header().identifier();
    let raw = raw.strip_suffix(b"/").unwrap_or(raw);
    let name = String::from_utf8_lossy(raw).into_owned();
    Ok((name, entry))
}

/// The error for member `found` where `expected` should be.
fn unexpected(expected: &'static str, found: String) -> DebError {
    DebError::UnexpectedMember {
        expected,
        found: Some(found),
    }
}

/// A closure making a [`DebError::Member`] for `member`.
fn member_error(member: &str) -> impl FnOnce(io::Error) -> DebError {
    let member = member.to_string();
    move |source| DebError::Member { member, source }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_fields_are_parsed() {
        let text = "Package: busybox\nVersion: 1:1.35.0-4+b1\nArchitecture: amd64\n\
                    Description: tiny utilities\n more text\n .\n end\n";
        let control = DebControl::parse(text).unwrap();
        assert_eq!(control.package, "busybox");
        assert_eq!(control.version, "1:1.35.0-4+b1");
        assert_eq!(control.architecture, "amd64");
        assert_eq!(
            control.field("description"),
            // A lone `.` on a continuation line is an empty line (Debian policy §5.6.13).
            Some("tiny utilities\nmore text\n\nend")
        );
    }

    #[test]
    fn control_without_version_is_refused() {
        let error = DebControl::parse("Package: a\nArchitecture: all\n").unwrap_err();
        assert!(matches!(error, DebError::MissingField { field: "Version" }));
        let error = DebControl::parse(" x\n").unwrap_err();
        assert!(matches!(
            error,
            DebError::BadControl(crate::deb822::Deb822Error::OrphanContinuation { line: 1 })
        ));
    }

    #[test]
    fn member_names_give_compression() {
        assert_eq!(
            Compression::of_member("data.tar.xz", "data"),
            Some(Compression::Xz)
        );
        assert_eq!(
            Compression::of_member("data.tar", "data"),
            Some(Compression::None)
        );
        assert_eq!(Compression::of_member("data.tar.bz2", "data"), None);
        assert_eq!(Compression::of_member("control.tar.zst", "data"), None);
    }

    proptest::proptest! {
        #[test]
        fn control_parse_never_panics(text in "(?s).{0,200}") {
            let _ = DebControl::parse(&text);
        }

        #[test]
        fn control_fields_round_trip(
            package in "[a-z0-9][a-z0-9+.-]{1,20}",
            version in "[0-9][A-Za-z0-9.+~:-]{0,20}",
        ) {
            let text = format!("Package: {package}\nVersion: {version}\nArchitecture: all\n");
            let control = DebControl::parse(&text).unwrap();
            proptest::prop_assert_eq!(control.package, package);
            proptest::prop_assert_eq!(control.version, version);
        }
    }
}
