//! Host patterns as Ansible writes them in both formats: ranges and `:port`.
//! Errors are the detail alone; each format says where.
use std::collections::BTreeMap;

/// The hosts `pattern` names, each with `vars`; a `:port` in the pattern is
/// their `ansible_port`, unless `vars` gives one (a variable on the same
/// line wins, as in Ansible).
pub(super) fn hosts_of(
    pattern: &str,
    vars: BTreeMap<String, String>,
) -> Result<(Vec<String>, BTreeMap<String, String>), String> {
    let (pattern, port) = split_port(pattern);
    let mut all: BTreeMap<String, String> = port
        .map(|p| ("ansible_port".to_string(), p.to_string()))
        .into_iter()
        .collect();
    all.extend(vars);
    Ok((expand_range(pattern)?, all))
}

/// `name:port` → the name and the port; a colon inside a range (`web[1:3]`)
/// or an address with several (IPv6) is no port.
fn split_port(pattern: &str) -> (&str, Option<&str>) {
    let outside = pattern.rfind(']').map_or(0, |i| i + 1);
    match pattern[outside..].rfind(':') {
        Some(i) if pattern.matches(':').count() - pattern[..outside].matches(':').count() == 1 => {
            let (name, port) = (&pattern[..outside + i], &pattern[outside + i + 1..]);
            if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) {
                (name, Some(port))
            } else {
                (pattern, None)
            }
        }
        _ => (pattern, None),
    }
}

/// Expands host ranges as Ansible does: `web[01:03]` (a leading zero sets
/// the width, and both ends must have it), `mail[:5]` (from 0),
/// `db[a:c]` (letters) and `n[1:9:2]` (a step); several ranges multiply.
fn expand_range(pattern: &str) -> Result<Vec<String>, String> {
    let Some(open) = pattern.find('[') else {
        return Ok(vec![pattern.to_string()]);
    };
    let Some(close) = pattern[open..].find(']').map(|c| c + open) else {
        return Err(format!("unclosed `[` in host pattern `{pattern}`"));
    };
    let range = &pattern[open + 1..close];
    let bad = |why: &str| {
        format!("host range `[{range}]` {why} (ranges are like `[1:9]`, `[01:10]`, `[:5]`, `[a:f]`, `[1:9:2]`)")
    };
    let mut parts = range.split(':');
    let (from, to, step) = (parts.next(), parts.next(), parts.next());
    let (Some(from), Some(to)) = (from, to) else {
        return Err(bad("has no `:`"));
    };
    if parts.next().is_some() {
        return Err(bad("has more than two `:`"));
    }
    let step: usize = match step {
        None | Some("") => 1,
        Some(s) => s
            .parse()
            .ok()
            .filter(|s| *s > 0)
            .ok_or_else(|| bad("has a step that is not a positive number"))?,
    };
    let from = if from.is_empty() { "0" } else { from };
    let items: Vec<String> = if from.bytes().all(|b| b.is_ascii_digit()) {
        let width = if from.len() > 1 && from.starts_with('0') {
            if from.len() != to.len() {
                return Err(bad("has ends of different widths"));
            }
            from.len()
        } else {
            0
        };
        let (a, b): (u32, u32) = (
            from.parse().map_err(|_| bad("is not numeric"))?,
            to.parse().map_err(|_| bad("is not numeric"))?,
        );
        if b < a || b - a > 10_000 {
            return Err(bad("is empty or longer than 10000"));
        }
        (a..=b)
            .step_by(step)
            .map(|n| format!("{n:0width$}"))
            .collect()
    } else {
        let letter = |t: &str| {
            let mut c = t.chars();
            match (c.next(), c.next()) {
                (Some(l), None) if l.is_ascii_alphabetic() => Some(l),
                _ => None,
            }
        };
        let (Some(a), Some(b)) = (letter(from), letter(to)) else {
            return Err(bad("mixes letters and digits, or has a word for an end"));
        };
        if b < a {
            return Err(bad("is empty"));
        }
        (a..=b).step_by(step).map(String::from).collect()
    };
    let (head, tail) = (&pattern[..open], &pattern[close + 1..]);
    let tails = expand_range(tail)?;
    let mut out = Vec::new();
    for item in &items {
        for rest in &tails {
            out.push(format!("{head}{item}{rest}"));
        }
    }
    Ok(out)
}
