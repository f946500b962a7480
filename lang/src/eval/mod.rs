//! The evaluator: loads modules through a [`SourceLoader`], evaluates lazily and purely.
//!
//! Top-level bindings are thunks forced on first use, so an imported library
//! costs a parse but no evaluation for the names a site does not use. Errors
//! are pushed to a list and evaluation continues with the next declaration,
//! so one run reports as many problems as it can.
mod builtins;
mod convert;
mod site;
pub mod value;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Component, Path, PathBuf};
use std::rc::Rc;
use std::sync::Arc;

use crate::ast::{self, Arg, BinaryOp, Expr, ExprKind, Item, StrPart};
use crate::diagnostics::{suggest, Diagnostic, Diagnostics, SourceFile};
use crate::inventory::{HostEntry, InventoryResolver};
use crate::model::Origin;
use crate::parse::parse_file;
use crate::span::{FileId, Span};
use crate::SourceLoader;
use value::{Builtin, ClassValue, Closure, Local, Piece, Record, Value, SV, SYMBOLS};

pub use site::evaluate;

/// An error that was already pushed to the evaluator's list.
#[derive(Debug, Clone, Copy)]
pub struct Reported;

pub type EvalResult<T> = Result<T, Reported>;

/// How deep user function calls may nest before evaluation gives up.
const MAX_CALL_DEPTH: usize = 64;

struct LoadedSource {
    file: SourceFile,
    line_starts: Vec<usize>,
}

enum BindingState {
    Pending,
    Busy,
    Done(Value),
    Failed,
}

struct Binding {
    item: usize,
    name_span: Span,
    state: BindingState,
}

pub(crate) struct Module {
    pub file: FileId,
    pub ast: Rc<ast::File>,
    bindings: HashMap<String, Binding>,
    /// Top-level classes in declaration order.
    pub classes: Vec<String>,
    /// `site`, `environment`, `inventory`, `rollout`: item index.
    pub settings: HashMap<String, usize>,
    /// `every class` items.
    pub every: Vec<usize>,
}

/// A declared package, file or secret; evaluated when the site uses it.
pub(crate) struct DeclSlot {
    pub module: u32,
    pub item: usize,
    pub name: String,
    pub name_span: Span,
    /// A file made by `text_file(…)`: its text and executable bit, already evaluated.
    pub inline: Option<(Rc<Vec<Piece>>, bool)>,
}

enum InventoryState {
    Unresolved,
    Busy,
    Resolved(Rc<Vec<HostEntry>>),
    Failed,
}

pub(crate) struct Evaluator<'a> {
    loader: &'a dyn SourceLoader,
    resolver: &'a dyn InventoryResolver,
    sources: Vec<LoadedSource>,
    pub modules: Vec<Module>,
    module_by_path: HashMap<PathBuf, u32>,
    pub packages: Vec<DeclSlot>,
    pub files: Vec<DeclSlot>,
    pub secrets: Vec<DeclSlot>,
    /// The class being assembled (what `self` means).
    self_class: Option<Rc<str>>,
    inventory: InventoryState,
    call_depth: usize,
    pub errors: Vec<Diagnostic>,
    /// Packages, files and secrets the site mentions (slots).
    pub used_packages: BTreeSet<u32>,
    pub used_files: BTreeSet<u32>,
    pub used_secrets: BTreeSet<u32>,
}

impl<'a> Evaluator<'a> {
    pub fn new(loader: &'a dyn SourceLoader, resolver: &'a dyn InventoryResolver) -> Evaluator<'a> {
        Evaluator {
            loader,
            resolver,
            sources: Vec::new(),
            modules: Vec::new(),
            module_by_path: HashMap::new(),
            packages: Vec::new(),
            files: Vec::new(),
            secrets: Vec::new(),
            self_class: None,
            inventory: InventoryState::Unresolved,
            call_depth: 0,
            errors: Vec::new(),
            used_packages: BTreeSet::new(),
            used_files: BTreeSet::new(),
            used_secrets: BTreeSet::new(),
        }
    }

    pub fn error(&mut self, diagnostic: Diagnostic) -> Reported {
        self.errors.push(diagnostic);
        Reported
    }

    pub fn into_diagnostics(self) -> Diagnostics {
        Diagnostics {
            items: self.errors,
            sources: self.sources.into_iter().map(|s| s.file).collect(),
        }
    }

    pub fn origin(&self, span: Span) -> Origin {
        let source = &self.sources[span.file.0 as usize];
        let offset = span.start as usize;
        let line = source.line_starts.partition_point(|&start| start <= offset);
        let line_start = source.line_starts[line - 1];
        let column = source
            .file
            .text
            .get(line_start..offset)
            .map_or(1, |s| s.chars().count() + 1);
        Origin {
            file: source.file.path.clone(),
            line: line as u32,
            column: column as u32,
        }
    }

    fn module_dir(&self, span: Span) -> PathBuf {
        let path = &self.sources[span.file.0 as usize].file.path;
        path.parent().map(Path::to_path_buf).unwrap_or_default()
    }

    /// `relative` resolved against the directory of the file `span` is in.
    pub fn resolve_path(&self, span: Span, relative: &str) -> PathBuf {
        normalize(&self.loader.absolute(&self.module_dir(span).join(relative)))
    }

    // ---- loading ----

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
                let span = import_span.unwrap_or(Span::new(FileId(0), 0, 0));
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
        let file = FileId(self.sources.len() as u32);
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
    fn register(&mut self, file: FileId, ast: Rc<ast::File>, index: u32) -> Module {
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
                    let slot = self.packages.len() as u32;
                    self.packages.push(DeclSlot {
                        module: index,
                        item: item_index,
                        name: name.name.clone(),
                        name_span: name.span,
                        inline: None,
                    });
                    self.bind_done(&mut module, name, item_index, Value::Package(slot));
                    continue;
                }
                Item::File { name, .. } => {
                    let slot = self.files.len() as u32;
                    self.files.push(DeclSlot {
                        module: index,
                        item: item_index,
                        name: name.name.clone(),
                        name_span: name.span,
                        inline: None,
                    });
                    self.bind_done(&mut module, name, item_index, Value::File(slot));
                    continue;
                }
                Item::Secret { name, .. } => {
                    let slot = self.secrets.len() as u32;
                    self.secrets.push(DeclSlot {
                        module: index,
                        item: item_index,
                        name: name.name.clone(),
                        name_span: name.span,
                        inline: None,
                    });
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

    fn bind_done(&mut self, module: &mut Module, name: &ast::Ident, item: usize, value: Value) {
        self.bind(
            module,
            name.name.clone(),
            name.span,
            item,
            BindingState::Done(value),
        );
    }

    fn bind(
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

    // ---- bindings ----

    pub fn module_names(&self, module: u32) -> Vec<&str> {
        self.modules[module as usize]
            .bindings
            .keys()
            .map(String::as_str)
            .collect()
    }

    pub fn has_binding(&self, module: u32, name: &str) -> bool {
        self.modules[module as usize].bindings.contains_key(name)
    }

    /// Forces a top-level binding.
    pub fn force(&mut self, module: u32, name: &str, use_span: Span) -> EvalResult<Value> {
        let binding = &mut self.modules[module as usize]
            .bindings
            .get_mut(name)
            .ok_or(Reported)?;
        let item = binding.item;
        let name_span = binding.name_span;
        match &binding.state {
            BindingState::Done(v) => return Ok(v.clone()),
            BindingState::Failed => return Err(Reported),
            BindingState::Busy => {
                return Err(self.error(
                    Diagnostic::new(format!("`{name}` depends on itself"), use_span)
                        .label("used here while it is being computed")
                        .related(name_span, "declared here"),
                ))
            }
            BindingState::Pending => binding.state = BindingState::Busy,
        }
        // A top-level value is the same for every class, so `self` means nothing in it.
        let saved_self = self.self_class.take();
        let ast = self.modules[module as usize].ast.clone();
        let result = match &ast.items[item] {
            Item::Let { params: None, value, .. } => self.eval(value, module, None),
            Item::Let { name, params: Some(params), value, .. } => Ok(Value::Func(Rc::new(Closure {
                name: name.name.clone(),
                params: params.clone(),
                body: value.clone(),
                module,
                locals: None,
            }))),
            Item::Class { name, value, .. } => match self.eval(value, module, None) {
                Ok(Value::Class(class)) => Ok(Value::Class(Rc::new(ClassValue {
                    name: Some(Rc::from(name.name.as_str())),
                    body: class.body.clone(),
                    module: class.module,
                    locals: class.locals.clone(),
                }))),
                Ok(other) => Err(self.error(
                    Diagnostic::new(format!("`class {}` needs a class, found {}", name.name, other.kind()), value.span)
                        .hint("write `class name { … }`, or `class name = f(…)` with a function returning `class { … }`"),
                )),
                Err(e) => Err(e),
            },
            // Imports, packages, files and secrets are bound when registered.
            _ => Err(Reported),
        };
        self.self_class = saved_self;
        let state = match &result {
            Ok(v) => BindingState::Done(v.clone()),
            Err(_) => BindingState::Failed,
        };
        if let Some(binding) = self.modules[module as usize].bindings.get_mut(name) {
            binding.state = state;
        }
        result
    }

    // ---- expressions ----

    pub fn eval_sv(
        &mut self,
        expr: &Expr,
        module: u32,
        locals: Option<&Rc<Local>>,
    ) -> EvalResult<SV> {
        Ok(SV::new(self.eval(expr, module, locals)?, expr.span))
    }

    pub fn eval(
        &mut self,
        expr: &Expr,
        module: u32,
        locals: Option<&Rc<Local>>,
    ) -> EvalResult<Value> {
        match &expr.kind {
            ExprKind::Int(n) => Ok(Value::Int(*n)),
            ExprKind::Duration(ms) => Ok(Value::Duration(*ms)),
            ExprKind::Percent(p) => Ok(Value::Percent(*p)),
            ExprKind::Bool(b) => Ok(Value::Bool(*b)),
            ExprKind::Str(parts) => {
                let mut pieces = Vec::new();
                for part in parts {
                    match part {
                        StrPart::Lit(text) => push_lit(&mut pieces, text),
                        StrPart::Interp(inner) => {
                            let value = self.eval(inner, module, locals)?;
                            self.interpolate(&mut pieces, value, inner.span)?;
                        }
                    }
                }
                Ok(Value::Text(Rc::new(pieces)))
            }
            ExprKind::Var(name) => self.lookup(name, expr.span, module, locals),
            ExprKind::SelfClass => match &self.self_class {
                Some(class) => Ok(Value::ClassName(class.clone())),
                None => Err(self.error(
                    Diagnostic::new("`self` is only meaningful inside a class", expr.span)
                        .hint("`self` names the class being assembled; use it in a class body or a function called from one"),
                )),
            },
            ExprKind::List(items) => {
                let mut values = Vec::with_capacity(items.len());
                for item in items {
                    values.push(self.eval_sv(item, module, locals)?);
                }
                Ok(Value::List(Rc::new(values)))
            }
            ExprKind::Record(fields) => {
                let mut record = Record::new();
                for field in fields {
                    let value = self.eval(&field.value, module, locals)?;
                    // The span covers `name = value`, so errors about a field show both.
                    record.insert(field.name.name.clone(), SV::new(value, field.name.span.to(field.value.span)));
                }
                Ok(Value::Record(Rc::new(record)))
            }
            ExprKind::Field(target, name) => {
                let value = self.eval(target, module, locals)?;
                self.field(value, target.span, name)
            }
            ExprKind::Index(target, index) => {
                let list = self.eval(target, module, locals)?;
                let index_value = self.eval(index, module, locals)?;
                self.index(list, target.span, index_value, index.span)
            }
            ExprKind::Call(callee, args) => {
                let function = self.eval(callee, module, locals)?;
                let mut positional = Vec::new();
                let mut named = Vec::new();
                for arg in args {
                    match arg {
                        Arg::Positional(e) => positional.push(self.eval_sv(e, module, locals)?),
                        Arg::Named(name, e) => named.push((name.clone(), self.eval_sv(e, module, locals)?)),
                    }
                }
                self.call(function, callee.span, expr.span, positional, named)
            }
            ExprKind::If(cond, then, otherwise) => match self.eval(cond, module, locals)? {
                Value::Bool(true) => self.eval(then, module, locals),
                Value::Bool(false) => self.eval(otherwise, module, locals),
                other => Err(self.error(
                    Diagnostic::new(format!("the condition of `if` must be a boolean, found {}", other.kind()), cond.span)
                        .hint("compare with `==` or `!=` to get a boolean"),
                )),
            },
            ExprKind::Binary(op, left, right) => self.binary(*op, left, right, module, locals),
            ExprKind::Not(inner) => match self.eval(inner, module, locals)? {
                Value::Bool(b) => Ok(Value::Bool(!b)),
                other => Err(self.error(Diagnostic::new(format!("`!` needs a boolean, found {}", other.kind()), inner.span))),
            },
            ExprKind::Class(body) => Ok(Value::Class(Rc::new(ClassValue {
                name: None,
                body: Rc::new(body.clone()),
                module,
                locals: locals.cloned(),
            }))),
        }
    }

    fn lookup(
        &mut self,
        name: &str,
        span: Span,
        module: u32,
        locals: Option<&Rc<Local>>,
    ) -> EvalResult<Value> {
        let mut scope = locals;
        while let Some(local) = scope {
            if local.name == name {
                return Ok(local.value.value.clone());
            }
            scope = local.parent.as_ref();
        }
        if self.has_binding(module, name) {
            return self.force(module, name, span);
        }
        if let Some((_, builtin)) = Builtin::ALL.iter().find(|(n, _)| *n == name) {
            return Ok(Value::Builtin(*builtin));
        }
        if let Some(symbol) = SYMBOLS.iter().find(|s| **s == name) {
            return Ok(Value::Symbol(symbol));
        }
        let mut candidates: Vec<String> = self
            .module_names(module)
            .into_iter()
            .map(str::to_string)
            .collect();
        let mut scope = locals;
        while let Some(local) = scope {
            candidates.push(local.name.clone());
            scope = local.parent.as_ref();
        }
        candidates.extend(Builtin::ALL.iter().map(|(n, _)| n.to_string()));
        candidates.extend(SYMBOLS.iter().map(|s| s.to_string()));
        let hint = suggest(name, candidates.iter().map(String::as_str));
        Err(self.error(
            Diagnostic::new(format!("unknown name `{name}`"), span)
                .label("not defined")
                .maybe_hint(hint),
        ))
    }

    fn field(&mut self, value: Value, target_span: Span, name: &ast::Ident) -> EvalResult<Value> {
        match value {
            Value::Record(record) | Value::Tagged(_, record) => match record.get(&name.name) {
                Some(sv) => Ok(sv.value.clone()),
                None => {
                    let hint = suggest(&name.name, record.keys().map(String::as_str));
                    let fields = record
                        .keys()
                        .map(|k| format!("`{k}`"))
                        .collect::<Vec<_>>()
                        .join(", ");
                    Err(self.error(
                        Diagnostic::new(
                            format!("the record has no field `{}`", name.name),
                            name.span,
                        )
                        .label("no such field")
                        .hint(hint.unwrap_or_else(|| format!("its fields are: {fields}"))),
                    ))
                }
            },
            Value::Module(module) => {
                if self.has_binding(module, &name.name) {
                    self.force(module, &name.name, name.span)
                } else {
                    let path = self.sources[self.modules[module as usize].file.0 as usize]
                        .file
                        .path
                        .display()
                        .to_string();
                    let hint = suggest(&name.name, self.module_names(module));
                    Err(self.error(
                        Diagnostic::new(format!("`{path}` declares no `{}`", name.name), name.span)
                            .label("not in the imported file")
                            .maybe_hint(hint),
                    ))
                }
            }
            Value::Class(class) => match &class.name {
                Some(class_name) => Ok(Value::ServiceRef(
                    class_name.clone(),
                    Rc::from(name.name.as_str()),
                )),
                None => Err(self.error(
                    Diagnostic::new(
                        "a class without a name has no services to refer to",
                        target_span,
                    )
                    .hint("bind it first with `class name = …` and refer to `name.service`"),
                )),
            },
            Value::ClassName(class_name) => {
                Ok(Value::ServiceRef(class_name, Rc::from(name.name.as_str())))
            }
            other => Err(self.error(
                Diagnostic::new(
                    format!("cannot take field `{}` of {}", name.name, other.kind()),
                    target_span,
                )
                .label(format!("this is {}", other.kind())),
            )),
        }
    }

    fn index(
        &mut self,
        list: Value,
        list_span: Span,
        index: Value,
        index_span: Span,
    ) -> EvalResult<Value> {
        match (list, index) {
            (Value::List(items), Value::Int(i)) => {
                match usize::try_from(i).ok().and_then(|i| items.get(i)) {
                    Some(item) => Ok(item.value.clone()),
                    None if items.is_empty() => Err(self.error(
                        Diagnostic::new(
                            format!("index {i} is out of range: the list is empty"),
                            index_span,
                        )
                        .related(list_span, "this list is empty")
                        .hint("if it is `hosts(…)`, the inventory has no hosts of that class"),
                    )),
                    None => Err(self.error(Diagnostic::new(
                        format!(
                            "index {i} is out of range: the list has {} elements",
                            items.len()
                        ),
                        index_span,
                    ))),
                }
            }
            (Value::Record(record), index) if index.literal().is_some() => {
                let key = index.literal().unwrap_or_default();
                match record.get(&key) {
                    Some(sv) => Ok(sv.value.clone()),
                    None => Err(self.error(Diagnostic::new(
                        format!("the record has no field `{key}`"),
                        index_span,
                    ))),
                }
            }
            (Value::List(_), other) => Err(self.error(Diagnostic::new(
                format!("a list index must be an integer, found {}", other.kind()),
                index_span,
            ))),
            (other, _) => Err(self.error(Diagnostic::new(
                format!("cannot index {}", other.kind()),
                list_span,
            ))),
        }
    }

    pub fn call(
        &mut self,
        function: Value,
        callee_span: Span,
        call_span: Span,
        positional: Vec<SV>,
        named: Vec<(ast::Ident, SV)>,
    ) -> EvalResult<Value> {
        match function {
            Value::Func(closure) => self.call_closure(&closure, call_span, positional, named),
            Value::Builtin(builtin) => self.call_builtin(builtin, call_span, positional, named),
            other => Err(self.error(
                Diagnostic::new(format!("cannot call {}", other.kind()), callee_span)
                    .label("not a function"),
            )),
        }
    }

    fn call_closure(
        &mut self,
        closure: &Closure,
        call_span: Span,
        positional: Vec<SV>,
        named: Vec<(ast::Ident, SV)>,
    ) -> EvalResult<Value> {
        if positional.len() > closure.params.len() {
            return Err(self.error(Diagnostic::new(
                format!(
                    "`{}` takes {} arguments, but {} were given",
                    closure.name,
                    closure.params.len(),
                    positional.len()
                ),
                call_span,
            )));
        }
        let mut given: Vec<Option<SV>> = vec![None; closure.params.len()];
        for (i, value) in positional.into_iter().enumerate() {
            given[i] = Some(value);
        }
        for (name, value) in named {
            match closure.params.iter().position(|p| p.name.name == name.name) {
                Some(i) if given[i].is_some() => {
                    return Err(self.error(Diagnostic::new(
                        format!("argument `{}` is given twice", name.name),
                        name.span,
                    )))
                }
                Some(i) => given[i] = Some(value),
                None => {
                    let hint = suggest(
                        &name.name,
                        closure.params.iter().map(|p| p.name.name.as_str()),
                    );
                    let params = closure
                        .params
                        .iter()
                        .map(|p| format!("`{}`", p.name.name))
                        .collect::<Vec<_>>()
                        .join(", ");
                    return Err(self.error(
                        Diagnostic::new(
                            format!("`{}` has no parameter `{}`", closure.name, name.name),
                            name.span,
                        )
                        .label("unknown parameter")
                        .hint(hint.unwrap_or_else(|| format!("its parameters are: {params}"))),
                    ));
                }
            }
        }
        if self.call_depth >= MAX_CALL_DEPTH {
            return Err(self.error(
                Diagnostic::new(
                    format!("calls nest deeper than {MAX_CALL_DEPTH} levels"),
                    call_span,
                )
                .hint("a function probably calls itself without end"),
            ));
        }
        let mut locals = closure.locals.clone();
        for (param, value) in closure.params.iter().zip(given) {
            let value = match (value, &param.default) {
                (Some(v), _) => v,
                (None, Some(default)) => self.eval_sv(default, closure.module, locals.as_ref())?,
                (None, None) => {
                    return Err(self.error(
                        Diagnostic::new(
                            format!(
                                "missing argument `{}` of `{}`",
                                param.name.name, closure.name
                            ),
                            call_span,
                        )
                        .related(param.name.span, "parameter declared here"),
                    ))
                }
            };
            locals = Some(Rc::new(Local {
                name: param.name.name.clone(),
                value,
                parent: locals,
            }));
        }
        self.call_depth += 1;
        let result = self.eval(&closure.body, closure.module, locals.as_ref());
        self.call_depth -= 1;
        result
    }

    fn binary(
        &mut self,
        op: BinaryOp,
        left: &Expr,
        right: &Expr,
        module: u32,
        locals: Option<&Rc<Local>>,
    ) -> EvalResult<Value> {
        let l = self.eval(left, module, locals)?;
        match (op, &l) {
            (BinaryOp::And, Value::Bool(false)) => return Ok(Value::Bool(false)),
            (BinaryOp::Or, Value::Bool(true)) => return Ok(Value::Bool(true)),
            _ => {}
        }
        let r = self.eval(right, module, locals)?;
        let span = left.span.to(right.span);
        match (op, l, r) {
            (BinaryOp::Add, Value::Int(a), Value::Int(b)) => match a.checked_add(b) {
                Some(n) => Ok(Value::Int(n)),
                None => Err(self.error(Diagnostic::new("integer overflow", span))),
            },
            (BinaryOp::Add, Value::Duration(a), Value::Duration(b)) => {
                Ok(Value::Duration(a.saturating_add(b)))
            }
            (BinaryOp::Add, Value::Text(a), Value::Text(b)) => {
                let mut pieces = (*a).clone();
                for piece in b.iter() {
                    match piece {
                        Piece::Lit(t) => push_lit(&mut pieces, t),
                        other => pieces.push(other.clone()),
                    }
                }
                Ok(Value::Text(Rc::new(pieces)))
            }
            (BinaryOp::Add, Value::List(a), Value::List(b)) => Ok(Value::List(Rc::new(
                a.iter().chain(b.iter()).cloned().collect(),
            ))),
            (BinaryOp::Update, Value::Record(a), Value::Record(b)) => {
                let mut merged = (*a).clone();
                for (k, v) in b.iter() {
                    merged.insert(k.clone(), v.clone());
                }
                Ok(Value::Record(Rc::new(merged)))
            }
            (BinaryOp::Eq, a, b) => Ok(Value::Bool(values_equal(&a, &b))),
            (BinaryOp::NotEq, a, b) => Ok(Value::Bool(!values_equal(&a, &b))),
            (BinaryOp::And | BinaryOp::Or, Value::Bool(_), Value::Bool(b)) => Ok(Value::Bool(b)),
            (op, a, b) => {
                let hint = match op {
                    BinaryOp::Add => {
                        "`+` adds integers or durations and joins strings or lists of the same kind"
                    }
                    BinaryOp::Update => "`//` updates a record with the fields of another record",
                    _ => "`&&` and `||` combine booleans",
                };
                Err(self.error(
                    Diagnostic::new(
                        format!(
                            "cannot apply `{}` to {} and {}",
                            op.symbol(),
                            a.kind(),
                            b.kind()
                        ),
                        span,
                    )
                    .hint(hint),
                ))
            }
        }
    }

    fn interpolate(&mut self, pieces: &mut Vec<Piece>, value: Value, span: Span) -> EvalResult<()> {
        match value {
            Value::Text(inner) => {
                for piece in inner.iter() {
                    match piece {
                        Piece::Lit(t) => push_lit(pieces, t),
                        other => pieces.push(other.clone()),
                    }
                }
            }
            Value::Int(n) => push_lit(pieces, &n.to_string()),
            Value::Bool(b) => push_lit(pieces, if b { "true" } else { "false" }),
            Value::Path(path) => push_lit(pieces, &path.display().to_string()),
            Value::Symbol(word) => push_lit(pieces, word),
            Value::Package(slot) => pieces.push(Piece::Package(slot)),
            Value::File(slot) => pieces.push(Piece::File(slot)),
            Value::Secret(slot) => pieces.push(Piece::Secret(slot)),
            Value::Duration(ms) => {
                return Err(self.error(
                    Diagnostic::new(
                        format!("cannot put a duration ({ms} ms) into a string"),
                        span,
                    )
                    .hint("write the number you mean, e.g. `\"${30}\"` for seconds"),
                ))
            }
            other => return Err(self.error(
                Diagnostic::new(format!("cannot put {} into a string", other.kind()), span).hint(
                    "strings can hold text, integers, booleans, paths, packages, files and secrets",
                ),
            )),
        }
        Ok(())
    }

    // ---- classes ----

    /// Evaluates `self.self_class = class` for the duration of `f`.
    pub fn with_self<T>(&mut self, class: Rc<str>, f: impl FnOnce(&mut Self) -> T) -> T {
        let saved = self.self_class.replace(class);
        let result = f(self);
        self.self_class = saved;
        result
    }

    pub fn self_class_take(&mut self) -> Option<Rc<str>> {
        self.self_class.take()
    }

    pub fn self_class_restore(&mut self, saved: Option<Rc<str>>) {
        self.self_class = saved;
    }

    // ---- inventory ----

    /// The resolved hosts of the root module's inventory (resolved once).
    pub fn hosts(&mut self, use_span: Span) -> EvalResult<Rc<Vec<HostEntry>>> {
        match &self.inventory {
            InventoryState::Resolved(hosts) => return Ok(hosts.clone()),
            InventoryState::Failed => return Err(Reported),
            InventoryState::Busy => {
                return Err(self.error(
                    Diagnostic::new(
                        "the inventory uses `hosts(…)` while it is being resolved",
                        use_span,
                    )
                    .hint("the inventory cannot depend on itself"),
                ))
            }
            InventoryState::Unresolved => {}
        }
        self.inventory = InventoryState::Busy;
        let result = self.resolve_inventory();
        self.inventory = match &result {
            Ok(hosts) => InventoryState::Resolved(hosts.clone()),
            Err(_) => InventoryState::Failed,
        };
        result
    }

    fn resolve_inventory(&mut self) -> EvalResult<Rc<Vec<HostEntry>>> {
        let Some((source, span)) = self.inventory_source()? else {
            return Ok(Rc::new(Vec::new()));
        };
        match self.resolver.resolve(&source) {
            Ok(hosts) => Ok(Rc::new(hosts)),
            Err(reason) => Err(self.error(
                Diagnostic::new(format!("cannot resolve the inventory: {reason}"), span)
                    .label("this inventory"),
            )),
        }
    }
}

/// The name an import binds when it has no `as`: the file name without extension.
fn import_name(path: &str) -> String {
    let file = path.rsplit('/').next().unwrap_or(path);
    file.split('.').next().unwrap_or(file).to_string()
}

fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn setting_name_span(item: &Item) -> Span {
    match item {
        Item::Setting { name, .. } => name.span,
        other => other.span(),
    }
}

/// Lexical normalization: removes `.` and resolves `..` without touching the file system.
pub fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    out.push("..");
                }
            }
            other => out.push(other.as_os_str()),
        }
    }
    out
}

fn push_lit(pieces: &mut Vec<Piece>, text: &str) {
    if text.is_empty() {
        return;
    }
    if let Some(Piece::Lit(last)) = pieces.last_mut() {
        last.push_str(text);
    } else {
        pieces.push(Piece::Lit(text.to_string()));
    }
}

/// Structural equality; functions, classes and modules are never equal.
fn values_equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Int(x), Value::Int(y)) => x == y,
        (Value::Bool(x), Value::Bool(y)) => x == y,
        (Value::Duration(x), Value::Duration(y)) => x == y,
        (Value::Percent(x), Value::Percent(y)) => x == y,
        (Value::Text(x), Value::Text(y)) => x == y,
        (Value::Symbol(x), Value::Symbol(y)) => x == y,
        (Value::Path(x), Value::Path(y)) => x == y,
        (Value::Package(x), Value::Package(y))
        | (Value::File(x), Value::File(y))
        | (Value::Secret(x), Value::Secret(y)) => x == y,
        (Value::ServiceRef(c1, s1), Value::ServiceRef(c2, s2)) => c1 == c2 && s1 == s2,
        (Value::List(x), Value::List(y)) => {
            x.len() == y.len()
                && x.iter()
                    .zip(y.iter())
                    .all(|(a, b)| values_equal(&a.value, &b.value))
        }
        (Value::Record(x), Value::Record(y)) => {
            x.len() == y.len()
                && x.iter()
                    .zip(y.iter())
                    .all(|((k1, v1), (k2, v2))| k1 == k2 && values_equal(&v1.value, &v2.value))
        }
        _ => false,
    }
}

/// Records as sorted maps (for callers that build them).
pub fn record(fields: impl IntoIterator<Item = (String, SV)>) -> Value {
    Value::Record(Rc::new(fields.into_iter().collect::<BTreeMap<_, _>>()))
}
