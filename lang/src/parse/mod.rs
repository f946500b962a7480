//! The parser: site source text to an [`crate::ast::File`], built on nom combinators.
//!
//! Positions are byte offsets computed from how much input is left, so every
//! node gets an exact span without a separate token stream. Errors inside one
//! top-level item do not stop the parse: the parser records the error, skips to
//! the next line that starts a declaration in column 1, and continues, so one
//! run reports several syntax errors per file.
use nom::bytes::complete::{take_while, take_while1};
use nom::combinator::recognize;
use nom::error::{ErrorKind, ParseError};
use nom::{IResult, Parser};

use crate::ast::{Expr, File, Ident};
use crate::diagnostics::Diagnostic;
use crate::span::{SourceId, Span};

mod expr;
mod item;
mod literal;

/// Words that start a top-level declaration.
pub const ITEM_KEYWORDS: &[&str] = &[
    "import", "let", "package", "file", "secret", "class", "every",
];
/// Names a top-level `name = value` may set.
pub const SETTINGS: &[&str] = &["site", "environment", "inventory", "rollout"];
/// Words that cannot name a variable.
pub const RESERVED: &[&str] = &["if", "then", "else", "true", "false", "self", "class"];

/// Parses one file. Returns the items that parsed and every syntax error found.
pub fn parse_file(file: SourceId, src: &str) -> (File, Vec<Diagnostic>) {
    let parser = P {
        src,
        file,
        depth: std::cell::Cell::new(0),
    };
    let mut items = Vec::new();
    let mut errors = Vec::new();
    let mut input = skip(src);
    while !input.is_empty() {
        match parser.item(input) {
            Ok((rest, item)) => {
                items.push(item);
                input = skip(rest);
            }
            Err(nom::Err::Error(e)) | Err(nom::Err::Failure(e)) => {
                let at = parser.src.len() - e.rest_len;
                errors.push(parser.diagnostic(e));
                let resume = next_declaration_line(src, at.max(parser.off(input) + 1));
                input = skip(&src[resume..]);
            }
            Err(nom::Err::Incomplete(_)) => {
                // Only streaming parsers report Incomplete; all of ours are complete.
                errors.push(Diagnostic::new(
                    "unexpected end of input",
                    parser.span_at(src.len(), src.len()),
                ));
                break;
            }
        }
    }
    (
        File {
            items,
            span: Span::new(file, 0, src.len()),
        },
        errors,
    )
}

/// Parses a single expression (used by tests and tools); the whole input must be one expression.
pub fn parse_expr(file: SourceId, src: &str) -> Result<Expr, Diagnostic> {
    let parser = P {
        src,
        file,
        depth: std::cell::Cell::new(0),
    };
    match parser.expr(skip(src)) {
        Ok((rest, expr)) => {
            let rest = skip(rest);
            if rest.is_empty() {
                Ok(expr)
            } else {
                let at = parser.off(rest);
                Err(Diagnostic::new(
                    "unexpected text after the expression",
                    parser.span_at(at, at + 1),
                ))
            }
        }
        Err(nom::Err::Error(e)) | Err(nom::Err::Failure(e)) => Err(parser.diagnostic(e)),
        Err(nom::Err::Incomplete(_)) => Err(Diagnostic::new(
            "unexpected end of input",
            parser.span_at(0, 0),
        )),
    }
}

/// Byte offset of the next line at or after `from` that starts (in column 1)
/// with a letter: where the next declaration probably begins.
pub(super) fn next_declaration_line(src: &str, from: usize) -> usize {
    let mut pos = from.min(src.len());
    while !src.is_char_boundary(pos) {
        pos += 1;
    }
    let mut offset = match src[pos..].find('\n') {
        Some(i) => pos + i + 1,
        None => return src.len(),
    };
    loop {
        let line = &src[offset..];
        if line.starts_with(|c: char| c.is_ascii_alphabetic()) {
            return offset;
        }
        match line.find('\n') {
            Some(i) => offset += i + 1,
            None => return src.len(),
        }
    }
}

/// A syntax error on its way out of nom.
#[derive(Debug, Clone)]
pub struct PError {
    /// Input left at the error (the error's start is `src.len() - rest_len`).
    rest_len: usize,
    /// Length of the primary span.
    len: usize,
    message: String,
    label: Option<String>,
    hint: Option<String>,
    /// Absolute byte ranges with labels.
    related: Vec<(usize, usize, String)>,
}

impl PError {
    pub(super) fn at(input: &str, len: usize, message: impl Into<String>) -> PError {
        PError {
            rest_len: input.len(),
            len,
            message: message.into(),
            label: None,
            hint: None,
            related: Vec::new(),
        }
    }

    pub(super) fn label(mut self, label: impl Into<String>) -> PError {
        self.label = Some(label.into());
        self
    }

    pub(super) fn hint(mut self, hint: impl Into<String>) -> PError {
        self.hint = Some(hint.into());
        self
    }

    pub(super) fn maybe_hint(mut self, hint: Option<String>) -> PError {
        self.hint = hint.or(self.hint);
        self
    }

    pub(super) fn related(mut self, start: usize, end: usize, label: impl Into<String>) -> PError {
        self.related.push((start, end, label.into()));
        self
    }
}

impl ParseError<&str> for PError {
    fn from_error_kind(input: &str, kind: ErrorKind) -> PError {
        PError::at(
            input,
            1,
            format!("unexpected input ({})", kind.description()),
        )
    }

    fn append(_: &str, _: ErrorKind, other: PError) -> PError {
        other
    }
}

pub(super) type R<'s, T> = IResult<&'s str, T, PError>;

pub(super) fn fail<T>(e: PError) -> Result<T, nom::Err<PError>> {
    Err(nom::Err::Failure(e))
}

/// Skips whitespace and `#` comments.
pub(super) fn skip(mut input: &str) -> &str {
    loop {
        let trimmed = input.trim_start();
        if let Some(comment) = trimmed.strip_prefix('#') {
            input = comment.find('\n').map_or("", |i| &comment[i..]);
        } else {
            return trimmed;
        }
    }
}

pub(super) fn is_ident_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_'
}

pub(super) fn is_ident_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// True when `name` is written like an identifier (a letter or `_`, then
/// letters, digits and `_`), so it needs no quotes.
pub(crate) fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(is_ident_start) && chars.all(is_ident_char)
}

pub(super) fn raw_ident(input: &str) -> R<'_, &str> {
    recognize((take_while1(is_ident_start), take_while(is_ident_char))).parse(input)
}

/// What the next token looks like, for "found …" in messages.
pub(super) fn describe(input: &str) -> String {
    let input = skip(input);
    match input.chars().next() {
        None => "the end of the file".to_string(),
        Some(c) if is_ident_start(c) => {
            let word: String = input.chars().take_while(|c| is_ident_char(*c)).collect();
            format!("`{word}`")
        }
        Some(c) => format!("`{c}`"),
    }
}

pub(super) fn token_len(input: &str) -> usize {
    let word = input
        .chars()
        .take_while(|c| is_ident_char(*c))
        .map(char::len_utf8)
        .sum::<usize>();
    if word > 0 {
        word
    } else {
        input.chars().next().map_or(0, char::len_utf8)
    }
}

pub(super) struct P<'s> {
    pub src: &'s str,
    pub file: SourceId,
    /// Current expression nesting, bounded by [`MAX_NESTING`] so that
    /// hostile input cannot overflow the stack.
    pub depth: std::cell::Cell<usize>,
}

/// How deeply expressions may nest (brackets, calls, interpolations).
pub(super) const MAX_NESTING: usize = 64;

impl<'s> P<'s> {
    pub(super) fn off(&self, rest: &str) -> usize {
        self.src.len() - rest.len()
    }

    pub(super) fn span_at(&self, start: usize, end: usize) -> Span {
        Span::new(self.file, start, end)
    }

    /// Span from the start of `from` to the start of `to` (both suffixes of the source).
    pub(super) fn span(&self, from: &str, to: &str) -> Span {
        Span::new(self.file, self.off(from), self.off(to))
    }

    pub(super) fn diagnostic(&self, e: PError) -> Diagnostic {
        let start = self.src.len() - e.rest_len;
        let mut d = Diagnostic::new(
            e.message,
            self.span_at(start, (start + e.len).min(self.src.len())),
        );
        d.label = e.label;
        d.hint = e.hint;
        for (s, end, label) in e.related {
            d = d.related(self.span_at(s, end), label);
        }
        d
    }

    /// An error "expected X, found Y" at the next token.
    pub(super) fn expected(&self, input: &'s str, what: &str) -> PError {
        let input = skip(input);
        PError::at(
            input,
            token_len(input),
            format!("expected {what}, found {}", describe(input)),
        )
    }

    pub(super) fn ident(&self, input: &'s str) -> R<'s, Ident> {
        let start = skip(input);
        let (rest, name) = raw_ident(start)?;
        Ok((
            rest,
            Ident {
                name: name.to_string(),
                span: self.span(start, rest),
            },
        ))
    }

    pub(super) fn expect_ident(&self, input: &'s str, what: &str) -> R<'s, Ident> {
        match self.ident(input) {
            Ok(ok) => Ok(ok),
            Err(_) => fail(self.expected(input, what)),
        }
    }

    /// A name for a declaration: an identifier that is not reserved.
    pub(super) fn decl_name(&self, input: &'s str, what: &str) -> R<'s, Ident> {
        let (rest, name) = self.expect_ident(input, what)?;
        if RESERVED.contains(&name.name.as_str()) {
            let at = skip(input);
            return fail(
                PError::at(
                    at,
                    name.span.len(),
                    format!("`{}` is a reserved word and cannot be a name", name.name),
                )
                .hint("choose another name"),
            );
        }
        Ok((rest, name))
    }

    /// Consumes `text` (after whitespace) if it is next.
    pub(super) fn punct(&self, input: &'s str, text: &str) -> Option<&'s str> {
        skip(input).strip_prefix(text)
    }

    /// Closes a bracket opened at `open`: a clear "unclosed" error at the end of input.
    pub(super) fn close(&self, input: &'s str, closer: &str, open: usize, what: &str) -> R<'s, ()> {
        let at = skip(input);
        if let Some(rest) = at.strip_prefix(closer) {
            return Ok((rest, ()));
        }
        let opener = &self.src[open..open + 1];
        if at.is_empty() {
            return fail(
                PError::at(&self.src[open..], 1, format!("unclosed `{opener}`"))
                    .label("opened here")
                    .hint(format!("add `{closer}` to close the {what}")),
            );
        }
        fail(
            self.expected(at, &format!("`{closer}` to close the {what}"))
                .related(open, open + 1, "opened here"),
        )
    }

    /// Consumes the `=` of `name = value`; `==` does not count.
    pub(super) fn assign(&self, input: &'s str) -> Option<&'s str> {
        let rest = self.punct(input, "=")?;
        if rest.starts_with('=') {
            None
        } else {
            Some(rest)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ast::{ExprKind, Item, StrPart};

    fn string_parts(src: &str) -> Vec<StrPart> {
        match parse_expr(SourceId(0), src).unwrap().kind {
            ExprKind::Str(parts) => parts,
            other => panic!("not a string: {other:?}"),
        }
    }

    #[test]
    fn triple_strings_lose_common_indentation_and_edge_lines() {
        let parts = string_parts("\"\"\"\n    a\n      b\n    \"\"\"");
        assert_eq!(parts, vec![StrPart::Lit("a\n  b\n".to_string())]);
    }

    #[test]
    fn escaped_newlines_do_not_count_as_line_starts() {
        let parts = string_parts("\"\"\"\n    x \"ok\\n\";\n    \"\"\"");
        assert_eq!(parts, vec![StrPart::Lit("x \"ok\n\";\n".to_string())]);
    }

    #[test]
    fn interpolation_at_line_start_keeps_indentation_of_other_lines() {
        let parts = string_parts("\"\"\"\n  a\n  ${b}\n\"\"\"");
        assert!(
            matches!(parts.as_slice(), [StrPart::Lit(a), StrPart::Interp(_), StrPart::Lit(nl)] if a == "a\n" && nl == "\n")
        );
    }

    #[test]
    fn every_node_span_covers_its_text() {
        let src = "let x = f(a, b = [1, 2]).c";
        let (file, errors) = parse_file(SourceId(0), src);
        assert!(errors.is_empty());
        let Item::Let { value, .. } = &file.items[0] else {
            panic!()
        };
        assert_eq!(
            &src[value.span.start as usize..value.span.end as usize],
            "f(a, b = [1, 2]).c"
        );
        let ExprKind::Field(call, name) = &value.kind else {
            panic!()
        };
        assert_eq!(
            &src[call.span.start as usize..call.span.end as usize],
            "f(a, b = [1, 2])"
        );
        assert_eq!(&src[name.span.start as usize..name.span.end as usize], "c");
    }
}
