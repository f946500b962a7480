//! Runs one builder script in isolation: fresh directory, cleared environment,
//! no network when possible, a time limit, output captured to a log.
//!
//! The builder sees exactly: `PATH` made of its inputs' `bin/` directories and
//! then the fallback tool directory ([`FALLBACK_TOOLS`]), `out` (where it must
//! create its result), `src` (when the recipe has a source), `TMPDIR`, `HOME`
//! (a non-existent directory), `NIX_BUILD_CORES`-style `FERRY_BUILD_CORES`, and
//! the recipe's own environment. Nothing of the caller's environment leaks in.
use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::os::unix::fs::symlink;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Host tools a builder may use even when no input provides them. Kept small
/// on purpose: anything else must come from a declared input's `bin/`.
pub const FALLBACK_TOOLS: &[&str] = &[
    "sh", "cat", "chmod", "cp", "cut", "date", "dirname", "basename", "echo", "env", "false",
    "find", "grep", "gzip", "head", "install", "ln", "ls", "mkdir", "mv", "printf", "readlink",
    "rm", "rmdir", "sed", "sort", "tail", "tar", "test", "touch", "tr", "true", "uname", "wc",
    "xargs",
];

/// Where fallback tools are looked up on the build machine.
const HOST_TOOL_DIRS: &[&str] = &["/usr/bin", "/bin", "/usr/sbin", "/sbin"];

/// What to run.
#[derive(Debug, Clone)]
pub struct BuilderJob {
    /// Recipe name, for messages.
    pub name: String,
    /// The builder script, run by `/bin/sh -e`.
    pub script: String,
    /// Store paths of the recipe's inputs (their `bin/` dirs go on `PATH`).
    pub inputs: Vec<PathBuf>,
    /// The ingested source, exposed as `$src`.
    pub src: Option<PathBuf>,
    /// The recipe's own environment.
    pub env: BTreeMap<String, String>,
    /// Kill the builder after this long.
    pub timeout: Duration,
    /// Run without network (needs root for `unshare -n`; ignored otherwise).
    pub isolate_network: bool,
}

/// A finished builder run: its output lives in `scratch` until ingested.
#[derive(Debug)]
pub struct BuilderRun {
    /// The temporary directory holding `out`; removed on drop.
    pub scratch: tempfile::TempDir,
    /// Where the builder left its result (`$out`).
    pub out: PathBuf,
    /// How long the builder ran.
    pub elapsed: Duration,
}

/// Why one builder run produced no output.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// The build directory could not be made.
    #[error("cannot prepare the build directory: {0}")]
    Prepare(#[source] io::Error),
    /// The builder did not start.
    #[error("cannot start the builder: {0}")]
    Spawn(#[source] io::Error),
    /// The builder exited unsuccessfully.
    #[error("builder exited with {status}")]
    Failed {
        /// How it ended.
        status: String,
    },
    /// The builder hit its time limit and was killed.
    #[error("builder ran longer than its time limit of {0:?} and was killed")]
    TimedOut(Duration),
    /// The builder succeeded without creating `$out`.
    #[error("builder succeeded but did not create `$out`")]
    NoOutput,
}

/// True when this process may create network namespaces (`unshare -n`).
pub fn can_isolate_network() -> bool {
    nix::unistd::geteuid().is_root() && Path::new("/usr/bin/unshare").exists()
}

/// Makes (once per build dir) the directory of fallback tool links.
pub fn fallback_tool_dir(build_root: &Path) -> io::Result<PathBuf> {
    let dir = build_root.join("fallback-tools");
    fs::create_dir_all(&dir)?;
    for tool in FALLBACK_TOOLS {
        let link = dir.join(tool);
        if link.symlink_metadata().is_ok() {
            continue;
        }
        if let Some(found) = HOST_TOOL_DIRS
            .iter()
            .map(|d| Path::new(d).join(tool))
            .find(|p| p.exists())
        {
            match symlink(&found, &link) {
                Ok(()) => {}
                // Another build thread made it first.
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(e),
            }
        }
    }
    Ok(dir)
}

/// Runs the builder, writing its stdout and stderr to `log`.
pub fn run_builder(
    job: &BuilderJob,
    build_root: &Path,
    log: &Path,
) -> Result<BuilderRun, SandboxError> {
    fs::create_dir_all(build_root).map_err(SandboxError::Prepare)?;
    let tools = fallback_tool_dir(build_root).map_err(SandboxError::Prepare)?;
    let scratch = tempfile::Builder::new()
        .prefix("build-")
        .tempdir_in(build_root)
        .map_err(SandboxError::Prepare)?;
    let work = scratch.path().join("work");
    let tmp = scratch.path().join("tmp");
    fs::create_dir(&work).map_err(SandboxError::Prepare)?;
    fs::create_dir(&tmp).map_err(SandboxError::Prepare)?;
    let out = scratch.path().join("out");

    if let Some(parent) = log.parent() {
        fs::create_dir_all(parent).map_err(SandboxError::Prepare)?;
    }
    let log_file = fs::File::create(log).map_err(SandboxError::Prepare)?;
    let log_err = log_file.try_clone().map_err(SandboxError::Prepare)?;

    let mut path_dirs: Vec<String> = job
        .inputs
        .iter()
        .map(|input| input.join("bin"))
        .filter(|bin| bin.is_dir())
        .map(|bin| bin.display().to_string())
        .collect();
    path_dirs.push(tools.display().to_string());

    let mut command = if job.isolate_network && can_isolate_network() {
        let mut c = Command::new("/usr/bin/unshare");
        c.args(["--net", "--", "/bin/sh", "-e", "-c", &job.script]);
        c
    } else {
        let mut c = Command::new("/bin/sh");
        c.args(["-e", "-c", &job.script]);
        c
    };
    command
        .env_clear()
        .current_dir(&work)
        .stdin(Stdio::null())
        .stdout(Stdio::from(log_file))
        .stderr(Stdio::from(log_err))
        .env("PATH", path_dirs.join(":"))
        .env("out", &out)
        .env("TMPDIR", &tmp)
        .env("HOME", "/homeless-shelter")
        .env("FERRY_BUILD_CORES", "1")
        .env("LANG", "C.UTF-8")
        .env("SOURCE_DATE_EPOCH", "1");
    if let Some(src) = &job.src {
        command.env("src", src);
    }
    for (key, value) in &job.env {
        command.env(key, value);
    }
    // Own process group, so a timeout kills the builder's children too.
    command.process_group(0);

    let started = Instant::now();
    let mut child = command.spawn().map_err(SandboxError::Spawn)?;
    let status = loop {
        match child.try_wait().map_err(SandboxError::Spawn)? {
            Some(status) => break status,
            None if started.elapsed() > job.timeout => {
                let pgid = nix::unistd::Pid::from_raw(child.id() as i32);
                let _ = nix::sys::signal::killpg(pgid, nix::sys::signal::Signal::SIGKILL);
                let _ = child.wait();
                return Err(SandboxError::TimedOut(job.timeout));
            }
            None => std::thread::sleep(Duration::from_millis(5)),
        }
    };
    if !status.success() {
        return Err(SandboxError::Failed {
            status: status.to_string(),
        });
    }
    if out.symlink_metadata().is_err() {
        return Err(SandboxError::NoOutput);
    }
    Ok(BuilderRun {
        scratch,
        out,
        elapsed: started.elapsed(),
    })
}

/// The last `n` lines of a log file, for failure reports.
pub fn log_tail(log: &Path, n: usize) -> String {
    let text = fs::read(log)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(script: &str) -> BuilderJob {
        BuilderJob {
            name: "t".into(),
            script: script.into(),
            inputs: vec![],
            src: None,
            env: BTreeMap::new(),
            timeout: Duration::from_secs(30),
            isolate_network: true,
        }
    }

    #[test]
    fn builder_creates_out_and_logs_its_output() {
        let root = tempfile::tempdir().unwrap();
        let log = root.path().join("log");
        let run = run_builder(
            &job("echo hello-log; mkdir $out; echo hi > $out/f"),
            root.path(),
            &log,
        )
        .unwrap();
        assert_eq!(fs::read_to_string(run.out.join("f")).unwrap(), "hi\n");
        assert!(fs::read_to_string(&log).unwrap().contains("hello-log"));
    }

    #[test]
    fn builder_sees_none_of_the_callers_environment() {
        std::env::set_var("FERRY_TEST_LEAK", "secret-value");
        let root = tempfile::tempdir().unwrap();
        let log = root.path().join("log");
        let run = run_builder(&job("env > $out"), root.path(), &log).unwrap();
        let env = fs::read_to_string(&run.out).unwrap();
        assert!(!env.contains("FERRY_TEST_LEAK"), "{env}");
        assert!(!env.contains("secret-value"), "{env}");
        let keys: Vec<&str> = env
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, _)| k)
            .collect();
        for key in keys {
            assert!(
                [
                    "PATH",
                    "out",
                    "TMPDIR",
                    "HOME",
                    "FERRY_BUILD_CORES",
                    "LANG",
                    "SOURCE_DATE_EPOCH",
                    "PWD",
                    "SHLVL",
                    "_",
                    "OLDPWD"
                ]
                .contains(&key),
                "unexpected variable {key} in builder environment"
            );
        }
    }

    #[test]
    fn failing_builder_reports_status_and_keeps_log() {
        let root = tempfile::tempdir().unwrap();
        let log = root.path().join("log");
        let err =
            run_builder(&job("echo about-to-fail >&2; exit 7"), root.path(), &log).unwrap_err();
        assert!(matches!(err, SandboxError::Failed { .. }), "{err}");
        assert_eq!(log_tail(&log, 30), "about-to-fail");
    }

    #[test]
    fn builder_without_output_is_an_error() {
        let root = tempfile::tempdir().unwrap();
        let err = run_builder(&job("true"), root.path(), &root.path().join("log")).unwrap_err();
        assert!(matches!(err, SandboxError::NoOutput));
    }

    #[test]
    fn builder_over_its_time_limit_is_killed() {
        let root = tempfile::tempdir().unwrap();
        let mut j = job("while :; do :; done");
        j.timeout = Duration::from_millis(200);
        let err = run_builder(&j, root.path(), &root.path().join("log")).unwrap_err();
        assert!(matches!(err, SandboxError::TimedOut(_)));
    }

    /// A job whose builder connects to `port` on 127.0.0.1 with bash's /dev/tcp.
    fn connecting_job(port: u16, isolate: bool) -> (BuilderJob, tempfile::TempDir) {
        let tools = tempfile::tempdir().unwrap();
        fs::create_dir(tools.path().join("bin")).unwrap();
        symlink("/bin/bash", tools.path().join("bin/bash")).unwrap();
        let mut j = job(&format!(
            "bash -c 'echo probe > /dev/tcp/127.0.0.1/{port}'; mkdir $out"
        ));
        j.inputs = vec![tools.path().to_path_buf()];
        j.isolate_network = isolate;
        (j, tools)
    }

    #[test]
    fn builder_as_root_has_no_network() {
        // Root only: unshare -n needs CAP_SYS_ADMIN; CI runs as root.
        assert!(
            can_isolate_network(),
            "this test must run as root (CI does)"
        );
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let root = tempfile::tempdir().unwrap();
        let log = root.path().join("log");

        // Control: without isolation the same probe connects.
        let (open, _tools) = connecting_job(port, false);
        run_builder(&open, root.path(), &log).unwrap();
        listener.set_nonblocking(true).unwrap();
        assert!(
            listener.accept().is_ok(),
            "the probe did not connect without isolation"
        );

        let (closed, _tools) = connecting_job(port, true);
        let err = run_builder(&closed, root.path(), &log).unwrap_err();
        assert!(matches!(err, SandboxError::Failed { .. }), "{err}");
        assert!(
            log_tail(&log, 5).contains("Network is unreachable"),
            "{}",
            log_tail(&log, 5)
        );
        assert!(
            listener.accept().is_err(),
            "the isolated builder reached the network"
        );
    }
}
