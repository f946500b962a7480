//! The root file's inventory (hosts per class) and rollout policy.
use std::collections::{BTreeMap, HashMap};

use super::value::{Value, SV};
use super::Evaluator;
use crate::ast::Item;
use crate::diagnostics::{quoted_list, suggest, Diagnostic};
use crate::model::{Class, Inventory, OnFailure, Pause, RolloutOrder, RolloutPolicy};

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

impl Evaluator<'_> {
    pub(super) fn site_inventory(&mut self, classes: &mut BTreeMap<String, Class>) -> Inventory {
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
                    let known = quoted_list(classes.keys());
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

    pub(super) fn rollout(&mut self) -> RolloutPolicy {
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
        // `batch` promises at most that many hosts activating at once, and
        // the canary is a batch: a larger count cannot be honoured.
        if let (Some(v), crate::model::Amount::Count(batch)) = (record.get("canary"), policy.batch)
        {
            if policy.canary > batch {
                self.error(
                    Diagnostic::new(
                        format!("`canary` is {}, more than `batch` ({batch}): the canary is a batch and activates at most `batch` hosts at once", policy.canary),
                        v.span,
                    )
                    .hint(format!("use `canary = {batch}` or less, or a larger `batch`")),
                );
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

    /// `group_by` names a label; when there are hosts, at least one must have it.
    pub(super) fn check_group_label(&mut self, policy: &RolloutPolicy, inventory: &Inventory) {
        let Some(label) = &policy.group_by else {
            return;
        };
        if inventory.hosts.is_empty()
            || inventory.hosts.iter().any(|h| h.labels.contains_key(label))
        {
            return;
        }
        let known: std::collections::BTreeSet<&str> = inventory
            .hosts
            .iter()
            .flat_map(|h| h.labels.keys().map(String::as_str))
            .collect();
        // Re-evaluating the (pure) setting gives the span of the field.
        let span = match self.setting("rollout") {
            Some(Ok(SV {
                value: Value::Record(record),
                span,
            })) => record.get("group_by").map_or(span, |f| f.span),
            Some(Ok(sv)) => sv.span,
            _ => return,
        };
        let hint = suggest(label, known.iter().copied()).unwrap_or_else(|| {
            if known.is_empty() {
                "the inventory's hosts have no labels; add `labels = { … }` to them".to_string()
            } else {
                format!("labels in the inventory: {}", quoted_list(&known))
            }
        });
        self.error(
            Diagnostic::new(
                format!("`group_by = \"{label}\"`, but no host has the label `{label}`"),
                span,
            )
            .label("in this rollout policy")
            .hint(hint),
        );
    }
}
