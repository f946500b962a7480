//! The syntax tree of a site file. Lossless positions: every node has a [`Span`].
use crate::span::Span;

/// One parsed source file.
#[derive(Debug, Clone, PartialEq)]
pub struct File {
    /// The declarations that parsed, in source order.
    pub items: Vec<Item>,
    /// The whole file.
    pub span: Span,
}

/// A name as written, with its position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ident {
    /// The name's text.
    pub name: String,
    /// Where the name is written.
    pub span: Span,
}

/// A top-level declaration.
#[derive(Debug, Clone, PartialEq)]
pub enum Item {
    /// `import "path" [as name]`
    Import {
        /// The path as written (relative to the importing file).
        path: String,
        /// Where the quoted path is.
        path_span: Span,
        /// The name after `as`, if any.
        alias: Option<Ident>,
        /// The whole declaration.
        span: Span,
    },
    /// `let name = expr` or `let name(params) = expr`
    Let {
        /// The bound name.
        name: Ident,
        /// The parameters of a function; `None` for a plain value.
        params: Option<Vec<Param>>,
        /// The value, or the function's body.
        value: Expr,
        /// The whole declaration.
        span: Span,
    },
    /// `package name { … }`
    Package {
        /// The package's name.
        name: Ident,
        /// The record after the name.
        body: Expr,
        /// The whole declaration.
        span: Span,
    },
    /// `file name { … }`
    File {
        /// The file's name.
        name: Ident,
        /// The record after the name.
        body: Expr,
        /// The whole declaration.
        span: Span,
    },
    /// `secret name { … }`
    Secret {
        /// The secret's name.
        name: Ident,
        /// The record after the name.
        body: Expr,
        /// The whole declaration.
        span: Span,
    },
    /// `class name { … }` (the body is a [`ExprKind::Class`]) or `class name = expr`
    Class {
        /// The class's name.
        name: Ident,
        /// The class value.
        value: Expr,
        /// The whole declaration.
        span: Span,
    },
    /// `site = …`, `environment = …`, `inventory = …`, `rollout = …` / `rollout { … }`
    Setting {
        /// The setting's name.
        name: Ident,
        /// Its value.
        value: Expr,
        /// The whole declaration.
        span: Span,
    },
    /// `every class { … }`: class items added to every class of the site
    Every {
        /// The items added to every class.
        body: ClassBody,
        /// The whole declaration.
        span: Span,
    },
}

impl Item {
    /// The span of the whole declaration.
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
    /// The parameter's name.
    pub name: Ident,
    /// The value used when a call does not give it.
    pub default: Option<Expr>,
}

/// The inside of `class { … }`.
#[derive(Debug, Clone, PartialEq)]
pub struct ClassBody {
    /// The entries, in source order.
    pub items: Vec<ClassItem>,
    /// From `{` to `}`.
    pub span: Span,
}

/// One entry of a class body.
#[derive(Debug, Clone, PartialEq)]
pub enum ClassItem {
    /// `include expr`
    Include {
        /// The included class.
        value: Expr,
        /// The whole entry.
        span: Span,
    },
    /// `service name { … }` or `service name = expr`
    Service {
        /// The service's name.
        name: Ident,
        /// The service record.
        value: Expr,
        /// The whole entry.
        span: Span,
    },
    /// `name = expr` (e.g. `packages = [...]`)
    Setting {
        /// The setting's name.
        name: Ident,
        /// Its value.
        value: Expr,
        /// The whole entry.
        span: Span,
    },
}

/// An expression with its position.
#[derive(Debug, Clone, PartialEq)]
pub struct Expr {
    /// What the expression is.
    pub kind: ExprKind,
    /// Where it is written.
    pub span: Span,
}

/// An infix operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinaryOp {
    /// `+`: integer addition, string and list concatenation
    Add,
    /// `//`: record update (right side wins)
    Update,
    /// `==`: structural equality
    Eq,
    /// `!=`: structural inequality
    NotEq,
    /// `&&`: boolean and (the right side is evaluated only if needed)
    And,
    /// `||`: boolean or (the right side is evaluated only if needed)
    Or,
}

impl BinaryOp {
    /// The operator as written in source.
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

/// The kinds of expression.
#[derive(Debug, Clone, PartialEq)]
pub enum ExprKind {
    /// An integer literal.
    Int(i64),
    /// Milliseconds; may be negative in the source (validation rejects it where it matters).
    Duration(i64),
    /// Percent as written (`30%` is 30); values over 100 are rejected where used.
    Percent(i64),
    /// `true` or `false`.
    Bool(bool),
    /// A string literal with its `${…}` interpolations.
    Str(Vec<StrPart>),
    /// A name: a local, a top-level binding, an import or a builtin.
    Var(String),
    /// `self`: the class being assembled.
    SelfClass,
    /// `[a, b, …]`
    List(Vec<Expr>),
    /// `{ name = value, … }`
    Record(Vec<Field>),
    /// `expr.name`
    Field(Box<Expr>, Ident),
    /// `expr[index]`
    Index(Box<Expr>, Box<Expr>),
    /// `f(args)` or `f { fields }` (the record's fields become named arguments)
    Call(Box<Expr>, Vec<Arg>),
    /// `if cond then a else b`
    If(Box<Expr>, Box<Expr>, Box<Expr>),
    /// `left op right`
    Binary(BinaryOp, Box<Expr>, Box<Expr>),
    /// `!expr`
    Not(Box<Expr>),
    /// `class { … }` as a value
    Class(ClassBody),
}

/// One piece of a string literal.
#[derive(Debug, Clone, PartialEq)]
pub enum StrPart {
    /// Literal text, escapes already resolved.
    Lit(String),
    /// A `${…}` interpolation.
    Interp(Expr),
}

/// One `name = value` of a record.
#[derive(Debug, Clone, PartialEq)]
pub struct Field {
    /// The field's name (a word or a quoted string).
    pub name: Ident,
    /// The field's value.
    pub value: Expr,
}

/// One argument of a call.
#[derive(Debug, Clone, PartialEq)]
pub enum Arg {
    /// An argument given by position.
    Positional(Expr),
    /// `name = value`
    Named(Ident, Expr),
}
