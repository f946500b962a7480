//! Declarations the site uses: packages (with their inputs), text files and secrets.
use std::collections::{BTreeMap, BTreeSet};

use super::value::{Piece, Record, Value};
use super::{EvalResult, Evaluator, Reported};
use crate::ast::Item;
use crate::diagnostics::Diagnostic;
use crate::model::{Package, PackageId, Secret, SecretSource, Text, TextFile};
use crate::span::Span;

const PACKAGE_FIELDS: &[&str] = &["name", "src", "inputs", "build", "env"];
const FILE_FIELDS: &[&str] = &["name", "text", "executable"];
const SECRET_FIELDS: &[&str] = &["file", "env", "command"];

/// What a `package` declaration evaluates to.
enum PackageBody {
    /// `{ build = …, … }`.
    Build(std::rc::Rc<Record>),
    /// `debian(…)`: the roots as written.
    Debian(Vec<String>),
}

impl Evaluator<'_> {
    /// Evaluates every used package, following inputs, until no new one appears.
    pub(super) fn used_packages_closure(&mut self) -> BTreeMap<PackageId, Package> {
        let mut done: BTreeSet<u32> = BTreeSet::new();
        let mut packages: BTreeMap<PackageId, Package> = BTreeMap::new();
        let mut claimed: BTreeMap<String, Span> = BTreeMap::new();
        loop {
            // Files can mention packages and packages can mention files.
            self.used_files_closure();
            let Some(&slot) = self.used_packages.iter().find(|s| !done.contains(s)) else {
                break;
            };
            done.insert(slot);
            let (name, span) = {
                let s = &self.packages[slot as usize];
                (s.name.clone(), s.name_span)
            };
            if !self.claim_store_name(&mut claimed, name, span, "package") {
                continue;
            }
            if let Ok(package) = self.package(slot) {
                packages.insert(package.id.clone(), package);
            }
        }
        packages
    }

    /// The evaluated body of a `package`, `file` or `secret` declaration.
    fn decl_value(&mut self, module: u32, item: usize) -> EvalResult<super::value::SV> {
        let ast = self.modules[module as usize].ast.clone();
        let body = match &ast.items[item] {
            Item::Package { body, .. } | Item::File { body, .. } | Item::Secret { body, .. } => {
                body
            }
            _ => return Err(Reported),
        };
        let saved = self.self_class_take();
        let sv = self.eval_sv(body, module, None);
        self.self_class_restore(saved);
        sv
    }

    pub(super) fn decl_body(
        &mut self,
        module: u32,
        item: usize,
    ) -> EvalResult<(std::rc::Rc<super::value::Record>, Span)> {
        let sv = self.decl_value(module, item)?;
        Ok((self.expect_record(&sv, "a declaration body")?, sv.span))
    }

    pub(super) fn package(&mut self, slot: u32) -> EvalResult<Package> {
        let (module, item, name, name_span) = {
            let s = &self.packages[slot as usize];
            (s.module, s.item, s.name.clone(), s.name_span)
        };
        let (value, _) = self.package_body(module, item)?;
        let record = match value {
            PackageBody::Debian(roots) => {
                return Ok(Package {
                    id: PackageId(name.clone()),
                    name,
                    src: None,
                    inputs: Vec::new(),
                    builder: Text::default(),
                    env: BTreeMap::new(),
                    debian: roots,
                    origin: self.origin(name_span),
                })
            }
            PackageBody::Build(record) => record,
        };
        let ok = self.check_fields(&record, PACKAGE_FIELDS, "a package");
        let store_name = self.store_name(&record, &name, name_span, "package")?;
        let src = match record.get("src") {
            Some(sv) => match &sv.value {
                Value::Path(p) => Some((**p).clone()),
                _ => {
                    let text = self.expect_literal(sv, "a package's `src`")?;
                    Some(self.resolve_path(sv.span, &text))
                }
            },
            None => None,
        };
        let mut inputs: Vec<PackageId> = Vec::new();
        if let Some(list) = record.get("inputs") {
            for item in self.expect_list(list, "a package's `inputs`")?.iter() {
                match item.value {
                    Value::Package(input) => {
                        self.used_packages.insert(input);
                        let id = PackageId(self.packages[input as usize].name.clone());
                        if !inputs.contains(&id) {
                            inputs.push(id);
                        }
                    }
                    _ => return Err(self.type_error(item, "an element of `inputs`", "a package")),
                }
            }
        }
        let builder = match record.get("build") {
            Some(sv) => {
                let pieces = self.expect_text(sv, "a package's `build`")?;
                self.model_text(&pieces)
            }
            None => return Err(self.error(
                Diagnostic::new(format!("package `{name}` has no `build` script"), name_span).hint(
                    "add `build = \"mkdir -p $out/bin && …\"` (a /bin/sh script that creates $out)",
                ),
            )),
        };
        let env = match record.get("env") {
            Some(sv) => self.env_map(sv, "a package's `env`")?,
            None => BTreeMap::new(),
        };
        if builder.secrets().next().is_some() || env.values().any(|t| t.secrets().next().is_some())
        {
            return Err(self.error(
                Diagnostic::new(format!("package `{name}` mentions a secret"), name_span)
                    .hint("secrets never enter the store; give them to services, not to builds"),
            ));
        }
        for mentioned in builder
            .packages()
            .chain(env.values().flat_map(|t| t.packages()))
        {
            if !inputs.contains(mentioned) && mentioned.0 != name {
                inputs.push(mentioned.clone());
            }
        }
        if !ok {
            return Err(Reported);
        }
        Ok(Package {
            id: PackageId(name),
            name: store_name,
            src,
            inputs,
            builder,
            env,
            debian: Vec::new(),
            origin: self.origin(name_span),
        })
    }

    /// A package's body: a record to build, or a `debian(…)` source.
    fn package_body(&mut self, module: u32, item: usize) -> EvalResult<(PackageBody, Span)> {
        let sv = self.decl_value(module, item)?;
        match &sv.value {
            Value::Record(record) => Ok((PackageBody::Build(record.clone()), sv.span)),
            Value::Tagged("package.debian", fields) => {
                let roots = fields
                    .get("packages")
                    .and_then(|list| match &list.value {
                        Value::List(items) => {
                            Some(items.iter().filter_map(|i| i.value.literal()).collect())
                        }
                        _ => None,
                    })
                    .unwrap_or_default();
                Ok((PackageBody::Debian(roots), sv.span))
            }
            _ => Err(self.type_error(
                &sv,
                "a package",
                "a record `{ build = … }` or `debian(\"pkg\")`",
            )),
        }
    }

    pub(super) fn used_files_closure(&mut self) -> BTreeMap<crate::model::TextFileId, TextFile> {
        let mut files = BTreeMap::new();
        let mut done = BTreeSet::new();
        let mut claimed: BTreeMap<String, Span> = BTreeMap::new();
        while let Some(&slot) = self.used_files.iter().find(|s| !done.contains(*s)) {
            done.insert(slot);
            let (name, span) = {
                let s = &self.files[slot as usize];
                (s.name.clone(), s.name_span)
            };
            if !self.claim_store_name(&mut claimed, name, span, "file") {
                continue;
            }
            if let Ok(file) = self.text_file(slot) {
                files.insert(file.id.clone(), file);
            }
        }
        files
    }

    pub(super) fn text_file(&mut self, slot: u32) -> EvalResult<TextFile> {
        let (module, item, name, name_span, inline) = {
            let s = &self.files[slot as usize];
            (
                s.module,
                s.item,
                s.name.clone(),
                s.name_span,
                s.inline.clone(),
            )
        };
        if let Some((pieces, executable)) = inline {
            if !valid_store_name(&name) {
                return Err(self.error(Diagnostic::new(
                    format!("`{name}` is not a valid store name"),
                    name_span,
                )));
            }
            let text = self.file_text(&pieces, &name, name_span)?;
            return Ok(TextFile {
                id: crate::model::TextFileId(name.clone()),
                name,
                text,
                executable,
                origin: self.origin(name_span),
            });
        }
        let (record, _) = self.decl_body(module, item)?;
        let ok = self.check_fields(&record, FILE_FIELDS, "a file");
        let store_name = self.store_name(&record, &name, name_span, "file")?;
        let Some(text_sv) = record.get("text") else {
            return Err(self.error(
                Diagnostic::new(format!("file `{name}` has no `text`"), name_span)
                    .hint("add `text = \"…\"`"),
            ));
        };
        let pieces = self.expect_text(text_sv, "a file's `text`")?;
        let text = self.file_text(&pieces, &name, text_sv.span)?;
        let executable = match record.get("executable") {
            Some(sv) => self.expect_bool(sv, "a file's `executable`")?,
            None => false,
        };
        if !ok {
            return Err(Reported);
        }
        Ok(TextFile {
            id: crate::model::TextFileId(name),
            name: store_name,
            text,
            executable,
            origin: self.origin(name_span),
        })
    }

    /// Claims `name` (declared at `span`) among the packages or the files
    /// the site uses, as `kind` says. Their names are store names, so two
    /// different declarations cannot share one: the second is reported and
    /// false returned.
    fn claim_store_name(
        &mut self,
        claimed: &mut BTreeMap<String, Span>,
        name: String,
        span: Span,
        kind: &str,
    ) -> bool {
        if let Some(&first) = claimed.get(&name) {
            self.error(
                Diagnostic::new(format!("the site uses two different {kind}s named `{name}`"), span)
                    .related(first, "the other one")
                    .hint(format!("{kind} names are store names and must be unique among the {kind}s a site uses; rename one")),
            );
            return false;
        }
        claimed.insert(name, span);
        true
    }

    /// The store name of the package or file (`kind`) declared as `name`:
    /// its body's `name`, else `name`; it must follow the store's rules.
    fn store_name(
        &mut self,
        record: &Record,
        name: &str,
        name_span: Span,
        kind: &str,
    ) -> EvalResult<String> {
        let store_name = match record.get("name") {
            Some(sv) => self.expect_literal(sv, &format!("a {kind}'s `name`"))?,
            None => name.to_string(),
        };
        if !valid_store_name(&store_name) {
            return Err(self.error(
                Diagnostic::new(
                    format!("`{store_name}` is not a valid store name"),
                    record.get("name").map_or(name_span, |s| s.span),
                )
                .hint("use ASCII letters, digits and `+-._?=`, not starting with `.`"),
            ));
        }
        Ok(store_name)
    }

    /// The text of file `name` as model text; a secret in it is an error
    /// at `span`, since files go into the world-readable store.
    fn file_text(&mut self, pieces: &[Piece], name: &str, span: Span) -> EvalResult<Text> {
        let text = self.model_text(pieces);
        if text.secrets().next().is_some() {
            return Err(self.error(
                Diagnostic::new(format!("file `{name}` mentions a secret"), span)
                    .hint("files go into the store, which is world-readable; pass secrets to services instead"),
            ));
        }
        Ok(text)
    }

    pub(super) fn used_secrets(&mut self) -> BTreeMap<String, Secret> {
        let mut secrets = BTreeMap::new();
        for slot in self.used_secrets.clone() {
            let (module, item, name, name_span) = {
                let s = &self.secrets[slot as usize];
                (s.module, s.item, s.name.clone(), s.name_span)
            };
            let Ok((record, span)) = self.decl_body(module, item) else {
                continue;
            };
            if !self.check_fields(&record, SECRET_FIELDS, "a secret") {
                continue;
            }
            let given: Vec<&str> = SECRET_FIELDS
                .iter()
                .copied()
                .filter(|f| record.contains_key(*f))
                .collect();
            if given.len() != 1 {
                self.error(
                    Diagnostic::new(format!("secret `{name}` needs exactly one source, found {}", given.len()), span)
                        .hint("write one of `file = \"path\"`, `env = \"VARIABLE\"` or `command = [\"pass\", \"show\", \"db\"]`"),
                );
                continue;
            }
            let sv = &record[given[0]];
            let source = match given[0] {
                "file" => {
                    self.expect_literal(sv, "a secret's `file`")
                        .map(|p| SecretSource::File {
                            path: self.resolve_path(sv.span, &p),
                        })
                }
                "env" => self
                    .expect_literal(sv, "a secret's `env`")
                    .map(|var| SecretSource::Env { var }),
                _ => self
                    .argv(sv, "a secret's `command`")
                    .map(|argv| SecretSource::Command { argv }),
            };
            if let Ok(source) = source {
                secrets.insert(
                    name.clone(),
                    Secret {
                        name,
                        source,
                        origin: self.origin(name_span),
                    },
                );
            }
        }
        secrets
    }
}

/// Nix's store name rules (DESIGN §4).
fn valid_store_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 211
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+-._?=".contains(c))
}
