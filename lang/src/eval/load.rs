//! Loading modules: reading and parsing files, binding top-level names, import cycles.
use std::collections::HashMap;
use std::path::{Component, Path, PathBuf};
use std::rc::Rc;
use std::sync::Arc;

use super::value::Value;
use super::{Binding, BindingState, DeclSlot, EvalResult, Evaluator, LoadedSource, Module};
use crate::ast::{self, Item};
use crate::diagnostics::{Diagnostic, SourceFile};
use crate::parse::{is_identifier, parse_file};
use crate::span::{SourceId, Span};

impl Evaluator<'_> {
    /// Loads, parses and registers a module and (eagerly) everything it imports,
    /// so import cycles are found before evaluation starts.
    pub fn load(
        &mut self,
        path: &Path,
        import_span: Option<Span>,
        stack: &mut Vec<PathBuf>,
    ) -> EvalResult<u32> {
        let path = normalize(path);
        if let Some(&index) = self.module_by_path.get(&path) {
            if let Some(position) = stack.iter().position(|p| *p == path) {
                let cycle: Vec<String> = stack[position..]
                    .iter()
                    .chain([&path])
                    .map(|p| p.display().to_string())
                    .collect();
                let span = import_span.unwrap_or(Span::new(SourceId(0), 0, 0));
                return Err(self.error(
                    Diagnostic::new(format!("import cycle: {}", cycle.join(" → ")), span)
                        .label("this import closes the cycle")
                        .hint("move what both files need into a third file that neither imports"),
                ));
            }
            return Ok(index);
        }
        let text = match self.loader.load(&path) {
            Ok(text) => text,
            Err(reason) => {
                let message = format!("cannot read `{}`: {reason}", path.display());
                return Err(self.error(match import_span {
                    Some(span) => Diagnostic::new(message, span).label("imported here"),
                    None => Diagnostic::without_span(message),
                }));
            }
        };
        let file = SourceId(self.sources.len() as u32);
        let line_starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        let text: Arc<str> = Arc::from(text);
        self.sources.push(LoadedSource {
            file: SourceFile {
                path: path.clone(),
                text: text.clone(),
            },
            line_starts,
        });
        let (ast, syntax_errors) = parse_file(file, &text);
        self.errors.extend(syntax_errors);
        let index = self.modules.len() as u32;
        self.module_by_path.insert(path.clone(), index);
        let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        let module = self.register(file, Rc::new(ast), index);
        self.modules.push(module);
        stack.push(path);
        let ast = self.modules[index as usize].ast.clone();
        for (item_index, item) in ast.items.iter().enumerate() {
            if let Item::Import {
                path: relative,
                path_span,
                alias,
                ..
            } = item
            {
                let target = normalize(&dir.join(relative));
                let Ok(imported) = self.load(&target, Some(*path_span), stack) else {
                    continue;
                };
                let name = match alias {
                    Some(alias) => alias.name.clone(),
                    None => import_name(relative),
                };
                let binding = self.modules[index as usize].bindings.get_mut(&name);
                if let Some(binding) = binding.filter(|b| b.item == item_index) {
                    binding.state = BindingState::Done(Value::Module(imported));
                }
            }
        }
        stack.pop();
        Ok(index)
    }

    /// Records a module's top-level names; reports duplicates.
    pub(super) fn register(&mut self, file: SourceId, ast: Rc<ast::File>, index: u32) -> Module {
        let mut module = Module {
            file,
            ast: ast.clone(),
            bindings: HashMap::new(),
            classes: Vec::new(),
            settings: HashMap::new(),
            every: Vec::new(),
        };
        for (item_index, item) in ast.items.iter().enumerate() {
            let (name, span) = match item {
                Item::Import {
                    path,
                    path_span,
                    alias,
                    ..
                } => match alias {
                    Some(alias) => (alias.name.clone(), alias.span),
                    None => {
                        let name = import_name(path);
                        if !is_identifier(&name) {
                            self.error(
                                Diagnostic::new(
                                    format!("cannot name the import of `{path}` after its file"),
                                    *path_span,
                                )
                                .hint(format!("add `as name`: `import \"{path}\" as lib`")),
                            );
                            continue;
                        }
                        (name, *path_span)
                    }
                },
                Item::Let { name, .. } => (name.name.clone(), name.span),
                Item::Package { name, .. } => {
                    let slot = declare(&mut self.packages, index, item_index, name);
                    self.bind_done(&mut module, name, item_index, Value::Package(slot));
                    continue;
                }
                Item::File { name, .. } => {
                    let slot = declare(&mut self.files, index, item_index, name);
                    self.bind_done(&mut module, name, item_index, Value::File(slot));
                    continue;
                }
                Item::Secret { name, .. } => {
                    let slot = declare(&mut self.secrets, index, item_index, name);
                    self.bind_done(&mut module, name, item_index, Value::Secret(slot));
                    continue;
                }
                Item::Class { name, .. } => {
                    if !module.bindings.contains_key(&name.name) {
                        module.classes.push(name.name.clone());
                    }
                    (name.name.clone(), name.span)
                }
                Item::Setting { name, .. } => {
                    if let Some(&first) = module.settings.get(&name.name) {
                        let first_span = setting_name_span(&ast.items[first]);
                        self.error(
                            Diagnostic::new(format!("`{}` is set twice", name.name), name.span)
                                .related(first_span, "first set here")
                                .hint("a site has one of each setting; remove one"),
                        );
                    } else {
                        module.settings.insert(name.name.clone(), item_index);
                    }
                    continue;
                }
                Item::Every { .. } => {
                    module.every.push(item_index);
                    continue;
                }
            };
            self.bind(&mut module, name, span, item_index, BindingState::Pending);
        }
        module
    }

    pub(super) fn bind_done(
        &mut self,
        module: &mut Module,
        name: &ast::Ident,
        item: usize,
        value: Value,
    ) {
        self.bind(
            module,
            name.name.clone(),
            name.span,
            item,
            BindingState::Done(value),
        );
    }

    pub(super) fn bind(
        &mut self,
        module: &mut Module,
        name: String,
        span: Span,
        item: usize,
        state: BindingState,
    ) {
        if let Some(first) = module.bindings.get(&name) {
            let first_span = first.name_span;
            self.error(
                Diagnostic::new(format!("`{name}` is declared twice"), span)
                    .label("second declaration")
                    .related(first_span, "first declared here")
                    .hint("names of imports, lets, packages, files, secrets and classes share one namespace per file"),
            );
            return;
        }
        module.bindings.insert(
            name,
            Binding {
                item,
                name_span: span,
                state,
            },
        );
    }
}

/// Adds the package, file or secret `name` declared by item `item` of
/// module `module` to `slots`; returns its slot.
fn declare(slots: &mut Vec<DeclSlot>, module: u32, item: usize, name: &ast::Ident) -> u32 {
    slots.push(DeclSlot {
        module,
        item,
        name: name.name.clone(),
        name_span: name.span,
        inline: None,
    });
    (slots.len() - 1) as u32
}

/// The name an import binds when it has no `as`: the file name without extension.
pub(super) fn import_name(path: &str) -> String {
    let file = path.rsplit('/').next().unwrap_or(path);
    file.split('.').next().unwrap_or(file).to_string()
}

pub(super) fn setting_name_span(item: &Item) -> Span {
    match item {
        Item::Setting { name, .. } => name.span,
        other => other.span(),
    }
}

/// Lexical normalization: removes `.` and resolves `..` without touching the
/// file system. A `..` that climbs above a relative path's start is kept
/// (`../../x` stays as it is), and `/..` is `/`.
pub fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => match out.components().next_back() {
                Some(Component::Normal(_)) => {
                    out.pop();
                }
                Some(Component::RootDir | Component::Prefix(_)) => {}
                Some(Component::ParentDir | Component::CurDir) | None => out.push(".."),
            },
            other => out.push(other.as_os_str()),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::normalize;
    use std::path::Path;

    #[test]
    fn normalize_keeps_every_parent_that_climbs_above_a_relative_start() {
        for (path, expect) in [
            ("../../host-classes/std.conf", "../../host-classes/std.conf"),
            ("./../../a", "../../a"),
            ("a/../../b", "../b"),
            ("a/b/../../../c/./d", "../c/d"),
            ("/../x", "/x"),
            ("/a/./b/../c", "/a/c"),
            ("a/..", ""),
        ] {
            assert_eq!(normalize(Path::new(path)), Path::new(expect), "{path}");
        }
    }
}
