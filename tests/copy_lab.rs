//! The copy protocol against real lab hosts over real SSH (needs root).
mod common;

use common::{closure_of, text, Fleet};

#[test]
fn copy_to_three_lab_hosts_bootstraps_the_agent_and_sends_the_closure_needs_root() {
    let fleet = Fleet::up("t-copy3", "10.237.21.0/24", 3);
    let top = closure_of(&fleet.store, "site", 25);
    let closure = fleet.store.closure(&[top.clone()]).unwrap();
    assert_eq!(closure.len(), 25);

    let (out, results) = fleet.copy(&["h0", "h1", "h2"], &[top.clone()]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(results.len(), 3, "{}", text(&out));
    for r in &results {
        assert_eq!(r["ok"], true, "{r}");
        assert_eq!(r["agent_uploaded"], true, "{r}");
        assert_eq!(r["objects_sent"], 25, "{r}");
        assert_eq!(r["objects_registered"], 25, "{r}");
    }
    for host in ["h0", "h1", "h2"] {
        // The host's store holds exactly the closure plus the agent itself.
        let mut expected: Vec<String> = closure.iter().map(|p| p.base_name().to_string()).collect();
        let on_host = fleet.host_objects(host);
        let agent: Vec<_> = on_host
            .iter()
            .filter(|n| n.contains("-ferry-"))
            .cloned()
            .collect();
        assert_eq!(agent.len(), 1, "{on_host:?}");
        expected.extend(agent);
        expected.sort();
        assert_eq!(on_host, expected);
    }

    // Again: nothing is missing, so nothing but the session's messages is sent
    // and the agent is not uploaded again.
    let (out, results) = fleet.copy(&["h0", "h1", "h2"], &[top]);
    assert!(out.status.success(), "{}", text(&out));
    for r in &results {
        assert_eq!(r["agent_uploaded"], false, "{r}");
        assert_eq!(r["objects_sent"], 0, "{r}");
        assert_eq!(r["exchanges"], 3, "handshake, agent status, query: {r}");
    }
}
