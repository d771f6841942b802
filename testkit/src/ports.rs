//! Loopback ports for tests that must name a port before the process that listens on it
//! starts (a sidecar's configuration names its app's port, for example).
//!
//! Binding port 0 and closing the listener again leaves a race: until the test binds the port
//! for real, any connection the machine opens may take it as its source port, and parallel
//! tests open many. Those source ports come from the kernel's ephemeral range
//! (`net.ipv4.ip_local_port_range`), so the ports handed out here lie outside that range,
//! where only another explicit bind can take them.

use std::collections::HashSet;
use std::io;
use std::net::{Ipv4Addr, TcpListener};
use std::ops::RangeInclusive;
use std::sync::Mutex;

/// The lowest port handed out, clear of the well-known ports and most fixed service ports.
const LOWEST_PORT: u16 = 10_000;
/// Linux's default ephemeral range, used when the setting cannot be read.
const DEFAULT_EPHEMERAL: RangeInclusive<u16> = 32_768..=60_999;
/// The minimum number of ports outside the ephemeral range to choose from. Below it, the
/// kernel chooses.
const MIN_SPAN: u32 = 256;
/// The number of binds tried before giving up, which only a nearly full range could exhaust.
const ATTEMPTS: usize = 1_000;

/// Every port handed out by this process, so that two calls never return the same port.
static HANDED_OUT: Mutex<Option<HashSet<u16>>> = Mutex::new(None);

/// Returns `count` distinct ports on 127.0.0.1 that were free a moment ago and that the
/// kernel does not give to outgoing connections. The caller binds them soon after; a port
/// taken in between makes that bind fail with "address in use" rather than reach another
/// test's server. No port is returned twice in one process.
pub fn loopback_ports(count: usize) -> io::Result<Vec<u16>> {
    let spans = free_spans(ephemeral_range());
    let total: u32 = spans.iter().map(span_len).sum();
    // A poisoned lock only means another test panicked while holding it; the set is intact.
    let mut handed_out = HANDED_OUT
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let handed_out = handed_out.get_or_insert_with(HashSet::new);
    // Every listener is held until all are found, so the ports are distinct.
    let mut listeners = Vec::with_capacity(count);
    for _ in 0..ATTEMPTS {
        if listeners.len() == count {
            break;
        }
        // NOTE: with almost the whole port range ephemeral, nothing is safe from outgoing
        // connections, and the kernel's choice is as good as any.
        let port = match total >= MIN_SPAN {
            true => nth_port(&spans, rand::random::<u32>() % total),
            false => 0,
        };
        let Ok(listener) = TcpListener::bind((Ipv4Addr::LOCALHOST, port)) else {
            continue;
        };
        let bound = listener.local_addr()?.port();
        if handed_out.insert(bound) {
            listeners.push((listener, bound));
        }
    }
    if listeners.len() < count {
        return Err(io::Error::new(
            io::ErrorKind::AddrInUse,
            format!(
                "found only {} of {count} free loopback ports outside the ephemeral range \
                 (ports {spans:?}) after {ATTEMPTS} tries; stop the processes holding ports \
                 there",
                listeners.len()
            ),
        ));
    }
    Ok(listeners.into_iter().map(|(_, port)| port).collect())
}

/// Returns the ports from [`LOWEST_PORT`] up that lie outside `ephemeral`: the span below it
/// and the span above it, either possibly empty.
fn free_spans(ephemeral: RangeInclusive<u16>) -> Vec<RangeInclusive<u16>> {
    let mut spans = Vec::new();
    if *ephemeral.start() > LOWEST_PORT {
        spans.push(LOWEST_PORT..=ephemeral.start() - 1);
    }
    if *ephemeral.end() < u16::MAX {
        spans.push(LOWEST_PORT.max(ephemeral.end() + 1)..=u16::MAX);
    }
    spans
}

fn span_len(span: &RangeInclusive<u16>) -> u32 {
    u32::from(*span.end()) + 1 - u32::from(*span.start())
}

/// Returns the `index`th port of `spans` taken one after another; `index` must be below
/// their total length.
fn nth_port(spans: &[RangeInclusive<u16>], mut index: u32) -> u16 {
    for span in spans {
        let len = span_len(span);
        if index < len {
            // `index` is below the span's length, so the sum stays within the span.
            return u16::try_from(u32::from(*span.start()) + index).unwrap_or(0);
        }
        index -= len;
    }
    0
}

/// Returns the kernel's ephemeral range, or Linux's default where it cannot be read.
fn ephemeral_range() -> RangeInclusive<u16> {
    let text = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range");
    let bounds: Option<Vec<u16>> = text
        .ok()
        .map(|text| {
            text.split_whitespace()
                .map(|word| word.parse().ok())
                .collect()
        })
        .and_then(|bounds: Option<Vec<u16>>| bounds);
    match bounds.as_deref() {
        Some(&[start, end]) if start <= end => start..=end,
        _ => DEFAULT_EPHEMERAL,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_distinct_and_outside_the_ephemeral_range() {
        let ports = loopback_ports(16).expect("free ports");
        let mut sorted = ports.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), 16);
        let ephemeral = ephemeral_range();
        // Where nearly every port is ephemeral, the kernel chooses and nothing is outside.
        if free_spans(ephemeral.clone())
            .iter()
            .map(span_len)
            .sum::<u32>()
            >= MIN_SPAN
        {
            assert!(
                ports.iter().all(|port| !ephemeral.contains(port)),
                "{ports:?} inside {ephemeral:?}"
            );
        }
        for port in ports {
            TcpListener::bind((Ipv4Addr::LOCALHOST, port)).expect("port is free again");
        }
    }

    #[test]
    fn later_calls_return_other_ports() {
        let first: HashSet<u16> = (0..200)
            .map(|_| loopback_ports(1).expect("a port")[0])
            .collect();
        assert_eq!(first.len(), 200);
    }

    #[test]
    fn spans_avoid_the_ephemeral_range() {
        assert_eq!(
            free_spans(32_768..=60_999),
            [10_000..=32_767, 61_000..=65_535]
        );
        assert_eq!(free_spans(1_024..=65_000), [65_001..=65_535]);
        assert_eq!(free_spans(10_000..=65_000), [65_001..=65_535]);
        assert_eq!(
            free_spans(10_004..=65_000),
            [10_000..=10_003, 65_001..=65_535]
        );
        assert_eq!(free_spans(1_024..=65_535), []);
        assert_eq!(
            free_spans(40_000..=50_000),
            [10_000..=39_999, 50_001..=65_535]
        );
    }

    #[test]
    fn nth_port_walks_the_spans_in_order() {
        let spans = [10_000..=10_003, 65_001..=65_535];
        assert_eq!(nth_port(&spans, 0), 10_000);
        assert_eq!(nth_port(&spans, 3), 10_003);
        assert_eq!(nth_port(&spans, 4), 65_001);
        assert_eq!(nth_port(&spans, 538), 65_535);
    }
}
