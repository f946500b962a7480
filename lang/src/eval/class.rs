//! Class assembly: follows includes and converts service records into model services.
use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;

use super::site::RequireSite;
use super::value::{ClassValue, Record, Value, SV};
use super::{EvalResult, Evaluator, Reported};
use crate::ast::{ClassItem, Ident};
use crate::diagnostics::{suggest, Diagnostic};
use crate::model::{Class, HealthCheck, PackageId, Probe, Service, ServiceKind, ServiceRef, Text};
use crate::span::Span;

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
const CLASS_SETTINGS: &[&str] = &["packages"];
const HEALTH_DEFAULT_TIMEOUT_MS: u64 = 5_000;
const HEALTH_DEFAULT_RETRIES: u32 = 3;
const HEALTH_DEFAULT_INTERVAL_MS: u64 = 1_000;

/// A class after includes were followed, before conversion.
#[derive(Default)]
pub(super) struct FlatClass {
    pub includes: Vec<String>,
    pub services: Vec<(Ident, SV)>,
    pub packages: Vec<SV>,
    pub visited: Vec<*const crate::ast::ClassBody>,
}

impl Evaluator<'_> {
    pub(super) fn flatten(&mut self, class: &Rc<ClassValue>, flat: &mut FlatClass) {
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

    pub(super) fn convert_class(
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

    /// Converts one service record of class `class_name` into a model
    /// service, noting its `requires` in `requires`. Reports every problem
    /// of every field before giving up.
    pub(super) fn convert_service(
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
        let fields_ok = self.check_fields(&record, SERVICE_FIELDS, "a service");
        let what = |field: &str| format!("`{field}` of service `{}`", name.name);
        let exec = self.service_exec(&record, name, &what("exec"));
        let env = record
            .get("env")
            .map_or(Ok(BTreeMap::new()), |env| self.env_map(env, &what("env")));
        let user = record
            .get("user")
            .map(|user| self.expect_literal(user, &what("user")))
            .transpose();
        let state_dirs = record.get("state_dirs").map_or(Ok(Vec::new()), |dirs| {
            self.state_dirs(dirs, &what("state_dirs"))
        });
        let health = record
            .get("health")
            .map_or(Ok(Vec::new()), |checks| self.health_checks(checks));
        let pre_upgrade = self.field_text(&record, "pre_upgrade", &what("pre_upgrade"));
        let post_upgrade = self.field_text(&record, "post_upgrade", &what("post_upgrade"));
        let from = ServiceRef {
            class: class_name.to_string(),
            service: name.name.clone(),
        };
        let required = record.get("requires").map_or(Ok(Vec::new()), |list| {
            self.service_requires(&from, list, requires)
        });
        let secrets = record
            .get("secrets")
            .map_or(Ok(Vec::new()), |list| self.service_secrets(list));
        let kind = record
            .get("oneshot")
            .map_or(Ok(false), |b| self.expect_bool(b, &what("oneshot")))
            .map(|oneshot| {
                if oneshot {
                    ServiceKind::Oneshot
                } else {
                    ServiceKind::LongRunning
                }
            });
        // Every field was converted (and each problem reported) above; now
        // one failure fails the service.
        if !fields_ok {
            return Err(Reported);
        }
        let (exec, env, pre_upgrade, post_upgrade) = (exec?, env?, pre_upgrade?, post_upgrade?);
        let mut secrets = secrets?;
        let texts = std::iter::once(&exec)
            .chain(env.values())
            .chain(pre_upgrade.iter())
            .chain(post_upgrade.iter());
        add_mentioned_secrets(&mut secrets, texts);
        Ok(Service {
            name: name.name.clone(),
            kind: kind?,
            exec,
            env,
            user: user?,
            state_dirs: state_dirs?,
            health: health?,
            pre_upgrade,
            post_upgrade,
            requires: required?,
            secrets,
            origin: self.origin(name.span),
        })
    }

    /// A service's `exec`, which every service must have.
    fn service_exec(&mut self, record: &Record, name: &Ident, what: &str) -> EvalResult<Text> {
        match record.get("exec") {
            Some(exec) => {
                let pieces = self.expect_text(exec, what)?;
                Ok(self.model_text(&pieces))
            }
            None => Err(self.error(
                Diagnostic::new(format!("service `{}` has no `exec`", name.name), name.span).hint(
                    "every service needs the command it runs: `exec = \"${pkg}/bin/server\"`",
                ),
            )),
        }
    }

    /// A service's `state_dirs`: relative paths that stay inside its state
    /// directory. Reports every bad entry.
    fn state_dirs(&mut self, dirs: &SV, what: &str) -> EvalResult<Vec<String>> {
        let list = self.expect_list(dirs, what)?;
        let mut state_dirs = Vec::new();
        let mut failed = false;
        for dir in list.iter() {
            match self.expect_literal(dir, "a state directory") {
                Ok(d)
                    if d.is_empty()
                        || d.starts_with('/')
                        || d.split('/').any(|c| c == ".." || c == ".") =>
                {
                    failed = true;
                    self.error(
                        Diagnostic::new(format!("state directory `{d}` must be a relative path inside the service's state directory"), dir.span)
                            .hint("write a name like `\"data\"`; it is created under the service's state directory"),
                    );
                }
                Ok(d) => state_dirs.push(d),
                Err(_) => failed = true,
            }
        }
        if failed {
            return Err(Reported);
        }
        Ok(state_dirs)
    }

    /// A service's `health`: one check or a list of them. Reports every bad one.
    fn health_checks(&mut self, checks: &SV) -> EvalResult<Vec<HealthCheck>> {
        let mut health = Vec::new();
        let mut failed = false;
        for check in self.one_or_many(checks).iter() {
            match self.health_check(check) {
                Ok(h) => health.push(h),
                Err(_) => failed = true,
            }
        }
        if failed {
            return Err(Reported);
        }
        Ok(health)
    }

    /// A service's `requires` (one service or a list), without repeats; each
    /// entry is also noted in `requires` with its span for later checks.
    fn service_requires(
        &mut self,
        from: &ServiceRef,
        list: &SV,
        requires: &mut Vec<RequireSite>,
    ) -> EvalResult<Vec<ServiceRef>> {
        let mut required = Vec::new();
        let mut failed = false;
        for item in self.one_or_many(list).iter() {
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
                    failed = true;
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
                    failed = true;
                    self.type_error(
                        item,
                        "an element of `requires`",
                        "a service such as `db.postgres` or `self.app`",
                    );
                }
            }
        }
        if failed {
            return Err(Reported);
        }
        Ok(required)
    }

    /// The names of the secrets a service's `secrets` lists (one or a list).
    fn service_secrets(&mut self, list: &SV) -> EvalResult<Vec<String>> {
        let mut secrets: Vec<String> = Vec::new();
        let mut failed = false;
        for item in self.one_or_many(list).iter() {
            match item.value {
                Value::Secret(slot) => {
                    self.used_secrets.insert(slot);
                    secrets.push(self.secrets[slot as usize].name.clone());
                }
                _ => {
                    failed = true;
                    self.type_error(
                        item,
                        "an element of `secrets`",
                        "a secret declared with `secret name { … }`",
                    );
                }
            }
        }
        if failed {
            return Err(Reported);
        }
        Ok(secrets)
    }

    pub(super) fn health_check(&mut self, sv: &SV) -> EvalResult<HealthCheck> {
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
                let starts_ok = match pieces.first() {
                    Some(super::value::Piece::Lit(text)) => {
                        text.starts_with("http://") || text.starts_with("https://")
                    }
                    _ => false,
                };
                if !starts_ok {
                    return Err(self.error(
                        Diagnostic::new(
                            "a health check URL must start with `http://` or `https://`",
                            url.span,
                        )
                        .hint("write the full URL, e.g. `http(\"http://127.0.0.1:8080/health\")`"),
                    ));
                }
                let ca = match fields.get("ca") {
                    Some(ca) => {
                        let is_https = matches!(
                            pieces.first(),
                            Some(super::value::Piece::Lit(text)) if text.starts_with("https://")
                        );
                        if !is_https {
                            return Err(self.error(
                                Diagnostic::new("`ca` only applies to an `https://` URL", ca.span)
                                    .hint("drop `ca`, or check the service over `https://`"),
                            ));
                        }
                        let ca = self.expect_text(ca, "the `ca` of `http`")?;
                        Some(self.model_text(&ca))
                    }
                    None => None,
                };
                Probe::Http {
                    url: self.model_text(&pieces),
                    ca,
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
}

/// Adds to `secrets` each secret the texts mention that it does not list yet.
fn add_mentioned_secrets<'t>(secrets: &mut Vec<String>, texts: impl Iterator<Item = &'t Text>) {
    for text in texts {
        for secret in text.secrets() {
            if !secrets.iter().any(|s| s == secret) {
                secrets.push(secret.to_string());
            }
        }
    }
}
