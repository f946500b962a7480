//! CLI glue shared by `ferry deploy` and `ferry rollback`: confirm with the
//! operator, run the deploy with live progress or JSON events, print the
//! summary, and turn the outcome into the exit code.
use std::io::IsTerminal;

use crate::deploy::execute::{deploy, DeployRequest};
use crate::deploy::report::summary;
use crate::deploy::run::{Pauser, RolloutObserver};
use crate::output::{self, CommandError, Exit};
use crate::progress::{DeployProgress, JsonEvents};
use crate::rollout::{Batch, Pause};

/// Whether the operator can be asked questions.
fn interactive() -> bool {
    std::io::stdin().is_terminal() && std::io::stderr().is_terminal()
}

/// Asks a yes/no question on stderr.
fn ask(question: &str) -> bool {
    eprint!("{question} [y/N] ");
    let mut answer = String::new();
    std::io::stdin().read_line(&mut answer).is_ok() && matches!(answer.trim(), "y" | "Y" | "yes")
}

/// Pauses between batches as the policy says.
struct CliPauser {
    yes: bool,
}

impl Pauser for CliPauser {
    fn pause(&self, pause: &Pause, next: &Batch) -> bool {
        match pause {
            Pause::None => true,
            Pause::Duration(duration) => {
                std::thread::sleep(*duration);
                true
            }
            // Without a terminal nobody can answer: stop rather than guess.
            Pause::Confirm => {
                self.yes
                    || (interactive() && ask(&format!("continue with {}?", next.hosts.join(", "))))
            }
        }
    }
}

/// Runs a deploy request end to end and returns its exit code.
pub fn run_request(
    request: &DeployRequest<'_>,
    yes: bool,
    json: bool,
) -> Result<Exit, CommandError> {
    if !json && !request.dry_run && !yes && interactive() {
        let hosts: Vec<&str> = request.hosts.iter().map(|h| h.name.as_str()).collect();
        if !ask(&format!(
            "{} `{}` on {}?",
            request.command,
            request.site.name,
            hosts.join(", ")
        )) {
            return Err(CommandError::failure(miette::miette!(
                "cancelled; nothing was touched"
            )));
        }
    }
    let progress = DeployProgress::new(!json && crate::progress::enabled(json));
    let observer: &dyn RolloutObserver = if json { &JsonEvents } else { &progress };
    let report = deploy(request, &CliPauser { yes }, observer);
    progress.finish();
    let report = report.map_err(|e| {
        if e.is_bad_input() {
            CommandError::input(miette::Report::new(e))
        } else {
            CommandError::failure(miette::Report::new(e))
        }
    })?;
    if json {
        output::json_line(&serde_json::json!({"event": "done", "report": report}));
    } else {
        if request.dry_run {
            output::text(&report.plan.to_string());
        }
        output::text(&summary(&report));
    }
    Ok(match report.exit_code() {
        0 => Exit::Success,
        3 => Exit::RolledBack,
        _ => Exit::Failure,
    })
}

/// `2026-11-24 04:12:09 UTC` for seconds since the epoch (no time zone database needed).
pub fn date(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rest = secs % 86_400;
    // Civil from days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn dates_are_civil_utc() {
        assert_eq!(super::date(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(super::date(951_782_400), "2000-02-29 00:00:00 UTC");
        assert_eq!(super::date(1_795_492_367), "2026-11-24 03:52:47 UTC");
    }
}
