//! Deploy phase 2, the targets: the system each host moves to. A
//! partial deploy (`--only`/`--skip`) composes it from the new system and the
//! other services' current definitions.
use std::collections::BTreeMap;

use ferry_lang::inventory::HostEntry;
use ferry_store::StorePath;

use super::survey::Survey;
use super::{DeployError, DeployRequest};
use crate::build::system::compose_system;

/// host → the system it moves to, for every host with a target. A host
/// that could not be asked keeps the class's system: it is planned, and
/// fails its batch, but nothing is composed for it.
pub(super) fn targets(
    request: &DeployRequest<'_>,
    survey: &Survey<'_>,
) -> Result<BTreeMap<String, StorePath>, DeployError> {
    let mut targets: BTreeMap<String, StorePath> = survey
        .unreachable
        .keys()
        .filter_map(|h| Some((h.clone(), request.targets.get(h)?.clone())))
        .collect();
    for host in &survey.reachable {
        let Some(target) = request.targets.get(&host.name) else {
            continue;
        };
        if request.selection.is_all() {
            targets.insert(host.name.clone(), target.clone());
            continue;
        }
        let composed = composed(request, survey, host, target)?;
        targets.insert(host.name.clone(), composed);
    }
    Ok(targets)
}

/// `target`'s selected services over what `host` runs now.
fn composed(
    request: &DeployRequest<'_>,
    survey: &Survey<'_>,
    host: &HostEntry,
    target: &StorePath,
) -> Result<StorePath, DeployError> {
    let store = request.store;
    let now = survey
        .current
        .get(&host.name)
        .and_then(|c| c.system.clone());
    let Some(now) = now
        .and_then(|p| store.parse_path(&p).ok())
        .filter(|p| store.is_valid(p))
    else {
        return Err(DeployError::PartialOnFreshHost {
            host: host.name.clone(),
        });
    };
    compose_system(store, &now, target, &request.selection).map_err(|e| DeployError::Compose {
        host: host.name.clone(),
        reason: e.to_string(),
    })
}
