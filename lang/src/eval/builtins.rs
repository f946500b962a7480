//! Built-in functions: health checks, inventory sources, `path`, `hosts` and list helpers.
use std::collections::BTreeMap;
use std::rc::Rc;

use super::value::{Builtin, Piece, Record, Value, SV};
use super::{push_lit, record, EvalResult, Evaluator, Reported};
use crate::ast::Ident;
use crate::diagnostics::{quoted_list, suggest, Diagnostic};
use crate::inventory::{InventorySource, LabHostSpec, LabKind, LabSpec};
use crate::span::Span;

/// Parameters of each builtin, in positional order; the first `required` must be given.
fn signature(builtin: Builtin) -> (&'static [&'static str], usize) {
    match builtin {
        Builtin::Path => (&["path"], 1),
        Builtin::Http => (&["url", "timeout", "retries", "interval", "ca"], 1),
        Builtin::Tcp => (&["port", "host", "timeout", "retries", "interval"], 1),
        Builtin::Command => (&["command", "timeout", "retries", "interval"], 1),
        Builtin::InventoryFile => (&["path"], 1),
        Builtin::Exec => (&["command"], 1),
        Builtin::Ansible => (&["path"], 1),
        Builtin::Lab => (&["hosts", "subnet", "kind"], 1),
        Builtin::Hosts => (&["class"], 0),
        Builtin::Map => (&["function", "list"], 2),
        Builtin::Join => (&["list", "separator"], 1),
        Builtin::Length => (&["list"], 1),
        Builtin::Range => (&["count"], 1),
        Builtin::ToString => (&["value"], 1),
        Builtin::TextFile => (&["name", "text", "executable"], 2),
        Builtin::Debian => (&["packages"], 1),
    }
}

impl Evaluator<'_> {
    fn builtin_args(
        &mut self,
        builtin: Builtin,
        call_span: Span,
        positional: Vec<SV>,
        named: Vec<(Ident, SV)>,
    ) -> EvalResult<Vec<Option<SV>>> {
        let (params, required) = signature(builtin);
        let name = builtin.name();
        if positional.len() > params.len() {
            return Err(self.error(Diagnostic::new(
                format!(
                    "`{name}` takes at most {} arguments, but {} were given",
                    params.len(),
                    positional.len()
                ),
                call_span,
            )));
        }
        let mut args: Vec<Option<SV>> = vec![None; params.len()];
        for (i, value) in positional.into_iter().enumerate() {
            args[i] = Some(value);
        }
        for (arg, value) in named {
            match params.iter().position(|p| *p == arg.name) {
                Some(i) if args[i].is_some() => {
                    return Err(self.error(Diagnostic::new(
                        format!("argument `{}` is given twice", arg.name),
                        arg.span,
                    )))
                }
                Some(i) => args[i] = Some(value),
                None => {
                    let hint = suggest(&arg.name, params.iter().copied())
                        .unwrap_or_else(|| format!("`{name}` takes: {}", quoted_list(params)));
                    return Err(self.error(
                        Diagnostic::new(
                            format!("`{name}` has no parameter `{}`", arg.name),
                            arg.span,
                        )
                        .label("unknown parameter")
                        .hint(hint),
                    ));
                }
            }
        }
        if let Some(missing) = params[..required]
            .iter()
            .zip(&args)
            .find(|(_, a)| a.is_none())
        {
            return Err(self.error(Diagnostic::new(
                format!("`{name}` needs the argument `{}`", missing.0),
                call_span,
            )));
        }
        Ok(args)
    }

    /// Calls a builtin with its arguments as written: checks them against
    /// the builtin's signature, then computes its value.
    pub(crate) fn call_builtin(
        &mut self,
        builtin: Builtin,
        call_span: Span,
        positional: Vec<SV>,
        named: Vec<(Ident, SV)>,
    ) -> EvalResult<Value> {
        let args = self.builtin_args(builtin, call_span, positional, named)?;
        let (params, _) = signature(builtin);
        // Optional arguments that were given, by name.
        let given = |args: &[Option<SV>]| -> Record {
            params
                .iter()
                .zip(args)
                .filter_map(|(p, a)| a.clone().map(|a| (p.to_string(), a)))
                .collect()
        };
        let first = args[0].clone();
        match builtin {
            Builtin::Path => {
                let sv = first.ok_or(Reported)?;
                let text = self.expect_literal(&sv, "the argument of `path`")?;
                Ok(Value::Path(Rc::new(self.resolve_path(call_span, &text))))
            }
            Builtin::Http => Ok(Value::Tagged("health.http", Rc::new(given(&args)))),
            Builtin::Tcp => Ok(Value::Tagged("health.tcp", Rc::new(given(&args)))),
            Builtin::Command => Ok(Value::Tagged("health.command", Rc::new(given(&args)))),
            Builtin::InventoryFile | Builtin::Ansible => {
                self.inventory_file(builtin, first.ok_or(Reported)?, call_span)
            }
            Builtin::Exec => self.inventory_exec(first.ok_or(Reported)?, call_span),
            Builtin::Lab => Ok(Value::Tagged("inventory.lab", Rc::new(given(&args)))),
            Builtin::Hosts => self.hosts_of(first, call_span),
            Builtin::Map => {
                let function = first.ok_or(Reported)?;
                let list = args[1].clone().ok_or(Reported)?;
                self.map(function, &list, call_span)
            }
            Builtin::Join => self.join(&first.ok_or(Reported)?, args[1].as_ref()),
            Builtin::Length => {
                let sv = first.ok_or(Reported)?;
                match &sv.value {
                    Value::List(items) => Ok(Value::Int(items.len() as i64)),
                    Value::Record(fields) => Ok(Value::Int(fields.len() as i64)),
                    _ => Err(self.type_error(&sv, "the argument of `length`", "a list or record")),
                }
            }
            Builtin::Range => {
                let sv = first.ok_or(Reported)?;
                let count = self.expect_count(&sv, "the argument of `range`")?;
                self.charge(
                    count as u64,
                    count as u64 * super::expr::ELEMENT_SIZE,
                    call_span,
                )?;
                Ok(Value::List(Rc::new(
                    (0..count as i64)
                        .map(|i| SV::new(Value::Int(i), sv.span))
                        .collect(),
                )))
            }
            Builtin::TextFile => {
                let name = first.ok_or(Reported)?;
                let text = args[1].clone().ok_or(Reported)?;
                self.inline_text_file(&name, &text, args[2].as_ref(), call_span)
            }
            Builtin::Debian => self.debian_source(&first.ok_or(Reported)?),
            Builtin::ToString => {
                let sv = first.ok_or(Reported)?;
                let mut pieces = Vec::new();
                self.interpolate(&mut pieces, sv.value, sv.span)?;
                Ok(Value::Text(Rc::new(pieces)))
            }
        }
    }

    /// `debian("pkg")` or `debian(["a", "b (>= 2)"])`: the packages (with
    /// optional version constraints) a `package NAME = …` takes from the
    /// deployer's apt sources. Only the syntax is checked here; `ferry lock`
    /// resolves them.
    fn debian_source(&mut self, sv: &SV) -> EvalResult<Value> {
        let items = self.one_or_many(sv);
        if items.is_empty() {
            return Err(self.error(
                Diagnostic::new("`debian` needs at least one package", sv.span)
                    .hint("name a package: `debian(\"postgresql-15\")`"),
            ));
        }
        let mut roots = Vec::new();
        for item in items.iter() {
            let text = self.expect_literal(item, "a Debian package")?;
            if let Err(reason) = check_debian_root(&text) {
                return Err(self.error(
                    Diagnostic::new(format!("{text:?} is not a Debian package: {reason}"), item.span)
                        .hint("write a package name with an optional constraint, like \"libpq5\" or \"libpq5 (>= 15)\""),
                ));
            }
            roots.push(SV::new(
                Value::Text(Rc::new(vec![Piece::Lit(text)])),
                item.span,
            ));
        }
        let fields = [(
            "packages".to_string(),
            SV::new(Value::List(Rc::new(roots)), sv.span),
        )];
        Ok(Value::Tagged(
            "package.debian",
            Rc::new(fields.into_iter().collect()),
        ))
    }

    /// `file(path)` or `ansible(path)`: an inventory source read from a file.
    fn inventory_file(&mut self, builtin: Builtin, sv: SV, call_span: Span) -> EvalResult<Value> {
        let path = self.path_arg(&sv, call_span, builtin.name())?;
        let kind = if builtin == Builtin::Ansible {
            "inventory.ansible"
        } else {
            "inventory.file"
        };
        let fields = [(
            "path".to_string(),
            SV::new(Value::Path(Rc::new(path)), sv.span),
        )];
        Ok(Value::Tagged(kind, Rc::new(fields.into_iter().collect())))
    }

    /// `exec(command)`: an inventory program, run in the calling file's directory.
    fn inventory_exec(&mut self, command: SV, call_span: Span) -> EvalResult<Value> {
        self.argv(&command, "the command of `exec`")?;
        let dir = SV::new(
            Value::Path(Rc::new(self.resolve_path(call_span, "."))),
            call_span,
        );
        let fields = [("command".to_string(), command), ("dir".to_string(), dir)];
        Ok(Value::Tagged(
            "inventory.exec",
            Rc::new(fields.into_iter().collect()),
        ))
    }

    /// `map(function, list)`: the function applied to each element.
    fn map(&mut self, function: SV, list: &SV, call_span: Span) -> EvalResult<Value> {
        let list = self.expect_list(list, "the second argument of `map`")?;
        let mut out = Vec::with_capacity(list.len());
        for item in list.iter() {
            let value = self.call(
                function.value.clone(),
                function.span,
                call_span,
                vec![item.clone()],
                Vec::new(),
            )?;
            out.push(SV::new(value, item.span));
        }
        Ok(Value::List(Rc::new(out)))
    }

    /// `join(list, separator)`: the strings of the list, one text.
    fn join(&mut self, list: &SV, separator: Option<&SV>) -> EvalResult<Value> {
        let list = self.expect_list(list, "the first argument of `join`")?;
        let separator = match separator {
            Some(sv) => self.expect_text(sv, "the separator of `join`")?,
            None => Rc::new(Vec::new()),
        };
        let mut pieces = Vec::new();
        for (i, item) in list.iter().enumerate() {
            if i > 0 {
                append(&mut pieces, &separator);
            }
            let text = self.expect_text_or_number(item, "an element joined by `join`")?;
            let size = super::expr::text_size(&text) + super::expr::text_size(&separator);
            self.charge(size / 64 + 1, size, item.span)?;
            append(&mut pieces, &text);
        }
        Ok(Value::Text(Rc::new(pieces)))
    }

    /// `text_file(name, text, executable)`: a file declared inline; the same
    /// name and content from several calls is one file.
    fn inline_text_file(
        &mut self,
        name_sv: &SV,
        text_sv: &SV,
        executable: Option<&SV>,
        call_span: Span,
    ) -> EvalResult<Value> {
        let name = self.expect_literal(name_sv, "the name of `text_file`")?;
        let text = self.expect_text(text_sv, "the text of `text_file`")?;
        let executable = match executable {
            Some(sv) => self.expect_bool(sv, "`executable`")?,
            None => false,
        };
        let existing = self.files.iter().position(|slot| {
            slot.name == name
                && slot
                    .inline
                    .as_ref()
                    .is_some_and(|(t, x)| **t == *text && *x == executable)
        });
        let slot = match existing {
            Some(slot) => slot as u32,
            None => {
                self.files.push(super::DeclSlot {
                    module: call_span.file.0,
                    item: usize::MAX,
                    name,
                    name_span: call_span,
                    inline: Some((text, executable)),
                });
                (self.files.len() - 1) as u32
            }
        };
        Ok(Value::File(slot))
    }

    fn path_arg(
        &mut self,
        sv: &SV,
        call_span: Span,
        function: &str,
    ) -> EvalResult<std::path::PathBuf> {
        match &sv.value {
            Value::Path(p) => Ok((**p).clone()),
            _ => {
                let text = self.expect_literal(sv, &format!("the path of `{function}`"))?;
                Ok(self.resolve_path(call_span, &text))
            }
        }
    }

    /// A command as argv: a list of strings, or one string split on whitespace.
    pub(crate) fn argv(&mut self, sv: &SV, what: &str) -> EvalResult<Vec<String>> {
        let argv = match &sv.value {
            Value::List(items) => {
                let mut argv = Vec::new();
                for item in items.iter() {
                    argv.push(self.expect_literal(item, what)?);
                }
                argv
            }
            Value::Text(_) => self
                .expect_literal(sv, what)?
                .split_whitespace()
                .map(str::to_string)
                .collect(),
            _ => {
                return Err(self.type_error(sv, what, "a command (a string or a list of strings)"))
            }
        };
        if argv.is_empty() {
            return Err(self.error(Diagnostic::new(format!("{what} is empty"), sv.span)));
        }
        Ok(argv)
    }

    /// `hosts(class)`: the inventory's hosts of one class as records.
    fn hosts_of(&mut self, class: Option<SV>, call_span: Span) -> EvalResult<Value> {
        let wanted: Option<Rc<str>> = match &class {
            None => None,
            Some(sv) => Some(match &sv.value {
                Value::Class(c) => match &c.name {
                    Some(name) => name.clone(),
                    None => {
                        return Err(
                            self.error(Diagnostic::new("`hosts` needs a named class", sv.span))
                        )
                    }
                },
                Value::ClassName(name) => name.clone(),
                Value::Text(_) => {
                    Rc::from(self.expect_literal(sv, "the class of `hosts`")?.as_str())
                }
                _ => return Err(self.type_error(sv, "the argument of `hosts`", "a class")),
            }),
        };
        let hosts = self.hosts(call_span)?;
        let list = hosts
            .iter()
            .filter(|h| wanted.as_deref().is_none_or(|w| h.class == w))
            .map(|h| {
                let sv = |v: Value| SV::new(v, call_span);
                let labels: BTreeMap<String, SV> = h
                    .labels
                    .iter()
                    .map(|(k, v)| (k.clone(), sv(Value::text(v))))
                    .collect();
                let mut fields = vec![
                    ("name".to_string(), sv(Value::text(&h.name))),
                    ("class".to_string(), sv(Value::text(&h.class))),
                    ("address".to_string(), sv(Value::text(&h.address))),
                    ("labels".to_string(), sv(Value::Record(Rc::new(labels)))),
                ];
                if let Some(port) = h.port {
                    fields.push(("port".to_string(), sv(Value::Int(port.into()))));
                }
                if let Some(user) = &h.user {
                    fields.push(("user".to_string(), sv(Value::text(user))));
                }
                SV::new(record(fields), call_span)
            })
            .collect();
        Ok(Value::List(Rc::new(list)))
    }

    /// The root module's `inventory = …` as a source for the resolver.
    pub(crate) fn inventory_source(&mut self) -> EvalResult<Option<(InventorySource, Span)>> {
        let Some(module) = self.modules.first() else {
            return Ok(None);
        };
        let Some(&item) = module.settings.get("inventory") else {
            return Ok(None);
        };
        let ast = module.ast.clone();
        let crate::ast::Item::Setting { value, .. } = &ast.items[item] else {
            return Ok(None);
        };
        let sv = self.eval_sv(value, 0, None)?;
        let Value::Tagged(kind, fields) = &sv.value else {
            return Err(self.error(
                Diagnostic::new(format!("`inventory` must be an inventory source, found {}", sv.value.kind()), sv.span)
                    .hint("use `file(\"hosts.toml\")`, `exec(\"./list-hosts\")`, `ansible(\"inventory.ini\")` or `lab { hosts = [ … ] }`"),
            ));
        };
        let path = |fields: &Record| match fields.get("path").map(|p| &p.value) {
            Some(Value::Path(p)) => (**p).clone(),
            _ => std::path::PathBuf::new(),
        };
        let source = match *kind {
            "inventory.file" => InventorySource::File { path: path(fields) },
            "inventory.ansible" => InventorySource::Ansible { path: path(fields) },
            "inventory.exec" => {
                let command_sv = fields.get("command").cloned().ok_or(Reported)?;
                let command = self.argv(&command_sv, "the command of `exec`")?;
                let dir = match fields.get("dir").map(|d| &d.value) {
                    Some(Value::Path(p)) => (**p).clone(),
                    _ => std::path::PathBuf::new(),
                };
                InventorySource::Exec { command, dir }
            }
            "inventory.lab" => InventorySource::Lab(self.lab_spec(fields)?),
            _ => {
                return Err(self.error(Diagnostic::new(
                    format!(
                        "`inventory` must be an inventory source, found {}",
                        sv.value.kind()
                    ),
                    sv.span,
                )))
            }
        };
        Ok(Some((source, sv.span)))
    }

    fn lab_spec(&mut self, fields: &Record) -> EvalResult<LabSpec> {
        let subnet = match fields.get("subnet") {
            Some(sv) => {
                let subnet = self.expect_literal(sv, "the lab subnet")?;
                if crate::inventory::lab_subnet_network(&subnet).is_none() {
                    return Err(self.error(
                        Diagnostic::new(
                            format!("lab subnet `{subnet}` is not an IPv4 /24 network like `10.237.0.0/24`"),
                            sv.span,
                        )
                        .hint("a lab host gets the address .2 + its position in the list; `.1` is the bridge"),
                    ));
                }
                Some(subnet)
            }
            None => None,
        };
        let kind = match fields.get("kind") {
            Some(sv) => self.lab_kind(sv)?,
            None => LabKind::default(),
        };
        let hosts_sv = fields.get("hosts").cloned().ok_or(Reported)?;
        let list = self.expect_list(&hosts_sv, "the lab's `hosts`")?;
        let mut hosts: Vec<LabHostSpec> = Vec::new();
        let mut first_at: BTreeMap<String, Span> = BTreeMap::new();
        let mut failed = false;
        for entry in list.iter() {
            match self.lab_host(entry) {
                Ok(host) => {
                    if let Some(&first) = first_at.get(&host.name) {
                        failed = true;
                        self.error(
                            Diagnostic::new(
                                format!("the lab lists host `{}` twice", host.name),
                                entry.span,
                            )
                            .label("listed again here")
                            .related(first, "first listed here")
                            .hint("host names must be unique in a site"),
                        );
                        continue;
                    }
                    first_at.insert(host.name.clone(), entry.span);
                    hosts.push(host);
                }
                Err(_) => failed = true,
            }
        }
        if failed {
            return Err(Reported);
        }
        Ok(LabSpec {
            subnet,
            kind,
            hosts,
        })
    }

    fn lab_kind(&mut self, sv: &SV) -> EvalResult<LabKind> {
        let word = self.expect_literal(sv, "the lab's `kind`")?;
        match LabKind::from_word(&word) {
            Some(kind) => Ok(kind),
            None => Err(self.error(
                Diagnostic::new(format!("unknown lab kind `{word}`"), sv.span).hint(
                    "use `kind = \"namespace\"` (the default: namespaces on the deployer's root) \
                     or `kind = \"root\"` (booted hosts with a Debian root of their own)",
                ),
            )),
        }
    }

    fn lab_host(&mut self, entry: &SV) -> EvalResult<LabHostSpec> {
        let record = self.expect_record(entry, "a lab host")?;
        if !self.check_fields(&record, &["name", "class", "labels"], "a lab host") {
            return Err(Reported);
        }
        let Some(name_sv) = record.get("name") else {
            return Err(self.error(Diagnostic::new("a lab host needs a `name`", entry.span)));
        };
        let name = self.expect_literal(name_sv, "a lab host's `name`")?;
        let Some(class_sv) = record.get("class") else {
            return Err(self.error(Diagnostic::new(
                format!("lab host `{name}` needs a `class`"),
                entry.span,
            )));
        };
        let class = match &class_sv.value {
            Value::Class(c) if c.name.is_some() => {
                c.name.as_deref().unwrap_or_default().to_string()
            }
            Value::ClassName(c) => c.to_string(),
            _ => self.expect_literal(class_sv, "a lab host's `class`")?,
        };
        let mut labels = BTreeMap::new();
        if let Some(labels_sv) = record.get("labels") {
            let fields = self.expect_record(labels_sv, "a lab host's `labels`")?;
            for (key, value) in fields.iter() {
                labels.insert(
                    key.clone(),
                    self.expect_literal(value, &format!("label `{key}`"))?,
                );
            }
        }
        Ok(LabHostSpec {
            name,
            class,
            labels,
        })
    }
}

fn append(pieces: &mut Vec<Piece>, more: &[Piece]) {
    for piece in more {
        match piece {
            Piece::Lit(t) => push_lit(pieces, t),
            other => pieces.push(other.clone()),
        }
    }
}

/// Checks the syntax of a Debian root, `name` or `name (op version)`: a
/// name is lower-case letters, digits and `+ - .`, at least two characters,
/// starting with a letter or digit (Debian policy §5.6.1); `op` is one of
/// `<< <= = >= >>`.
pub(crate) fn check_debian_root(text: &str) -> Result<(), &'static str> {
    let (name, constraint) = match text.split_once('(') {
        Some((name, rest)) => (name.trim(), Some(rest)),
        None => (text.trim(), None),
    };
    let valid_name = name.len() >= 2
        && name.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "+-.".contains(c));
    if !valid_name {
        return Err("a package name is lower-case letters, digits and `+-.`");
    }
    let Some(rest) = constraint else {
        return Ok(());
    };
    let Some(inner) = rest.trim_end().strip_suffix(')') else {
        return Err("the version constraint has no closing `)`");
    };
    let inner = inner.trim();
    let op = ["<<", "<=", ">=", ">>", "="]
        .into_iter()
        .find(|op| inner.starts_with(op))
        .ok_or("a constraint starts with `<<`, `<=`, `=`, `>=` or `>>`")?;
    let version = inner[op.len()..].trim();
    if version.is_empty() || version.contains(char::is_whitespace) || version.contains(['(', ')']) {
        return Err("the constraint needs one version, like `(>= 15)`");
    }
    Ok(())
}

#[cfg(test)]
mod debian_root_tests {
    use super::check_debian_root;

    #[test]
    fn debian_roots_are_names_with_an_optional_constraint() {
        for ok in [
            "busybox",
            "libpq5 (>= 15)",
            "g++-12",
            "python3.11",
            "libfoo (= 1:2.0~rc1-3)",
        ] {
            assert_eq!(check_debian_root(ok), Ok(()), "{ok}");
        }
        for bad in [
            "",
            "a",
            "Busybox",
            "busy box",
            "libpq5 (>= 15",
            "libpq5 (~ 15)",
            "libpq5 (>= )",
            "x (>= 1 2)",
        ] {
            assert!(check_debian_root(bad).is_err(), "{bad}");
        }
    }
}
