//! Assembles the resolved [`Site`] from the root module: flattens classes,
//! converts services, packages, files, secrets, inventory and rollout, and
//! checks the references between them.
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::rc::Rc;

use super::class::FlatClass;
use super::value::{ClassValue, Value, SV};
use super::{EvalResult, Evaluator};
use crate::ast::Item;
use crate::diagnostics::{quoted_list, suggest, Diagnostic, Diagnostics};
use crate::inventory::InventoryResolver;
use crate::model::{Class, ServiceRef, Site, MODEL_VERSION};
use crate::span::Span;
use crate::SourceLoader;

/// Evaluates the site whose root file is `root`. See [`crate::evaluate_site`].
pub fn evaluate(
    loader: &dyn SourceLoader,
    root: &Path,
    resolver: &dyn InventoryResolver,
) -> Result<Site, Diagnostics> {
    let mut ev = Evaluator::new(loader, resolver);
    let loaded = ev.load(root, None, &mut Vec::new());
    if loaded.is_err() {
        return Err(ev.into_diagnostics());
    }
    let site = ev.assemble(root);
    if ev.errors.is_empty() {
        Ok(site)
    } else {
        Err(ev.into_diagnostics())
    }
}

/// Where each `requires` entry was written, for errors found after conversion.
pub(super) struct RequireSite {
    pub from: ServiceRef,
    pub to: ServiceRef,
    pub span: Span,
}

impl Evaluator<'_> {
    pub(super) fn setting(&mut self, name: &str) -> Option<EvalResult<SV>> {
        let module = &self.modules[0];
        let &item = module.settings.get(name)?;
        let ast = module.ast.clone();
        let Item::Setting { value, .. } = &ast.items[item] else {
            return None;
        };
        Some(self.eval_sv(value, 0, None))
    }

    /// The whole site from the loaded modules: names, classes, inventory,
    /// rollout, what the site uses, and the checks between them.
    fn assemble(&mut self, root: &Path) -> Site {
        let name = self.site_name(root);
        let environment = match self.setting("environment") {
            Some(Ok(sv)) => self
                .expect_literal(&sv, "`environment`")
                .unwrap_or_default(),
            _ => "default".to_string(),
        };

        let mut requires = Vec::new();
        let mut classes = BTreeMap::new();
        let class_names = self.modules[0].classes.clone();
        let flats = self.flatten_classes(&class_names);
        // Services that were declared, even if they failed to convert: a
        // `requires` on one of them is not a second error.
        let declared: BTreeSet<ServiceRef> = flats
            .iter()
            .flat_map(|(class, _, flat)| {
                flat.services.iter().map(move |(name, _)| ServiceRef {
                    class: class.clone(),
                    service: name.name.clone(),
                })
            })
            .collect();
        for (class_name, span, flat) in flats {
            let class = self.convert_class(&class_name, span, flat, &mut requires);
            classes.insert(class_name, class);
        }

        let inventory = self.site_inventory(&mut classes);
        let rollout = self.rollout();
        self.check_group_label(&rollout, &inventory);
        let packages = self.used_packages_closure();
        let files = self.used_files_closure();
        let secrets = self.used_secrets();
        let requires: Vec<RequireSite> = requires
            .into_iter()
            .filter(|r| {
                let declared_class = class_names.contains(&r.to.class);
                let failed_class = declared_class && !classes.contains_key(&r.to.class);
                let failed_service = declared.contains(&r.to)
                    && classes
                        .get(&r.to.class)
                        .is_none_or(|c| !c.services.contains_key(&r.to.service));
                !(failed_class || failed_service)
            })
            .collect();
        self.check_requires(&classes, &requires);
        // Cycles are worth reporting even next to other errors; the graph
        // skips `requires` whose target does not exist.
        let graph = match crate::validate::service_graph(&classes) {
            Ok(graph) => graph,
            Err(cycles) => {
                for cycle in cycles {
                    self.report_cycle(&cycle, &requires);
                }
                Default::default()
            }
        };
        Site {
            version: MODEL_VERSION,
            name,
            environment,
            root: root.to_path_buf(),
            packages,
            files,
            classes,
            secrets,
            inventory,
            rollout,
            graph,
        }
    }

    /// The `site = …` setting, or a name taken from the root file's path
    /// (its directory for `site.conf`, else the file's stem).
    fn site_name(&mut self, root: &Path) -> String {
        let default_name = match (
            root.file_stem().and_then(|s| s.to_str()),
            root.parent()
                .and_then(|p| p.file_name())
                .and_then(|s| s.to_str()),
        ) {
            (Some("site"), Some(dir)) => dir.to_string(),
            (Some(stem), _) => stem.to_string(),
            _ => "site".to_string(),
        };
        match self.setting("site") {
            Some(Ok(sv)) => match self.expect_literal(&sv, "`site`") {
                Ok(name) if valid_site_name(&name) => name,
                Ok(name) => {
                    self.error(
                        Diagnostic::new(format!("`{name}` cannot name a site"), sv.span).hint(
                            "a site name becomes a directory name: use letters, digits, `-`, `_` and `.`",
                        ),
                    );
                    default_name
                }
                Err(_) => default_name,
            },
            _ => default_name,
        }
    }

    /// Each root class with its includes and the `every class` items
    /// followed, in declaration order, with the span of its name.
    fn flatten_classes(&mut self, class_names: &[String]) -> Vec<(String, Span, FlatClass)> {
        let mut flats = Vec::new();
        for class_name in class_names {
            let span = self.modules[0]
                .ast
                .items
                .iter()
                .find_map(|item| match item {
                    Item::Class { name, .. } if name.name == *class_name => Some(name.span),
                    _ => None,
                });
            let Some(span) = span else { continue };
            let Ok(Value::Class(class)) = self.force(0, class_name, span) else {
                continue;
            };
            let target: Rc<str> = Rc::from(class_name.as_str());
            let mut flat = FlatClass::default();
            self.with_self(target.clone(), |ev| ev.flatten(&class, &mut flat));
            let every = self.modules[0].every.clone();
            let ast = self.modules[0].ast.clone();
            for item in every {
                if let Item::Every { body, .. } = &ast.items[item] {
                    let every_class = Rc::new(ClassValue {
                        name: None,
                        body: Rc::new(body.clone()),
                        module: 0,
                        locals: None,
                    });
                    self.with_self(target.clone(), |ev| ev.flatten(&every_class, &mut flat));
                }
            }
            flats.push((class_name.clone(), span, flat));
        }
        flats
    }

    fn check_requires(&mut self, classes: &BTreeMap<String, Class>, requires: &[RequireSite]) {
        for site in requires {
            match classes.get(&site.to.class) {
                None => {
                    let known = quoted_list(classes.keys());
                    self.error(
                        Diagnostic::new(
                            format!(
                                "`{}` requires `{}`, but the site has no class `{}`",
                                site.from, site.to, site.to.class
                            ),
                            site.span,
                        )
                        .label("unknown class")
                        .hint(
                            suggest(&site.to.class, classes.keys().map(String::as_str)).unwrap_or_else(|| {
                                format!(
                                    "only the site's own classes run ({known}); to use a library class, declare it: `class {} = …`",
                                    site.to.class
                                )
                            }),
                        ),
                    );
                }
                Some(class) if !class.services.contains_key(&site.to.service) => {
                    let hint = suggest(&site.to.service, class.services.keys().map(String::as_str))
                        .unwrap_or_else(|| {
                            format!(
                                "class `{}` has: {}",
                                class.name,
                                quoted_list(class.services.keys())
                            )
                        });
                    self.error(
                        Diagnostic::new(
                            format!(
                                "class `{}` has no service `{}`",
                                site.to.class, site.to.service
                            ),
                            site.span,
                        )
                        .label("unknown service")
                        .hint(hint),
                    );
                }
                Some(_) => {}
            }
        }
    }

    fn report_cycle(&mut self, cycle: &[ServiceRef], requires: &[RequireSite]) {
        let mut names: Vec<String> = cycle.iter().map(ToString::to_string).collect();
        names.push(cycle[0].to_string());
        let edge_span = |from: &ServiceRef, to: &ServiceRef| {
            requires
                .iter()
                .find(|r| r.from == *from && r.to == *to)
                .map(|r| r.span)
        };
        let Some(span) = edge_span(&cycle[0], &cycle[1 % cycle.len()]) else {
            return;
        };
        let mut diagnostic = Diagnostic::new(format!("service dependency cycle: {}", names.join(" → ")), span)
            .label(format!("{} requires {}", cycle[0], cycle[1 % cycle.len()]))
            .hint("services cannot start if each waits for the other; remove one `requires` (classes may depend on each other, services may not)");
        for i in 1..cycle.len() {
            if let Some(s) = edge_span(&cycle[i], &cycle[(i + 1) % cycle.len()]) {
                diagnostic = diagnostic.related(
                    s,
                    format!("{} requires {}", cycle[i], cycle[(i + 1) % cycle.len()]),
                );
            }
        }
        self.error(diagnostic);
    }
}

/// A site name is used as a directory name on the deployer.
fn valid_site_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
}
