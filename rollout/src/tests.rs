//! Unit tests of the rollout engine: ordering, batching, failure accounting, rendering.
use std::collections::BTreeMap;
use std::time::Duration;

use super::*;

fn host(name: &str, class: &str, dc: Option<&str>, changes: bool) -> PlannedHost {
    let target = format!("/ferry/store/{class}-system-2");
    PlannedHost {
        name: name.into(),
        class: class.into(),
        labels: dc
            .map(|dc| ("datacenter".to_string(), dc.to_string()))
            .into_iter()
            .collect(),
        current_system: Some(if changes {
            format!("/ferry/store/{class}-system-1")
        } else {
            target.clone()
        }),
        current_generation: Some(1),
        target_system: target,
        unreachable: None,
        secrets_rotated: Vec::new(),
        repaired: Vec::new(),
    }
}

fn edge(from: &str, to: &str) -> ServiceEdge {
    let split = |s: &str| {
        let (class, service) = s.split_once('.').expect("test edges are class.service");
        ServiceNode::new(class, service)
    };
    ServiceEdge::new(split(from), split(to))
}

/// Two datacenters: one db per datacenter, three web hosts in eu1, two in us1.
fn two_tier(policy: Policy) -> RolloutPlan {
    RolloutPlan {
        classes: vec!["web".into(), "db".into()],
        hosts: vec![
            host("web-eu1-1", "web", Some("eu1"), true),
            host("web-eu1-2", "web", Some("eu1"), true),
            host("web-us1-1", "web", Some("us1"), true),
            host("db-eu1-1", "db", Some("eu1"), true),
            host("web-eu1-3", "web", Some("eu1"), true),
            host("db-us1-1", "db", Some("us1"), true),
            host("web-us1-2", "web", Some("us1"), false),
            host("web-us1-3", "web", Some("us1"), true),
        ],
        requires: vec![edge("web.app", "db.postgres")],
        policy,
    }
}

fn make(plan: &RolloutPlan) -> Result<RolloutSchedule, PolicyError> {
    schedule(plan, &BuiltinStrategy)
}

fn hosts_of(schedule: &RolloutSchedule) -> Vec<Vec<String>> {
    schedule.batches().map(|b| b.hosts.clone()).collect()
}

#[test]
fn percent_batch_rounds_up_and_is_at_least_one() {
    assert_eq!(BatchSize::Percent(30).limit(10), 3);
    assert_eq!(BatchSize::Percent(30).limit(11), 4);
    assert_eq!(BatchSize::Percent(30).limit(1), 1);
    assert_eq!(BatchSize::Percent(1).limit(3), 1);
    assert_eq!(BatchSize::Percent(100).limit(7), 7);
    assert_eq!(BatchSize::Percent(50).limit(0), 1);
    assert_eq!(BatchSize::Count(4).limit(2), 4);
}

#[test]
fn percent_failures_round_down() {
    assert_eq!(FailureLimit::Percent(10).tolerated(15), 1);
    assert_eq!(FailureLimit::Percent(10).tolerated(9), 0);
    assert_eq!(FailureLimit::Percent(50).tolerated(5), 2);
    assert_eq!(FailureLimit::Percent(100).tolerated(5), 5);
    assert_eq!(FailureLimit::Count(2).tolerated(1), 2);
}

#[test]
fn dependencies_put_db_before_web_and_say_why() {
    let plan = two_tier(Policy {
        batch: BatchSize::Count(2),
        ..Policy::default()
    });
    let schedule = make(&plan).unwrap();
    assert_eq!(schedule.stages.len(), 2);
    assert_eq!(schedule.stages[0].classes, ["db"]);
    assert_eq!(schedule.stages[0].reasons, [StageReason::Independent]);
    assert_eq!(schedule.stages[1].classes, ["web"]);
    assert_eq!(
        schedule.stages[1].reasons[0].to_string(),
        "web after db: web.app requires db.postgres"
    );
    assert_eq!(
        hosts_of(&schedule),
        [
            vec!["db-eu1-1", "db-us1-1"],
            vec!["web-eu1-1", "web-eu1-2"],
            vec!["web-us1-1", "web-eu1-3"],
            vec!["web-us1-3"],
        ]
    );
    assert_eq!(schedule.unchanged, ["web-us1-2"]);
}

#[test]
fn percent_batches_are_taken_of_each_group() {
    let plan = two_tier(Policy {
        batch: BatchSize::Percent(50),
        group_by: Some("datacenter".into()),
        ..Policy::default()
    });
    let schedule = make(&plan).unwrap();
    // web eu1 has 3 changing hosts → batches of 2; web us1 has 2 → batches of 1.
    assert_eq!(
        hosts_of(&schedule),
        [
            vec!["db-eu1-1"],
            vec!["db-us1-1"],
            vec!["web-eu1-1", "web-eu1-2"],
            vec!["web-eu1-3"],
            vec!["web-us1-1"],
            vec!["web-us1-3"],
        ]
    );
}

#[test]
fn canary_is_the_first_batch_of_each_stage_capped_by_batch() {
    let plan = two_tier(Policy {
        canary: Some(3),
        batch: BatchSize::Count(2),
        group_by: Some("datacenter".into()),
        ..Policy::default()
    });
    let schedule = make(&plan).unwrap();
    let kinds: Vec<(BatchKind, Vec<String>)> = schedule
        .batches()
        .map(|b| (b.kind, b.hosts.clone()))
        .collect();
    use BatchKind::{Canary, Normal};
    assert_eq!(
        kinds,
        [
            (Canary, vec!["db-eu1-1".to_string()]),
            (Normal, vec!["db-us1-1".to_string()]),
            (
                Canary,
                vec!["web-eu1-1".to_string(), "web-eu1-2".to_string()]
            ),
            (Normal, vec!["web-eu1-3".to_string()]),
            (
                Normal,
                vec!["web-us1-1".to_string(), "web-us1-3".to_string()]
            ),
        ]
    );
}

#[test]
fn group_order_overrides_sorted_groups_and_unlabelled_hosts_come_last() {
    let mut plan = two_tier(Policy {
        batch: BatchSize::Count(10),
        group_by: Some("datacenter".into()),
        group_order: vec!["us1".into()],
        order: Order::None,
        ..Policy::default()
    });
    plan.hosts.push(host("web-lab", "web", None, true));
    let schedule = make(&plan).unwrap();
    let groups: Vec<Option<String>> = schedule.batches().map(|b| b.group.clone()).collect();
    assert_eq!(groups, [Some("us1".into()), Some("eu1".into()), None]);
    assert_eq!(schedule.batches().last().unwrap().hosts, ["web-lab"]);
}

#[test]
fn class_level_cycle_over_acyclic_services_is_one_stage() {
    let mut plan = two_tier(Policy {
        batch: BatchSize::Count(10),
        ..Policy::default()
    });
    plan.requires.push(edge("db.backup", "web.static"));
    plan.classes.push("monitor".into());
    plan.hosts.push(host("mon-1", "monitor", None, true));
    plan.requires.push(edge("monitor.agent", "web.app"));
    let schedule = make(&plan).unwrap();
    assert_eq!(schedule.stages.len(), 2);
    assert_eq!(schedule.stages[0].classes, ["web", "db"]);
    assert_eq!(
        schedule.stages[0].reasons[0].to_string(),
        "web and db together: db.backup requires web.static, web.app requires db.postgres"
    );
    assert_eq!(schedule.stages[1].classes, ["monitor"]);
}

#[test]
fn service_cycle_is_refused_and_printed() {
    let mut plan = two_tier(Policy::default());
    plan.requires = vec![
        edge("web.app", "db.pg"),
        edge("db.pg", "web.static"),
        edge("web.static", "web.app"),
    ];
    let error = make(&plan).unwrap_err();
    assert_eq!(
        error.to_string(),
        "services require each other in a cycle: db.pg → web.static → web.app → db.pg"
    );
    // Refused whatever the order: such a site cannot start.
    plan.policy.order = Order::None;
    assert!(matches!(make(&plan), Err(PolicyError::ServiceCycle { .. })));
}

#[test]
fn a_service_requiring_itself_is_a_cycle() {
    let mut plan = two_tier(Policy::default());
    plan.requires = vec![edge("web.app", "web.app")];
    assert_eq!(
        make(&plan).unwrap_err().to_string(),
        "services require each other in a cycle: web.app → web.app"
    );
}

#[test]
fn declared_order_follows_the_site() {
    let plan = two_tier(Policy {
        order: Order::Declared,
        batch: BatchSize::Count(10),
        ..Policy::default()
    });
    // Declared order puts web first although web requires db: the operator asked.
    let schedule = make(&plan).unwrap();
    assert_eq!(schedule.stages[0].classes, ["web"]);
    assert_eq!(
        schedule.stages[1].reasons[0].to_string(),
        "db after web: declared order"
    );
}

#[test]
fn nothing_to_change_gives_no_stage() {
    let mut plan = two_tier(Policy::default());
    for h in &mut plan.hosts {
        h.current_system = Some(h.target_system.clone());
    }
    let schedule = make(&plan).unwrap();
    assert!(schedule.stages.is_empty());
    assert_eq!(schedule.unchanged.len(), plan.hosts.len());
}

#[test]
fn fresh_hosts_change() {
    let mut plan = two_tier(Policy::default());
    plan.hosts[0].current_system = None;
    plan.hosts[0].current_generation = None;
    assert!(plan.hosts[0].changes());
}

#[test]
fn bad_policies_are_refused_with_their_reason() {
    for (policy, message) in [
        (
            Policy {
                batch: BatchSize::Count(0),
                ..Policy::default()
            },
            "batch = 0 would never activate a host",
        ),
        (
            Policy {
                batch: BatchSize::Percent(0),
                ..Policy::default()
            },
            "batch = 0% would never activate a host",
        ),
        (
            Policy {
                batch: BatchSize::Percent(120),
                ..Policy::default()
            },
            "batch = 120% is more than 100%",
        ),
        (
            Policy {
                max_failures: FailureLimit::Percent(101),
                ..Policy::default()
            },
            "max_failures = 101% is more than 100%",
        ),
        (
            Policy {
                external: Some(vec![]),
                ..Policy::default()
            },
            "external policy names no program",
        ),
    ] {
        let error = make(&two_tier(policy)).unwrap_err();
        assert_eq!(
            error.to_string(),
            format!("invalid rollout policy: {message}")
        );
    }
}

#[test]
fn duplicate_host_names_are_refused() {
    let mut plan = two_tier(Policy::default());
    plan.hosts.push(host("db-us1-1", "db", None, true));
    assert_eq!(
        make(&plan).unwrap_err().to_string(),
        "host `db-us1-1` appears twice in the rollout plan"
    );
}

/// A strategy that answers whatever it was given, to test the checks every answer passes.
struct Fixed(Vec<Stage>);

impl RolloutStrategy for Fixed {
    fn name(&self) -> String {
        "a fixed answer".into()
    }
    fn batches(&self, _plan: &RolloutPlan) -> Result<Vec<Stage>, PolicyError> {
        Ok(self.0.clone())
    }
}

fn stage_of(batches: &[&[&str]]) -> Stage {
    Stage {
        classes: vec!["web".into(), "db".into()],
        reasons: vec![],
        batches: batches
            .iter()
            .map(|hosts| Batch {
                kind: BatchKind::Normal,
                group: None,
                hosts: hosts.iter().map(|h| h.to_string()).collect(),
            })
            .collect(),
    }
}

#[test]
fn every_broken_answer_is_refused_with_each_problem_named() {
    let plan = two_tier(Policy::default());
    let answer = Fixed(vec![
        stage_of(&[
            &["db-eu1-1", "web-eu1-1"],
            &["ghost", "web-us1-2"],
            &[],
            &["db-us1-1", "web-eu1-2", "web-eu1-1"],
        ]),
        stage_of(&[]),
    ]);
    let error = schedule(&plan, &answer).unwrap_err();
    insta::assert_snapshot!(error.to_string(), @r"
    invalid rollout schedule from a fixed answer:
      - batch 2 names `ghost`, which is not a host of this plan
      - batch 2 names `web-us1-2`, which already runs its target system
      - batch 3 has no hosts
      - `web-eu1-1` is in batch 1 and again in batch 4
      - stage 2 has no batches
      - `web-us1-1` changes but is in no batch
      - `web-eu1-3` changes but is in no batch
      - `web-us1-3` changes but is in no batch
      - `web-eu1-1` (web) is in batch 1, but `db-us1-1` (db) is in batch 4: every db host must be done before any web host starts
      - `web-eu1-2` (web) is in batch 4, but `db-us1-1` (db) is in batch 4: every db host must be done before any web host starts
    ");
}

#[test]
fn a_correct_foreign_answer_is_accepted() {
    let plan = two_tier(Policy::default());
    let answer = Fixed(vec![stage_of(&[
        &["db-us1-1"],
        &["db-eu1-1"],
        &[
            "web-us1-3",
            "web-us1-1",
            "web-eu1-3",
            "web-eu1-2",
            "web-eu1-1",
        ],
    ])]);
    let schedule = schedule(&plan, &answer).unwrap();
    assert_eq!(schedule.hosts_to_change(), 7);
}

#[test]
fn rendered_plan_shows_stages_batches_and_why() {
    let mut plan = two_tier(Policy {
        canary: Some(1),
        batch: BatchSize::Percent(50),
        group_by: Some("datacenter".into()),
        max_failures: FailureLimit::Count(1),
        on_failure: OnFailure::Rollback,
        pause: Pause::Duration(Duration::from_secs(30)),
        ..Policy::default()
    });
    plan.classes.push("monitor".into());
    plan.hosts.push(host("mon-1", "monitor", None, true));
    plan.requires.push(edge("monitor.agent", "web.app"));
    plan.requires.push(edge("monitor.agent", "db.postgres"));
    plan.requires.push(edge("db.backup", "db.postgres"));
    insta::assert_snapshot!(make(&plan).unwrap().to_string());
}

#[test]
fn rendered_plan_with_class_cycle_and_confirm() {
    let mut plan = two_tier(Policy {
        batch: BatchSize::Count(3),
        pause: Pause::Confirm,
        max_failures: FailureLimit::Percent(20),
        ..Policy::default()
    });
    plan.requires.push(edge("db.backup", "web.static"));
    insta::assert_snapshot!(make(&plan).unwrap().to_string());
}

// ---- failure accounting ----

fn progress(policy: Policy) -> (RolloutSchedule, RolloutProgress) {
    progress_of(&two_tier(policy))
}

fn progress_of(plan: &RolloutPlan) -> (RolloutSchedule, RolloutProgress) {
    let schedule = make(plan).unwrap();
    let progress = RolloutProgress::new(plan, &schedule);
    (schedule, progress)
}

/// Feeds the next batch with `failing` hosts failed (as `how`) and the rest succeeded.
fn feed(progress: &mut RolloutProgress, failing: &[&str], how: HostVerdict) -> Decision {
    let batch = progress.next_batch().expect("a batch is waiting").clone();
    let outcomes: BTreeMap<String, HostVerdict> = batch
        .hosts
        .iter()
        .map(|h| {
            (
                h.clone(),
                if failing.contains(&h.as_str()) {
                    how
                } else {
                    HostVerdict::Succeeded
                },
            )
        })
        .collect();
    progress.record(&outcomes).unwrap()
}

#[test]
fn all_succeeding_runs_to_the_end() {
    let (schedule, mut p) = progress(Policy {
        batch: BatchSize::Count(2),
        ..Policy::default()
    });
    let mut decisions = 0;
    while p.next_batch().is_some() {
        assert_eq!(
            feed(&mut p, &[], HostVerdict::Succeeded),
            Decision::Continue
        );
        decisions += 1;
    }
    assert_eq!(decisions, schedule.batches().count());
    assert_eq!(p.switched().len(), 7);
    assert!(p.failed().is_empty());
    assert_eq!(p.record(&BTreeMap::new()), Err(ProgressError::Finished));
}

#[test]
fn max_failures_count_tolerates_exactly_n() {
    let (_, mut p) = progress(Policy {
        batch: BatchSize::Count(1),
        max_failures: FailureLimit::Count(1),
        ..Policy::default()
    });
    for _db in 0..2 {
        assert_eq!(
            feed(&mut p, &[], HostVerdict::Succeeded),
            Decision::Continue
        );
    }
    assert_eq!(
        feed(&mut p, &["web-eu1-1"], HostVerdict::RolledBack),
        Decision::Continue
    );
    let decision = feed(&mut p, &["web-eu1-2"], HostVerdict::Failed);
    let Decision::Stop { reason } = decision else {
        panic!("expected stop, got {decision:?}")
    };
    assert_eq!(
        reason.to_string(),
        "2 host(s) failed (web-eu1-1, web-eu1-2), max_failures tolerates 1"
    );
    assert!(
        p.next_batch().is_none(),
        "no further host is touched after a stop"
    );
    assert_eq!(p.record(&BTreeMap::new()), Err(ProgressError::Finished));
}

#[test]
fn max_failures_percent_is_of_all_hosts_to_change() {
    // 7 hosts change; 30% tolerates 2.
    let (_, mut p) = progress(Policy {
        batch: BatchSize::Count(1),
        max_failures: FailureLimit::Percent(30),
        ..Policy::default()
    });
    assert_eq!(p.tolerated(), 2);
    feed(&mut p, &[], HostVerdict::Succeeded);
    feed(&mut p, &[], HostVerdict::Succeeded);
    assert_eq!(
        feed(&mut p, &["web-eu1-1"], HostVerdict::Failed),
        Decision::Continue
    );
    assert_eq!(
        feed(&mut p, &["web-eu1-2"], HostVerdict::Failed),
        Decision::Continue
    );
    assert!(matches!(
        feed(&mut p, &["web-us1-1"], HostVerdict::Failed),
        Decision::Stop { .. }
    ));
}

#[test]
fn a_failed_dependency_keeps_its_dependents_from_starting_within_max_failures() {
    let (_, mut p) = progress(Policy {
        batch: BatchSize::Count(1),
        max_failures: FailureLimit::Count(5),
        ..Policy::default()
    });
    // The other db host still goes: it requires nothing that failed.
    assert_eq!(
        feed(&mut p, &["db-eu1-1"], HostVerdict::Failed),
        Decision::Continue
    );
    let decision = feed(&mut p, &[], HostVerdict::Succeeded);
    assert_eq!(
        decision,
        Decision::Stop {
            reason: StopReason::DependencyFailed {
                class: "web".into(),
                requires: "db".into(),
                failed: vec!["db-eu1-1".into()],
            }
        }
    );
    assert_eq!(
        decision_text(&decision),
        "web requires db, and db host(s) db-eu1-1 failed: web is not activated past a failed dependency"
    );
    assert!(p.next_batch().is_none(), "no web host is touched");
}

#[test]
fn a_failed_dependency_with_rollback_rolls_back_and_with_continue_goes_on() {
    let (_, mut p) = progress(Policy {
        batch: BatchSize::Count(1),
        max_failures: FailureLimit::Count(5),
        on_failure: OnFailure::Rollback,
        ..Policy::default()
    });
    feed(&mut p, &[], HostVerdict::Succeeded);
    assert_eq!(
        feed(&mut p, &["db-us1-1"], HostVerdict::RolledBack),
        Decision::RollbackAll {
            hosts: vec!["db-eu1-1".into()],
            reason: StopReason::DependencyFailed {
                class: "web".into(),
                requires: "db".into(),
                failed: vec!["db-us1-1".into()],
            }
        }
    );

    let (schedule, mut p) = progress(Policy {
        batch: BatchSize::Count(1),
        on_failure: OnFailure::Continue,
        ..Policy::default()
    });
    assert_eq!(
        feed(&mut p, &["db-eu1-1"], HostVerdict::Failed),
        Decision::Continue
    );
    while p.next_batch().is_some() {
        assert_eq!(
            feed(&mut p, &[], HostVerdict::Succeeded),
            Decision::Continue
        );
    }
    assert_eq!(p.switched().len(), schedule.hosts_to_change() - 1);
}

#[test]
fn a_requirement_inside_one_class_never_blocks_the_class() {
    let mut plan = two_tier(Policy {
        batch: BatchSize::Count(1),
        max_failures: FailureLimit::Count(5),
        ..Policy::default()
    });
    plan.requires.push(edge("web.app", "web.cache"));
    let (_, mut p) = progress_of(&plan);
    feed(&mut p, &[], HostVerdict::Succeeded);
    feed(&mut p, &[], HostVerdict::Succeeded);
    assert_eq!(
        feed(&mut p, &["web-eu1-1"], HostVerdict::Failed),
        Decision::Continue
    );
    assert_eq!(
        feed(&mut p, &[], HostVerdict::Succeeded),
        Decision::Continue
    );
}

#[test]
fn an_unreachable_host_changes_goes_last_in_its_group_and_is_never_the_canary() {
    let mut plan = two_tier(Policy {
        canary: Some(1),
        batch: BatchSize::Count(2),
        ..Policy::default()
    });
    for host in &mut plan.hosts {
        if host.name == "db-eu1-1" || host.name == "web-us1-2" {
            host.unreachable = Some("ssh: connection refused".into());
        }
    }
    // web-us1-2 runs its target as far as the record knows, but could not
    // be asked: it is scheduled.
    assert!(plan.host("web-us1-2").unwrap().changes());
    let schedule = make(&plan).unwrap();
    assert_eq!(
        hosts_of(&schedule),
        [
            vec!["db-us1-1"],
            vec!["db-eu1-1"],
            vec!["web-eu1-1"],
            vec!["web-eu1-2", "web-us1-1"],
            vec!["web-eu1-3", "web-us1-3"],
            vec!["web-us1-2"],
        ]
    );
    assert!(schedule.unchanged.is_empty());
}

#[test]
fn on_failure_rollback_rolls_back_every_host_switched_in_this_run() {
    let (_, mut p) = progress(Policy {
        batch: BatchSize::Count(2),
        on_failure: OnFailure::Rollback,
        ..Policy::default()
    });
    assert_eq!(
        feed(&mut p, &[], HostVerdict::Succeeded),
        Decision::Continue
    ); // db, db
    let decision = feed(&mut p, &["web-eu1-2"], HostVerdict::RolledBack); // web-eu1-1 ok
    assert_eq!(
        decision,
        Decision::RollbackAll {
            hosts: vec!["db-eu1-1".into(), "db-us1-1".into(), "web-eu1-1".into()],
            reason: StopReason::TooManyFailures {
                failed: vec!["web-eu1-2".into()],
                tolerated: 0
            },
        }
    );
    assert!(p.next_batch().is_none());
}

#[test]
fn on_failure_continue_goes_on_and_reports_failures() {
    let (_, mut p) = progress(Policy {
        canary: Some(1),
        batch: BatchSize::Count(2),
        on_failure: OnFailure::Continue,
        ..Policy::default()
    });
    // Even a failing canary does not stop a run that asked to continue.
    assert_eq!(
        feed(&mut p, &["db-eu1-1"], HostVerdict::RolledBack),
        Decision::Continue
    );
    while p.next_batch().is_some() {
        assert_eq!(
            feed(&mut p, &["web-eu1-3"], HostVerdict::Failed),
            Decision::Continue
        );
    }
    assert_eq!(p.failed(), ["db-eu1-1", "web-eu1-3"]);
    assert_eq!(p.switched().len(), 5);
}

#[test]
fn failing_canary_stops_even_within_max_failures() {
    let (_, mut p) = progress(Policy {
        canary: Some(1),
        batch: BatchSize::Count(2),
        max_failures: FailureLimit::Count(5),
        ..Policy::default()
    });
    assert_eq!(
        feed(&mut p, &[], HostVerdict::Succeeded),
        Decision::Continue
    ); // db canary
    assert_eq!(
        feed(&mut p, &[], HostVerdict::Succeeded),
        Decision::Continue
    ); // db rest
    let decision = feed(&mut p, &["web-eu1-1"], HostVerdict::RolledBack); // web canary
    assert_eq!(
        decision,
        Decision::Stop {
            reason: StopReason::CanaryFailed {
                hosts: vec!["web-eu1-1".into()]
            }
        }
    );
    assert_eq!(decision_text(&decision), "canary failed on web-eu1-1");
    assert!(p.next_batch().is_none(), "no further host is touched");
    assert_eq!(p.stopped(), Some(&decision));
}

#[test]
fn failing_canary_with_rollback_rolls_back_earlier_stages() {
    let (_, mut p) = progress(Policy {
        canary: Some(1),
        batch: BatchSize::Count(5),
        on_failure: OnFailure::Rollback,
        max_failures: FailureLimit::Count(3),
        ..Policy::default()
    });
    feed(&mut p, &[], HostVerdict::Succeeded);
    feed(&mut p, &[], HostVerdict::Succeeded);
    let decision = feed(&mut p, &["web-eu1-1"], HostVerdict::RolledBack);
    assert!(matches!(
        decision,
        Decision::RollbackAll { ref hosts, reason: StopReason::CanaryFailed { .. } }
            if hosts == &["db-eu1-1", "db-us1-1"]
    ));
}

fn decision_text(decision: &Decision) -> String {
    match decision {
        Decision::Stop { reason } | Decision::RollbackAll { reason, .. } => reason.to_string(),
        Decision::Continue => "continue".into(),
    }
}

#[test]
fn outcomes_must_match_the_batch() {
    let (_, mut p) = progress(Policy {
        batch: BatchSize::Count(2),
        ..Policy::default()
    });
    let outcomes: BTreeMap<String, HostVerdict> = [
        ("db-eu1-1".to_string(), HostVerdict::Succeeded),
        ("web-eu1-1".to_string(), HostVerdict::Succeeded),
    ]
    .into();
    assert_eq!(
        p.record(&outcomes),
        Err(ProgressError::Mismatch {
            missing: vec!["db-us1-1".into()],
            unexpected: vec!["web-eu1-1".into()]
        })
    );
    // Nothing was recorded: the same batch is still next.
    assert_eq!(p.next_batch().unwrap().hosts, ["db-eu1-1", "db-us1-1"]);
}

#[test]
fn schedule_round_trips_through_json() {
    let schedule = make(&two_tier(Policy {
        canary: Some(1),
        group_by: Some("datacenter".into()),
        pause: Pause::Duration(Duration::from_millis(1500)),
        ..Policy::default()
    }))
    .unwrap();
    let text = serde_json::to_string(&schedule).unwrap();
    assert!(text.contains(r#""pause":{"duration":1.5}"#), "{text}");
    let back: RolloutSchedule = serde_json::from_str(&text).unwrap();
    assert_eq!(back, schedule);
}

#[test]
fn schedule_json_for_tools() {
    let mut plan = two_tier(Policy {
        canary: Some(1),
        batch: BatchSize::Count(3),
        group_by: Some("datacenter".into()),
        pause: Pause::Confirm,
        ..Policy::default()
    });
    plan.hosts.truncate(4);
    insta::assert_json_snapshot!(make(&plan).unwrap());
}
