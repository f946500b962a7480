//! Expressions: operators by precedence, postfix forms, primaries.

use super::{fail, is_ident_start, skip, token_len, PError, MAX_NESTING, P, R};
use crate::ast::{Arg, BinaryOp, Expr, ExprKind, Field, Ident, StrPart};

impl<'s> P<'s> {
    // ---- expressions ----

    pub fn expr(&self, input: &'s str) -> R<'s, Expr> {
        self.at_this_depth(|| {
            self.deeper(input)?;
            stacker::maybe_grow(
                crate::eval::STACK_RED_ZONE,
                crate::eval::STACK_SEGMENT,
                || self.expr_inner(input),
            )
        })
    }

    /// Runs `parse` and gives the depth back as it was: every level that
    /// `parse` added with [`deeper`](Self::deeper) ends with it.
    fn at_this_depth<T>(&self, parse: impl FnOnce() -> T) -> T {
        let base = self.depth.get();
        let result = parse();
        self.depth.set(base);
        result
    }

    /// One more level of the expression being built (a nested expression,
    /// an operator of a chain, a `!`, a `.field`, an index or a call),
    /// refused past [`MAX_NESTING`]: every construct is bounded, so no input
    /// makes the parser, the evaluator or a drop recurse without end. Callers
    /// run inside [`at_this_depth`](Self::at_this_depth).
    fn deeper(&self, at: &'s str) -> Result<(), nom::Err<PError>> {
        if self.depth.get() >= MAX_NESTING {
            let at = skip(at);
            return fail(
                PError::at(
                    at,
                    token_len(at),
                    format!("expressions nest deeper than {MAX_NESTING} levels"),
                )
                .hint("every nested expression, operator, `!`, `.field`, index and call is a level: split the expression with `let`"),
            );
        }
        self.depth.set(self.depth.get() + 1);
        Ok(())
    }

    pub(super) fn expr_inner(&self, input: &'s str) -> R<'s, Expr> {
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

    pub(super) fn keyword(
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

    /// Binary operators by precedence level, loosest first; each operator of
    /// a chain is one level of nesting.
    pub(super) fn binary(&self, input: &'s str, level: usize) -> R<'s, Expr> {
        self.at_this_depth(|| self.binary_chain(input, level))
    }

    fn binary_chain(&self, input: &'s str, level: usize) -> R<'s, Expr> {
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
            self.deeper(at)?;
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

    pub(super) fn unary(&self, input: &'s str) -> R<'s, Expr> {
        self.at_this_depth(|| self.unary_inner(input))
    }

    fn unary_inner(&self, input: &'s str) -> R<'s, Expr> {
        let start = skip(input);
        if let Some(after) = start.strip_prefix('!') {
            if !after.starts_with('=') {
                self.deeper(start)?;
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

    pub(super) fn postfix(&self, input: &'s str) -> R<'s, Expr> {
        self.at_this_depth(|| self.postfix_chain(input))
    }

    fn postfix_chain(&self, input: &'s str) -> R<'s, Expr> {
        let start = skip(input);
        let (mut rest, mut expr) = self.primary(start)?;
        loop {
            let at = skip(rest);
            let postfix = at.starts_with(['.', '[', '('])
                || (at.starts_with('{')
                    && matches!(expr.kind, ExprKind::Var(_) | ExprKind::Field(..)));
            if postfix {
                self.deeper(at)?;
            }
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
                let (after, fields) = self.record(at)?;
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

    pub(super) fn args(&self, input: &'s str, open: usize) -> R<'s, Vec<Arg>> {
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

    /// A value that needs no operator: a literal, a list, a record, a
    /// parenthesized expression, a number, a word or `class { … }`.
    pub(super) fn primary(&self, input: &'s str) -> R<'s, Expr> {
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
                let (rest, items) = self.list(start)?;
                Ok((
                    rest,
                    Expr {
                        kind: ExprKind::List(items),
                        span: self.span(start, rest),
                    },
                ))
            }
            '{' => {
                let (rest, fields) = self.record(start)?;
                Ok((
                    rest,
                    Expr {
                        kind: ExprKind::Record(fields),
                        span: self.span(start, rest),
                    },
                ))
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
            c if is_ident_start(c) => self.word(start),
            _ => Err(nom::Err::Error(self.expected(start, "a value"))),
        }
    }

    /// The elements of `[a, b, …]`; `start` is at the `[`.
    fn list(&self, start: &'s str) -> R<'s, Vec<Expr>> {
        let open = self.off(start);
        let mut rest = &start[1..];
        let mut items = Vec::new();
        loop {
            if let Some(after) = self.punct(rest, "]") {
                return Ok((after, items));
            }
            if skip(rest).is_empty() {
                return self
                    .close(rest, "]", open, "list")
                    .map(|(r, _)| (r, Vec::new()));
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
                    return Ok((after, items));
                }
            };
        }
    }

    /// The fields of `{ name = value, … }`; `start` is at the `{`.
    pub(super) fn record(&self, start: &'s str) -> R<'s, Vec<Field>> {
        let open = self.off(start);
        let mut rest = &start[1..];
        let mut fields: Vec<Field> = Vec::new();
        loop {
            let at = skip(rest);
            if let Some(after) = at.strip_prefix('}') {
                return Ok((after, fields));
            }
            if at.is_empty() {
                return self
                    .close(at, "}", open, "block")
                    .map(|(r, _)| (r, Vec::new()));
            }
            let (after, name) = self.field_name(at, open)?;
            if let Some(first) = fields.iter().find(|f| f.name.name == name.name) {
                return fail(
                    PError::at(
                        at,
                        name.span.len(),
                        format!("field `{}` is set twice", name.name),
                    )
                    .related(
                        first.name.span.start as usize,
                        first.name.span.end as usize,
                        "first set here",
                    )
                    .hint("remove one of them (use `//` to override fields of another record)"),
                );
            }
            let Some(value_at) = self.assign(after) else {
                return fail(
                    self.expected(after, &format!("`=` after the field name `{}`", name.name)),
                );
            };
            let (after, value) = match self.expr(value_at) {
                Ok(ok) => ok,
                Err(nom::Err::Error(_)) => {
                    return fail(self.expected(value_at, &format!("a value for `{}`", name.name)))
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

    /// A record field's name: a word, or a plain quoted string; `open` is
    /// where the record's `{` is.
    fn field_name(&self, at: &'s str, open: usize) -> R<'s, Ident> {
        if at.starts_with('"') {
            let (after, (parts, span)) = self.string(at)?;
            return match parts.as_slice() {
                [StrPart::Lit(text)] => Ok((
                    after,
                    Ident {
                        name: text.clone(),
                        span,
                    },
                )),
                _ => fail(PError::at(
                    at,
                    span.len(),
                    "a quoted field name must be plain text",
                )),
            };
        }
        match self.ident(at) {
            Ok(ok) => Ok(ok),
            Err(_) => fail(self.expected(at, "a field name or `}`").related(
                open,
                open + 1,
                "block opened here",
            )),
        }
    }

    /// A primary that starts with a letter: `true`, `false`, `self`,
    /// `class { … }` or a variable.
    fn word(&self, start: &'s str) -> R<'s, Expr> {
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
}
