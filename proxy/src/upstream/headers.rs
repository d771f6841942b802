//! Header rules for forwarded messages: hop-by-hop headers are removed in both directions,
//! inbound requests lose routing-override headers and get `X-Forwarded-For` and
//! `X-Forwarded-Proto`.

use std::net::{IpAddr, Ipv4Addr};

use bytes::Bytes;

use http::header::{
    CONNECTION, PROXY_AUTHENTICATE, PROXY_AUTHORIZATION, TE, TRAILER, TRANSFER_ENCODING, UPGRADE,
};
use http::{HeaderMap, HeaderName, HeaderValue};

pub const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
pub const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");

/// Headers that describe one connection rather than the message, so a proxy must not
/// forward them. `Keep-Alive` and `Proxy-Connection` date from before HTTP/1.1, and old
/// clients still send them.
const HOP_BY_HOP: [HeaderName; 9] = [
    CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    PROXY_AUTHENTICATE,
    PROXY_AUTHORIZATION,
    TE,
    TRAILER,
    TRANSFER_ENCODING,
    UPGRADE,
];

/// Removes every hop-by-hop header: the fixed list above and every header named in a
/// `Connection` value (all copies of each).
pub fn remove_hop_by_hop(headers: &mut HeaderMap) {
    if headers.contains_key(CONNECTION) {
        let named: Vec<HeaderName> = headers
            .get_all(CONNECTION)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
            .collect();
        for name in named {
            headers.remove(name);
        }
    }
    remove_matching(headers, |name| HOP_BY_HOP.contains(name));
}

/// Removes every copy of every header whose name `doomed` selects. Most requests carry none
/// of them, so one pass over the names present usually ends it, without a lookup per name
/// on the list.
fn remove_matching(headers: &mut HeaderMap, doomed: impl Fn(&HeaderName) -> bool) {
    if !headers.keys().any(&doomed) {
        return;
    }
    let names: Vec<HeaderName> = headers
        .keys()
        .filter(|name| doomed(name))
        .cloned()
        .collect();
    for name in names {
        headers.remove(name);
    }
}

/// Headers some frameworks read to override the request's path or method: IIS and Symfony
/// (`X-Original-URL`, `X-Rewrite-URL`), nginx setups (`X-Original-URI`), Traefik
/// (`X-Forwarded-Uri`, `X-Forwarded-Prefix`), Envoy (`X-Envoy-Original-Path`) and the
/// method-override middleware of many frameworks. A client could use them to reach a route
/// other than the one the sidecar authorized, so they never reach the app.
const ROUTING_OVERRIDES: [&str; 10] = [
    "x-original-url",
    "x-rewrite-url",
    "x-original-uri",
    "x-forwarded-uri",
    "x-forwarded-path",
    "x-forwarded-prefix",
    "x-envoy-original-path",
    "x-http-method-override",
    "x-http-method",
    "x-method-override",
];

/// Removes every copy of the [`ROUTING_OVERRIDES`] headers.
pub fn remove_routing_overrides(headers: &mut HeaderMap) {
    remove_matching(headers, |name| ROUTING_OVERRIDES.contains(&name.as_str()));
}

/// Appends `peer` to `X-Forwarded-For`, merging all existing copies into one
/// comma-separated value so the app gets a single header.
pub fn append_forwarded_for(headers: &mut HeaderMap, peer: IpAddr) {
    let mut value = Vec::with_capacity(64);
    for prior in headers.get_all(&X_FORWARDED_FOR) {
        value.extend_from_slice(prior.as_bytes());
        value.extend_from_slice(b", ");
    }
    // A dual-stack listener reports IPv4 clients as ::ffff:a.b.c.d; apps expect a.b.c.d.
    match peer.to_canonical() {
        IpAddr::V4(address) => push_ipv4(&mut value, address),
        IpAddr::V6(address) => value.extend_from_slice(address.to_string().as_bytes()),
    }
    // Every part is a valid header value and ", " adds only visible ASCII, so the join is
    // valid too. If it ever were not, the peer address alone is still correct.
    let merged = HeaderValue::from_maybe_shared(Bytes::from(value))
        .or_else(|_| HeaderValue::from_str(&peer.to_canonical().to_string()))
        .unwrap_or_else(|_| HeaderValue::from_static("unknown"));
    headers.insert(X_FORWARDED_FOR, merged);
}

/// Writes `address` in dotted decimal, as `Display` does, without the formatting machinery
/// that would otherwise run on every request.
fn push_ipv4(out: &mut Vec<u8>, address: Ipv4Addr) {
    for (index, octet) in address.octets().into_iter().enumerate() {
        if index > 0 {
            out.push(b'.');
        }
        if octet >= 100 {
            out.push(b'0' + octet / 100);
        }
        if octet >= 10 {
            out.push(b'0' + octet / 10 % 10);
        }
        out.push(b'0' + octet % 10);
    }
}

/// Sets `X-Forwarded-Proto` to the scheme the downstream used, replacing any client value.
pub fn set_forwarded_proto(headers: &mut HeaderMap, tls: bool) {
    let proto = if tls { "https" } else { "http" };
    headers.insert(X_FORWARDED_PROTO, HeaderValue::from_static(proto));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header_map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        headers
    }

    #[test]
    fn hop_by_hop_and_connection_named_removed() {
        let mut headers = header_map(&[
            ("connection", "close, X-Secret"),
            ("connection", "x-other"),
            ("keep-alive", "timeout=5"),
            ("te", "trailers"),
            ("upgrade", "websocket"),
            ("proxy-authorization", "Basic abc"),
            ("x-secret", "1"),
            ("x-other", "2"),
            ("x-kept", "3"),
            ("authorization", "Bearer t"),
        ]);
        remove_hop_by_hop(&mut headers);
        let names: Vec<&str> = headers.keys().map(HeaderName::as_str).collect();
        assert_eq!(names, vec!["x-kept", "authorization"]);
    }

    #[test]
    fn routing_overrides_removed() {
        let mut headers = header_map(&[
            ("x-original-url", "/healthz"),
            ("X-Forwarded-Uri", "/healthz"),
            ("x-http-method-override", "GET"),
            ("x-http-method-override", "DELETE"),
            ("x-kept", "1"),
        ]);
        remove_routing_overrides(&mut headers);
        let names: Vec<&str> = headers.keys().map(HeaderName::as_str).collect();
        assert_eq!(names, vec!["x-kept"]);
    }

    #[test]
    fn forwarded_for_merges_copies() {
        let mut headers = header_map(&[
            ("x-forwarded-for", "203.0.113.7"),
            ("x-forwarded-for", "198.51.100.2"),
        ]);
        append_forwarded_for(&mut headers, "127.0.0.1".parse().unwrap());
        let values: Vec<_> = headers.get_all(&X_FORWARDED_FOR).iter().collect();
        assert_eq!(values, vec!["203.0.113.7, 198.51.100.2, 127.0.0.1"]);
    }

    #[test]
    fn forwarded_for_unwraps_mapped_ipv4() {
        let mut headers = HeaderMap::new();
        append_forwarded_for(&mut headers, "::ffff:192.0.2.1".parse().unwrap());
        assert_eq!(headers[&X_FORWARDED_FOR], "192.0.2.1");
    }

    #[test]
    fn forwarded_for_writes_addresses_as_display_does() {
        let mut addresses: Vec<IpAddr> = [0u8, 7, 10, 99, 100, 199, 255]
            .iter()
            .map(|&octet| IpAddr::from([octet, 255 - octet, octet / 2, 1]))
            .collect();
        addresses.push("2001:db8::1".parse().unwrap());
        for address in addresses {
            let mut headers = HeaderMap::new();
            append_forwarded_for(&mut headers, address);
            assert_eq!(headers[&X_FORWARDED_FOR], address.to_string().as_str());
        }
    }

    #[test]
    fn forwarded_proto_overwrites_client_value() {
        let mut headers = header_map(&[("x-forwarded-proto", "https")]);
        set_forwarded_proto(&mut headers, false);
        assert_eq!(headers.get_all(&X_FORWARDED_PROTO).iter().count(), 1);
        assert_eq!(headers[&X_FORWARDED_PROTO], "http");
    }
}
