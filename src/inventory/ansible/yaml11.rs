//! YAML as Ansible reads it: YAML 1.1, where a plain `yes`, `on` or `0644`
//! is a boolean or a number (YAML 1.2, serde_yaml's, reads them as text
//! and decimals). Built from yaml-rust2's events, which keep each scalar's
//! style: a quoted scalar is always text. Iterative, with a nesting limit,
//! so no input can overflow the stack.
use std::collections::HashMap;

use serde_yaml::value::{Tag, TaggedValue};
use serde_yaml::{Mapping, Number, Value};
use yaml_rust2::parser::Parser;
use yaml_rust2::scanner::TScalarStyle;
use yaml_rust2::Event;

/// Deeper nesting than this is refused (serde_yaml's own limit).
pub const MAX_DEPTH: usize = 128;

/// More values than this, aliases expanded, are refused: a few lines of
/// nested aliases must not expand into gigabytes ("billion laughs").
pub const MAX_VALUES: usize = 1_000_000;

/// A container being filled, with its anchor, tag and number of values.
enum Open {
    Sequence(Vec<Value>, usize, Option<String>, usize),
    Mapping(Mapping, Option<Value>, usize, Option<String>, usize),
}

/// The first document of `text` as YAML 1.1 values; errors name the line
/// and column.
pub fn load(text: &str) -> Result<Value, String> {
    let mut parser = Parser::new_from_str(text);
    let mut open: Vec<Open> = Vec::new();
    // Each anchor's value and how many values it holds.
    let mut anchors: HashMap<usize, (Value, usize)> = HashMap::new();
    let mut total = 0usize;
    loop {
        let (event, mark) = parser.next_token().map_err(|e| e.to_string())?;
        let at = || format!("line {}, column {}", mark.line(), mark.col() + 1);
        let done = match event {
            Event::StreamEnd | Event::DocumentEnd => Some((Value::Null, 1)),
            Event::Alias(id) => {
                let (value, count) = anchors
                    .get(&id)
                    .ok_or_else(|| format!("{}: an alias to no anchor", at()))?;
                total = total.saturating_add(*count);
                if total > MAX_VALUES {
                    return Err(format!(
                        "{}: aliases expand to more than {MAX_VALUES} values",
                        at()
                    ));
                }
                Some((value.clone(), *count))
            }
            Event::Scalar(text, style, anchor, tag) => {
                let value = tagged(scalar(text, style), tag_name(tag));
                if anchor > 0 {
                    anchors.insert(anchor, (value.clone(), 1));
                }
                Some((value, 1))
            }
            Event::SequenceStart(anchor, tag) | Event::MappingStart(anchor, tag)
                if open.len() >= MAX_DEPTH =>
            {
                let _ = (anchor, tag);
                return Err(format!("{}: nested deeper than {MAX_DEPTH} levels", at()));
            }
            Event::SequenceStart(anchor, tag) => {
                open.push(Open::Sequence(Vec::new(), anchor, tag_name(tag), 1));
                None
            }
            Event::MappingStart(anchor, tag) => {
                open.push(Open::Mapping(
                    Mapping::new(),
                    None,
                    anchor,
                    tag_name(tag),
                    1,
                ));
                None
            }
            Event::SequenceEnd | Event::MappingEnd => {
                let (value, anchor, count) = match open.pop() {
                    Some(Open::Sequence(items, anchor, tag, count)) => {
                        (tagged(Value::Sequence(items), tag), anchor, count)
                    }
                    Some(Open::Mapping(map, _, anchor, tag, count)) => {
                        (tagged(Value::Mapping(map), tag), anchor, count)
                    }
                    None => return Err(format!("{}: a collection ends that never began", at())),
                };
                if anchor > 0 {
                    anchors.insert(anchor, (value.clone(), count));
                }
                Some((value, count))
            }
            Event::Nothing | Event::StreamStart | Event::DocumentStart => None,
        };
        let Some((value, count)) = done else { continue };
        total = total.saturating_add(1);
        if total > MAX_VALUES {
            return Err(format!("{}: more than {MAX_VALUES} values", at()));
        }
        match open.last_mut() {
            // Only the first document counts, as for Ansible.
            None => return Ok(value),
            Some(Open::Sequence(items, .., held)) => {
                items.push(value);
                *held += count;
            }
            Some(Open::Mapping(map, key, .., held)) => {
                *held += count;
                match key.take() {
                    None => *key = Some(value),
                    Some(k) => {
                        map.insert(k, value);
                    }
                }
            }
        }
    }
}

fn tag_name(tag: Option<yaml_rust2::parser::Tag>) -> Option<String> {
    tag.map(|t| format!("{}{}", t.handle, t.suffix))
}

fn tagged(value: Value, tag: Option<String>) -> Value {
    match tag {
        Some(tag) => Value::Tagged(Box::new(TaggedValue {
            tag: Tag::new(tag),
            value,
        })),
        None => value,
    }
}

/// A scalar as YAML 1.1's resolver (PyYAML's) types it; quoted, literal
/// and folded scalars are text.
fn scalar(text: String, style: TScalarStyle) -> Value {
    if style != TScalarStyle::Plain {
        return Value::String(text);
    }
    match text.as_str() {
        "" | "~" | "null" | "Null" | "NULL" => return Value::Null,
        "yes" | "Yes" | "YES" | "true" | "True" | "TRUE" | "on" | "On" | "ON" => {
            return Value::Bool(true)
        }
        "no" | "No" | "NO" | "false" | "False" | "FALSE" | "off" | "Off" | "OFF" => {
            return Value::Bool(false)
        }
        _ => {}
    }
    if let Some(n) = integer(&text) {
        return Value::Number(Number::from(n));
    }
    if let Some(f) = float(&text) {
        return Value::Number(Number::from(f));
    }
    Value::String(text)
}

/// YAML 1.1 integers: `0b1010`, `0644` (octal), `0x1F`, `1_000`, `1:30`
/// (base 60), each with an optional sign.
fn integer(text: &str) -> Option<i64> {
    let (negative, body) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    let digits = |s: &str, radix: u32| {
        let clean: String = s.chars().filter(|c| *c != '_').collect();
        (!clean.is_empty() && s.chars().next().is_some_and(|c| c != '_'))
            .then(|| i64::from_str_radix(&clean, radix).ok())
            .flatten()
    };
    let value = if let Some(b) = body.strip_prefix("0b") {
        digits(b, 2)?
    } else if let Some(x) = body.strip_prefix("0x") {
        digits(x, 16)?
    } else if body.len() > 1 && body.starts_with('0') {
        digits(&body[1..], 8)?
    } else if body.contains(':') {
        let mut parts = body.split(':');
        let first = parts.next()?;
        if first.starts_with('0') {
            return None;
        }
        let mut value = digits(first, 10)?;
        for part in parts {
            if part.is_empty() || part.len() > 2 || !part.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            let n: i64 = part.parse().ok()?;
            if n >= 60 {
                return None;
            }
            value = value.checked_mul(60)?.checked_add(n)?;
        }
        value
    } else {
        if !body.bytes().all(|b| b.is_ascii_digit() || b == b'_') {
            return None;
        }
        digits(body, 10)?
    };
    Some(if negative { -value } else { value })
}

/// YAML 1.1 floats: `1.5`, `1.`, `.5`, `6.8523015e+5` (the exponent's sign
/// is required), `1_000.5`, `.inf`, `-.inf`, `.nan`.
fn float(text: &str) -> Option<f64> {
    let body = text.strip_prefix(['-', '+']).unwrap_or(text);
    let sign = if text.starts_with('-') { -1.0 } else { 1.0 };
    match body {
        ".inf" | ".Inf" | ".INF" => return Some(sign * f64::INFINITY),
        ".nan" | ".NaN" | ".NAN" if body.len() == text.len() => return Some(f64::NAN),
        _ => {}
    }
    let (mantissa, exponent) = match body.find(['e', 'E']) {
        Some(i) => (&body[..i], Some(&body[i + 1..])),
        None => (body, None),
    };
    let (whole, fraction) = mantissa.split_once('.')?;
    let ok_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit() || b == b'_');
    if !ok_digits(whole) || !ok_digits(fraction) || (whole.is_empty() && fraction.is_empty()) {
        return None;
    }
    if whole.starts_with('_') || (whole.is_empty() && fraction.starts_with('_')) {
        return None;
    }
    if let Some(e) = exponent {
        let digits = e.strip_prefix(['-', '+'])?;
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
    }
    let clean: String = text.chars().filter(|c| *c != '_').collect();
    let clean = if clean.ends_with('.') || clean.contains(".e") || clean.contains(".E") {
        clean.replacen('.', ".0", 1)
    } else {
        clean
    };
    clean.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(text: &str) -> Value {
        match load(&format!("k: {text}\n")).unwrap() {
            Value::Mapping(m) => m.get("k").cloned().unwrap(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn plain_scalars_resolve_as_yaml_1_1_and_quoted_ones_stay_text() {
        assert_eq!(one("yes"), Value::Bool(true));
        assert_eq!(one("Off"), Value::Bool(false));
        assert_eq!(one("'yes'"), Value::String("yes".into()));
        assert_eq!(one("0644"), Value::Number(420.into()));
        assert_eq!(one("\"0644\""), Value::String("0644".into()));
        assert_eq!(one("0x1F"), Value::Number(31.into()));
        assert_eq!(one("0b101"), Value::Number(5.into()));
        assert_eq!(one("1_000"), Value::Number(1000.into()));
        assert_eq!(one("-1:30"), Value::Number((-90).into()));
        assert_eq!(one("0o17"), Value::String("0o17".into()));
        assert_eq!(one("1.5"), Value::Number(1.5.into()));
        assert_eq!(one("1e3"), Value::String("1e3".into()), "1.1 needs a dot");
        assert_eq!(one("~"), Value::Null);
        assert_eq!(one("10.0.0.1"), Value::String("10.0.0.1".into()));
        assert_eq!(one("web1"), Value::String("web1".into()));
    }

    #[test]
    fn anchors_tags_and_depth() {
        let v = load("a: &x {b: 1}\nc: *x\nd: !vault |\n  $ANSIBLE_VAULT;1.1\n").unwrap();
        assert_eq!(v["c"]["b"], Value::Number(1.into()));
        assert!(matches!(&v["d"], Value::Tagged(t) if t.tag == "vault"));
        // Deep block nesting, which the scanner takes without a limit of its own.
        let deep: String = (0..1000)
            .map(|i| format!("{}- \n", "  ".repeat(i)))
            .collect();
        let err = load(&deep).unwrap_err();
        assert!(err.contains("nested deeper than 128"), "{err}");
        // Deep flow nesting: refused (by the scanner or by us), never a crash.
        assert!(load(&"[".repeat(100_000)).is_err());
        // Nested aliases that would expand to 10^9 values.
        let mut laughs = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..9 {
            let refs = vec![format!("*a{}", i - 1); 10].join(", ");
            laughs.push_str(&format!("a{i}: &a{i} [{refs}]\n"));
        }
        let err = load(&laughs).unwrap_err();
        assert!(err.contains("aliases expand to more than"), "{err}");
    }
}
