//! Assembles the resolved [`Site`] from the root module: flattens classes,
//! converts services, packages, files, secrets, inventory and rollout, and
//! checks the references between them.
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;
use std::rc::Rc;

use super::value::{ClassValue, Value, SV};
use super::{EvalResult, Evaluator, Reported};
use crate::ast::{ClassItem, Ident, Item};
use crate::diagnostics::{suggest, Diagnostic, Diagnostics};
use crate::inventory::InventoryResolver;
use crate::model::{
    Class, HealthCheck, Inventory, OnFailure, Package, PackageId, Pause, Probe, RolloutOrder,
    RolloutPolicy, Secret, SecretSource, Service, ServiceKind, ServiceRef, Site, TextFile,
    MODEL_VERSION,
};
use crate::span::Span;
use crate::SourceLoader;

const SERVICE_FIELDS: &[&str] = &[
    "exec",
    "env",
    "user",
    "state_dirs",
    "health",
    "pre_upgrade",
    "post_upgrade",
    "requires",
    "secrets",
    "oneshot",
];
const PACKAGE_FIELDS: &[&str] = &["name", "src", "inputs", "build", "env"];
const FILE_FIELDS: &[&str] = &["name", "text", "executable"];
const SECRET_FIELDS: &[&str] = &["file", "env", "command"];
const ROLLOUT_FIELDS: &[&str] = &[
    "order",
    "canary",
    "batch",
    "group_by",
    "max_failures",
    "on_failure",
    "pause",
    "program",
];
const CLASS_SETTINGS: &[&str] = &["packages"];
const HEALTH_DEFAULT_TIMEOUT_MS: u64 = 5_000;
const HEALTH_DEFAULT_RETRIES: u32 = 3;
const HEALTH_DEFAULT_INTERVAL_MS: u64 = 1_000;

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

/// A class after includes were followed, before conversion.
#[derive(Default)]
struct FlatClass {
    includes: Vec<String>,
    services: Vec<(Ident, SV)>,
    packages: Vec<SV>,
    visited: Vec<*const crate::ast::ClassBody>,
}

/// Where each `requires` entry was written, for errors found after conversion.
struct RequireSite {
    from: ServiceRef,
    to: ServiceRef,
    span: Span,
}

impl Evaluator<'_> {
    fn setting(&mut self, name: &str) -> Option<EvalResult<SV>> {
        let module = &self.modules[0];
        let &item = module.settings.get(name)?;
        let ast = module.ast.clone();
        let Item::Setting { value, .. } = &ast.items[item] else {
            return None;
        };
        Some(self.eval_sv(value, 0, None))
    }

    fn assemble(&mut self, root: &Path) -> Site {
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
        let name = match self.setting("site") {
            Some(Ok(sv)) => self.expect_literal(&sv, "`site`").unwrap_or(default_name),
            _ => default_name,
        };
        let environment = match self.setting("environment") {
            Some(Ok(sv)) => self
                .expect_literal(&sv, "`environment`")
                .unwrap_or_default(),
            _ => "default".to_string(),
        };

        let mut requires = Vec::new();
        let mut classes = BTreeMap::new();
        let class_names = self.modules[0].classes.clone();
        let mut flats = Vec::new();
        for class_name in &class_names {
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
        let graph = if self.errors.is_empty() {
            match crate::validate::service_graph(&classes) {
                Ok(graph) => graph,
                Err(cycles) => {
                    for cycle in cycles {
                        self.report_cycle(&cycle, &requires);
                    }
                    Default::default()
                }
            }
        } else {
            Default::default()
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

    fn flatten(&mut self, class: &Rc<ClassValue>, flat: &mut FlatClass) {
        let body_ptr = Rc::as_ptr(&class.body);
        if flat.visited.contains(&body_ptr) {
            return;
        }
        flat.visited.push(body_ptr);
        for item in class.body.items.iter() {
            match item {
                ClassItem::Include { value, .. } => {
                    match self.eval_sv(value, class.module, class.locals.as_ref()) {
                        Ok(SV {
                            value: Value::Class(included),
                            ..
                        }) => {
                            let name = included
                                .name
                                .as_deref()
                                .unwrap_or("(anonymous class)")
                                .to_string();
                            if !flat.visited.contains(&Rc::as_ptr(&included.body)) {
                                flat.includes.push(name);
                            }
                            self.flatten(&included, flat);
                        }
                        Ok(other) => {
                            self.error(
                            Diagnostic::new(format!("`include` needs a class, found {}", other.value.kind()), other.span)
                                .hint("include a class such as `std.base`; services are added with `service name = …`"),
                        );
                        }
                        Err(Reported) => {}
                    }
                }
                ClassItem::Service { name, value, .. } => {
                    if let Ok(sv) = self.eval_sv(value, class.module, class.locals.as_ref()) {
                        flat.services.push((name.clone(), sv));
                    }
                }
                ClassItem::Setting { name, value, .. } => {
                    if !CLASS_SETTINGS.contains(&name.name.as_str()) {
                        let hint = suggest(
                            &name.name,
                            CLASS_SETTINGS.iter().copied().chain(["include", "service"]),
                        );
                        self.error(
                            Diagnostic::new(
                                format!("unknown class setting `{}`", name.name),
                                name.span,
                            )
                            .label("unknown setting")
                            .hint(hint.unwrap_or_else(|| {
                                "a class body holds `include`, `service` and `packages = [...]`"
                                    .to_string()
                            })),
                        );
                        continue;
                    }
                    if let Ok(sv) = self.eval_sv(value, class.module, class.locals.as_ref()) {
                        flat.packages.push(sv);
                    }
                }
            }
        }
    }

    fn convert_class(
        &mut self,
        class_name: &str,
        span: Span,
        flat: FlatClass,
        requires: &mut Vec<RequireSite>,
    ) -> Class {
        let mut services = BTreeMap::new();
        let mut first_span: HashMap<String, Span> = HashMap::new();
        for (name, sv) in flat.services {
            if let Some(first) = first_span.get(&name.name) {
                self.error(
                    Diagnostic::new(
                        format!(
                            "class `{class_name}` has two services named `{}`",
                            name.name
                        ),
                        name.span,
                    )
                    .label("second definition")
                    .related(*first, "first defined here")
                    .hint("rename one of them, or include the class that defines it only once"),
                );
                continue;
            }
            first_span.insert(name.name.clone(), name.span);
            if let Ok(service) = self.convert_service(class_name, &name, &sv, requires) {
                services.insert(name.name.clone(), service);
            }
        }
        let mut packages = Vec::new();
        for sv in flat.packages {
            let Ok(list) = self.expect_list(&sv, "`packages`") else {
                continue;
            };
            for item in list.iter() {
                match item.value {
                    Value::Package(slot) => {
                        self.used_packages.insert(slot);
                        let id = PackageId(self.packages[slot as usize].name.clone());
                        if !packages.contains(&id) {
                            packages.push(id);
                        }
                    }
                    _ => {
                        self.type_error(item, "an element of `packages`", "a package");
                    }
                }
            }
        }
        Class {
            name: class_name.to_string(),
            includes: flat.includes,
            services,
            packages,
            hosts: Vec::new(),
            origin: self.origin(span),
        }
    }

    fn convert_service(
        &mut self,
        class_name: &str,
        name: &Ident,
        sv: &SV,
        requires: &mut Vec<RequireSite>,
    ) -> EvalResult<Service> {
        let record = match &sv.value {
            Value::Record(r) => r.clone(),
            other => {
                return Err(self.error(
                    Diagnostic::new(format!("service `{}` must be a record `{{ exec = … }}`, found {}", name.name, other.kind()), sv.span)
                        .hint("write `service name { exec = \"…\" }` or `service name = f(…)` with a function returning a record"),
                ))
            }
        };
        let mut ok = self.check_fields(&record, SERVICE_FIELDS, "a service");
        let what = |field: &str| format!("`{field}` of service `{}`", name.name);
        let exec = match record.get("exec") {
            Some(exec) => self
                .expect_text(exec, &what("exec"))
                .map(|p| self.model_text(&p))
                .ok(),
            None => {
                self.error(
                    Diagnostic::new(format!("service `{}` has no `exec`", name.name), name.span)
                        .hint(
                        "every service needs the command it runs: `exec = \"${pkg}/bin/server\"`",
                    ),
                );
                None
            }
        };
        let env = match record.get("env") {
            Some(env) => self.env_map(env, &what("env")).ok(),
            None => Some(BTreeMap::new()),
        };
        let user = match record.get("user") {
            Some(user) => self.expect_literal(user, &what("user")).map(Some).ok(),
            None => Some(None),
        };
        let mut state_dirs = Vec::new();
        if let Some(dirs) = record.get("state_dirs") {
            match self.expect_list(dirs, &what("state_dirs")) {
                Ok(list) => {
                    for dir in list.iter() {
                        match self.expect_literal(dir, "a state directory") {
                            Ok(d)
                                if d.is_empty()
                                    || d.starts_with('/')
                                    || d.split('/').any(|c| c == ".." || c == ".") =>
                            {
                                ok = false;
                                self.error(
                                    Diagnostic::new(format!("state directory `{d}` must be a relative path inside the service's state directory"), dir.span)
                                        .hint("write a name like `\"data\"`; it is created under the service's state directory"),
                                );
                            }
                            Ok(d) => state_dirs.push(d),
                            Err(_) => ok = false,
                        }
                    }
                }
                Err(_) => ok = false,
            }
        }
        let mut health = Vec::new();
        if let Some(checks) = record.get("health") {
            for check in self.one_or_many(checks).iter() {
                match self.health_check(check) {
                    Ok(h) => health.push(h),
                    Err(_) => ok = false,
                }
            }
        }
        let pre_upgrade = self.field_text(&record, "pre_upgrade", &what("pre_upgrade"));
        let post_upgrade = self.field_text(&record, "post_upgrade", &what("post_upgrade"));
        let from = ServiceRef {
            class: class_name.to_string(),
            service: name.name.clone(),
        };
        let mut required = Vec::new();
        if let Some(list_sv) = record.get("requires") {
            for item in self.one_or_many(list_sv).iter() {
                match &item.value {
                    Value::ServiceRef(class, service) => {
                        let to = ServiceRef {
                            class: class.to_string(),
                            service: service.to_string(),
                        };
                        if !required.contains(&to) {
                            required.push(to.clone());
                        }
                        requires.push(RequireSite {
                            from: from.clone(),
                            to,
                            span: item.span,
                        });
                    }
                    Value::Class(c) => {
                        ok = false;
                        let class = c.name.as_deref().unwrap_or("the class").to_string();
                        self.error(
                            Diagnostic::new(
                                format!("`requires` names services, but `{class}` is a class"),
                                item.span,
                            )
                            .hint(format!("name one of its services: `{class}.<service>`")),
                        );
                    }
                    _ => {
                        ok = false;
                        self.type_error(
                            item,
                            "an element of `requires`",
                            "a service such as `db.postgres` or `self.app`",
                        );
                    }
                }
            }
        }
        let mut secrets: Vec<String> = Vec::new();
        if let Some(list_sv) = record.get("secrets") {
            for item in self.one_or_many(list_sv).iter() {
                match item.value {
                    Value::Secret(slot) => {
                        self.used_secrets.insert(slot);
                        secrets.push(self.secrets[slot as usize].name.clone());
                    }
                    _ => {
                        ok = false;
                        self.type_error(
                            item,
                            "an element of `secrets`",
                            "a secret declared with `secret name { … }`",
                        );
                    }
                }
            }
        }
        let kind = match record.get("oneshot") {
            Some(b) => match self.expect_bool(b, &what("oneshot")) {
                Ok(true) => ServiceKind::Oneshot,
                Ok(false) => ServiceKind::LongRunning,
                Err(_) => {
                    ok = false;
                    ServiceKind::LongRunning
                }
            },
            None => ServiceKind::LongRunning,
        };
        let (Some(exec), Some(env), Some(user), Ok(pre_upgrade), Ok(post_upgrade), true) =
            (exec, env, user, pre_upgrade, post_upgrade, ok)
        else {
            return Err(Reported);
        };
        for text in std::iter::once(&exec)
            .chain(env.values())
            .chain(pre_upgrade.iter())
            .chain(post_upgrade.iter())
        {
            for secret in text.secrets() {
                if !secrets.iter().any(|s| s == secret) {
                    secrets.push(secret.to_string());
                }
            }
        }
        Ok(Service {
            name: name.name.clone(),
            kind,
            exec,
            env,
            user,
            state_dirs,
            health,
            pre_upgrade,
            post_upgrade,
            requires: required,
            secrets,
            origin: self.origin(name.span),
        })
    }

    fn health_check(&mut self, sv: &SV) -> EvalResult<HealthCheck> {
        let Value::Tagged(kind, fields) = &sv.value else {
            return Err(self.type_error(
                sv,
                "a health check",
                "`http(url)`, `tcp(port)` or `command(\"…\")`",
            ));
        };
        let probe = match *kind {
            "health.http" => {
                let url = fields.get("url").ok_or(Reported)?;
                let pieces = self.expect_text(url, "the URL of `http`")?;
                Probe::Http {
                    url: self.model_text(&pieces),
                }
            }
            "health.tcp" => {
                let port_sv = fields.get("port").ok_or(Reported)?;
                let port = self.expect_count(port_sv, "the port of `tcp`")?;
                let Ok(port) = u16::try_from(port).map_err(|_| ()).and_then(|p| {
                    if p == 0 {
                        Err(())
                    } else {
                        Ok(p)
                    }
                }) else {
                    return Err(self.error(Diagnostic::new(
                        format!("port {port} is not between 1 and 65535"),
                        port_sv.span,
                    )));
                };
                let host = match fields.get("host") {
                    Some(h) => self.expect_literal(h, "the host of `tcp`")?,
                    None => "127.0.0.1".to_string(),
                };
                Probe::Tcp { host, port }
            }
            "health.command" => {
                let command = fields.get("command").ok_or(Reported)?;
                let pieces = self.expect_text(command, "the command of `command`")?;
                Probe::Command {
                    command: self.model_text(&pieces),
                }
            }
            _ => {
                return Err(self.type_error(
                    sv,
                    "a health check",
                    "`http(url)`, `tcp(port)` or `command(\"…\")`",
                ))
            }
        };
        let timeout_ms = match fields.get("timeout") {
            Some(t) => self.expect_duration(t, "a health check's `timeout`")?,
            None => HEALTH_DEFAULT_TIMEOUT_MS,
        };
        let interval_ms = match fields.get("interval") {
            Some(t) => self.expect_duration(t, "a health check's `interval`")?,
            None => HEALTH_DEFAULT_INTERVAL_MS,
        };
        let retries = match fields.get("retries") {
            Some(r) => self.expect_count(r, "a health check's `retries`")?,
            None => HEALTH_DEFAULT_RETRIES,
        };
        Ok(HealthCheck {
            probe,
            timeout_ms,
            retries,
            interval_ms,
        })
    }

    fn site_inventory(&mut self, classes: &mut BTreeMap<String, Class>) -> Inventory {
        let span = self.modules[0].settings.get("inventory").map(|&i| {
            match &self.modules[0].ast.items[i] {
                Item::Setting { value, .. } => value.span,
                other => other.span(),
            }
        });
        let Some(span) = span else {
            return Inventory {
                source: None,
                hosts: Vec::new(),
            };
        };
        let Ok(hosts) = self.hosts(span) else {
            return Inventory {
                source: None,
                hosts: Vec::new(),
            };
        };
        // Re-evaluating the source is cheap and pure; it gives the model its copy.
        let source = self.inventory_source().ok().flatten().map(|(s, _)| s);
        let mut seen: HashMap<&str, ()> = HashMap::new();
        for host in hosts.iter() {
            if seen.insert(host.name.as_str(), ()).is_some() {
                self.error(
                    Diagnostic::new(
                        format!("the inventory lists host `{}` twice", host.name),
                        span,
                    )
                    .hint("host names must be unique in a site"),
                );
                continue;
            }
            match classes.get_mut(&host.class) {
                Some(class) => class.hosts.push(host.clone()),
                None => {
                    let known = classes
                        .keys()
                        .map(|k| format!("`{k}`"))
                        .collect::<Vec<_>>()
                        .join(", ");
                    let hint = suggest(&host.class, classes.keys().map(String::as_str))
                        .unwrap_or_else(|| {
                            format!(
                                "the site's classes are: {}",
                                if known.is_empty() {
                                    "(none)".to_string()
                                } else {
                                    known
                                }
                            )
                        });
                    self.error(
                        Diagnostic::new(
                            format!(
                                "host `{}` is in class `{}`, which the site does not declare",
                                host.name, host.class
                            ),
                            span,
                        )
                        .label("from this inventory")
                        .hint(hint),
                    );
                }
            }
        }
        Inventory {
            source,
            hosts: (*hosts).clone(),
        }
    }

    fn rollout(&mut self) -> RolloutPolicy {
        let mut policy = RolloutPolicy::default();
        let Some(Ok(sv)) = self.setting("rollout") else {
            return policy;
        };
        let Ok(record) = self.expect_record(&sv, "`rollout`") else {
            return policy;
        };
        self.check_fields(&record, ROLLOUT_FIELDS, "`rollout`");
        if let Some(v) = record.get("order") {
            match self.expect_literal(v, "`order`").as_deref() {
                Ok("dependencies") => policy.order = RolloutOrder::Dependencies,
                Ok("declared") => policy.order = RolloutOrder::Declared,
                Ok("none") => policy.order = RolloutOrder::None,
                Ok(other) => {
                    self.error(
                        Diagnostic::new(format!("unknown rollout order `{other}`"), v.span).hint(
                            suggest(other, ["dependencies", "declared", "none"]).unwrap_or_else(
                                || "use `dependencies`, `declared` or `none`".into(),
                            ),
                        ),
                    );
                }
                Err(_) => {}
            }
        }
        if let Some(v) = record.get("canary") {
            if let Ok(n) = self.expect_count(v, "`canary`") {
                policy.canary = n;
            }
        }
        if let Some(v) = record.get("batch") {
            match self.expect_amount(v, "`batch`") {
                Ok(crate::model::Amount::Count(0)) | Ok(crate::model::Amount::Percent(0)) => {
                    self.error(
                        Diagnostic::new("`batch` must allow at least one host", v.span)
                            .hint("use `1` or a percentage above 0%"),
                    );
                }
                Ok(amount) => policy.batch = amount,
                Err(_) => {}
            }
        }
        if let Some(v) = record.get("group_by") {
            if let Ok(label) = self.expect_literal(v, "`group_by`") {
                policy.group_by = Some(label);
            }
        }
        if let Some(v) = record.get("max_failures") {
            if let Ok(amount) = self.expect_amount(v, "`max_failures`") {
                policy.max_failures = amount;
            }
        }
        if let Some(v) = record.get("on_failure") {
            match self.expect_literal(v, "`on_failure`").as_deref() {
                Ok("stop") => policy.on_failure = OnFailure::Stop,
                Ok("rollback") => policy.on_failure = OnFailure::Rollback,
                Ok("continue") => policy.on_failure = OnFailure::Continue,
                Ok(other) => {
                    self.error(
                        Diagnostic::new(format!("unknown failure action `{other}`"), v.span).hint(
                            suggest(other, ["stop", "rollback", "continue"])
                                .unwrap_or_else(|| "use `stop`, `rollback` or `continue`".into()),
                        ),
                    );
                }
                Err(_) => {}
            }
        }
        if let Some(v) = record.get("pause") {
            match &v.value {
                Value::Symbol("confirm") => policy.pause = Pause::Confirm,
                Value::Symbol("none") => policy.pause = Pause::None,
                Value::Duration(_) => {
                    if let Ok(ms) = self.expect_duration(v, "`pause`") {
                        policy.pause = Pause::Duration { ms };
                    }
                }
                _ => {
                    self.type_error(v, "`pause`", "a duration like `30s`, `confirm` or `none`");
                }
            }
        }
        if let Some(v) = record.get("program") {
            if let Ok(mut argv) = self.argv(v, "`program`") {
                if argv[0].contains('/') && !argv[0].starts_with('/') {
                    argv[0] = self.resolve_path(v.span, &argv[0]).display().to_string();
                }
                policy.program = Some(argv);
            }
        }
        policy
    }

    /// Evaluates every used package, following inputs, until no new one appears.
    fn used_packages_closure(&mut self) -> BTreeMap<PackageId, Package> {
        let mut done: BTreeSet<u32> = BTreeSet::new();
        let mut packages: BTreeMap<PackageId, Package> = BTreeMap::new();
        let mut first_slot: BTreeMap<String, u32> = BTreeMap::new();
        loop {
            // Files can mention packages and packages can mention files.
            self.used_files_closure();
            let Some(&slot) = self.used_packages.iter().find(|s| !done.contains(s)) else {
                break;
            };
            done.insert(slot);
            let name = self.packages[slot as usize].name.clone();
            if let Some(&other) = first_slot.get(&name) {
                let (a, b) = (
                    self.packages[other as usize].name_span,
                    self.packages[slot as usize].name_span,
                );
                self.error(
                    Diagnostic::new(format!("the site uses two different packages named `{name}`"), b)
                        .related(a, "the other one")
                        .hint("package names are store names and must be unique among the packages a site uses; rename one"),
                );
                continue;
            }
            first_slot.insert(name.clone(), slot);
            if let Ok(package) = self.package(slot) {
                packages.insert(package.id.clone(), package);
            }
        }
        packages
    }

    fn decl_body(
        &mut self,
        module: u32,
        item: usize,
    ) -> EvalResult<(std::rc::Rc<super::value::Record>, Span)> {
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
        let sv = sv?;
        Ok((self.expect_record(&sv, "a declaration body")?, sv.span))
    }

    fn package(&mut self, slot: u32) -> EvalResult<Package> {
        let (module, item, name, name_span) = {
            let s = &self.packages[slot as usize];
            (s.module, s.item, s.name.clone(), s.name_span)
        };
        let (record, _) = self.decl_body(module, item)?;
        let ok = self.check_fields(&record, PACKAGE_FIELDS, "a package");
        let store_name = match record.get("name") {
            Some(sv) => self.expect_literal(sv, "a package's `name`")?,
            None => name.clone(),
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
            origin: self.origin(name_span),
        })
    }

    fn used_files_closure(&mut self) -> BTreeMap<crate::model::FileId, TextFile> {
        let mut files = BTreeMap::new();
        let mut done = BTreeSet::new();
        let mut first_slot: BTreeMap<String, u32> = BTreeMap::new();
        while let Some(&slot) = self.used_files.iter().find(|s| !done.contains(*s)) {
            done.insert(slot);
            let name = self.files[slot as usize].name.clone();
            if let Some(&other) = first_slot.get(&name) {
                let (a, b) = (
                    self.files[other as usize].name_span,
                    self.files[slot as usize].name_span,
                );
                self.error(
                    Diagnostic::new(format!("the site uses two different files named `{name}`"), b)
                        .related(a, "the other one")
                        .hint("file names are store names and must be unique among the files a site uses; rename one"),
                );
                continue;
            }
            first_slot.insert(name, slot);
            if let Ok(file) = self.text_file(slot) {
                files.insert(file.id.clone(), file);
            }
        }
        files
    }

    fn text_file(&mut self, slot: u32) -> EvalResult<TextFile> {
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
            let text = self.model_text(&pieces);
            if text.secrets().next().is_some() {
                return Err(self.error(
                    Diagnostic::new(format!("file `{name}` mentions a secret"), name_span)
                        .hint("files go into the store, which is world-readable; pass secrets to services instead"),
                ));
            }
            return Ok(TextFile {
                id: crate::model::FileId(name.clone()),
                name,
                text,
                executable,
                origin: self.origin(name_span),
            });
        }
        let (record, _) = self.decl_body(module, item)?;
        let ok = self.check_fields(&record, FILE_FIELDS, "a file");
        let store_name = match record.get("name") {
            Some(sv) => self.expect_literal(sv, "a file's `name`")?,
            None => name.clone(),
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
        let Some(text_sv) = record.get("text") else {
            return Err(self.error(
                Diagnostic::new(format!("file `{name}` has no `text`"), name_span)
                    .hint("add `text = \"…\"`"),
            ));
        };
        let pieces = self.expect_text(text_sv, "a file's `text`")?;
        let text = self.model_text(&pieces);
        if text.secrets().next().is_some() {
            return Err(self.error(
                Diagnostic::new(format!("file `{name}` mentions a secret"), text_sv.span)
                    .hint("files go into the store, which is world-readable; pass secrets to services instead"),
            ));
        }
        let executable = match record.get("executable") {
            Some(sv) => self.expect_bool(sv, "a file's `executable`")?,
            None => false,
        };
        if !ok {
            return Err(Reported);
        }
        Ok(TextFile {
            id: crate::model::FileId(name),
            name: store_name,
            text,
            executable,
            origin: self.origin(name_span),
        })
    }

    fn used_secrets(&mut self) -> BTreeMap<String, Secret> {
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

    fn check_requires(&mut self, classes: &BTreeMap<String, Class>, requires: &[RequireSite]) {
        for site in requires {
            match classes.get(&site.to.class) {
                None => {
                    let known = classes
                        .keys()
                        .map(|k| format!("`{k}`"))
                        .collect::<Vec<_>>()
                        .join(", ");
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
                            suggest(&site.to.class, classes.keys().map(String::as_str))
                                .unwrap_or_else(|| format!("the site's classes are: {known}")),
                        ),
                    );
                }
                Some(class) if !class.services.contains_key(&site.to.service) => {
                    let hint = suggest(&site.to.service, class.services.keys().map(String::as_str))
                        .unwrap_or_else(|| {
                            format!(
                                "class `{}` has: {}",
                                class.name,
                                class
                                    .services
                                    .keys()
                                    .map(|k| format!("`{k}`"))
                                    .collect::<Vec<_>>()
                                    .join(", ")
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

/// Nix's store name rules (DESIGN §4).
fn valid_store_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 211
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+-._?=".contains(c))
}
