//! The lab provider: hosts declared in the site, addresses assigned on the lab bridge.
//!
//! Addresses are a pure function of the spec (host i gets the subnet's
//! address `.2 + i`; `.1` is the bridge), so evaluation can embed them in
//! closures before the lab exists.
use std::net::Ipv4Addr;

use ferry_lang::inventory::{lab_subnet_network, HostEntry, LabSpec};

/// The subnet a lab uses when the site names none.
pub const DEFAULT_SUBNET: &str = "10.237.0.0/24";

/// Errors of resolving a lab's hosts from its declaration.
#[derive(Debug, thiserror::Error)]
pub enum LabInventoryError {
    /// The subnet is not an IPv4 /24.
    #[error("lab subnet `{0}` is not an IPv4 /24 network like `10.237.0.0/24`")]
    BadSubnet(String),
    /// More hosts than a /24 holds.
    #[error("the lab has {0} hosts but a /24 subnet holds at most 253")]
    TooManyHosts(usize),
}

/// The network part of a lab's /24 subnet.
pub fn subnet_base(spec: &LabSpec) -> Result<Ipv4Addr, LabInventoryError> {
    let text = spec.subnet.as_deref().unwrap_or(DEFAULT_SUBNET);
    lab_subnet_network(text).ok_or_else(|| LabInventoryError::BadSubnet(text.to_string()))
}

/// The address of the `index`-th host (0-based) in the lab's subnet.
pub fn host_address(base: Ipv4Addr, index: usize) -> Ipv4Addr {
    let [a, b, c, _] = base.octets();
    // `resolve` bounds `index` to at most 252, so this fits in a byte.
    Ipv4Addr::new(a, b, c, (index + 2) as u8)
}

/// Assigns every declared lab host its address.
pub fn resolve(spec: &LabSpec) -> Result<Vec<HostEntry>, LabInventoryError> {
    let base = subnet_base(spec)?;
    if spec.hosts.len() > 253 {
        return Err(LabInventoryError::TooManyHosts(spec.hosts.len()));
    }
    Ok(spec
        .hosts
        .iter()
        .enumerate()
        .map(|(i, host)| HostEntry {
            name: host.name.clone(),
            class: host.class.clone(),
            address: host_address(base, i).to_string(),
            user: Some("root".to_string()),
            port: None,
            labels: host.labels.clone(),
            identity_file: None,
        })
        .collect())
}
