//! External policy programs, run for real: the example program, and programs
//! that fail in every way an operator's script can, each refused before any
//! host would be touched. The example program needs `python3`.
use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use ferry_rollout::external::plan_document;
use ferry_rollout::{
    schedule, BatchKind, BatchSize, ExternalError, ExternalStrategy, PlannedHost, Policy,
    PolicyError, RolloutPlan, ServiceEdge, ServiceNode,
};

fn host(name: &str, class: &str, dc: &str, changes: bool) -> PlannedHost {
    PlannedHost {
        name: name.into(),
        class: class.into(),
        labels: BTreeMap::from([("datacenter".to_string(), dc.to_string())]),
        current_system: Some(format!(
            "/ferry/store/{class}-{}",
            if changes { "v1" } else { "v2" }
        )),
        current_generation: Some(3),
        target_system: format!("/ferry/store/{class}-v2"),
        unreachable: None,
        secrets_rotated: Vec::new(),
        repaired: Vec::new(),
    }
}

/// Eight hosts in two datacenters: eu1 is big (5 hosts), us1 small (3 hosts).
fn fleet() -> RolloutPlan {
    RolloutPlan {
        classes: vec!["web".into(), "db".into()],
        hosts: vec![
            host("db-eu1", "db", "eu1", true),
            host("db-us1", "db", "us1", true),
            host("web-eu1-1", "web", "eu1", true),
            host("web-eu1-2", "web", "eu1", true),
            host("web-eu1-3", "web", "eu1", true),
            host("web-eu1-4", "web", "eu1", false),
            host("web-us1-1", "web", "us1", true),
            host("web-us1-2", "web", "us1", true),
        ],
        requires: vec![ServiceEdge::new(
            ServiceNode::new("web", "app"),
            ServiceNode::new("db", "postgres"),
        )],
        policy: Policy {
            canary: Some(1),
            batch: BatchSize::Count(2),
            external: Some(vec!["unused: strategies are built by each test".into()]),
            ..Policy::default()
        },
    }
}

fn example_program() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples/external-policy/policy.py")
        .display()
        .to_string()
}

/// Writes an executable shell script into `dir` and returns its argv.
fn script(dir: &Path, name: &str, body: &str) -> Vec<String> {
    let path = dir.join(name);
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    vec![format!("./{name}")]
}

/// A script that reads the plan and prints `answer` as its batches.
fn answering(dir: &Path, answer: &str) -> ExternalStrategy {
    let argv = script(
        dir,
        "policy.sh",
        &format!("cat > plan.json\ncat <<'EOF'\n{answer}\nEOF"),
    );
    ExternalStrategy::new(argv).current_dir(dir)
}

fn error_text(error: PolicyError) -> String {
    error.to_string()
}

#[test]
fn example_program_rolls_out_smallest_datacenter_first() {
    let plan = fleet();
    let strategy = ExternalStrategy::new(vec![example_program()]);
    let schedule = schedule(&plan, &strategy).unwrap();
    let batches: Vec<(BatchKind, Option<String>, Vec<String>)> = schedule
        .batches()
        .map(|b| (b.kind, b.group.clone(), b.hosts.clone()))
        .collect();
    let s = |v: &[&str]| v.iter().map(|h| h.to_string()).collect::<Vec<_>>();
    let us1 = Some("us1".to_string());
    let eu1 = Some("eu1".to_string());
    assert_eq!(
        batches,
        [
            (BatchKind::Canary, us1.clone(), s(&["db-us1"])),
            (BatchKind::Normal, eu1.clone(), s(&["db-eu1"])),
            (BatchKind::Canary, us1.clone(), s(&["web-us1-1"])),
            (BatchKind::Normal, us1, s(&["web-us1-2"])),
            (
                BatchKind::Normal,
                eu1.clone(),
                s(&["web-eu1-1", "web-eu1-2"])
            ),
            (BatchKind::Normal, eu1, s(&["web-eu1-3"])),
        ]
    );
    assert_eq!(schedule.unchanged, ["web-eu1-4"]);
    assert!(schedule
        .to_string()
        .contains("why: chosen by external policy"));
}

#[test]
fn the_plan_on_stdin_follows_the_documented_schema() {
    let dir = tempfile::tempdir().unwrap();
    let strategy = answering(
        dir.path(),
        r#"{"version": 1, "batches": [{"hosts": ["db-eu1", "db-us1"]},
            {"hosts": ["web-eu1-1", "web-eu1-2", "web-eu1-3", "web-us1-1", "web-us1-2"]}]}"#,
    );
    schedule(&fleet(), &strategy).unwrap();
    let written: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("plan.json")).unwrap()).unwrap();
    assert_eq!(written, plan_document(&fleet()).unwrap());
    assert_eq!(written["version"], 1);
    assert_eq!(written["stages"], serde_json::json!([["db"], ["web"]]));
    assert_eq!(
        written["must_follow"],
        serde_json::json!({"db": [], "web": ["db"]})
    );
    assert_eq!(written["hosts"][5]["changes"], false);
    assert_eq!(written["hosts"][0]["labels"]["datacenter"], "eu1");
    assert_eq!(
        written["requires"][0]["from"],
        serde_json::json!({"class": "web", "service": "app"})
    );
    assert_eq!(written["policy"]["batch"], serde_json::json!({"count": 2}));
    assert_eq!(written["policy"]["canary"], 1);
    assert_eq!(written["policy"]["on_failure"], "stop");
}

#[test]
fn failing_program_is_refused_with_its_stderr() {
    let dir = tempfile::tempdir().unwrap();
    let argv = script(
        dir.path(),
        "cmdb.sh",
        "echo 'cmdb.example: connection refused' >&2\nexit 3",
    );
    let strategy = ExternalStrategy::new(argv).current_dir(dir.path());
    let error = schedule(&fleet(), &strategy).unwrap_err();
    assert!(matches!(
        error,
        PolicyError::External(ExternalError::Failed { .. })
    ));
    assert_eq!(
        error_text(error),
        "external policy `./cmdb.sh` failed (exit code 3); it said:\ncmdb.example: connection refused"
    );
}

#[test]
fn program_killed_by_a_signal_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let argv = script(dir.path(), "crash.sh", "kill -SEGV $$");
    let error = schedule(
        &fleet(),
        &ExternalStrategy::new(argv).current_dir(dir.path()),
    )
    .unwrap_err();
    assert_eq!(
        error_text(error),
        "external policy `./crash.sh` failed (signal 11)"
    );
}

#[test]
fn missing_program_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let strategy = ExternalStrategy::new(vec!["./no-such-policy".into()]).current_dir(dir.path());
    let error = schedule(&fleet(), &strategy).unwrap_err();
    let text = error_text(error);
    assert!(
        text.starts_with("could not start external policy `./no-such-policy`: No such file"),
        "{text}"
    );
}

#[test]
fn hanging_program_is_killed_with_what_it_started() {
    let dir = tempfile::tempdir().unwrap();
    // A child of the program keeps stdout open: the kill must reach it too,
    // or reading stdout would never end.
    let argv = script(dir.path(), "hang.sh", "sleep 600 &\nsleep 600");
    let strategy = ExternalStrategy::new(argv)
        .current_dir(dir.path())
        .timeout(Duration::from_millis(300));
    let error = schedule(&fleet(), &strategy).unwrap_err();
    assert_eq!(
        error_text(error),
        "external policy `./hang.sh` gave no answer within 0.3s and was killed"
    );
}

#[test]
fn a_program_that_ignores_its_input_may_still_answer() {
    let dir = tempfile::tempdir().unwrap();
    let argv = script(
        dir.path(),
        "fixed.sh",
        r#"echo '{"version": 1, "batches": [{"hosts": ["db-eu1", "db-us1"]}, {"hosts": ["web-eu1-1", "web-eu1-2", "web-eu1-3", "web-us1-1", "web-us1-2"]}]}'"#,
    );
    let schedule = schedule(
        &fleet(),
        &ExternalStrategy::new(argv).current_dir(dir.path()),
    )
    .unwrap();
    assert_eq!(schedule.hosts_to_change(), 7);
}

/// Every malformed answer and the exact message the operator gets.
#[test]
fn malformed_answers_are_refused() {
    let cases: &[(&str, &str)] = &[
        (
            "ready: db first, then web",
            "external policy `./policy.sh` printed an answer that is not valid: expected value at line 1 column 1\n  it printed: ready: db first, then web",
        ),
        (
            "",
            "external policy `./policy.sh` printed an answer that is not valid: EOF while parsing a value at line 2 column 0\n  it printed: (nothing)",
        ),
        (
            r#"{"version": 2, "batches": []}"#,
            "external policy `./policy.sh` answered schema version 2, ferry reads version 1",
        ),
        (
            r#"{"batches": []}"#,
            "external policy `./policy.sh` answered schema version none, ferry reads version 1",
        ),
        (
            r#"{"version": 1, "batches": [{"host": ["db-eu1"]}]}"#,
            "external policy `./policy.sh` printed an answer that is not valid: unknown field `host`, expected one of `hosts`, `canary`, `group`\n  it printed: {\"version\": 1, \"batches\": [{\"host\": [\"db-eu1\"]}]}",
        ),
        (
            r#"{"version": 1, "batches": [{"hosts": "db-eu1"}]}"#,
            "external policy `./policy.sh` printed an answer that is not valid: invalid type: string \"db-eu1\", expected a sequence\n  it printed: {\"version\": 1, \"batches\": [{\"hosts\": \"db-eu1\"}]}",
        ),
    ];
    for (answer, expected) in cases {
        let dir = tempfile::tempdir().unwrap();
        let error = schedule(&fleet(), &answering(dir.path(), answer)).unwrap_err();
        assert_eq!(&error_text(error), expected, "answer: {answer}");
    }
}

#[test]
fn answers_that_break_the_plan_are_refused_with_every_problem() {
    let dir = tempfile::tempdir().unwrap();
    let answer = r#"{"version": 1, "batches": [
        {"hosts": ["web-us1-1"], "canary": true},
        {"hosts": ["db-eu1", "db-us1", "db-us1"]},
        {"hosts": []},
        {"hosts": ["web-eu1-1", "web-eu1-4", "web-eu9-1"]}
    ]}"#;
    let error = schedule(&fleet(), &answering(dir.path(), answer)).unwrap_err();
    assert_eq!(
        error_text(error),
        "invalid rollout schedule from external policy `./policy.sh`:
  - `db-us1` is twice in batch 2
  - batch 3 has no hosts
  - batch 4 names `web-eu1-4`, which already runs its target system
  - batch 4 names `web-eu9-1`, which is not a host of this plan
  - `web-eu1-2` changes but is in no batch
  - `web-eu1-3` changes but is in no batch
  - `web-us1-2` changes but is in no batch
  - `web-us1-1` (web) is in batch 1, but `db-eu1` (db) is in batch 2: every db host must be done before any web host starts"
    );
}

#[test]
fn an_empty_answer_is_valid_only_when_nothing_changes() {
    let dir = tempfile::tempdir().unwrap();
    let empty = r#"{"version": 1, "batches": []}"#;
    let error = schedule(&fleet(), &answering(dir.path(), empty)).unwrap_err();
    assert!(error_text(error).contains("`db-eu1` changes but is in no batch"));

    let mut settled = fleet();
    for host in &mut settled.hosts {
        host.current_system = Some(host.target_system.clone());
    }
    let schedule = schedule(&settled, &answering(dir.path(), empty)).unwrap();
    assert!(schedule.stages.is_empty());
    assert_eq!(schedule.unchanged.len(), 8);
}

#[test]
fn an_endless_answer_is_refused_without_waiting_for_the_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let argv = script(dir.path(), "chatty.sh", "head -c 20000000 /dev/zero");
    // The timeout is far away: the program must be judged by its exit, not killed.
    let strategy = ExternalStrategy::new(argv)
        .current_dir(dir.path())
        .timeout(Duration::from_secs(600));
    let error = schedule(&fleet(), &strategy).unwrap_err();
    assert_eq!(
        error_text(error),
        "external policy `./chatty.sh` printed more than 16777216 bytes"
    );
}
