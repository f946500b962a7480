//! `ferry eval SITE [--json]`: print the evaluated site.
use std::path::PathBuf;

use ferry_lang::model::{Amount, Pause, Probe, Site};

use crate::cli::error::Exit;
use crate::cli::output;
use crate::cli::CommandResult;

/// Arguments of `ferry eval`.
#[derive(Debug, clap::Args)]
pub struct EvalArgs {
    /// The site file, or a directory holding `site.conf`.
    pub site: PathBuf,
    /// Print the resolved site as JSON (format: lang/EVAL-JSON.md).
    #[arg(long)]
    pub json: bool,
}

/// Evaluates the site and prints it.
pub fn run(args: EvalArgs) -> CommandResult {
    let site = crate::cli::site::load_site(&args.site)?;
    if args.json {
        output::json(&site);
    } else {
        for line in describe(&site) {
            output::line(line);
        }
    }
    Ok(Exit::Success)
}

fn amount(a: Amount) -> String {
    match a {
        Amount::Count(n) => n.to_string(),
        Amount::Percent(p) => format!("{p}%"),
    }
}

/// The site as indented, human-readable lines.
fn describe(site: &Site) -> Vec<String> {
    let mut out = vec![format!("site {} ({})", site.name, site.environment)];
    for name in &site.graph.class_order {
        let Some(class) = site.classes.get(name) else {
            continue;
        };
        out.push(format!("class {name}"));
        if !class.includes.is_empty() {
            out.push(format!("  includes {}", class.includes.join(", ")));
        }
        for host in &class.hosts {
            let labels: Vec<String> = host
                .labels
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            out.push(
                format!("  host {} {} {}", host.name, host.address, labels.join(" "))
                    .trim_end()
                    .to_string(),
            );
        }
        if !class.packages.is_empty() {
            out.push(format!(
                "  packages {}",
                class
                    .packages
                    .iter()
                    .map(|p| p.0.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        for service in class.services.values() {
            out.push(format!(
                "  service {}: {}",
                service.name,
                service.exec.display().trim_end().replace('\n', "\n      ")
            ));
            for dep in &service.requires {
                out.push(format!("    requires {dep}"));
            }
            for check in &service.health {
                let probe = match &check.probe {
                    Probe::Command { command } => format!("command {}", command.display()),
                    Probe::Tcp { host, port } => format!("tcp {host}:{port}"),
                    Probe::Http { url, ca: None } => format!("http {}", url.display()),
                    Probe::Http { url, ca: Some(ca) } => {
                        format!("http {} (ca {})", url.display(), ca.display())
                    }
                };
                out.push(format!(
                    "    health {probe} (timeout {} ms, {} retries)",
                    check.timeout_ms, check.retries
                ));
            }
        }
    }
    let policy = &site.rollout;
    let pause = match policy.pause {
        Pause::None => "none".to_string(),
        Pause::Duration { ms } => format!("{ms} ms"),
        Pause::Confirm => "confirm".to_string(),
    };
    out.push(format!(
        "rollout order={} canary={} batch={} group_by={} max_failures={} on_failure={} pause={}",
        format!("{:?}", policy.order).to_lowercase(),
        policy.canary,
        amount(policy.batch),
        policy.group_by.as_deref().unwrap_or("-"),
        amount(policy.max_failures),
        format!("{:?}", policy.on_failure).to_lowercase(),
        pause
    ));
    out
}
