//! Runtime values of the evaluator.
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::rc::Rc;

use crate::ast::{ClassBody, Expr, Param};
use crate::span::Span;

/// A value with the span of the expression that produced it.
#[derive(Debug, Clone)]
pub struct SV {
    pub value: Value,
    pub span: Span,
}

impl SV {
    pub fn new(value: Value, span: Span) -> SV {
        SV { value, span }
    }
}

pub type Record = BTreeMap<String, SV>;

#[derive(Debug, Clone)]
pub enum Value {
    Int(i64),
    Bool(bool),
    /// Milliseconds.
    Duration(i64),
    Percent(i64),
    Text(Rc<Vec<Piece>>),
    List(Rc<Vec<SV>>),
    Record(Rc<Record>),
    Func(Rc<Closure>),
    Builtin(Builtin),
    Class(Rc<ClassValue>),
    /// A class known only by name (`self`, or a class named in a string).
    ClassName(Rc<str>),
    Package(u32),
    File(u32),
    Secret(u32),
    ServiceRef(Rc<str>, Rc<str>),
    Module(u32),
    Path(Rc<PathBuf>),
    /// A bare word such as `rollback` or `dependencies`.
    Symbol(&'static str),
    /// A value built by a builtin (`http(…)`, `lab(…)`): its kind and its fields.
    Tagged(&'static str, Rc<Record>),
}

/// A piece of a string value: literal text or a reference resolved later.
#[derive(Debug, Clone, PartialEq)]
pub enum Piece {
    Lit(String),
    Package(u32),
    File(u32),
    Secret(u32),
}

impl Value {
    pub fn text(s: impl Into<String>) -> Value {
        Value::Text(Rc::new(vec![Piece::Lit(s.into())]))
    }

    /// What the value is, for messages ("expected a string, found a list").
    pub fn kind(&self) -> &'static str {
        match self {
            Value::Int(_) => "an integer",
            Value::Bool(_) => "a boolean",
            Value::Duration(_) => "a duration",
            Value::Percent(_) => "a percentage",
            Value::Text(_) => "a string",
            Value::List(_) => "a list",
            Value::Record(_) => "a record",
            Value::Func(_) | Value::Builtin(_) => "a function",
            Value::Class(_) | Value::ClassName(_) => "a class",
            Value::Package(_) => "a package",
            Value::File(_) => "a file",
            Value::Secret(_) => "a secret",
            Value::ServiceRef(..) => "a service reference",
            Value::Module(_) => "an imported module",
            Value::Path(_) => "a path",
            Value::Symbol(_) => "a word",
            Value::Tagged(kind, _) => match *kind {
                "health.http" | "health.tcp" | "health.command" => "a health check",
                "package.debian" => "a Debian package source",
                _ => "an inventory source",
            },
        }
    }

    /// The text if the value is a string without references.
    pub fn literal(&self) -> Option<String> {
        match self {
            Value::Text(pieces) => {
                let mut out = String::new();
                for piece in pieces.iter() {
                    match piece {
                        Piece::Lit(t) => out.push_str(t),
                        _ => return None,
                    }
                }
                Some(out)
            }
            _ => None,
        }
    }
}

/// Local variables: function parameters, innermost first.
#[derive(Debug)]
pub struct Local {
    pub name: String,
    pub value: SV,
    pub parent: Option<Rc<Local>>,
}

/// A user function with the scope it was defined in.
#[derive(Debug)]
pub struct Closure {
    pub name: String,
    pub params: Vec<Param>,
    pub body: Expr,
    pub module: u32,
    pub locals: Option<Rc<Local>>,
}

/// A class value: a body to assemble, and the scope it was written in.
#[derive(Debug)]
pub struct ClassValue {
    /// The declared name; `None` for a `class { … }` not (yet) bound by `class name = …`.
    pub name: Option<Rc<str>>,
    pub body: Rc<ClassBody>,
    pub module: u32,
    pub locals: Option<Rc<Local>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Builtin {
    Path,
    Http,
    Tcp,
    Command,
    InventoryFile,
    Exec,
    Ansible,
    Lab,
    Hosts,
    Map,
    Join,
    Length,
    Range,
    ToString,
    TextFile,
    Debian,
}

impl Builtin {
    pub const ALL: &'static [(&'static str, Builtin)] = &[
        ("path", Builtin::Path),
        ("http", Builtin::Http),
        ("tcp", Builtin::Tcp),
        ("command", Builtin::Command),
        ("file", Builtin::InventoryFile),
        ("exec", Builtin::Exec),
        ("ansible", Builtin::Ansible),
        ("lab", Builtin::Lab),
        ("hosts", Builtin::Hosts),
        ("map", Builtin::Map),
        ("join", Builtin::Join),
        ("length", Builtin::Length),
        ("range", Builtin::Range),
        ("to_string", Builtin::ToString),
        ("text_file", Builtin::TextFile),
        ("debian", Builtin::Debian),
    ];

    pub fn name(self) -> &'static str {
        Builtin::ALL
            .iter()
            .find(|(_, b)| *b == self)
            .map_or("?", |(n, _)| n)
    }
}

/// Bare words that evaluate to themselves.
pub const SYMBOLS: &[&str] = &[
    "dependencies",
    "declared",
    "none",
    "stop",
    "rollback",
    "continue",
    "confirm",
];
