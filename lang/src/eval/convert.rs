//! Checked conversions from runtime values to the model's typed fields.
use std::rc::Rc;

use super::value::{Piece, Record, Value, SV};
use super::{EvalResult, Evaluator};
use crate::diagnostics::{quoted_list, suggest, Diagnostic};
use crate::model::{Amount, PackageId, Text, TextFileId, TextPart};

impl Evaluator<'_> {
    pub(crate) fn type_error(&mut self, sv: &SV, what: &str, expected: &str) -> super::Reported {
        self.error(
            Diagnostic::new(
                format!("{what} must be {expected}, found {}", sv.value.kind()),
                sv.span,
            )
            .label(format!("this is {}", sv.value.kind())),
        )
    }

    /// A string (or a package, file or secret, which stand for their paths):
    /// what a command, hook, URL or file text must be. A number is refused,
    /// so `exec = 5` is an error at its location, not a command `5`.
    pub(crate) fn expect_text(&mut self, sv: &SV, what: &str) -> EvalResult<Rc<Vec<Piece>>> {
        if let Value::Int(n) = sv.value {
            return Err(self.error(
                Diagnostic::new(
                    format!("{what} must be a string, found {}", sv.value.kind()),
                    sv.span,
                )
                .label(format!("this is {}", sv.value.kind()))
                .hint(format!("quote it if the text `{n}` is meant: `\"{n}\"`")),
            ));
        }
        self.expect_text_or_number(sv, what)
    }

    /// As [`expect_text`](Self::expect_text), and an integer is its decimal
    /// digits: for environment values (`PORT = 8080`) and `join`'s elements.
    pub(crate) fn expect_text_or_number(
        &mut self,
        sv: &SV,
        what: &str,
    ) -> EvalResult<Rc<Vec<Piece>>> {
        match &sv.value {
            Value::Text(pieces) => Ok(pieces.clone()),
            Value::Package(slot) => Ok(Rc::new(vec![Piece::Package(*slot)])),
            Value::File(slot) => Ok(Rc::new(vec![Piece::File(*slot)])),
            Value::Secret(slot) => Ok(Rc::new(vec![Piece::Secret(*slot)])),
            Value::Int(n) => Ok(Rc::new(vec![Piece::Lit(n.to_string())])),
            Value::Path(p) => Ok(Rc::new(vec![Piece::Lit(p.display().to_string())])),
            _ => Err(self.type_error(sv, what, "a string")),
        }
    }

    /// A string with no package, file or secret in it.
    pub(crate) fn expect_literal(&mut self, sv: &SV, what: &str) -> EvalResult<String> {
        match &sv.value {
            Value::Text(_) => match sv.value.literal() {
                Some(text) => Ok(text),
                None => Err(self.error(
                    Diagnostic::new(format!("{what} must be plain text, but it mentions a package, file or secret"), sv.span)
                        .hint("only commands, environment values, hooks and file texts can refer to store paths"),
                )),
            },
            Value::Symbol(word) => Ok(word.to_string()),
            _ => Err(self.type_error(sv, what, "a string")),
        }
    }

    pub(crate) fn expect_list(&mut self, sv: &SV, what: &str) -> EvalResult<Rc<Vec<SV>>> {
        match &sv.value {
            Value::List(items) => Ok(items.clone()),
            _ => Err(self.type_error(sv, what, "a list `[…]`")),
        }
    }

    /// A list, or a single value taken as a list of one.
    pub(crate) fn one_or_many(&mut self, sv: &SV) -> Rc<Vec<SV>> {
        match &sv.value {
            Value::List(items) => items.clone(),
            _ => Rc::new(vec![sv.clone()]),
        }
    }

    pub(crate) fn expect_record(&mut self, sv: &SV, what: &str) -> EvalResult<Rc<Record>> {
        match &sv.value {
            Value::Record(record) => Ok(record.clone()),
            _ => Err(self.type_error(sv, what, "a record `{ … }`")),
        }
    }

    pub(crate) fn expect_bool(&mut self, sv: &SV, what: &str) -> EvalResult<bool> {
        match &sv.value {
            Value::Bool(b) => Ok(*b),
            _ => Err(self.type_error(sv, what, "`true` or `false`")),
        }
    }

    /// A non-negative duration in milliseconds.
    pub(crate) fn expect_duration(&mut self, sv: &SV, what: &str) -> EvalResult<u64> {
        match &sv.value {
            Value::Duration(ms) if *ms < 0 => Err(self.error(
                Diagnostic::new(format!("{what} cannot be negative"), sv.span)
                    .label("negative duration")
                    .hint("use a duration of 0 or more, like `10s`"),
            )),
            Value::Duration(ms) => Ok(*ms as u64),
            Value::Int(n) => Err(self.error(
                Diagnostic::new(
                    format!("{what} must be a duration, found the integer {n}"),
                    sv.span,
                )
                .hint(format!("add a unit: `{n}s`, `{n}ms` or `{n}m`")),
            )),
            _ => Err(self.type_error(sv, what, "a duration like `10s`")),
        }
    }

    /// A non-negative integer that fits in `u32`.
    pub(crate) fn expect_count(&mut self, sv: &SV, what: &str) -> EvalResult<u32> {
        match &sv.value {
            Value::Int(n) => match u32::try_from(*n) {
                Ok(n) => Ok(n),
                Err(_) if *n < 0 => Err(self.error(Diagnostic::new(
                    format!("{what} cannot be negative"),
                    sv.span,
                ))),
                Err(_) => Err(self.error(Diagnostic::new(format!("{what} is too large"), sv.span))),
            },
            _ => Err(self.type_error(sv, what, "an integer")),
        }
    }

    pub(crate) fn expect_amount(&mut self, sv: &SV, what: &str) -> EvalResult<Amount> {
        match &sv.value {
            Value::Percent(p) if !(0..=100).contains(p) => Err(self.error(
                Diagnostic::new(
                    format!("{what} is {p}%, but a percentage must be between 0% and 100%"),
                    sv.span,
                )
                .label("out of range"),
            )),
            Value::Percent(p) => Ok(Amount::Percent(*p as u8)),
            Value::Int(_) => Ok(Amount::Count(self.expect_count(sv, what)?)),
            _ => Err(self.type_error(sv, what, "a number of hosts (`2`) or a percentage (`30%`)")),
        }
    }

    /// Reports every field of `record` not in `known`, with a suggestion.
    /// Returns false if there was one.
    pub(crate) fn check_fields(&mut self, record: &Record, known: &[&str], what: &str) -> bool {
        let mut ok = true;
        for (name, sv) in record {
            if !known.contains(&name.as_str()) {
                ok = false;
                let hint = suggest(name, known.iter().copied())
                    .unwrap_or_else(|| format!("{what} fields are: {}", quoted_list(known)));
                self.error(
                    Diagnostic::new(format!("unknown field `{name}` in {what}"), sv.span)
                        .label("unknown field")
                        .hint(hint),
                );
            }
        }
        ok
    }

    /// Turns runtime pieces into model text, noting the packages and files used.
    pub(crate) fn model_text(&mut self, pieces: &[Piece]) -> Text {
        let parts = pieces
            .iter()
            .map(|piece| match piece {
                Piece::Lit(t) => TextPart::Lit(t.clone()),
                Piece::Package(slot) => {
                    self.used_packages.insert(*slot);
                    TextPart::Package(PackageId(self.packages[*slot as usize].name.clone()))
                }
                Piece::File(slot) => {
                    self.used_files.insert(*slot);
                    TextPart::File(TextFileId(self.files[*slot as usize].name.clone()))
                }
                Piece::Secret(slot) => {
                    self.used_secrets.insert(*slot);
                    TextPart::Secret(self.secrets[*slot as usize].name.clone())
                }
            })
            .collect();
        Text { parts }
    }

    pub(crate) fn field_text(
        &mut self,
        record: &Record,
        field: &str,
        what: &str,
    ) -> EvalResult<Option<Text>> {
        match record.get(field) {
            Some(sv) => {
                let pieces = self.expect_text(sv, what)?;
                Ok(Some(self.model_text(&pieces)))
            }
            None => Ok(None),
        }
    }

    /// A record of strings (an environment), as model texts.
    pub(crate) fn env_map(
        &mut self,
        sv: &SV,
        what: &str,
    ) -> EvalResult<std::collections::BTreeMap<String, Text>> {
        let record = self.expect_record(sv, what)?;
        let mut env = std::collections::BTreeMap::new();
        let mut failed = false;
        for (name, value) in record.iter() {
            match self.expect_text_or_number(value, &format!("`{name}` in {what}")) {
                Ok(pieces) => {
                    let text = self.model_text(&pieces);
                    env.insert(name.clone(), text);
                }
                Err(_) => failed = true,
            }
        }
        if failed {
            Err(super::Reported)
        } else {
            Ok(env)
        }
    }
}
