//! The lab's network: one bridge in the root namespace, one netns and veth pair per host.
//!
//! Hosts get no default route: they reach the deployer (the bridge address)
//! and each other, and nothing else.
use super::{run, Lab, LabError, LabHost};

/// Eight hex digits derived from the lab name, used in link names
/// (`fb<tag>` is 10 bytes, `fv<tag><index>` 12: both under IFNAMSIZ).
pub fn lab_tag(name: &str) -> String {
    let hash = blake3::hash(name.as_bytes());
    hash.to_hex()[..8].to_string()
}

/// Whether network namespace `netns` exists.
pub fn netns_exists(netns: &str) -> bool {
    std::path::Path::new("/run/netns").join(netns).exists()
}

/// Whether link `name` exists in the root namespace.
pub fn link_exists(name: &str) -> bool {
    std::path::Path::new("/sys/class/net").join(name).exists()
}

/// Creates the lab bridge with the deployer's address on it, if missing.
pub fn ensure_bridge(lab: &Lab) -> Result<(), LabError> {
    if !link_exists(&lab.bridge) {
        run("ip", &["link", "add", &lab.bridge, "type", "bridge"])?;
    }
    let cidr = format!("{}/24", lab.bridge_address);
    let addrs = run("ip", &["-o", "-4", "addr", "show", "dev", &lab.bridge])?;
    if !addrs.contains(&format!(" {cidr} ")) {
        run("ip", &["addr", "add", &cidr, "dev", &lab.bridge])?;
    }
    run("ip", &["link", "set", &lab.bridge, "up"])?;
    Ok(())
}

/// Creates the host's namespace and its veth pair, addressed and up.
pub fn add_host(lab: &Lab, host: &LabHost) -> Result<(), LabError> {
    run("ip", &["netns", "add", &host.netns])?;
    run(
        "ip",
        &[
            "link",
            "add",
            &host.veth,
            "type",
            "veth",
            "peer",
            "name",
            "eth0",
            "netns",
            &host.netns,
        ],
    )?;
    run(
        "ip",
        &["link", "set", &host.veth, "master", &lab.bridge, "up"],
    )?;
    let cidr = format!("{}/24", host.address);
    run(
        "ip",
        &["-n", &host.netns, "addr", "add", &cidr, "dev", "eth0"],
    )?;
    run("ip", &["-n", &host.netns, "link", "set", "lo", "up"])?;
    run("ip", &["-n", &host.netns, "link", "set", "eth0", "up"])?;
    Ok(())
}

/// Removes the host's veth pair and namespace (whichever exist).
pub fn remove_host(host: &LabHost) -> Result<(), LabError> {
    if link_exists(&host.veth) {
        run("ip", &["link", "del", &host.veth])?;
    }
    if netns_exists(&host.netns) {
        run("ip", &["netns", "del", &host.netns])?;
    }
    Ok(())
}

/// Removes the lab bridge if it exists.
pub fn remove_bridge(lab: &Lab) -> Result<(), LabError> {
    if link_exists(&lab.bridge) {
        run("ip", &["link", "del", &lab.bridge])?;
    }
    Ok(())
}
