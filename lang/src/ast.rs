//! The syntax tree of a site file. Lossless positions: every node has a [`Span`].
use crate::span::Span;

/// One parsed source file.
#[derive(Debug, Clone, PartialEq)]
pub struct File {
    pub items: Vec<Item>,
    pub span: Span,
}

/// A name as written, with its position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ident {
    pub name: String,
    pub span: Span,
}

/// A top-level declaration.
#[derive(Debug, Clone, PartialEq)]
pub enum Item {
    /// `import "path" [as name]`
    Import {
        path: String,
        path_span: Span,
        alias: Option<Ident>,
        span: Span,
    },
    /// `let name = expr` or `let name(params) = expr`
    Let {
        name: Ident,
        params: Option<Vec<Param>>,
        value: Expr,
        span: Span,
    },
    /// `package name { … }`
    Package { name: Ident, body: Expr, span: Span },
    /// `file name { … }`
    File { name: Ident, body: Expr, span: Span },
    /// `secret name { … }`
    Secret { name: Ident, body: Expr, span: Span },
    /// `class name { … }` (the body is a [`ExprKind::Class`]) or `class name = expr`
    Class {
        name: Ident,
        value: Expr,
        span: Span,
    },
    /// `site = …`, `environment = …`, `inventory = …`, `rollout = …` / `rollout { … }`
    Setting {
        name: Ident,
        value: Expr,
        span: Span,
    },
    /// `every class { … }`: class items added to every class of the site
    Every { body: ClassBody, span: Span },
}

impl Item {
    pub fn span(&self) -> Span {
        match self {
            Item::Import { span, .. }
            | Item::Let { span, .. }
            | Item::Package { span, .. }
            | Item::File { span, .. }
            | Item::Secret { span, .. }
            | Item::Class { span, .. }
            | Item::Setting { span, .. }
            | Item::Every { span, .. } => *span,
        }
    }
}

/// A function parameter, optionally with a default.
#[derive(Debug, Clone, PartialEq)]
pub struct Param {
    pub name: Ident,
    pub default: Option<Expr>,
}

/// The inside of `class { … }`.
#[derive(Debug, Clone, PartialEq)]
pub struct ClassBody {
    pub items: Vec<ClassItem>,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ClassItem {
    /// `include expr`
    Include { value: Expr, span: Span },
    /// `service name { … }` or `service name = expr`
    Service {
        name: Ident,
        value: Expr,
        span: Span,
    },
    /// `name = expr` (e.g. `packages = [...]`)
    Setting {
        name: Ident,
        value: Expr,
        span: Span,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct Expr {
    pub kind: ExprKind,
    pub span: Span,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinaryOp {
    /// `+`: integer addition, string and list concatenation
    Add,
    /// `//`: record update (right side wins)
    Update,
    Eq,
    NotEq,
    And,
    Or,
}

impl BinaryOp {
    pub fn symbol(self) -> &'static str {
        match self {
            BinaryOp::Add => "+",
            BinaryOp::Update => "//",
            BinaryOp::Eq => "==",
            BinaryOp::NotEq => "!=",
            BinaryOp::And => "&&",
            BinaryOp::Or => "||",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum ExprKind {
    Int(i64),
    /// Milliseconds; may be negative in the source (validation rejects it where it matters).
    Duration(i64),
    /// Percent as written (`30%` is 30); values over 100 are rejected where used.
    Percent(i64),
    Bool(bool),
    /// A string literal with its `${…}` interpolations.
    Str(Vec<StrPart>),
    Var(String),
    /// `self`: the class being assembled.
    SelfClass,
    List(Vec<Expr>),
    Record(Vec<Field>),
    /// `expr.name`
    Field(Box<Expr>, Ident),
    /// `expr[index]`
    Index(Box<Expr>, Box<Expr>),
    /// `f(args)` or `f { fields }` (the record's fields become named arguments)
    Call(Box<Expr>, Vec<Arg>),
    If(Box<Expr>, Box<Expr>, Box<Expr>),
    Binary(BinaryOp, Box<Expr>, Box<Expr>),
    Not(Box<Expr>),
    /// `class { … }` as a value
    Class(ClassBody),
}

#[derive(Debug, Clone, PartialEq)]
pub enum StrPart {
    Lit(String),
    Interp(Expr),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Field {
    pub name: Ident,
    pub value: Expr,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Arg {
    Positional(Expr),
    Named(Ident, Expr),
}
