//! The INI format, read line by line as Ansible's `ini` plugin reads it.
use std::collections::BTreeMap;
use std::path::Path;

use super::super::InventoryError;
use super::patterns::hosts_of;
use super::Inventory;

/// Splits a line as Python's `shlex.split(line, comments=True)` does, which
/// is how Ansible reads host and child lines: whitespace separates words,
/// quotes group, a backslash escapes, and a `#` that starts a word starts a
/// comment.
fn shell_words(text: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut chars = text.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        match chars.peek() {
            None | Some('#') => return Ok(words),
            Some(_) => {}
        }
        let mut word = String::new();
        while let Some(c) = chars.next_if(|c| !c.is_whitespace()) {
            match c {
                '\\' => word.extend(chars.next()),
                '\'' | '"' => loop {
                    match chars.next() {
                        Some(end) if end == c => break,
                        Some('\\') if c == '"' => word.extend(chars.next()),
                        Some(other) => word.push(other),
                        None => return Err(format!("unclosed {c} quote")),
                    }
                },
                other => word.push(other),
            }
        }
        words.push(word);
    }
}

/// The `key=value` words after a host name.
fn parse_assignments(words: &[String]) -> Result<BTreeMap<String, String>, String> {
    let mut vars = BTreeMap::new();
    for word in words {
        match word.split_once('=') {
            Some((key, value)) if !key.is_empty() => {
                vars.insert(key.to_string(), python_literal(value));
            }
            _ => return Err(format!("expected `key=value`, found `{word}`")),
        }
    }
    Ok(vars)
}

/// A `[group:vars]` line: `key = the rest of the line`, as Ansible reads
/// it (a quoted value loses its quotes).
fn parse_group_var(text: &str) -> Result<(String, String), String> {
    let Some((key, value)) = text.split_once('=') else {
        return Err(format!("expected `key=value`, found `{text}`"));
    };
    let (key, value) = (key.trim(), value.trim());
    if key.is_empty() || key.contains(char::is_whitespace) {
        return Err(format!("expected `key=value`, found `{text}`"));
    }
    let value = match ['"', '\'']
        .into_iter()
        .find_map(|q| value.strip_prefix(q).and_then(|v| v.strip_suffix(q)))
    {
        Some(quoted) => quoted.to_string(),
        None => python_literal(value),
    };
    Ok((key.to_string(), value))
}

/// Ansible passes each INI value through Python's `literal_eval`: of what
/// that changes, the booleans and `None` read differently as text.
fn python_literal(value: &str) -> String {
    match value {
        "True" => "true".to_string(),
        "False" => "false".to_string(),
        "None" => String::new(),
        other => other.to_string(),
    }
}

enum Section {
    Hosts(String),
    Vars(String),
    Children(String),
}

pub(super) fn parse_ini(path: &Path, text: &str) -> Result<Inventory, InventoryError> {
    let mut inventory = Inventory::default();
    let mut section = Section::Hosts("ungrouped".to_string());
    for (index, raw) in text.lines().enumerate() {
        parse_line(&mut inventory, &mut section, raw).map_err(|detail| {
            InventoryError::AnsibleSyntax {
                path: path.to_path_buf(),
                line: index + 1,
                // The entry a line's error is about starts where its text does.
                column: raw.chars().take_while(|c| c.is_whitespace()).count() + 1,
                detail,
            }
        })?;
    }
    Ok(inventory)
}

/// One line of the file, in the section the lines before it opened; an
/// error is its detail alone (`parse_ini` says where).
fn parse_line(inventory: &mut Inventory, section: &mut Section, raw: &str) -> Result<(), String> {
    let content = raw.trim();
    if content.is_empty() || content.starts_with('#') || content.starts_with(';') {
        return Ok(());
    }
    if let Some(header) = content.strip_prefix('[') {
        // `[group]`, `[group:vars]`, `[group:children]`, then at most a comment.
        let Some((header, after)) = header.split_once(']') else {
            return Err(format!("section header `{content}` lacks its `]`"));
        };
        let after = after.trim_start();
        if !after.is_empty() && !after.starts_with('#') {
            return Err(format!(
                "`{after}` after the section header `[{header}]` (only a `# comment` may follow)"
            ));
        }
        *section = match header.split_once(':') {
            None => Section::Hosts(header.to_string()),
            Some((group, "vars")) => Section::Vars(group.to_string()),
            Some((group, "children")) => Section::Children(group.to_string()),
            Some((_, kind)) => {
                return Err(format!(
                    "unknown section kind `:{kind}` (use `:vars` or `:children`)"
                ))
            }
        };
        return Ok(());
    }
    match &*section {
        Section::Hosts(group) => {
            let words = shell_words(content)?;
            let Some((pattern, assignments)) = words.split_first() else {
                return Ok(());
            };
            let vars = parse_assignments(assignments)?;
            let (hosts, vars) = hosts_of(pattern, vars)?;
            for host in hosts {
                inventory.add_host(&host, group, vars.clone());
            }
        }
        Section::Vars(group) => {
            let (key, value) = parse_group_var(content)?;
            inventory
                .group_vars
                .entry(group.clone())
                .or_default()
                .insert(key, value);
        }
        Section::Children(group) => {
            let words = shell_words(content)?;
            let Some(child) = words.first() else {
                return Ok(());
            };
            inventory
                .parents
                .entry(child.clone())
                .or_default()
                .insert(group.clone());
        }
    }
    Ok(())
}
