//! Per-request work besides the signature: route matching with 1 to 1000 rules, JWKS lookup
//! by `kid` with 1 and 100 keys, and the header rewrite before forwarding.
//!
//! Route matching is measured for a request that matches the first rule, one that matches the
//! last rule and one that matches none. Keys are looked up for the last key, the worst case of
//! a scan. A cost that grows with the count shows up as a difference between the counts.

mod support;

use std::net::IpAddr;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use http::{HeaderMap, HeaderName, HeaderValue, Method};
use portcullis::identity::{set_identity_headers, strip_identity_headers};
use portcullis::keys::KeyStore;
use portcullis::metrics::Metrics;
use portcullis::policy::{check_path, RoutePolicy};
use portcullis::upstream::headers::{append_forwarded_for, remove_hop_by_hop, set_forwarded_proto};
use portcullis::verify::Verifier;
use portcullis_loadtest::keys::SigningAlgorithm;

fn routes_toml(count: usize) -> String {
    (0..count)
        .map(|index| {
            format!("[[routes]]\nprefix = \"/service-{index}\"\nmethods = [\"GET\"]\nscopes = [\"foo\"]\n")
        })
        .collect()
}

fn route_matching(c: &mut Criterion) {
    let folder = tempfile::tempdir().unwrap();
    let keys = support::keys(SigningAlgorithm::EdDsa, 1);
    let mut group = c.benchmark_group("routes");
    for count in [1, 10, 100, 1000] {
        let config = support::config(folder.path(), &keys, &["EdDSA"], 0, &routes_toml(count));
        let policy = RoutePolicy::new(config.routes);
        let cases = [
            ("first_rule", "/service-0/orders/7".to_string()),
            ("last_rule", format!("/service-{}/orders/7", count - 1)),
            ("no_match", "/unknown/orders/7".to_string()),
        ];
        for (name, path) in cases {
            group.bench_function(BenchmarkId::new(name, count), |b| {
                b.iter(|| policy.decide(&Method::GET, std::hint::black_box(&path)))
            });
        }
    }
    group.bench_function("check_path", |b| {
        b.iter(|| check_path(&Method::GET, std::hint::black_box("/orders/7/status")))
    });
    group.finish();
}

fn key_lookup(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut group = c.benchmark_group("jwks_lookup");
    for count in [1, 100] {
        let folder = tempfile::tempdir().unwrap();
        let keys = support::keys(SigningAlgorithm::EdDsa, count);
        let config = support::config(folder.path(), &keys, &["EdDSA"], 0, "");
        let store = KeyStore::new(&config.providers, Metrics::new()).unwrap();
        runtime.block_on(store.refresh_all()).unwrap();
        let provider = store.provider(support::ISSUER).unwrap();
        let kid = format!("key-{}", count - 1);
        group.bench_function(BenchmarkId::new("last_kid", count), |b| {
            b.iter(|| support::complete(store.find_key(provider, Some(&kid))).unwrap())
        });
    }
    group.finish();
}

/// A request as a browser-like client sends it, with a forged identity header and the
/// hop-by-hop headers a proxy must drop.
fn client_headers(token: &str) -> HeaderMap {
    let mut headers = HeaderMap::new();
    let pairs = [
        ("host", "orders.example"),
        ("user-agent", "bench/1.0"),
        ("accept", "application/json"),
        ("accept-encoding", "gzip, deflate"),
        ("connection", "keep-alive"),
        ("keep-alive", "timeout=5"),
        ("x-request-id", "4bf92f3577b34da6a3ce929d0e0e4736"),
        ("x-portcullis-subject", "admin"),
        ("x-forwarded-for", "203.0.113.7"),
    ];
    for (name, value) in pairs {
        headers.append(
            HeaderName::from_static(name),
            HeaderValue::from_static(value),
        );
    }
    headers.insert(
        http::header::AUTHORIZATION,
        HeaderValue::from_str(&format!("Bearer {token}")).unwrap(),
    );
    headers
}

fn header_rewrite(c: &mut Criterion) {
    let folder = tempfile::tempdir().unwrap();
    let keys = support::keys(SigningAlgorithm::EdDsa, 1);
    let config = support::config(folder.path(), &keys, &["EdDSA"], 0, "");
    let store = KeyStore::new(&config.providers, Metrics::new()).unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(store.refresh_all()).unwrap();
    let verifier = Verifier::new(
        Arc::clone(&store),
        &config.providers,
        &config.cache,
        Metrics::new(),
    );
    let token = support::tokens(&keys[0], 1).remove(0);
    let verified = support::complete(verifier.verify(&token)).unwrap();
    let peer: IpAddr = "127.0.0.1".parse().unwrap();
    let template = client_headers(&token);

    c.bench_function("header_rewrite", |b| {
        b.iter_batched_ref(
            || template.clone(),
            |headers| {
                remove_hop_by_hop(headers);
                strip_identity_headers(headers);
                set_identity_headers(headers, &verified, &config.claim_headers);
                append_forwarded_for(headers, peer);
                set_forwarded_proto(headers, true);
            },
            criterion::BatchSize::SmallInput,
        )
    });
}

criterion_group!(benches, route_matching, key_lookup, header_rewrite);
criterion_main!(benches);
