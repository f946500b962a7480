//! How a manifest's service becomes a backend definition on this host: its
//! environment, working directory and state dirs.
use std::collections::BTreeMap;
use std::fs;

use super::Activator;
use crate::activate::backend::ServiceDefinition;
use crate::activate::manifest::Service;
use crate::activate::secrets;

impl Activator {
    /// The environment of a service: the manifest's, the host's facts, and
    /// the host paths it may need.
    pub(super) fn service_env(&self, name: &str, service: &Service) -> BTreeMap<String, String> {
        let mut env = self.options.host_env.clone();
        env.insert(
            "STATE_DIRECTORY".into(),
            self.service_state_dir(name).display().to_string(),
        );
        env.insert(
            "FERRY_SECRETS_DIR".into(),
            secrets::secrets_dir(&self.state_dir).display().to_string(),
        );
        env.insert("FERRY_SERVICE".into(), name.to_string());
        env.extend(service.env.clone());
        env
    }

    /// The backend definition of one service of a system whose package tree is `usr`.
    pub(super) fn definition(
        &self,
        name: &str,
        service: &Service,
        usr: Option<&str>,
    ) -> ServiceDefinition {
        ServiceDefinition {
            name: name.to_string(),
            exec: service.exec.clone(),
            env: self.service_env(name, service),
            user: service.user.clone(),
            working_dir: self.service_state_dir(name),
            oneshot: service.oneshot,
            restart: service.restart,
            usr: usr.map(std::path::PathBuf::from),
        }
    }

    /// Creates `<state_dir>/lib/<service>` and its declared subdirectories,
    /// owned by the service's user. Never deletes anything.
    pub(super) fn prepare_state_dirs(&self, name: &str, service: &Service) -> Result<(), String> {
        let base = self.service_state_dir(name);
        let owner = match &service.user {
            Some(user) => match nix::unistd::User::from_name(user) {
                Ok(Some(u)) => Some((u.uid, u.gid)),
                _ => return Err(format!("user {user} of service {name} does not exist")),
            },
            None => None,
        };
        let dirs =
            std::iter::once(base.clone()).chain(service.state_dirs.iter().map(|d| base.join(d)));
        for dir in dirs {
            fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
            if let Some((uid, gid)) = owner {
                nix::unistd::chown(&dir, Some(uid), Some(gid))
                    .map_err(|e| format!("chown {}: {e}", dir.display()))?;
            }
        }
        Ok(())
    }
}
