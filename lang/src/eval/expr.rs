//! Evaluating expressions: names, fields, calls, operators and string interpolation.
use std::collections::BTreeMap;
use std::rc::Rc;

use super::value::{Builtin, ClassValue, Closure, Local, Piece, Record, Value, SV, SYMBOLS};
use super::{EvalResult, Evaluator, MAX_CALL_DEPTH, MAX_EVAL_DEPTH};
use crate::ast::{self, Arg, BinaryOp, Expr, ExprKind, StrPart};
use crate::diagnostics::{quoted_list, suggest, Diagnostic};
use crate::span::Span;

impl Evaluator<'_> {
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
        if self.eval_depth >= MAX_EVAL_DEPTH {
            return Err(self.error(
                Diagnostic::new(
                    format!("evaluation nests deeper than {MAX_EVAL_DEPTH} levels"),
                    expr.span,
                )
                .label("reached through this expression")
                .hint("a long chain of `let`s that each use the next, or calls of deeply nested bodies; compute it in fewer steps"),
            ));
        }
        self.charge(1, 0, expr.span)?;
        self.eval_depth += 1;
        // The depth is bounded above; the stack grows on demand so that the
        // bound, not the thread's stack size, decides (tests run on 2 MiB).
        let value = stacker::maybe_grow(super::STACK_RED_ZONE, super::STACK_SEGMENT, || {
            self.eval_inner(expr, module, locals)
        });
        self.eval_depth -= 1;
        value
    }

    fn eval_inner(
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
                let size = text_size(&pieces);
                self.charge(size / 64, size, expr.span)?;
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

    pub(super) fn lookup(
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

    pub(super) fn field(
        &mut self,
        value: Value,
        target_span: Span,
        name: &ast::Ident,
    ) -> EvalResult<Value> {
        match value {
            Value::Record(record) | Value::Tagged(_, record) => match record.get(&name.name) {
                Some(sv) => Ok(sv.value.clone()),
                None => {
                    let hint = suggest(&name.name, record.keys().map(String::as_str));
                    let fields = quoted_list(record.keys());
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

    pub(super) fn index(
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

    pub(super) fn call_closure(
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
                    let params = quoted_list(closure.params.iter().map(|p| &p.name.name));
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

    pub(super) fn binary(
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
                let size = text_size(&a) + text_size(&b);
                self.charge(size / 64 + 1, size, span)?;
                let mut pieces = (*a).clone();
                for piece in b.iter() {
                    match piece {
                        Piece::Lit(t) => push_lit(&mut pieces, t),
                        other => pieces.push(other.clone()),
                    }
                }
                Ok(Value::Text(Rc::new(pieces)))
            }
            (BinaryOp::Add, Value::List(a), Value::List(b)) => {
                let count = (a.len() + b.len()) as u64;
                self.charge(count, count * ELEMENT_SIZE, span)?;
                Ok(Value::List(Rc::new(
                    a.iter().chain(b.iter()).cloned().collect(),
                )))
            }
            (BinaryOp::Update, Value::Record(a), Value::Record(b)) => {
                let mut merged = (*a).clone();
                for (k, v) in b.iter() {
                    merged.insert(k.clone(), v.clone());
                }
                Ok(Value::Record(Rc::new(merged)))
            }
            (BinaryOp::Eq, a, b) => Ok(Value::Bool(self.values_equal(&a, &b, span)?)),
            (BinaryOp::NotEq, a, b) => Ok(Value::Bool(!self.values_equal(&a, &b, span)?)),
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

    pub(super) fn interpolate(
        &mut self,
        pieces: &mut Vec<Piece>,
        value: Value,
        span: Span,
    ) -> EvalResult<()> {
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
}

pub(super) fn push_lit(pieces: &mut Vec<Piece>, text: &str) {
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
/// What one list element costs against `MAX_BYTES`.
pub(super) const ELEMENT_SIZE: u64 = std::mem::size_of::<SV>() as u64;

/// The bytes of a text's literal pieces.
pub(super) fn text_size(pieces: &[Piece]) -> u64 {
    pieces
        .iter()
        .map(|p| match p {
            Piece::Lit(text) => text.len() as u64,
            _ => 8,
        })
        .sum()
}

impl Evaluator<'_> {
    /// Structural equality, one step per value visited: values that share
    /// their parts are equal without a walk, and a walk through a huge one
    /// ends at the step bound.
    fn values_equal(&mut self, a: &Value, b: &Value, span: Span) -> EvalResult<bool> {
        self.charge(1, 0, span)?;
        Ok(match (a, b) {
            (Value::Int(x), Value::Int(y)) => x == y,
            (Value::Bool(x), Value::Bool(y)) => x == y,
            (Value::Duration(x), Value::Duration(y)) => x == y,
            (Value::Percent(x), Value::Percent(y)) => x == y,
            (Value::Text(x), Value::Text(y)) => Rc::ptr_eq(x, y) || x == y,
            (Value::Symbol(x), Value::Symbol(y)) => x == y,
            (Value::Path(x), Value::Path(y)) => x == y,
            (Value::Package(x), Value::Package(y))
            | (Value::File(x), Value::File(y))
            | (Value::Secret(x), Value::Secret(y)) => x == y,
            (Value::ServiceRef(c1, s1), Value::ServiceRef(c2, s2)) => c1 == c2 && s1 == s2,
            (Value::List(x), Value::List(y)) => {
                if Rc::ptr_eq(x, y) {
                    return Ok(true);
                }
                if x.len() != y.len() {
                    return Ok(false);
                }
                for (a, b) in x.iter().zip(y.iter()) {
                    if !self.values_equal(&a.value, &b.value, span)? {
                        return Ok(false);
                    }
                }
                true
            }
            (Value::Record(x), Value::Record(y)) => {
                if Rc::ptr_eq(x, y) {
                    return Ok(true);
                }
                if x.len() != y.len() {
                    return Ok(false);
                }
                for ((k1, v1), (k2, v2)) in x.iter().zip(y.iter()) {
                    if k1 != k2 || !self.values_equal(&v1.value, &v2.value, span)? {
                        return Ok(false);
                    }
                }
                true
            }
            _ => false,
        })
    }
}

/// Records as sorted maps (for callers that build them).
pub fn record(fields: impl IntoIterator<Item = (String, SV)>) -> Value {
    Value::Record(Rc::new(fields.into_iter().collect::<BTreeMap<_, _>>()))
}
