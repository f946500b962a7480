//! Property test: printing a generated syntax tree and parsing it back gives
//! the same tree (compared structurally, with spans blanked out).
use ferry_lang::ast::{
    Arg, BinaryOp, ClassBody, ClassItem, Expr, ExprKind, Field, File, Ident, Item, Param, StrPart,
};
use ferry_lang::span::{SourceId, Span};
use proptest::prelude::*;

const SPAN: Span = Span {
    file: SourceId(0),
    start: 0,
    end: 0,
};

fn ident(name: &str) -> Ident {
    Ident {
        name: name.to_string(),
        span: SPAN,
    }
}

fn e(kind: ExprKind) -> Expr {
    Expr { kind, span: SPAN }
}

fn name() -> impl Strategy<Value = String> {
    prop::sample::select(vec![
        "a", "web", "db", "port", "x1", "name_2", "hosts", "_tmp", "app",
    ])
    .prop_map(str::to_string)
}

fn text() -> impl Strategy<Value = String> {
    "[ -~\\n\\t]{0,12}".prop_map(|s| s.replace('\r', ""))
}

fn leaf() -> impl Strategy<Value = Expr> {
    prop_oneof![
        any::<i32>().prop_map(|n| e(ExprKind::Int(n.into()))),
        (-100_000i64..100_000).prop_map(|ms| e(ExprKind::Duration(ms))),
        (0i64..200).prop_map(|p| e(ExprKind::Percent(p))),
        any::<bool>().prop_map(|b| e(ExprKind::Bool(b))),
        text().prop_map(|t| e(ExprKind::Str(if t.is_empty() {
            vec![]
        } else {
            vec![StrPart::Lit(t)]
        }))),
        name().prop_map(|n| e(ExprKind::Var(n))),
        Just(e(ExprKind::SelfClass)),
    ]
}

fn class_body(inner: BoxedStrategy<Expr>) -> impl Strategy<Value = ClassBody> {
    prop::collection::vec(
        prop_oneof![
            inner
                .clone()
                .prop_map(|value| ClassItem::Include { value, span: SPAN }),
            (name(), inner.clone()).prop_map(|(n, value)| ClassItem::Service {
                name: ident(&n),
                value,
                span: SPAN
            }),
            inner.prop_map(|value| ClassItem::Setting {
                name: ident("packages"),
                value,
                span: SPAN
            }),
        ],
        0..3,
    )
    .prop_map(|items| ClassBody { items, span: SPAN })
}

fn expr() -> impl Strategy<Value = Expr> {
    leaf().prop_recursive(4, 48, 4, |inner| {
        let ops = prop::sample::select(vec![
            BinaryOp::Add,
            BinaryOp::Update,
            BinaryOp::Eq,
            BinaryOp::NotEq,
            BinaryOp::And,
            BinaryOp::Or,
        ]);
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(|items| e(ExprKind::List(items))),
            prop::collection::btree_map(name(), inner.clone(), 0..4).prop_map(|fields| {
                e(ExprKind::Record(
                    fields
                        .into_iter()
                        .map(|(n, value)| Field {
                            name: ident(&n),
                            value,
                        })
                        .collect(),
                ))
            }),
            (inner.clone(), name()).prop_map(|(t, n)| e(ExprKind::Field(Box::new(t), ident(&n)))),
            (inner.clone(), inner.clone())
                .prop_map(|(t, i)| e(ExprKind::Index(Box::new(t), Box::new(i)))),
            (
                inner.clone(),
                prop::collection::vec((prop::option::of(name()), inner.clone()), 0..3)
            )
                .prop_map(|(f, args)| {
                    let args = args
                        .into_iter()
                        .map(|(n, v)| match n {
                            Some(n) => Arg::Named(ident(&n), v),
                            None => Arg::Positional(v),
                        })
                        .collect();
                    e(ExprKind::Call(Box::new(f), args))
                }),
            (inner.clone(), inner.clone(), inner.clone()).prop_map(|(c, t, o)| e(ExprKind::If(
                Box::new(c),
                Box::new(t),
                Box::new(o)
            ))),
            (ops, inner.clone(), inner.clone()).prop_map(|(op, l, r)| e(ExprKind::Binary(
                op,
                Box::new(l),
                Box::new(r)
            ))),
            inner.clone().prop_map(|x| e(ExprKind::Not(Box::new(x)))),
            (text(), inner.clone(), text()).prop_map(|(a, x, b)| {
                // The parser never yields empty literal parts.
                let mut parts = Vec::new();
                if !a.is_empty() {
                    parts.push(StrPart::Lit(a));
                }
                parts.push(StrPart::Interp(x));
                if !b.is_empty() {
                    parts.push(StrPart::Lit(b));
                }
                e(ExprKind::Str(parts))
            }),
            class_body(inner.boxed()).prop_map(|body| e(ExprKind::Class(body))),
        ]
    })
}

fn item() -> impl Strategy<Value = Item> {
    let setting = prop::sample::select(vec!["site", "environment", "inventory", "rollout"]);
    prop_oneof![
        (text(), prop::option::of(name())).prop_map(|(p, alias)| Item::Import {
            path: p,
            path_span: SPAN,
            alias: alias.map(|a| ident(&a)),
            span: SPAN
        }),
        (name(), expr()).prop_map(|(n, value)| Item::Let {
            name: ident(&n),
            params: None,
            value,
            span: SPAN
        }),
        (
            name(),
            prop::collection::btree_map(name(), prop::option::of(expr()), 0..3),
            expr()
        )
            .prop_map(|(n, params, value)| {
                let params = params
                    .into_iter()
                    .map(|(p, default)| Param {
                        name: ident(&p),
                        default,
                    })
                    .collect();
                Item::Let {
                    name: ident(&n),
                    params: Some(params),
                    value,
                    span: SPAN,
                }
            }),
        (name(), prop::collection::btree_map(name(), expr(), 0..3)).prop_map(|(n, fields)| {
            Item::Package {
                name: ident(&n),
                body: e(ExprKind::Record(
                    fields
                        .into_iter()
                        .map(|(f, value)| Field {
                            name: ident(&f),
                            value,
                        })
                        .collect(),
                )),
                span: SPAN,
            }
        }),
        (name(), class_body(expr().boxed())).prop_map(|(n, body)| Item::Class {
            name: ident(&n),
            value: e(ExprKind::Class(body)),
            span: SPAN
        }),
        (name(), expr()).prop_map(|(n, value)| Item::Class {
            name: ident(&n),
            value,
            span: SPAN
        }),
        (setting, expr()).prop_map(|(s, value)| Item::Setting {
            name: ident(s),
            value,
            span: SPAN
        }),
        class_body(expr().boxed()).prop_map(|body| Item::Every { body, span: SPAN }),
    ]
}

/// `PROPTEST_CASES` overrides the number of cases (for long local runs).
fn cases(default: u32) -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The tree's debug form with every span replaced by `_`.
fn shape(tree: &impl std::fmt::Debug) -> String {
    let text = format!("{tree:?}");
    let mut out = String::with_capacity(text.len());
    let mut rest = text.as_str();
    while let Some(at) = rest.find("Span { file: ") {
        out.push_str(&rest[..at]);
        out.push('_');
        let end = rest[at..].find('}').map_or(rest.len(), |i| at + i + 1);
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(256), ..ProptestConfig::default() })]

    #[test]
    fn printed_files_parse_back_to_the_same_tree(items in prop::collection::vec(item(), 0..6)) {
        let original = File { items, span: SPAN };
        let printed = ferry_lang::pretty::file(&original);
        let (parsed, errors) = ferry_lang::parse_source(&printed);
        prop_assert!(errors.is_empty(), "{printed}\nerrors: {errors:?}");
        prop_assert_eq!(shape(&parsed.items), shape(&original.items), "{}", printed);
    }

    #[test]
    fn printed_expressions_parse_back(expression in expr()) {
        let printed = ferry_lang::pretty::expr(&expression);
        let parsed = ferry_lang::parse::parse_expr(SourceId(0), &printed);
        prop_assert!(parsed.is_ok(), "{printed}\n{parsed:?}");
        prop_assert_eq!(shape(&parsed.unwrap()), shape(&expression), "{}", printed);
    }
}

/// A valid site to mutate: byte edits of it reach error paths deep in the parser and evaluator.
const SEED: &str = r#"import "lib.conf" as lib
let port = 8080
let svc(p = port, extra = []) = { exec = "run ${p} ${join(extra, " ")}", health = tcp(p, timeout = 2s) }
class web {
  include lib.base
  service app = svc(extra = ["a"]) // { requires = [db.pg, self.other] }
  service other { exec = """
    echo ${length(hosts(db))} hosts
  """ }
}
class db { service pg { exec = "pg", state_dirs = ["data"] } }
rollout { batch = 30%, canary = 1, pause = confirm }
"#;

struct Memory(String);

impl ferry_lang::SourceLoader for Memory {
    fn load(&self, path: &std::path::Path) -> Result<String, String> {
        match path.to_str() {
            Some("site.conf") => Ok(self.0.clone()),
            Some("lib.conf") => Ok("class base { service log { exec = \"log\" } }\n".to_string()),
            _ => Err("no such file".to_string()),
        }
    }
}

struct NoHosts;

impl ferry_lang::inventory::InventoryResolver for NoHosts {
    fn resolve(
        &self,
        _: &ferry_lang::inventory::InventorySource,
    ) -> Result<Vec<ferry_lang::inventory::HostEntry>, String> {
        Ok(Vec::new())
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(512), ..ProptestConfig::default() })]

    /// Arbitrary edits of a valid site never panic; every diagnostic points inside its file.
    #[test]
    fn mutated_sites_give_a_site_or_diagnostics(edits in prop::collection::vec((0usize..SEED.len(), 0usize..4, "[ -~\\n]{0,3}"), 1..4)) {
        let mut text = SEED.to_string();
        for (at, remove, insert) in edits {
            let at = (0..=at.min(text.len())).rev().find(|i| text.is_char_boundary(*i)).unwrap_or(0);
            let end = (at..=(at + remove).min(text.len())).rev().find(|i| text.is_char_boundary(*i)).unwrap_or(at);
            text.replace_range(at..end, &insert);
        }
        let len = text.len();
        if let Err(diagnostics) = ferry_lang::evaluate_site(&Memory(text), std::path::Path::new("site.conf"), &NoHosts) {
            prop_assert!(!diagnostics.items.is_empty());
            for d in &diagnostics.items {
                if let Some(span) = d.span {
                    if span.file.0 == 0 {
                        prop_assert!(span.end as usize <= len);
                    }
                }
            }
            let _ = diagnostics.render_plain();
        }
    }

    #[test]
    fn arbitrary_text_never_panics_the_parser(text in "\\PC{0,200}") {
        let _ = ferry_lang::parse_source(&text);
    }
}

#[test]
fn the_mutation_seed_is_a_valid_site() {
    let result = ferry_lang::evaluate_site(
        &Memory(SEED.to_string()),
        std::path::Path::new("site.conf"),
        &NoHosts,
    );
    if let Err(diagnostics) = result {
        panic!("{}", diagnostics.render_plain());
    }
}
