//! Prints a syntax tree back as source text (used by the round-trip property test).
//!
//! The output is canonical, not layout-preserving: binary operators, `if` and
//! `!` are always parenthesized, durations are printed in milliseconds,
//! strings with all escapes. Parsing the output gives the same tree again
//! (up to spans), which `tests/roundtrip.rs` checks on generated trees.
use crate::ast::{Arg, ClassBody, ClassItem, Expr, ExprKind, Field, File, Item, StrPart};
use crate::parse::is_identifier;

/// The source text of a whole file.
pub fn file(file: &File) -> String {
    let mut out = String::new();
    for item in &file.items {
        print_item(&mut out, item);
        out.push('\n');
    }
    out
}

/// The source text of one expression.
pub fn expr(expr: &Expr) -> String {
    let mut out = String::new();
    print_expr(&mut out, expr);
    out
}

fn print_item(out: &mut String, item: &Item) {
    match item {
        Item::Import { path, alias, .. } => {
            out.push_str("import ");
            print_literal(out, path);
            if let Some(alias) = alias {
                out.push_str(" as ");
                out.push_str(&alias.name);
            }
        }
        Item::Let {
            name,
            params,
            value,
            ..
        } => {
            out.push_str("let ");
            out.push_str(&name.name);
            if let Some(params) = params {
                out.push('(');
                for (i, param) in params.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    out.push_str(&param.name.name);
                    if let Some(default) = &param.default {
                        out.push_str(" = ");
                        print_expr(out, default);
                    }
                }
                out.push(')');
            }
            out.push_str(" = ");
            print_expr(out, value);
        }
        Item::Package { name, body, .. }
        | Item::File { name, body, .. }
        | Item::Secret { name, body, .. } => {
            out.push_str(match item {
                Item::Package { .. } => "package ",
                Item::File { .. } => "file ",
                _ => "secret ",
            });
            out.push_str(&name.name);
            // `package x = debian(…)`: any body that is not a record is assigned.
            out.push_str(if matches!(body.kind, ExprKind::Record(_)) {
                " "
            } else {
                " = "
            });
            print_expr(out, body);
        }
        Item::Class { name, value, .. } => {
            out.push_str("class ");
            out.push_str(&name.name);
            match &value.kind {
                ExprKind::Class(body) => {
                    out.push(' ');
                    print_class_body(out, body);
                }
                _ => {
                    out.push_str(" = ");
                    print_expr(out, value);
                }
            }
        }
        Item::Setting { name, value, .. } => print_binding(out, &name.name, value),
        Item::Every { body, .. } => {
            out.push_str("every class ");
            print_class_body(out, body);
        }
    }
}

fn print_class_body(out: &mut String, body: &ClassBody) {
    out.push_str("{\n");
    for item in &body.items {
        out.push_str("  ");
        match item {
            ClassItem::Include { value, .. } => {
                out.push_str("include ");
                print_expr(out, value);
            }
            ClassItem::Service { name, value, .. } => {
                out.push_str("service ");
                print_binding(out, &name.name, value);
            }
            ClassItem::Setting { name, value, .. } => print_binding(out, &name.name, value),
        }
        out.push('\n');
    }
    out.push('}');
}

fn print_literal(out: &mut String, text: &str) {
    out.push('"');
    escape_into(out, text);
    out.push('"');
}

fn escape_into(out: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            '$' => out.push_str("\\$"),
            c => out.push(c),
        }
    }
}

fn print_expr(out: &mut String, expr: &Expr) {
    match &expr.kind {
        ExprKind::Int(n) => out.push_str(&n.to_string()),
        ExprKind::Duration(ms) => out.push_str(&format!("{ms}ms")),
        ExprKind::Percent(p) => out.push_str(&format!("{p}%")),
        ExprKind::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        ExprKind::Str(parts) => print_string(out, parts),
        ExprKind::Var(name) => out.push_str(name),
        ExprKind::SelfClass => out.push_str("self"),
        ExprKind::List(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                print_expr(out, item);
            }
            out.push(']');
        }
        ExprKind::Record(fields) => print_record(out, fields),
        ExprKind::Field(target, name) => {
            print_postfix_target(out, target);
            out.push('.');
            out.push_str(&name.name);
        }
        ExprKind::Index(target, index) => {
            print_postfix_target(out, target);
            out.push('[');
            print_expr(out, index);
            out.push(']');
        }
        ExprKind::Call(callee, args) => {
            print_postfix_target(out, callee);
            print_args(out, args);
        }
        ExprKind::If(cond, then, otherwise) => {
            out.push_str("(if ");
            print_expr(out, cond);
            out.push_str(" then ");
            print_expr(out, then);
            out.push_str(" else ");
            print_expr(out, otherwise);
            out.push(')');
        }
        ExprKind::Binary(op, left, right) => {
            out.push('(');
            print_expr(out, left);
            out.push(' ');
            out.push_str(op.symbol());
            out.push(' ');
            print_expr(out, right);
            out.push(')');
        }
        ExprKind::Not(inner) => {
            out.push_str("!(");
            print_expr(out, inner);
            out.push(')');
        }
        ExprKind::Class(body) => {
            out.push_str("class ");
            print_class_body(out, body);
        }
    }
}

/// A string literal with its interpolations.
fn print_string(out: &mut String, parts: &[StrPart]) {
    out.push('"');
    for part in parts {
        match part {
            StrPart::Lit(text) => escape_into(out, text),
            StrPart::Interp(inner) => {
                out.push_str("${");
                print_expr(out, inner);
                out.push('}');
            }
        }
    }
    out.push('"');
}

/// `{ name = value, … }`, quoting names that are not identifiers.
fn print_record(out: &mut String, fields: &[Field]) {
    out.push('{');
    for (i, field) in fields.iter().enumerate() {
        out.push_str(if i > 0 { ", " } else { " " });
        if is_identifier(&field.name.name) {
            out.push_str(&field.name.name);
        } else {
            print_literal(out, &field.name.name);
        }
        out.push_str(" = ");
        print_expr(out, &field.value);
    }
    out.push_str(if fields.is_empty() { "}" } else { " }" });
}

/// A call's `(arguments)`.
fn print_args(out: &mut String, args: &[Arg]) {
    out.push('(');
    for (i, arg) in args.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        match arg {
            Arg::Positional(value) => print_expr(out, value),
            Arg::Named(name, value) => print_binding(out, &name.name, value),
        }
    }
    out.push(')');
}

/// `name = value`.
fn print_binding(out: &mut String, name: &str, value: &Expr) {
    out.push_str(name);
    out.push_str(" = ");
    print_expr(out, value);
}

/// Targets of `.`, `[…]` and calls: numbers and compound expressions get parentheses.
fn print_postfix_target(out: &mut String, target: &Expr) {
    let bare = matches!(
        target.kind,
        ExprKind::Var(_)
            | ExprKind::SelfClass
            | ExprKind::Str(_)
            | ExprKind::List(_)
            | ExprKind::Record(_)
            | ExprKind::Field(..)
            | ExprKind::Index(..)
            | ExprKind::Call(..)
    );
    if bare {
        print_expr(out, target);
    } else {
        out.push('(');
        print_expr(out, target);
        out.push(')');
    }
}
