//! Loopback ports for tests that must name a port before the process that listens on it
//! starts (a sidecar's configuration names its app's port, for example).
//!
//! Binding port 0 and closing the listener again leaves a race: until the test binds the port
//! for real, any connection the machine opens may take it as its source port, and parallel
//! tests open many. Those source ports come from the kernel's ephemeral range
//! (`net.ipv4.ip_local_port_range`), so the ports handed out here lie below that range,
//! where only another explicit bind can take them.

use std::io;
use std::net::{Ipv4Addr, TcpListener};

/// The lowest port handed out.
const LOWEST_PORT: u16 = 10_000;
/// Linux's default start of the ephemeral range.
const DEFAULT_EPHEMERAL_START: u16 = 32_768;
/// The number of binds tried before giving up, which only a nearly full range could exhaust.
const ATTEMPTS: usize = 1_000;

/// Returns `count` distinct ports on 127.0.0.1 that were free a moment ago and that the
/// kernel does not give to outgoing connections. The caller binds them soon after; a port
/// taken in between makes that bind fail with "address in use" rather than reach another
/// test's server.
pub fn loopback_ports(count: usize) -> io::Result<Vec<u16>> {
    let end = ephemeral_start();
    let span = u32::from(end.saturating_sub(LOWEST_PORT).max(1));
    // Every listener is held until all are found, so the ports are distinct.
    let mut listeners = Vec::with_capacity(count);
    for _ in 0..ATTEMPTS {
        if listeners.len() == count {
            break;
        }
        let offset = rand::random::<u32>() % span;
        // `offset` is below `span`, which fits in a u16 with `LOWEST_PORT` added.
        let port = LOWEST_PORT + u16::try_from(offset).unwrap_or(0);
        if let Ok(listener) = TcpListener::bind((Ipv4Addr::LOCALHOST, port)) {
            listeners.push(listener);
        }
    }
    if listeners.len() < count {
        return Err(io::Error::new(
            io::ErrorKind::AddrInUse,
            format!(
                "found only {} of {count} free loopback ports in {LOWEST_PORT}..{end} after \
                 {ATTEMPTS} tries; stop the processes holding ports there",
                listeners.len()
            ),
        ));
    }
    listeners
        .iter()
        .map(|listener| listener.local_addr().map(|address| address.port()))
        .collect()
}

/// Returns the first port of the kernel's ephemeral range, or Linux's default where the
/// setting cannot be read.
fn ephemeral_start() -> u16 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|text| text.split_whitespace().next()?.parse().ok())
        .filter(|start| *start > LOWEST_PORT)
        .unwrap_or(DEFAULT_EPHEMERAL_START)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_distinct_and_below_the_ephemeral_range() {
        let ports = loopback_ports(16).expect("free ports");
        let mut sorted = ports.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), 16);
        let end = ephemeral_start();
        assert!(
            ports.iter().all(|port| (LOWEST_PORT..end).contains(port)),
            "{ports:?} not in {LOWEST_PORT}..{end}"
        );
        for port in ports {
            TcpListener::bind((Ipv4Addr::LOCALHOST, port)).expect("port is free again");
        }
    }
}
