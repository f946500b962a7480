//! Everything ferry prints goes through here (results on stdout, errors and
//! diagnostics on stderr, rendered by miette), except live progress (`progress`).
use std::io::Write;

use crate::cli::error::CommandResult;

/// Prints one line of a command's result on stdout.
pub fn line(text: impl std::fmt::Display) {
    let mut out = std::io::stdout().lock();
    // A closed stdout (e.g. `ferry … | head`) is not an error worth a panic.
    let _ = writeln!(out, "{text}");
}

/// Prints one line about a problem on stderr while a command goes on (a
/// host that failed or could not be reached).
pub fn problem(text: impl std::fmt::Display) {
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "{text}");
}

/// Stdout for binary results (an archive); callers refuse to write one to a terminal.
pub fn raw() -> impl Write {
    std::io::stdout().lock()
}

/// Prints a value as pretty JSON on stdout.
pub fn json(value: &impl serde::Serialize) {
    match serde_json::to_string_pretty(value) {
        Ok(text) => line(text),
        // Our own output types always serialize; this is an invariant.
        Err(e) => unreachable!("output value does not serialize: {e}"),
    }
}

/// Prints one diagnostic on stderr, as miette draws it, while a command goes on
/// (e.g. every error of a site before the command fails with a summary).
pub fn diagnostic(report: miette::Report) {
    eprintln!("{report:?}");
}

/// Asks the operator a yes/no question on stderr (the answer is read by `prompt`).
pub fn question(text: &str) {
    eprint!("{text} [y/N] ");
}

/// Renders the outcome of a command and returns the exit code.
pub fn finish(result: CommandResult) -> i32 {
    match result {
        Ok(exit) => exit as i32,
        Err(error) => {
            eprintln!("{:?}", error.report);
            error.exit as i32
        }
    }
}

/// Prints already formatted text (ending in a newline) on stdout.
pub fn text(text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes());
}

/// Prints a value as one line of JSON on stdout (event streams).
pub fn json_line(value: &impl serde::Serialize) {
    match serde_json::to_string(value) {
        Ok(text) => line(text),
        // Our own output types always serialize; this is an invariant.
        Err(e) => unreachable!("output value does not serialize: {e}"),
    }
}

/// One `--json` event on its line, stamped with when it happened
/// (`"time": "2026-12-03T12:01:02.345Z"`, RFC 3339 in UTC).
pub fn event(mut value: serde_json::Value) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    if let Some(fields) = value.as_object_mut() {
        fields.insert("time".into(), timestamp(now).into());
    }
    json_line(&value);
}

/// RFC 3339 in UTC with milliseconds, for a time since the epoch.
fn timestamp(since_epoch: std::time::Duration) -> String {
    let day_and_time = date(since_epoch.as_secs());
    let day_and_time = day_and_time.trim_end_matches(" UTC").replacen(' ', "T", 1);
    format!("{day_and_time}.{:03}Z", since_epoch.subsec_millis())
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

    #[test]
    fn json_events_carry_an_rfc3339_time() {
        let at = std::time::Duration::from_millis(1_795_492_367_045);
        assert_eq!(super::timestamp(at), "2026-11-24T03:52:47.045Z");
    }
}
