//! The parser: site source text to an [`ast::File`], built on nom combinators.
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

use crate::ast::{
    Arg, BinaryOp, ClassBody, ClassItem, Expr, ExprKind, Field, File, Ident, Item, Param, StrPart,
};
use crate::diagnostics::{suggest, Diagnostic};
use crate::span::{FileId, Span};

/// Words that start a top-level declaration.
pub const ITEM_KEYWORDS: &[&str] = &[
    "import", "let", "package", "file", "secret", "class", "every",
];
/// Names a top-level `name = value` may set.
pub const SETTINGS: &[&str] = &["site", "environment", "inventory", "rollout"];
/// Words that cannot name a variable.
pub const RESERVED: &[&str] = &["if", "then", "else", "true", "false", "self", "class"];

/// Parses one file. Returns the items that parsed and every syntax error found.
pub fn parse_file(file: FileId, src: &str) -> (File, Vec<Diagnostic>) {
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
pub fn parse_expr(file: FileId, src: &str) -> Result<Expr, Diagnostic> {
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
fn next_declaration_line(src: &str, from: usize) -> usize {
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
    fn at(input: &str, len: usize, message: impl Into<String>) -> PError {
        PError {
            rest_len: input.len(),
            len,
            message: message.into(),
            label: None,
            hint: None,
            related: Vec::new(),
        }
    }

    fn label(mut self, label: impl Into<String>) -> PError {
        self.label = Some(label.into());
        self
    }

    fn hint(mut self, hint: impl Into<String>) -> PError {
        self.hint = Some(hint.into());
        self
    }

    fn maybe_hint(mut self, hint: Option<String>) -> PError {
        self.hint = hint.or(self.hint);
        self
    }

    fn related(mut self, start: usize, end: usize, label: impl Into<String>) -> PError {
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

type R<'s, T> = IResult<&'s str, T, PError>;

fn fail<T>(e: PError) -> Result<T, nom::Err<PError>> {
    Err(nom::Err::Failure(e))
}

/// Skips whitespace and `#` comments.
fn skip(mut input: &str) -> &str {
    loop {
        let trimmed = input.trim_start();
        if let Some(comment) = trimmed.strip_prefix('#') {
            input = comment.find('\n').map_or("", |i| &comment[i..]);
        } else {
            return trimmed;
        }
    }
}

fn is_ident_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_'
}

fn is_ident_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

fn raw_ident(input: &str) -> R<'_, &str> {
    recognize((take_while1(is_ident_start), take_while(is_ident_char))).parse(input)
}

/// What the next token looks like, for "found …" in messages.
fn describe(input: &str) -> String {
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

fn token_len(input: &str) -> usize {
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

struct P<'s> {
    src: &'s str,
    file: FileId,
    /// Current expression nesting, bounded by [`MAX_NESTING`] so that
    /// hostile input cannot overflow the stack.
    depth: std::cell::Cell<usize>,
}

/// How deeply expressions may nest (brackets, calls, interpolations).
const MAX_NESTING: usize = 64;

impl<'s> P<'s> {
    fn off(&self, rest: &str) -> usize {
        self.src.len() - rest.len()
    }

    fn span_at(&self, start: usize, end: usize) -> Span {
        Span::new(self.file, start, end)
    }

    /// Span from the start of `from` to the start of `to` (both suffixes of the source).
    fn span(&self, from: &str, to: &str) -> Span {
        Span::new(self.file, self.off(from), self.off(to))
    }

    fn diagnostic(&self, e: PError) -> Diagnostic {
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
    fn expected(&self, input: &'s str, what: &str) -> PError {
        let input = skip(input);
        PError::at(
            input,
            token_len(input),
            format!("expected {what}, found {}", describe(input)),
        )
    }

    fn ident(&self, input: &'s str) -> R<'s, Ident> {
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

    fn expect_ident(&self, input: &'s str, what: &str) -> R<'s, Ident> {
        match self.ident(input) {
            Ok(ok) => Ok(ok),
            Err(_) => fail(self.expected(input, what)),
        }
    }

    /// A name for a declaration: an identifier that is not reserved.
    fn decl_name(&self, input: &'s str, what: &str) -> R<'s, Ident> {
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
    fn punct(&self, input: &'s str, text: &str) -> Option<&'s str> {
        skip(input).strip_prefix(text)
    }

    /// Closes a bracket opened at `open`: a clear "unclosed" error at the end of input.
    fn close(&self, input: &'s str, closer: &str, open: usize, what: &str) -> R<'s, ()> {
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
    fn assign(&self, input: &'s str) -> Option<&'s str> {
        let rest = self.punct(input, "=")?;
        if rest.starts_with('=') {
            None
        } else {
            Some(rest)
        }
    }

    // ---- items ----

    fn item(&self, input: &'s str) -> R<'s, Item> {
        let start = skip(input);
        let Ok((rest, keyword)) = self.ident(start) else {
            return fail(
                self.expected(start, "a declaration")
                    .hint("a site file holds `import`, `let`, `package`, `file`, `secret`, `class`, `every class` and settings like `inventory = …`"),
            );
        };
        match keyword.name.as_str() {
            "import" => {
                let path_start = skip(rest);
                let (rest, (parts, path_span)) = match self.string(path_start) {
                    Ok(ok) => ok,
                    Err(nom::Err::Error(_)) => {
                        return fail(self.expected(rest, "a quoted path after `import`"))
                    }
                    Err(e) => return Err(e),
                };
                let path =
                    match parts.as_slice() {
                        [] => String::new(),
                        [StrPart::Lit(text)] => text.clone(),
                        _ => return fail(
                            PError::at(
                                path_start,
                                path_span.len(),
                                "an import path cannot contain `${…}`",
                            )
                            .hint(
                                "imports are resolved before evaluation; write the path literally",
                            ),
                        ),
                    };
                let (rest, alias) = match self.ident(rest) {
                    Ok((after, word)) if word.name == "as" => {
                        let (after, alias) = self.decl_name(after, "a name after `as`")?;
                        (after, Some(alias))
                    }
                    _ => (rest, None),
                };
                Ok((
                    rest,
                    Item::Import {
                        path,
                        path_span,
                        alias,
                        span: self.span(start, rest),
                    },
                ))
            }
            "let" => {
                let (rest, name) = self.decl_name(rest, "a name after `let`")?;
                let (rest, params) = match self.punct(rest, "(") {
                    Some(after) => {
                        let open = self.off(after) - 1;
                        let (after, params) = self.params(after, open)?;
                        (after, Some(params))
                    }
                    None => (rest, None),
                };
                let Some(rest) = self.assign(rest) else {
                    return fail(self.expected(rest, &format!("`=` after `let {}`", name.name)));
                };
                let (rest, value) = self.expr(rest)?;
                Ok((
                    rest,
                    Item::Let {
                        name,
                        params,
                        value,
                        span: self.span(start, rest),
                    },
                ))
            }
            "package" | "file" | "secret" => {
                let what = keyword.name.clone();
                let (rest, name) = self.decl_name(rest, &format!("a name after `{what}`"))?;
                let body_start = skip(rest);
                if !body_start.starts_with('{') {
                    return fail(
                        self.expected(rest, &format!("`{{` to start the {what} `{}`", name.name)),
                    );
                }
                let (rest, body) = self.primary(body_start)?;
                let span = self.span(start, rest);
                Ok((
                    rest,
                    match what.as_str() {
                        "package" => Item::Package { name, body, span },
                        "file" => Item::File { name, body, span },
                        _ => Item::Secret { name, body, span },
                    },
                ))
            }
            "class" => {
                let (rest, name) = self.decl_name(rest, "a class name after `class`")?;
                if let Some(after) = self.assign(rest) {
                    let (rest, value) = self.expr(after)?;
                    return Ok((
                        rest,
                        Item::Class {
                            name,
                            value,
                            span: self.span(start, rest),
                        },
                    ));
                }
                let body_start = skip(rest);
                if !body_start.starts_with('{') {
                    return fail(
                        self.expected(rest, &format!("`{{` or `=` after `class {}`", name.name)),
                    );
                }
                let (rest, body) = self.class_body(body_start)?;
                let value = Expr {
                    span: body.span,
                    kind: ExprKind::Class(body),
                };
                Ok((
                    rest,
                    Item::Class {
                        name,
                        value,
                        span: self.span(start, rest),
                    },
                ))
            }
            "every" => {
                let (rest, word) = self.expect_ident(rest, "`class` after `every`")?;
                if word.name != "class" {
                    return fail(
                        PError::at(
                            skip(&self.src[word.span.start as usize..]),
                            word.span.len(),
                            "expected `class` after `every`",
                        )
                        .hint("write `every class { include … }`"),
                    );
                }
                let body_start = skip(rest);
                if !body_start.starts_with('{') {
                    return fail(self.expected(rest, "`{` after `every class`"));
                }
                let (rest, body) = self.class_body(body_start)?;
                Ok((
                    rest,
                    Item::Every {
                        body,
                        span: self.span(start, rest),
                    },
                ))
            }
            name if SETTINGS.contains(&name) => {
                if name == "rollout" && skip(rest).starts_with('{') {
                    let (rest, value) = self.primary(skip(rest))?;
                    return Ok((
                        rest,
                        Item::Setting {
                            name: keyword,
                            value,
                            span: self.span(start, rest),
                        },
                    ));
                }
                let Some(after) = self.assign(rest) else {
                    return fail(self.expected(rest, &format!("`=` after `{name}`")));
                };
                let (rest, value) = self.expr(after)?;
                Ok((
                    rest,
                    Item::Setting {
                        name: keyword,
                        value,
                        span: self.span(start, rest),
                    },
                ))
            }
            other => {
                let is_setting = self.assign(rest).is_some()
                    || (skip(rest).starts_with('{') && other.starts_with('r'));
                let error = if is_setting {
                    PError::at(
                        start,
                        keyword.span.len(),
                        format!("unknown setting `{other}`"),
                    )
                    .label("not a site setting")
                    .maybe_hint(suggest(other, SETTINGS.iter().copied()))
                } else {
                    let all = ITEM_KEYWORDS.iter().chain(SETTINGS).copied();
                    PError::at(start, keyword.span.len(), format!("expected a declaration, found `{other}`"))
                        .maybe_hint(suggest(other, all).or_else(|| {
                            Some("declarations start with `import`, `let`, `package`, `file`, `secret`, `class` or `every`".to_string())
                        }))
                };
                fail(error)
            }
        }
    }

    fn params(&self, input: &'s str, open: usize) -> R<'s, Vec<Param>> {
        let mut params: Vec<Param> = Vec::new();
        let mut rest = input;
        loop {
            if let Some(after) = self.punct(rest, ")") {
                return Ok((after, params));
            }
            if skip(rest).is_empty() {
                return self
                    .close(rest, ")", open, "parameter list")
                    .map(|(r, _)| (r, params));
            }
            let (after, name) = self.decl_name(rest, "a parameter name or `)`")?;
            if let Some(first) = params.iter().find(|p| p.name.name == name.name) {
                let at = skip(rest);
                return fail(
                    PError::at(
                        at,
                        name.span.len(),
                        format!("parameter `{}` is declared twice", name.name),
                    )
                    .related(
                        first.name.span.start as usize,
                        first.name.span.end as usize,
                        "first declared here",
                    ),
                );
            }
            let (after, default) = match self.assign(after) {
                Some(value) => {
                    let (after, value) = self.expr(value)?;
                    (after, Some(value))
                }
                None => (after, None),
            };
            params.push(Param { name, default });
            rest = match self.punct(after, ",") {
                Some(after) => after,
                None => {
                    let (after, ()) = self.close(after, ")", open, "parameter list")?;
                    return Ok((after, params));
                }
            };
        }
    }

    fn class_body(&self, input: &'s str) -> R<'s, ClassBody> {
        let open_at = skip(input);
        let open = self.off(open_at);
        let mut rest = &open_at[1..];
        let mut items = Vec::new();
        loop {
            let at = skip(rest);
            if let Some(after) = at.strip_prefix('}') {
                return Ok((
                    after,
                    ClassBody {
                        items,
                        span: self.span(open_at, after),
                    },
                ));
            }
            if at.is_empty() {
                return self.close(at, "}", open, "class body").map(|(r, _)| {
                    (
                        r,
                        ClassBody {
                            items: Vec::new(),
                            span: self.span(open_at, r),
                        },
                    )
                });
            }
            let Ok((after, word)) = self.ident(at) else {
                return fail(
                    self.expected(at, "`include`, `service`, a setting or `}`")
                        .related(open, open + 1, "class body opened here"),
                );
            };
            let (after, item) = match word.name.as_str() {
                "include" => {
                    let (after, value) = self.expr(after)?;
                    (
                        after,
                        ClassItem::Include {
                            value,
                            span: self.span(at, after),
                        },
                    )
                }
                "service" => {
                    let (after, name) = self.decl_name(after, "a service name after `service`")?;
                    if let Some(value_at) = self.assign(after) {
                        let (after, value) = self.expr(value_at)?;
                        (
                            after,
                            ClassItem::Service {
                                name,
                                value,
                                span: self.span(at, after),
                            },
                        )
                    } else if skip(after).starts_with('{') {
                        let (after, value) = self.primary(skip(after))?;
                        (
                            after,
                            ClassItem::Service {
                                name,
                                value,
                                span: self.span(at, after),
                            },
                        )
                    } else {
                        return fail(self.expected(
                            after,
                            &format!("`{{` or `=` after `service {}`", name.name),
                        ));
                    }
                }
                _ => {
                    let Some(value_at) = self.assign(after) else {
                        return fail(
                            PError::at(
                                at,
                                word.span.len(),
                                format!(
                                    "expected `include`, `service` or a setting, found `{}`",
                                    word.name
                                ),
                            )
                            .maybe_hint(suggest(&word.name, ["include", "service", "packages"])),
                        );
                    };
                    let (after, value) = self.expr(value_at)?;
                    (
                        after,
                        ClassItem::Setting {
                            name: word,
                            value,
                            span: self.span(at, after),
                        },
                    )
                }
            };
            items.push(item);
            rest = after;
            if let Some(after) = self.punct(rest, ",").or_else(|| self.punct(rest, ";")) {
                rest = after;
            }
        }
    }

    // ---- expressions ----

    pub fn expr(&self, input: &'s str) -> R<'s, Expr> {
        if self.depth.get() >= MAX_NESTING {
            let at = skip(input);
            return fail(
                PError::at(
                    at,
                    token_len(at),
                    format!("expressions nest deeper than {MAX_NESTING} levels"),
                )
                .hint("split the expression with `let`"),
            );
        }
        self.depth.set(self.depth.get() + 1);
        let result = self.expr_inner(input);
        self.depth.set(self.depth.get() - 1);
        result
    }

    fn expr_inner(&self, input: &'s str) -> R<'s, Expr> {
        let start = skip(input);
        if let Ok((rest, word)) = self.ident(start) {
            if word.name == "if" {
                let (rest, cond) = self.expr(rest)?;
                let rest = self.keyword(rest, "then", "after the condition of `if`")?;
                let (rest, then) = self.expr(rest)?;
                let rest = self.keyword(
                    rest,
                    "else",
                    "after the `then` branch (every `if` has an `else`)",
                )?;
                let (rest, otherwise) = self.expr(rest)?;
                let span = self.span(start, rest);
                return Ok((
                    rest,
                    Expr {
                        kind: ExprKind::If(Box::new(cond), Box::new(then), Box::new(otherwise)),
                        span,
                    },
                ));
            }
        }
        self.binary(start, 0)
    }

    fn keyword(
        &self,
        input: &'s str,
        keyword: &str,
        context: &str,
    ) -> Result<&'s str, nom::Err<PError>> {
        match self.ident(input) {
            Ok((rest, word)) if word.name == keyword => Ok(rest),
            _ => fail(self.expected(input, &format!("`{keyword}` {context}"))),
        }
    }

    /// Binary operators by precedence level, loosest first.
    fn binary(&self, input: &'s str, level: usize) -> R<'s, Expr> {
        const LEVELS: &[&[BinaryOp]] = &[
            &[BinaryOp::Or],
            &[BinaryOp::And],
            &[BinaryOp::Eq, BinaryOp::NotEq],
            &[BinaryOp::Update],
            &[BinaryOp::Add],
        ];
        if level == LEVELS.len() {
            return self.unary(input);
        }
        let start = skip(input);
        let (mut rest, mut left) = self.binary(start, level + 1)?;
        loop {
            let at = skip(rest);
            let Some(op) = LEVELS[level]
                .iter()
                .copied()
                .find(|op| at.starts_with(op.symbol()))
            else {
                return Ok((rest, left));
            };
            let after = &at[op.symbol().len()..];
            if op == BinaryOp::Update {
                // Right-associative: `a // b // c` is `a // (b // c)`.
                let (after, right) = self.binary(after, level)?;
                let span = self.span(start, after);
                return Ok((
                    after,
                    Expr {
                        kind: ExprKind::Binary(op, Box::new(left), Box::new(right)),
                        span,
                    },
                ));
            }
            let (after, right) = match self.binary(after, level + 1) {
                Ok(ok) => ok,
                Err(nom::Err::Error(_)) => {
                    return fail(self.expected(after, &format!("a value after `{}`", op.symbol())))
                }
                Err(e) => return Err(e),
            };
            let span = self.span(start, after);
            left = Expr {
                kind: ExprKind::Binary(op, Box::new(left), Box::new(right)),
                span,
            };
            rest = after;
            if matches!(op, BinaryOp::Eq | BinaryOp::NotEq) {
                // `a == b == c` is more likely a mistake than a meaning.
                return Ok((rest, left));
            }
        }
    }

    fn unary(&self, input: &'s str) -> R<'s, Expr> {
        let start = skip(input);
        if let Some(after) = start.strip_prefix('!') {
            if !after.starts_with('=') {
                let (rest, inner) = self.unary(after)?;
                let span = self.span(start, rest);
                return Ok((
                    rest,
                    Expr {
                        kind: ExprKind::Not(Box::new(inner)),
                        span,
                    },
                ));
            }
        }
        self.postfix(start)
    }

    fn postfix(&self, input: &'s str) -> R<'s, Expr> {
        let start = skip(input);
        let (mut rest, mut expr) = self.primary(start)?;
        loop {
            let at = skip(rest);
            if let Some(after) = at.strip_prefix('.') {
                let (after, name) = self.expect_ident(after, "a field name after `.`")?;
                let span = self.span(start, after);
                expr = Expr {
                    kind: ExprKind::Field(Box::new(expr), name),
                    span,
                };
                rest = after;
            } else if let Some(after) = at.strip_prefix('[') {
                let open = self.off(at);
                let (after, index) = self.expr(after)?;
                let (after, ()) = self.close(after, "]", open, "index")?;
                let span = self.span(start, after);
                expr = Expr {
                    kind: ExprKind::Index(Box::new(expr), Box::new(index)),
                    span,
                };
                rest = after;
            } else if let Some(after) = at.strip_prefix('(') {
                let open = self.off(at);
                let (after, args) = self.args(after, open)?;
                let span = self.span(start, after);
                expr = Expr {
                    kind: ExprKind::Call(Box::new(expr), args),
                    span,
                };
                rest = after;
            } else if at.starts_with('{')
                && matches!(expr.kind, ExprKind::Var(_) | ExprKind::Field(..))
            {
                // `f { a = 1 }` calls `f` with named arguments.
                let (after, record) = self.primary(at)?;
                let ExprKind::Record(fields) = record.kind else {
                    // `primary` on `{` always yields a record.
                    unreachable!("a `{{` primary is a record")
                };
                let args = fields
                    .into_iter()
                    .map(|f| Arg::Named(f.name, f.value))
                    .collect();
                let span = self.span(start, after);
                expr = Expr {
                    kind: ExprKind::Call(Box::new(expr), args),
                    span,
                };
                rest = after;
            } else {
                return Ok((rest, expr));
            }
        }
    }

    fn args(&self, input: &'s str, open: usize) -> R<'s, Vec<Arg>> {
        let mut args = Vec::new();
        let mut rest = input;
        loop {
            if let Some(after) = self.punct(rest, ")") {
                return Ok((after, args));
            }
            if skip(rest).is_empty() {
                return self
                    .close(rest, ")", open, "argument list")
                    .map(|(r, _)| (r, args));
            }
            let named = match self.ident(rest) {
                Ok((after, name)) => self.assign(after).map(|value| (name, value)),
                Err(_) => None,
            };
            let after = match named {
                Some((name, value_at)) => {
                    let (after, value) = self.expr(value_at)?;
                    args.push(Arg::Named(name, value));
                    after
                }
                None => {
                    let (after, value) = self.expr(rest)?;
                    args.push(Arg::Positional(value));
                    after
                }
            };
            rest = match self.punct(after, ",") {
                Some(after) => after,
                None => {
                    let (after, ()) = self.close(after, ")", open, "argument list")?;
                    return Ok((after, args));
                }
            };
        }
    }

    fn primary(&self, input: &'s str) -> R<'s, Expr> {
        let start = skip(input);
        let Some(first) = start.chars().next() else {
            return Err(nom::Err::Error(self.expected(start, "a value")));
        };
        match first {
            '"' => {
                let (rest, (parts, span)) = self.string(start)?;
                Ok((
                    rest,
                    Expr {
                        kind: ExprKind::Str(parts),
                        span,
                    },
                ))
            }
            '[' => {
                let open = self.off(start);
                let mut rest = &start[1..];
                let mut items = Vec::new();
                loop {
                    if let Some(after) = self.punct(rest, "]") {
                        return Ok((
                            after,
                            Expr {
                                kind: ExprKind::List(items),
                                span: self.span(start, after),
                            },
                        ));
                    }
                    if skip(rest).is_empty() {
                        return self.close(rest, "]", open, "list").map(|(r, _)| {
                            (
                                r,
                                Expr {
                                    kind: ExprKind::List(Vec::new()),
                                    span: self.span(start, r),
                                },
                            )
                        });
                    }
                    let (after, item) = match self.expr(rest) {
                        Ok(ok) => ok,
                        Err(nom::Err::Error(_)) => {
                            return fail(self.expected(rest, "a list element or `]`").related(
                                open,
                                open + 1,
                                "list opened here",
                            ))
                        }
                        Err(e) => return Err(e),
                    };
                    items.push(item);
                    rest = match self.punct(after, ",") {
                        Some(after) => after,
                        None => {
                            let (after, ()) = self.close(after, "]", open, "list")?;
                            return Ok((
                                after,
                                Expr {
                                    kind: ExprKind::List(items),
                                    span: self.span(start, after),
                                },
                            ));
                        }
                    };
                }
            }
            '{' => {
                let open = self.off(start);
                let mut rest = &start[1..];
                let mut fields: Vec<Field> = Vec::new();
                loop {
                    let at = skip(rest);
                    if let Some(after) = at.strip_prefix('}') {
                        return Ok((
                            after,
                            Expr {
                                kind: ExprKind::Record(fields),
                                span: self.span(start, after),
                            },
                        ));
                    }
                    if at.is_empty() {
                        return self.close(at, "}", open, "block").map(|(r, _)| {
                            (
                                r,
                                Expr {
                                    kind: ExprKind::Record(Vec::new()),
                                    span: self.span(start, r),
                                },
                            )
                        });
                    }
                    let (after, name) = if at.starts_with('"') {
                        let (after, (parts, span)) = self.string(at)?;
                        match parts.as_slice() {
                            [StrPart::Lit(text)] => (
                                after,
                                Ident {
                                    name: text.clone(),
                                    span,
                                },
                            ),
                            _ => {
                                return fail(PError::at(
                                    at,
                                    span.len(),
                                    "a quoted field name must be plain text",
                                ))
                            }
                        }
                    } else {
                        match self.ident(at) {
                            Ok(ok) => ok,
                            Err(_) => {
                                return fail(self.expected(at, "a field name or `}`").related(
                                    open,
                                    open + 1,
                                    "block opened here",
                                ))
                            }
                        }
                    };
                    if let Some(first) = fields.iter().find(|f| f.name.name == name.name) {
                        return fail(
                            PError::at(at, name.span.len(), format!("field `{}` is set twice", name.name))
                                .related(first.name.span.start as usize, first.name.span.end as usize, "first set here")
                                .hint("remove one of them (use `//` to override fields of another record)"),
                        );
                    }
                    let Some(value_at) = self.assign(after) else {
                        return fail(self.expected(
                            after,
                            &format!("`=` after the field name `{}`", name.name),
                        ));
                    };
                    let (after, value) = match self.expr(value_at) {
                        Ok(ok) => ok,
                        Err(nom::Err::Error(_)) => {
                            return fail(
                                self.expected(value_at, &format!("a value for `{}`", name.name)),
                            )
                        }
                        Err(e) => return Err(e),
                    };
                    fields.push(Field { name, value });
                    rest = self
                        .punct(after, ",")
                        .or_else(|| self.punct(after, ";"))
                        .unwrap_or(after);
                }
            }
            '(' => {
                let open = self.off(start);
                let (rest, inner) = self.expr(&start[1..])?;
                let (rest, ()) = self.close(rest, ")", open, "parenthesis")?;
                Ok((rest, inner))
            }
            c if c.is_ascii_digit()
                || (c == '-' && start[1..].starts_with(|d: char| d.is_ascii_digit())) =>
            {
                self.number(start)
            }
            c if is_ident_start(c) => {
                let (rest, word) = self.ident(start)?;
                let kind = match word.name.as_str() {
                    "true" => ExprKind::Bool(true),
                    "false" => ExprKind::Bool(false),
                    "self" => ExprKind::SelfClass,
                    "class" => {
                        let body_start = skip(rest);
                        if !body_start.starts_with('{') {
                            return Err(nom::Err::Error(self.expected(rest, "`{` after `class`")));
                        }
                        let (rest, body) = self.class_body(body_start)?;
                        return Ok((
                            rest,
                            Expr {
                                span: self.span(start, rest),
                                kind: ExprKind::Class(body),
                            },
                        ));
                    }
                    "if" | "then" | "else" => {
                        return Err(nom::Err::Error(
                            PError::at(
                                start,
                                word.span.len(),
                                format!("`{}` cannot start a value here", word.name),
                            )
                            .hint("put the `if … then … else …` in parentheses"),
                        ))
                    }
                    _ => ExprKind::Var(word.name),
                };
                Ok((
                    rest,
                    Expr {
                        kind,
                        span: word.span,
                    },
                ))
            }
            _ => Err(nom::Err::Error(self.expected(start, "a value"))),
        }
    }

    fn number(&self, start: &'s str) -> R<'s, Expr> {
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
    fn string(&self, start: &'s str) -> R<'s, (Vec<StrPart>, Span)> {
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
fn dedent(parts: Vec<StrPart>, escapes: &[usize]) -> Vec<StrPart> {
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
fn merge_literals(parts: Vec<StrPart>) -> Vec<StrPart> {
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
