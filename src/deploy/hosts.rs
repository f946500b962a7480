//! Reaching a site's hosts: how ([`Reach`]), one agent session per host that
//! is opened, used and closed by one piece of code ([`Sessions::with`]), many
//! hosts in parallel, and the copy of each class's system (`--copy-only`).
use std::collections::BTreeMap;

use ferry_lang::inventory::HostEntry;
use ferry_store::{Store, StoreError, StorePath};

use crate::transport::bootstrap::{AgentBinary, AgentSettings};
use crate::transport::copy::{copy_closure, AgentSource, CopyError, CopyOptions, CopyReport};
use crate::transport::error_chain;
use crate::transport::session::{HostSession, SessionError, SessionOptions};
use crate::transport::ssh::SshSettings;

/// How to reach hosts.
#[derive(Debug, Clone)]
pub struct Reach {
    /// SSH settings beyond what the inventory says.
    pub ssh: SshSettings,
    /// Store and state dirs of the agents on the hosts.
    pub agent: AgentSettings,
    /// At most this many hosts are worked on at once.
    pub max_parallel: usize,
    /// Who hears per-host copy steps (the terminal's progress lines); `None`: nobody.
    pub progress: Option<std::sync::Arc<dyn crate::transport::copy::CopyObserver>>,
}

impl Reach {
    /// The options of a closure copy to these hosts.
    pub fn copy_options(&self) -> CopyOptions {
        CopyOptions {
            ssh: self.ssh.clone(),
            max_parallel: self.max_parallel,
            agent: self.agent.clone(),
            progress: self.progress.clone(),
        }
    }

    /// The options of an agent session with one of these hosts.
    pub fn session_options(&self) -> SessionOptions {
        SessionOptions {
            ssh: self.ssh.clone(),
            agent: self.agent.clone(),
        }
    }
}

/// Runs `f` for every host, at most `max_parallel` at once, in parallel;
/// the answers come in host order.
pub fn for_hosts<T: Send>(
    hosts: &[&HostEntry],
    max_parallel: usize,
    f: impl Fn(&HostEntry) -> T + Sync,
) -> Vec<T> {
    let mut out = Vec::with_capacity(hosts.len());
    for chunk in hosts.chunks(max_parallel.max(1)) {
        let results: Vec<T> = std::thread::scope(|scope| {
            let handles: Vec<_> = chunk.iter().map(|h| scope.spawn(|| f(h))).collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
                .collect()
        });
        out.extend(results);
    }
    out
}

/// Sessions with the agents of a site's hosts: the store and agent binary
/// they bootstrap from, and how to reach the hosts.
pub struct Sessions<'a> {
    /// The deployer's store (the agent binary must be valid in it).
    pub store: &'a Store,
    /// The agent started (and uploaded where missing) on each host.
    pub binary: &'a AgentBinary,
    /// How to reach the hosts.
    pub options: SessionOptions,
}

impl<'a> Sessions<'a> {
    /// Sessions from `store`, with `binary` as the agent, reached as `reach` says.
    pub fn new(store: &'a Store, binary: &'a AgentBinary, reach: &Reach) -> Sessions<'a> {
        Sessions {
            store,
            binary,
            options: reach.session_options(),
        }
    }

    /// Opens a session with `host`; the error is its whole chain as text.
    pub fn open(&self, host: &HostEntry) -> Result<HostSession, String> {
        HostSession::open(self.store, self.binary, host, &self.options).map_err(|e| error_chain(&e))
    }

    /// Opens a session with `host`, runs `f` on it and closes it (a failed
    /// close does not change `f`'s answer).
    pub fn with<T>(
        &self,
        host: &HostEntry,
        f: impl FnOnce(&mut HostSession) -> Result<T, SessionError>,
    ) -> Result<T, SessionError> {
        HostSession::open(self.store, self.binary, host, &self.options).and_then(|mut session| {
            let result = f(&mut session);
            let _ = session.close();
            result
        })
    }

    /// [`Sessions::with`], the error as its whole chain as text.
    pub fn run<T>(
        &self,
        host: &HostEntry,
        f: impl FnOnce(&mut HostSession) -> Result<T, SessionError>,
    ) -> Result<T, String> {
        self.with(host, f).map_err(|e| error_chain(&e))
    }
}

/// Opens a session to each host (bootstrapping this ferry as the agent where
/// needed, at most `reach.max_parallel` at once), runs `f`, closes it;
/// answers in host order, a host's error as its whole chain as text, with
/// the hint when there is one. Fails only when this ferry cannot be added to
/// the store.
pub fn ask_each_host<T: Send>(
    store: &Store,
    hosts: &[&HostEntry],
    reach: &Reach,
    f: impl Fn(&mut HostSession) -> Result<T, SessionError> + Sync,
) -> Result<Vec<Result<T, String>>, StoreError> {
    let binary = AgentBinary::this_ferry(store)?;
    let sessions = Sessions::new(store, &binary, reach);
    Ok(for_hosts(hosts, reach.max_parallel, |host| {
        sessions.with(host, &f).map_err(|e| match e.hint() {
            Some(hint) => format!("{}\n  hint: {hint}", error_chain(&e)),
            None => error_chain(&e),
        })
    }))
}

/// `ferry deploy --copy-only`: copies each class's system to the selected
/// hosts of that class, class by class, with `binary` as the agent; `each`
/// gets a class's report as soon as its copy ended. Stops at the first copy
/// that could not run at all.
pub fn copy_each_class(
    store: &Store,
    binary: &AgentBinary,
    systems: &BTreeMap<String, StorePath>,
    hosts: &[&HostEntry],
    reach: &Reach,
    mut each: impl FnMut(&str, &StorePath, CopyReport),
) -> Result<(), CopyError> {
    let options = reach.copy_options();
    for (class, system) in systems {
        let class_hosts: Vec<HostEntry> = hosts
            .iter()
            .filter(|h| &h.class == class)
            .map(|h| (*h).clone())
            .collect();
        if class_hosts.is_empty() {
            continue;
        }
        let report = copy_closure(
            store,
            AgentSource::Ready(binary),
            &class_hosts,
            std::slice::from_ref(system),
            &options,
        )?;
        each(class, system, report);
    }
    Ok(())
}
