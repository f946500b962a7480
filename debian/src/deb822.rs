//! A small strict parser for deb822 files (`Packages`, `Release`, `*.sources`).
//!
//! A file is a list of paragraphs separated by blank lines; a paragraph is a list of
//! `Name: value` fields, where a value continues on lines that start with a space or
//! a tab. Lines starting with `#` are comments. Field names compare without case.

use thiserror::Error;

/// One paragraph: its fields in file order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Paragraph {
    /// The 1-based line the paragraph starts on.
    pub line: usize,
    fields: Vec<(String, String)>,
}

/// Why a deb822 text is not well formed.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum Deb822Error {
    /// A line that is neither a field, a continuation, a comment nor blank.
    #[error("line {line}: expected `Name: value`, found {text:?}")]
    NotAField {
        /// 1-based line number.
        line: usize,
        /// The offending line.
        text: String,
    },
    /// A continuation line before any field of its paragraph.
    #[error("line {line}: continuation line without a field before it")]
    OrphanContinuation {
        /// 1-based line number.
        line: usize,
    },
    /// The same field twice in one paragraph.
    #[error("line {line}: field {name:?} appears twice in one paragraph")]
    DuplicateField {
        /// 1-based line number of the second occurrence.
        line: usize,
        /// The field name.
        name: String,
    },
    /// The text is not UTF-8.
    #[error("the file is not UTF-8 text")]
    NotUtf8,
}

impl Paragraph {
    /// A paragraph from its fields (used by tests and writers).
    pub fn from_fields(fields: Vec<(String, String)>) -> Self {
        Paragraph { line: 1, fields }
    }

    /// The value of a field, looked up without case; continuation lines are joined
    /// with `\n` and each is trimmed.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// All fields in file order.
    pub fn fields(&self) -> &[(String, String)] {
        &self.fields
    }

    /// Renders the paragraph back to deb822 text (without the blank separator line).
    pub fn render(&self) -> String {
        let mut out = String::new();
        for (name, value) in &self.fields {
            let mut lines = value.split('\n');
            let first = lines.next().unwrap_or("");
            out.push_str(name);
            out.push(':');
            if !first.is_empty() {
                out.push(' ');
                out.push_str(first);
            }
            out.push('\n');
            for l in lines {
                out.push(' ');
                out.push_str(if l.is_empty() { "." } else { l });
                out.push('\n');
            }
        }
        out
    }
}

/// Parses deb822 bytes into paragraphs.
pub fn parse_bytes(bytes: &[u8]) -> Result<Vec<Paragraph>, Deb822Error> {
    let text = std::str::from_utf8(bytes).map_err(|_| Deb822Error::NotUtf8)?;
    parse(text)
}

/// Parses deb822 text into paragraphs.
pub fn parse(text: &str) -> Result<Vec<Paragraph>, Deb822Error> {
    let mut out = Vec::new();
    let mut current: Option<Paragraph> = None;
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        if raw.trim().is_empty() {
            out.extend(current.take());
            continue;
        }
        if raw.starts_with('#') {
            continue;
        }
        if raw.starts_with(' ') || raw.starts_with('\t') {
            let para = current
                .as_mut()
                .ok_or(Deb822Error::OrphanContinuation { line })?;
            let (_, value) = para
                .fields
                .last_mut()
                .ok_or(Deb822Error::OrphanContinuation { line })?;
            let cont = raw.trim();
            value.push('\n');
            if cont != "." {
                value.push_str(cont);
            }
            continue;
        }
        let (name, value) = raw.split_once(':').ok_or_else(|| Deb822Error::NotAField {
            line,
            text: raw.to_string(),
        })?;
        if name.is_empty() || name.contains(char::is_whitespace) {
            return Err(Deb822Error::NotAField {
                line,
                text: raw.to_string(),
            });
        }
        let para = current.get_or_insert_with(|| Paragraph {
            line,
            fields: Vec::new(),
        });
        if para.get(name).is_some() {
            return Err(Deb822Error::DuplicateField {
                line,
                name: name.to_string(),
            });
        }
        para.fields
            .push((name.to_string(), value.trim().to_string()));
    }
    out.extend(current);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_paragraphs_and_continuations() {
        let text = "Package: a\nVersion: 1.0\nDescription: short\n long line\n .\n more\n\n\n# c\nPackage: b\nversion: 2\n";
        let paras = parse(text).unwrap();
        assert_eq!(paras.len(), 2);
        assert_eq!(
            paras[0].get("description"),
            Some("short\nlong line\n\nmore")
        );
        assert_eq!(paras[1].get("Version"), Some("2"));
        assert_eq!(paras[1].line, 10);
    }

    #[test]
    fn rejects_malformed_lines() {
        assert_eq!(
            parse("Package: a\nnot a field\n"),
            Err(Deb822Error::NotAField {
                line: 2,
                text: "not a field".into()
            })
        );
        assert_eq!(
            parse(" cont\n"),
            Err(Deb822Error::OrphanContinuation { line: 1 })
        );
        assert_eq!(
            parse("A: 1\na: 2\n"),
            Err(Deb822Error::DuplicateField {
                line: 2,
                name: "a".into()
            })
        );
        assert_eq!(parse_bytes(b"A: \xff\n"), Err(Deb822Error::NotUtf8));
    }

    fn value() -> impl Strategy<Value = String> {
        proptest::collection::vec("[!-~][ -~]{0,20}[!-~]|[!-~]", 1..4)
            .prop_filter("a lone `.` is deb822's empty line", |lines| {
                lines.iter().all(|l| l != ".")
            })
            .prop_map(|lines| lines.join("\n"))
    }

    proptest! {
        #[test]
        fn render_then_parse_is_identity(
            paras in proptest::collection::vec(
                proptest::collection::btree_map("[A-Z][a-z0-9-]{0,10}", value(), 1..6), 1..5)
        ) {
            let paras: Vec<Paragraph> = paras
                .into_iter()
                .map(|m| Paragraph::from_fields(m.into_iter().collect()))
                .collect();
            let text: Vec<String> = paras.iter().map(Paragraph::render).collect();
            let parsed = parse(&text.join("\n")).unwrap();
            let got: Vec<_> = parsed.iter().map(|p| p.fields().to_vec()).collect();
            let want: Vec<_> = paras.iter().map(|p| p.fields().to_vec()).collect();
            prop_assert_eq!(got, want);
        }
    }
}
