//! Top-level declarations and class bodies.

use super::{fail, skip, PError, ITEM_KEYWORDS, P, R, SETTINGS};
use crate::ast::{ClassBody, ClassItem, Expr, ExprKind, Ident, Item, Param, StrPart};
use crate::diagnostics::suggest;

impl<'s> P<'s> {
    // ---- items ----

    /// One top-level declaration, chosen by its first word.
    pub(super) fn item(&self, input: &'s str) -> R<'s, Item> {
        let start = skip(input);
        let Ok((rest, keyword)) = self.ident(start) else {
            return fail(
                self.expected(start, "a declaration")
                    .hint("a site file holds `import`, `let`, `package`, `file`, `secret`, `class`, `every class` and settings like `inventory = …`"),
            );
        };
        match keyword.name.as_str() {
            "import" => self.import(start, rest),
            "let" => self.let_item(start, rest),
            "package" | "file" | "secret" => self.declaration(start, rest, &keyword.name),
            "class" => self.class_decl(start, rest),
            "every" => self.every(start, rest),
            name if SETTINGS.contains(&name) => self.setting(start, rest, keyword),
            other => fail(self.unknown_declaration(start, rest, other, keyword.span.len())),
        }
    }

    /// `import "path" [as name]`; `rest` is after `import`.
    fn import(&self, start: &'s str, rest: &'s str) -> R<'s, Item> {
        let path_start = skip(rest);
        let (rest, (parts, path_span)) = match self.string(path_start) {
            Ok(ok) => ok,
            Err(nom::Err::Error(_)) => {
                return fail(self.expected(rest, "a quoted path after `import`"))
            }
            Err(e) => return Err(e),
        };
        let path = match parts.as_slice() {
            [] => String::new(),
            [StrPart::Lit(text)] => text.clone(),
            _ => {
                return fail(
                    PError::at(
                        path_start,
                        path_span.len(),
                        "an import path cannot contain `${…}`",
                    )
                    .hint("imports are resolved before evaluation; write the path literally"),
                )
            }
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

    /// `let name = value` or `let name(params) = body`; `rest` is after `let`.
    fn let_item(&self, start: &'s str, rest: &'s str) -> R<'s, Item> {
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

    /// `package name { … }`, `file name { … }` or `secret name { … }`, as
    /// `what` says; `rest` is after that word.
    /// A package may also be `package name = expr` (`= debian("…")`).
    fn declaration(&self, start: &'s str, rest: &'s str, what: &str) -> R<'s, Item> {
        let (rest, name) = self.decl_name(rest, &format!("a name after `{what}`"))?;
        let body_start = skip(rest);
        let (rest, body) = match self.assign(rest) {
            Some(after) if what == "package" => self.expr(after)?,
            _ if body_start.starts_with('{') => self.primary(body_start)?,
            _ => {
                let wanted = if what == "package" {
                    format!("`{{` or `=` after the package `{}`", name.name)
                } else {
                    format!("`{{` to start the {what} `{}`", name.name)
                };
                let error = self.expected(rest, &wanted);
                return fail(if what == "package" {
                    error.hint("write `package NAME { build = \"…\" }` or `package NAME = debian(\"pkg\")`")
                } else {
                    error
                });
            }
        };
        let span = self.span(start, rest);
        Ok((
            rest,
            match what {
                "package" => Item::Package { name, body, span },
                "file" => Item::File { name, body, span },
                _ => Item::Secret { name, body, span },
            },
        ))
    }

    /// `class name { … }` or `class name = value`; `rest` is after `class`.
    fn class_decl(&self, start: &'s str, rest: &'s str) -> R<'s, Item> {
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
            return fail(self.expected(rest, &format!("`{{` or `=` after `class {}`", name.name)));
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

    /// `every class { … }`; `rest` is after `every`.
    fn every(&self, start: &'s str, rest: &'s str) -> R<'s, Item> {
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

    /// A site setting `name = value` (and `rollout { … }`); `rest` is after the name.
    fn setting(&self, start: &'s str, rest: &'s str, keyword: Ident) -> R<'s, Item> {
        if keyword.name == "rollout" && skip(rest).starts_with('{') {
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
            return fail(self.expected(rest, &format!("`=` after `{}`", keyword.name)));
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

    /// The error for a first word `other` (of `len` bytes) that starts no
    /// declaration: an unknown setting if it looks like one, else a guess.
    fn unknown_declaration(
        &self,
        start: &'s str,
        rest: &'s str,
        other: &str,
        len: usize,
    ) -> PError {
        let is_setting =
            self.assign(rest).is_some() || (skip(rest).starts_with('{') && other.starts_with('r'));
        if is_setting {
            PError::at(start, len, format!("unknown setting `{other}`"))
                .label("not a site setting")
                .maybe_hint(suggest(other, SETTINGS.iter().copied()))
        } else {
            let all = ITEM_KEYWORDS.iter().chain(SETTINGS).copied();
            PError::at(start, len, format!("expected a declaration, found `{other}`"))
                .maybe_hint(suggest(other, all).or_else(|| {
                    Some("declarations start with `import`, `let`, `package`, `file`, `secret`, `class` or `every`".to_string())
                }))
        }
    }

    pub(super) fn params(&self, input: &'s str, open: usize) -> R<'s, Vec<Param>> {
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

    pub(super) fn class_body(&self, input: &'s str) -> R<'s, ClassBody> {
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
            let (after, item) = self.class_body_item(at, after, word)?;
            items.push(item);
            rest = after;
            if let Some(after) = self.punct(rest, ",").or_else(|| self.punct(rest, ";")) {
                rest = after;
            }
        }
    }
    /// One entry of a class body, after its first word `word` (which starts
    /// at `at`; `after` is what follows it): `include`, `service` or a setting.
    fn class_body_item(&self, at: &'s str, after: &'s str, word: Ident) -> R<'s, ClassItem> {
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
                    return fail(
                        self.expected(after, &format!("`{{` or `=` after `service {}`", name.name)),
                    );
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
        Ok((after, item))
    }
}
