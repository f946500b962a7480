//! The fixed environment ferry gives every process it starts on a host
//! (services, hooks, health-check commands, `useradd`).

/// `PATH` of services and hooks unless their environment sets one.
pub const BASE_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
