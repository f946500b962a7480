//! Upgrade hooks: the pre- and post-upgrade loops over the started services,
//! and one hook run as the service's user with a time limit.
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use super::{ActionKind, ActivationReport, Activator};
use crate::activate::env::BASE_PATH;
use crate::activate::manifest::{Manifest, Service};
use crate::activate::process::{run_with_deadline, DeadlineError};
use crate::activate::usr_tree;

/// Which hooks of a service run, and when.
#[derive(Debug, Clone, Copy)]
pub(super) enum HookPhase {
    /// Before anything is stopped.
    PreUpgrade,
    /// After the new services started, settled and passed their health
    /// checks.
    PostUpgrade,
}

impl HookPhase {
    fn hooks(self, service: &Service) -> &[String] {
        match self {
            HookPhase::PreUpgrade => &service.hooks.pre_upgrade,
            HookPhase::PostUpgrade => &service.hooks.post_upgrade,
        }
    }

    fn action(self) -> ActionKind {
        match self {
            HookPhase::PreUpgrade => ActionKind::PreUpgradeHook,
            HookPhase::PostUpgrade => ActionKind::PostUpgradeHook,
        }
    }

    fn label(self) -> &'static str {
        match self {
            HookPhase::PreUpgrade => "pre-upgrade",
            HookPhase::PostUpgrade => "post-upgrade",
        }
    }
}

impl Activator {
    /// Runs the `phase` hooks of the services in `order` (of manifest `new`),
    /// each with `OLD`/`NEW` set to the systems' paths; the first failure
    /// ends the loop with the reason to roll back.
    pub(super) fn run_hooks(
        &self,
        phase: HookPhase,
        order: &[String],
        new: &Manifest,
        (old_system, new_system): (Option<&Path>, &Path),
        report: &mut ActivationReport,
    ) -> Result<(), String> {
        let mut extra = BTreeMap::new();
        extra.insert(
            "OLD".to_string(),
            old_system
                .map(|p| p.display().to_string())
                .unwrap_or_default(),
        );
        extra.insert("NEW".to_string(), new_system.display().to_string());
        for name in order {
            let service = &new.services[name];
            for hook in phase.hooks(service) {
                let result = self.run_hook(name, service, new.usr.as_deref(), hook, &extra);
                Self::record(report, name, phase.action(), result.clone().err());
                result.map_err(|e| format!("{} hook of {name} failed: {e}", phase.label()))?;
            }
        }
        Ok(())
    }

    /// Runs one hook as the service's user, in its state dir, with its
    /// environment plus `extra`; kills its process group at the time limit.
    fn run_hook(
        &self,
        name: &str,
        service: &Service,
        usr: Option<&str>,
        hook: &str,
        extra: &BTreeMap<String, String>,
    ) -> Result<(), String> {
        self.prepare_state_dirs(name, service)?;
        let mut command = Command::new("/bin/sh");
        command
            .arg("-c")
            .arg(hook)
            .env_clear()
            .env("PATH", BASE_PATH)
            .envs(self.service_env(name, service))
            .envs(extra)
            .current_dir(self.service_state_dir(name));
        let ids = match &service.user {
            Some(user) => {
                let found = nix::unistd::User::from_name(user)
                    .ok()
                    .flatten()
                    .ok_or_else(|| format!("user {user} does not exist"))?;
                Some((found.uid.as_raw(), found.gid.as_raw()))
            }
            None => None,
        };
        usr_tree::prepare(&mut command, usr.map(Path::new), ids)
            .map_err(|e| format!("cannot run: {e}"))?;
        let timeout = self.options.hook_timeout;
        let finished = run_with_deadline(command, timeout).map_err(|e| match e {
            DeadlineError::TempFile(e) => format!("temporary file: {e}"),
            DeadlineError::Spawn(e) => format!("cannot run: {e}"),
            DeadlineError::TimedOut => format!("did not finish within {timeout:?}"),
            DeadlineError::Wait(e) => format!("waiting: {e}"),
        })?;
        let status = finished.status;
        if status.success() {
            Ok(())
        } else if finished.output_tail.is_empty() {
            Err(status.to_string())
        } else {
            Err(format!("{status}: {}", finished.output_tail))
        }
    }
}
