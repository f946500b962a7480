//! External policy programs: the plan as JSON on stdin, batches as JSON on stdout.
//!
//! The schema (version 1) is documented in `rollout/EXTERNAL-POLICY.md`.
//! This is the only module of the rollout engine that does I/O. The answer is
//! parsed strictly here (unknown fields and other versions are refused) and
//! then checked like any strategy's by [`crate::schedule`].
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use miette::Diagnostic;
use serde::Deserialize;
use serde_json::{json, Value};
use thiserror::Error;

use crate::order::ClassOrder;
use crate::plan::{BatchSize, FailureLimit, Pause, RolloutPlan};
use crate::schedule::{Batch, BatchKind, Stage, StageReason};
use crate::{PolicyError, RolloutStrategy};

/// The schema version of both the plan ferry writes and the answer it reads.
pub const SCHEMA_VERSION: u64 = 1;

/// How long a policy program may take by default. Ordering a few thousand
/// hosts is milliseconds of work; a program still silent after this is stuck.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// Answers bigger than this are refused instead of read into memory.
const MAX_ANSWER_BYTES: u64 = 16 << 20;

/// A rollout strategy that asks an external program.
#[derive(Debug, Clone)]
pub struct ExternalStrategy {
    argv: Vec<String>,
    current_dir: Option<PathBuf>,
    timeout: Duration,
}

impl ExternalStrategy {
    /// `argv[0]` is the program, the rest its arguments.
    pub fn new(argv: Vec<String>) -> Self {
        ExternalStrategy {
            argv,
            current_dir: None,
            timeout: DEFAULT_TIMEOUT,
        }
    }

    /// Runs the program in `dir` (the site directory).
    pub fn current_dir(mut self, dir: &Path) -> Self {
        self.current_dir = Some(dir.to_owned());
        self
    }

    /// Gives up on the program after `timeout`, killing it.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    fn program(&self) -> String {
        self.argv.join(" ")
    }

    /// Runs the program with `input` on stdin and returns its stdout.
    fn run(&self, input: Vec<u8>) -> Result<Vec<u8>, ExternalError> {
        let program = self.program();
        let Some((exe, args)) = self.argv.split_first() else {
            return Err(ExternalError::Spawn {
                program,
                source: std::io::Error::new(std::io::ErrorKind::InvalidInput, "empty argv"),
            });
        };
        let mut command = Command::new(exe);
        command
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // Its own process group, so a timeout kills whatever it started too.
            .process_group(0);
        if let Some(dir) = &self.current_dir {
            command.current_dir(dir);
        }
        let mut child = command.spawn().map_err(|source| ExternalError::Spawn {
            program: program.clone(),
            source,
        })?;

        // Write and read on threads: a program may print before reading all of
        // its input, and pipes are small.
        let stdin = child.stdin.take();
        let writer = thread::spawn(move || -> std::io::Result<()> {
            if let Some(mut stdin) = stdin {
                match stdin.write_all(&input) {
                    // A program may decide without reading the whole plan.
                    Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
                    other => other?,
                }
            }
            Ok(())
        });
        let stdout = child.stdout.take();
        let reader = thread::spawn(move || read_capped(stdout, MAX_ANSWER_BYTES + 1));
        let stderr = child.stderr.take();
        let err_reader = thread::spawn(move || read_capped(stderr, 64 << 10));

        let deadline = Instant::now() + self.timeout;
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break Ok(status),
                Ok(None) if Instant::now() >= deadline => break Err(()),
                Ok(None) => thread::sleep(Duration::from_millis(5)),
                Err(source) => return Err(ExternalError::Io { program, source }),
            }
        };
        let status: ExitStatus = match status {
            Ok(status) => status,
            Err(()) => {
                let group = nix::unistd::Pid::from_raw(child.id() as i32);
                let _ = nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGKILL);
                let _ = child.wait();
                return Err(ExternalError::Timeout {
                    program,
                    after: self.timeout,
                });
            }
        };
        // The program has exited; make sure nothing it left behind holds the pipes.
        let group = nix::unistd::Pid::from_raw(child.id() as i32);
        let _ = nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGKILL);
        let stdout = join(reader).map_err(|source| ExternalError::Io {
            program: program.clone(),
            source,
        })?;
        let stderr = join(err_reader).unwrap_or_default();
        if let Err(source) = join(writer) {
            return Err(ExternalError::Io { program, source });
        }
        if !status.success() {
            return Err(ExternalError::Failed {
                program,
                status: describe(status),
                stderr: String::from_utf8_lossy(&stderr).trim_end().to_owned(),
            });
        }
        if stdout.len() as u64 > MAX_ANSWER_BYTES {
            return Err(ExternalError::TooBig {
                program,
                limit: MAX_ANSWER_BYTES,
            });
        }
        Ok(stdout)
    }
}

impl RolloutStrategy for ExternalStrategy {
    fn name(&self) -> String {
        format!("external policy `{}`", self.program())
    }

    fn batches(&self, plan: &RolloutPlan) -> Result<Vec<Stage>, PolicyError> {
        let order = ClassOrder::of(plan)?;
        let input = plan_json(plan, &order);
        // Serializing a `serde_json::Value` cannot fail.
        let bytes = serde_json::to_vec_pretty(&input).unwrap_or_default();
        let answer = self.run(bytes)?;
        let batches = parse_answer(&self.program(), &answer)?;
        if batches.is_empty() {
            return Ok(Vec::new());
        }
        let mut classes: Vec<String> = Vec::new();
        for stage in &order.stages {
            for class in &stage.classes {
                let used = batches
                    .iter()
                    .flat_map(|b| &b.hosts)
                    .any(|h| plan.host(h).is_some_and(|host| &host.class == class));
                if used {
                    classes.push(class.clone());
                }
            }
        }
        Ok(vec![Stage {
            classes,
            reasons: vec![StageReason::External {
                program: self.program(),
            }],
            batches,
        }])
    }
}

/// The answer's schema (version 1). Unknown fields are refused so that a typo
/// (`host` for `hosts`) is an error rather than a silently empty batch.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AnswerV1 {
    #[allow(dead_code)] // checked before this struct is parsed
    version: u64,
    batches: Vec<AnswerBatch>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AnswerBatch {
    hosts: Vec<String>,
    #[serde(default)]
    canary: bool,
    #[serde(default)]
    group: Option<String>,
}

fn parse_answer(program: &str, answer: &[u8]) -> Result<Vec<Batch>, ExternalError> {
    let not_json = |error: serde_json::Error| ExternalError::BadAnswer {
        program: program.to_owned(),
        error: error.to_string(),
        excerpt: excerpt(answer),
    };
    let value: Value = serde_json::from_slice(answer).map_err(not_json)?;
    match value.get("version").and_then(Value::as_u64) {
        Some(SCHEMA_VERSION) => {}
        found => {
            return Err(ExternalError::Version {
                program: program.to_owned(),
                found: found.map_or_else(
                    || value.get("version").map_or("none".into(), Value::to_string),
                    |v| v.to_string(),
                ),
            })
        }
    }
    let parsed: AnswerV1 = serde_json::from_value(value).map_err(not_json)?;
    Ok(parsed
        .batches
        .into_iter()
        .map(|b| Batch {
            kind: if b.canary {
                BatchKind::Canary
            } else {
                BatchKind::Normal
            },
            group: b.group,
            hosts: b.hosts,
        })
        .collect())
}

/// The plan as an external policy program reads it on stdin (schema version 1).
pub fn plan_document(plan: &RolloutPlan) -> Result<Value, PolicyError> {
    Ok(plan_json(plan, &ClassOrder::of(plan)?))
}

fn plan_json(plan: &RolloutPlan, order: &ClassOrder) -> Value {
    let policy = &plan.policy;
    let hosts: Vec<Value> = plan
        .hosts
        .iter()
        .map(|h| {
            let mut host = json!({
                "name": h.name,
                "class": h.class,
                "labels": h.labels,
                "current_system": h.current_system,
                "current_generation": h.current_generation,
                "target_system": h.target_system,
                "changes": h.changes(),
            });
            if let Some(reason) = &h.unreachable {
                host["unreachable"] = json!(reason);
            }
            if !h.secrets_rotated.is_empty() {
                host["secrets_rotated"] = json!(h.secrets_rotated);
            }
            if !h.repaired.is_empty() {
                host["repaired"] = json!(h.repaired);
            }
            host
        })
        .collect();
    let requires: Vec<Value> = plan
        .requires
        .iter()
        .map(|e| {
            json!({
                "from": {"class": e.from.class, "service": e.from.service},
                "to": {"class": e.to.class, "service": e.to.service},
            })
        })
        .collect();
    let mut must_follow: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    let all: Vec<&String> = order.stages.iter().flat_map(|s| &s.classes).collect();
    for later in &all {
        let earlier: Vec<&str> = all
            .iter()
            .filter(|earlier| order.must_precede(later, earlier))
            .map(|c| c.as_str())
            .collect();
        must_follow.insert(later.as_str(), earlier);
    }
    let stages: Vec<&Vec<String>> = order.stages.iter().map(|s| &s.classes).collect();
    json!({
        "version": SCHEMA_VERSION,
        "classes": plan.classes,
        "hosts": hosts,
        "requires": requires,
        "stages": stages,
        "must_follow": must_follow,
        "policy": {
            "order": policy.order.to_string(),
            "canary": policy.canary_size(),
            "batch": match policy.batch {
                BatchSize::Count(n) => json!({"count": n}),
                BatchSize::Percent(p) => json!({"percent": p}),
            },
            "group_by": policy.group_by,
            "group_order": policy.group_order,
            "max_failures": match policy.max_failures {
                FailureLimit::Count(n) => json!({"count": n}),
                FailureLimit::Percent(p) => json!({"percent": p}),
            },
            "on_failure": policy.on_failure.to_string(),
            "pause": match policy.pause {
                Pause::None => Value::Null,
                Pause::Duration(d) => json!({"seconds": d.as_secs_f64()}),
                Pause::Confirm => json!("confirm"),
            },
        },
    })
}

/// Reads up to `limit` bytes, then drains the rest so that the program is
/// never blocked on a full pipe (it is judged by its exit, not stuck until the timeout).
fn read_capped(pipe: Option<impl Read>, limit: u64) -> std::io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    if let Some(mut pipe) = pipe {
        (&mut pipe).take(limit).read_to_end(&mut bytes)?;
        std::io::copy(&mut pipe, &mut std::io::sink())?;
    }
    Ok(bytes)
}

fn join<T>(handle: thread::JoinHandle<std::io::Result<T>>) -> std::io::Result<T> {
    handle
        .join()
        .unwrap_or_else(|_| Err(std::io::Error::other("pipe thread panicked")))
}

fn describe(status: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit code {code}"),
        (None, Some(signal)) => format!("signal {signal}"),
        _ => status.to_string(),
    }
}

fn excerpt(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return "(nothing)".into();
    }
    let mut cut: String = trimmed.chars().take(200).collect();
    if cut.len() < trimmed.len() {
        cut.push('…');
    }
    cut
}

/// Why an external policy program gave no usable answer.
#[derive(Debug, Error, Diagnostic)]
pub enum ExternalError {
    /// The program could not be started.
    #[error("could not start external policy `{program}`: {source}")]
    #[diagnostic(help(
        "check the program path (relative to the site directory) and that it is executable"
    ))]
    Spawn {
        /// The program's command line.
        program: String,
        /// Why the spawn failed.
        source: std::io::Error,
    },

    /// Talking to the program over its pipes failed.
    #[error("external policy `{program}`: {source}")]
    Io {
        /// The program's command line.
        program: String,
        /// The pipe or wait error.
        source: std::io::Error,
    },

    /// The program did not exit in time and was killed with its process group.
    #[error("external policy `{program}` gave no answer within {}s and was killed", after.as_secs_f64())]
    #[diagnostic(help("a policy program must print its batches and exit; no host was touched"))]
    Timeout {
        /// The program's command line.
        program: String,
        /// The time limit it ran into.
        after: Duration,
    },

    /// The program exited unsuccessfully.
    #[error("external policy `{program}` failed ({status}){}", stderr_text(.stderr))]
    #[diagnostic(help("no host was touched; what the program said on stderr is shown above"))]
    Failed {
        /// The program's command line.
        program: String,
        /// How it exited: `exit code 3`, `signal 9`.
        status: String,
        /// What it printed on stderr (at most 64 KiB), trailing whitespace trimmed.
        stderr: String,
    },

    /// The program printed more than an answer may hold.
    #[error("external policy `{program}` printed more than {limit} bytes")]
    #[diagnostic(help("an answer names each host once; no host was touched"))]
    TooBig {
        /// The program's command line.
        program: String,
        /// The most bytes an answer may have.
        limit: u64,
    },

    /// The answer is not JSON of the answer schema.
    #[error("external policy `{program}` printed an answer that is not valid: {error}\n  it printed: {excerpt}")]
    #[diagnostic(help(
        "expected {{\"version\": 1, \"batches\": [{{\"hosts\": [...], \"canary\": false}}]}}; see rollout/EXTERNAL-POLICY.md"
    ))]
    BadAnswer {
        /// The program's command line.
        program: String,
        /// The JSON parser's complaint.
        error: String,
        /// What it printed, cut after 200 characters, or `(nothing)`.
        excerpt: String,
    },

    /// The answer has a schema version ferry does not read.
    #[error("external policy `{program}` answered schema version {found}, ferry reads version 1")]
    #[diagnostic(help("print \"version\": 1 in the answer"))]
    Version {
        /// The program's command line.
        program: String,
        /// The version it answered, or `none`.
        found: String,
    },
}

fn stderr_text(stderr: &str) -> String {
    if stderr.is_empty() {
        String::new()
    } else {
        format!("; it said:\n{stderr}")
    }
}
