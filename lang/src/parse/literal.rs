//! Literals: numbers with units, strings with escapes, interpolation and dedent.
use nom::bytes::complete::{take_while, take_while1};
use nom::Parser;

use super::{fail, is_ident_char, token_len, PError, P, R};
use crate::ast::{Expr, ExprKind, StrPart};
use crate::span::Span;

impl<'s> P<'s> {
    pub(super) fn number(&self, start: &'s str) -> R<'s, Expr> {
        let negative = start.starts_with('-');
        let digits_at = if negative { &start[1..] } else { start };
        let (rest, digits) = take_while1(|c: char| c.is_ascii_digit()).parse(digits_at)?;
        let (rest, suffix) =
            take_while(|c: char| c.is_ascii_alphabetic() || c == '%').parse(rest)?;
        let span = self.span(start, rest);
        let Ok(mut value) = digits.parse::<i64>() else {
            return fail(PError::at(
                start,
                span.len(),
                format!("the number `{digits}` is too large"),
            ));
        };
        if negative {
            value = -value;
        }
        let (kind, factor) = match suffix {
            "" => (ExprKind::Int(value), 1),
            "%" => (ExprKind::Percent(value), 1),
            "ms" => (ExprKind::Duration(value), 1),
            "s" => (ExprKind::Duration(value), 1000),
            "m" => (ExprKind::Duration(value), 60_000),
            "h" => (ExprKind::Duration(value), 3_600_000),
            "d" => (ExprKind::Duration(value), 86_400_000),
            other => {
                return fail(
                    PError::at(
                        start,
                        span.len(),
                        format!("unknown unit `{other}` in `{}`", &start[..span.len()]),
                    )
                    .label("not a number, duration or percentage")
                    .hint("durations use ms, s, m, h or d (`30s`); percentages use `%` (`30%`)"),
                )
            }
        };
        if rest.starts_with(is_ident_char) {
            return fail(
                PError::at(
                    start,
                    span.len() + token_len(rest),
                    "a number must not run into a name",
                )
                .hint("put a space after the number"),
            );
        }
        let kind = match kind {
            ExprKind::Duration(v) => match v.checked_mul(factor) {
                Some(ms) => ExprKind::Duration(ms),
                None => return fail(PError::at(start, span.len(), "the duration is too long")),
            },
            other => other,
        };
        Ok((rest, Expr { kind, span }))
    }

    /// A `"…"` or `"""…"""` string starting at `start` (which begins with `"`).
    pub(super) fn string(&self, start: &'s str) -> R<'s, (Vec<StrPart>, Span)> {
        if !start.starts_with('"') {
            return Err(nom::Err::Error(self.expected(start, "a string")));
        }
        let triple = start.starts_with("\"\"\"");
        let open = self.off(start);
        let mut rest = if triple { &start[3..] } else { &start[1..] };
        let mut parts = Vec::new();
        let mut escapes: Vec<usize> = Vec::new();
        let mut lit = String::new();
        loop {
            let Some(c) = rest.chars().next() else {
                let quote = if triple { "\"\"\"" } else { "\"" };
                return fail(
                    PError::at(&self.src[open..], quote.len(), "unclosed string")
                        .label("string starts here")
                        .hint(format!("close it with `{quote}`")),
                );
            };
            if triple && rest.starts_with("\"\"\"") {
                rest = &rest[3..];
                break;
            }
            if !triple && c == '"' {
                rest = &rest[1..];
                break;
            }
            if !triple && c == '\n' {
                return fail(
                    PError::at(&self.src[open..], 1, "unclosed string")
                        .label("string starts here")
                        .hint("a `\"…\"` string ends on its line; use `\"\"\"…\"\"\"` for text over several lines"),
                );
            }
            if c == '\\' {
                let escaped = rest[1..].chars().next();
                let value = match escaped {
                    Some('n') => '\n',
                    Some('t') => '\t',
                    Some('r') => '\r',
                    Some('"') => '"',
                    Some('\\') => '\\',
                    Some('$') => '$',
                    Some(other) => {
                        return fail(
                            PError::at(
                                rest,
                                1 + other.len_utf8(),
                                format!("unknown escape `\\{other}`"),
                            )
                            .hint("known escapes: \\n \\t \\r \\\" \\\\ \\$"),
                        )
                    }
                    None => continue,
                };
                if triple {
                    // Escaped characters are content, not indentation: keep
                    // them out of the dedent by giving them their own segment.
                    if !lit.is_empty() {
                        parts.push(StrPart::Lit(std::mem::take(&mut lit)));
                    }
                    escapes.push(parts.len());
                    parts.push(StrPart::Lit(value.to_string()));
                } else {
                    lit.push(value);
                }
                rest = &rest[1 + escaped.map_or(0, char::len_utf8)..];
                continue;
            }
            if rest.starts_with("${") {
                if !lit.is_empty() {
                    parts.push(StrPart::Lit(std::mem::take(&mut lit)));
                }
                let interp_open = self.off(rest);
                let (after, expr) = match self.expr(&rest[2..]) {
                    Ok(ok) => ok,
                    Err(nom::Err::Error(_)) => {
                        return fail(self.expected(&rest[2..], "a value inside `${…}`"))
                    }
                    Err(e) => return Err(e),
                };
                let (after, ()) = self.close(after, "}", interp_open + 1, "interpolation")?;
                parts.push(StrPart::Interp(expr));
                rest = after;
                continue;
            }
            lit.push(c);
            rest = &rest[c.len_utf8()..];
        }
        if !lit.is_empty() {
            parts.push(StrPart::Lit(lit));
        }
        if triple {
            parts = dedent(parts, &escapes);
        } else {
            parts = merge_literals(parts);
        }
        Ok((rest, (parts, self.span(start, rest))))
    }
}

/// Strips a `"""` string's first newline, its last line if blank, and the
/// indentation common to all its non-blank lines.
pub(super) fn dedent(parts: Vec<StrPart>, escapes: &[usize]) -> Vec<StrPart> {
    // Interpolations and escaped characters stand in as NUL while lines are
    // measured; a literal that itself holds NUL is left as written.
    const HOLE: char = '\0';
    let mut text = String::new();
    let mut holes = Vec::new();
    for (i, part) in parts.into_iter().enumerate() {
        match part {
            StrPart::Lit(t) if t.contains(HOLE) => return vec![StrPart::Lit(t)],
            StrPart::Lit(t) if escapes.contains(&i) => {
                text.push(HOLE);
                holes.push(StrPart::Lit(t));
            }
            StrPart::Lit(t) => text.push_str(&t),
            interp => {
                text.push(HOLE);
                holes.push(interp);
            }
        }
    }
    let mut body = text.strip_prefix('\n').unwrap_or(&text);
    if let Some(nl) = body.rfind('\n') {
        if body[nl + 1..].chars().all(|c| c == ' ' || c == '\t') {
            body = &body[..nl + 1];
        }
    } else if body.chars().all(|c| c == ' ' || c == '\t') {
        body = "";
    }
    let indent = body
        .split('\n')
        .filter(|line| !line.trim().is_empty())
        .map(|line| line.len() - line.trim_start_matches(' ').len())
        .min()
        .unwrap_or(0);
    let mut dedented = String::with_capacity(body.len());
    for (i, line) in body.split('\n').enumerate() {
        if i > 0 {
            dedented.push('\n');
        }
        let spaces = line.len() - line.trim_start_matches(' ').len();
        dedented.push_str(&line[spaces.min(indent)..]);
    }
    let mut out = Vec::new();
    let mut holes = holes.into_iter();
    for (i, piece) in dedented.split(HOLE).enumerate() {
        if i > 0 {
            if let Some(hole) = holes.next() {
                out.push(hole);
            }
        }
        if !piece.is_empty() {
            out.push(StrPart::Lit(piece.to_string()));
        }
    }
    merge_literals(out)
}

/// Joins adjacent literal parts and drops empty ones.
pub(super) fn merge_literals(parts: Vec<StrPart>) -> Vec<StrPart> {
    let mut out: Vec<StrPart> = Vec::with_capacity(parts.len());
    for part in parts {
        match (out.last_mut(), part) {
            (_, StrPart::Lit(t)) if t.is_empty() => {}
            (Some(StrPart::Lit(last)), StrPart::Lit(t)) => last.push_str(&t),
            (_, part) => out.push(part),
        }
    }
    out
}
