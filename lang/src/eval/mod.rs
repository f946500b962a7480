//! The evaluator: loads modules through a [`SourceLoader`], evaluates lazily and purely.
//!
//! Top-level bindings are thunks forced on first use, so an imported library
//! costs a parse but no evaluation for the names a site does not use. Errors
//! are pushed to a list and evaluation continues with the next declaration,
//! so one run reports as many problems as it can.
mod builtins;
mod class;
mod convert;
mod decls;
mod expr;
mod load;
mod policy;
mod site;
pub mod value;

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::rc::Rc;

use crate::ast::{self, Item};
use crate::diagnostics::{Diagnostic, Diagnostics, SourceFile};
use crate::inventory::{HostEntry, InventoryResolver};
use crate::model::Origin;
use crate::span::{SourceId, Span};
use crate::SourceLoader;
use value::{ClassValue, Closure, Piece, Value};

use expr::{push_lit, record};
pub use load::normalize;
pub use site::evaluate;

/// An error that was already pushed to the evaluator's list.
#[derive(Debug, Clone, Copy)]
pub struct Reported;

pub type EvalResult<T> = Result<T, Reported>;

/// How deep user function calls may nest before evaluation gives up.
const MAX_CALL_DEPTH: usize = 64;

/// How deep evaluation may recurse in all (expressions within expressions,
/// through `let`s, calls and classes) before it gives up: each expression is
/// at most `parse::MAX_NESTING` deep, but a chain of thousands of `let`s or
/// calls of deep bodies would still exhaust the stack.
const MAX_EVAL_DEPTH: usize = 1024;

/// How many steps (expressions evaluated, values compared, list elements
/// made) one evaluation may take: a site is a configuration, and no real one
/// comes near; a hostile one ends with an error instead of running for minutes.
pub(crate) const MAX_STEPS: u64 = 20_000_000;

/// How many bytes of text and list elements one evaluation may make.
pub(crate) const MAX_BYTES: u64 = 256 << 20;

/// When less than this much stack is left, evaluation (and parsing) goes on
/// in a new stack segment of [`STACK_SEGMENT`] bytes.
pub(crate) const STACK_RED_ZONE: usize = 256 * 1024;
pub(crate) const STACK_SEGMENT: usize = 8 * 1024 * 1024;

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
    pub file: SourceId,
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
    eval_depth: usize,
    /// Work and memory spent so far, against [`MAX_STEPS`] and [`MAX_BYTES`].
    steps: u64,
    bytes: u64,
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
            eval_depth: 0,
            steps: 0,
            bytes: 0,
            errors: Vec::new(),
            used_packages: BTreeSet::new(),
            used_files: BTreeSet::new(),
            used_secrets: BTreeSet::new(),
        }
    }

    /// Spends `steps` of work and `bytes` of memory, refused past the
    /// evaluation's bounds (checked before the memory is allocated).
    pub(crate) fn charge(&mut self, steps: u64, bytes: u64, span: Span) -> EvalResult<()> {
        self.steps = self.steps.saturating_add(steps);
        self.bytes = self.bytes.saturating_add(bytes);
        if self.steps > MAX_STEPS {
            return Err(self.error(
                Diagnostic::new(format!("evaluation takes more than {MAX_STEPS} steps"), span)
                    .label("the limit was reached here")
                    .hint("the site builds or compares values far larger than a configuration needs (a function that doubles a list, a comparison of big nested values)"),
            ));
        }
        if self.bytes > MAX_BYTES {
            return Err(self.error(
                Diagnostic::new(format!("the site's values take more than {} MiB", MAX_BYTES >> 20), span)
                    .label("the limit was reached here")
                    .hint("a string or list grows far beyond what a configuration needs (e.g. doubled again and again)"),
            ));
        }
        Ok(())
    }

    pub fn error(&mut self, diagnostic: Diagnostic) -> Reported {
        self.errors.push(diagnostic);
        Reported
    }

    /// The errors in source order (file, then position; errors without a place first).
    pub fn into_diagnostics(mut self) -> Diagnostics {
        self.errors
            .sort_by_key(|d| d.span.map(|s| (s.file, s.start)));
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
