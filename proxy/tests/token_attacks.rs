//! Published JWT attack classes, each sent as a real request to an in-process sidecar in
//! front of a recording app, all on 127.0.0.1. Every case must end in 401 `invalid_token`
//! with nothing forwarded: each test first shows that a valid token reaches the app, then
//! checks after every attack that the app has still seen only that one request.

mod common;

use http::StatusCode;
use jsonwebtoken::Algorithm;
use serde_json::{json, Value};
use tempfile::TempDir;

use common::signing::{algorithm_name, b64, jwk_set, jwks, sign_hmac, TestKey};
use common::tokens::{
    assemble, assert_invalid_token, claims, claims_with, config_toml, hex, provider_toml, start,
    unb64, KeyServer, SignDefaultClaims, AUDIENCE, ISSUER,
};
use common::{get, now, App, Reply};
use portcullis::RunningSidecar;

/// Order of the P-256 group (FIPS 186-4, D.1.2.3): valid ECDSA scalars are 1 to n - 1.
const P256_ORDER: &str = "ffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551";
/// Order of the Ed25519 base point (RFC 8032, section 5.1), little-endian as in signatures.
const ED25519_ORDER_LE: &str = "edd3f55c1a631258d69cf7a2def9de1400000000000000000000000000000010";

/// A sidecar with one provider, its key server and the app behind it.
struct Fixture {
    app: App,
    sidecar: RunningSidecar,
    server: KeyServer,
    _dir: TempDir,
}

impl Fixture {
    /// Starts a sidecar whose provider serves `keys` and has `provider_extra` lines, with
    /// `body_extra` appended to the configuration.
    async fn start(keys: &[&Value], provider_extra: &str, body_extra: &str) -> Fixture {
        let app = App::start().await;
        let server = KeyServer::start(jwk_set(keys)).await;
        let dir = tempfile::tempdir().expect("temporary folder");
        let body = format!(
            "{}\n{body_extra}",
            provider_toml(ISSUER, AUDIENCE, &server, provider_extra)
        );
        let sidecar = start(dir.path(), &config_toml(app.addr, &body)).await;
        Fixture {
            app,
            sidecar,
            server,
            _dir: dir,
        }
    }

    async fn send(&self, token: &str) -> Reply {
        get(self.sidecar.inbound_addr(), "/orders", Some(token))
            .await
            .expect("request to the sidecar")
    }

    /// Sends `token` and asserts that it reaches the app.
    async fn assert_accepted(&self, token: &str, case: &str) {
        let before = self.app.requests().len();
        let reply = self.send(token).await;
        assert_eq!(reply.status, StatusCode::OK, "{case}: {}", reply.body);
        assert_eq!(self.app.requests().len(), before + 1, "{case}");
    }

    /// Sends every token and asserts a 401 `invalid_token` that never reaches the app.
    async fn assert_all_rejected(&self, cases: &[(String, String)]) {
        let before = self.app.requests().len();
        for (case, token) in cases {
            let reply = self.send(token).await;
            assert_invalid_token(&reply, case);
            assert_eq!(
                self.app.requests().len(),
                before,
                "{case}: the app must not see the request"
            );
        }
    }
}

fn case(name: impl Into<String>, token: String) -> (String, String) {
    (name.into(), token)
}

/// Splits a compact JWS into its three encoded segments.
fn segments(token: &str) -> (String, String, String) {
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3, "{token}");
    (parts[0].into(), parts[1].into(), parts[2].into())
}

/// Replaces the signature segment of `token` with `signature`.
fn with_signature(token: &str, signature: &[u8]) -> String {
    let (header, payload, _) = segments(token);
    format!("{header}.{payload}.{}", b64(signature))
}

#[tokio::test]
async fn algorithm_confusion_rejected() {
    let rsa = TestKey::rsa("rsa-1", 0);
    let ec = TestKey::ec("ec-1");
    let ed = TestKey::ed25519("ed-1");
    let fx = Fixture::start(&[&rsa.jwk, &ec.jwk, &ed.jwk], "", "").await;
    for key in [&rsa, &ec, &ed] {
        fx.assert_accepted(&key.token(), &key.kid).await;
    }
    let payload = claims().to_string();
    let mut cases = Vec::new();

    for alg in ["none", "None", "NONE", "nOnE"] {
        let header = json!({ "alg": alg, "typ": "at+jwt", "kid": "rsa-1" }).to_string();
        cases.push(case(
            format!("alg {alg}, no signature"),
            format!("{}.{}.", b64(&header), b64(&payload)),
        ));
        cases.push(case(
            format!("alg {alg}, some signature"),
            assemble(&header, &payload, b"signature"),
        ));
        // A genuine RS256 signature over the very same bytes, so only the header lies.
        cases.push(case(
            format!("alg {alg}, real RSA signature"),
            rsa.sign_raw_with(Algorithm::RS256, &header, &payload),
        ));
    }

    for key in [&rsa, &ec, &ed] {
        for (encoding, secret) in &key.public_encodings {
            for hmac in [Algorithm::HS256, Algorithm::HS384, Algorithm::HS512] {
                let name = algorithm_name(hmac);
                let header = json!({ "alg": name, "typ": "at+jwt", "kid": key.kid }).to_string();
                cases.push(case(
                    format!("{name} keyed with the {} {encoding}", key.kid),
                    sign_hmac(hmac, secret, &header, &payload),
                ));
            }
        }
    }
    let no_kid = json!({ "alg": "HS256" }).to_string();
    cases.push(case(
        "HS256 without kid",
        sign_hmac(
            Algorithm::HS256,
            &rsa.public_encodings[0].1,
            &no_kid,
            &payload,
        ),
    ));

    let mismatches = [
        ("ES256", "rsa-1", &ec),
        ("EdDSA", "rsa-1", &ed),
        ("RS256", "ec-1", &rsa),
        ("EdDSA", "ec-1", &ed),
        ("RS256", "ed-1", &rsa),
        ("ES256", "ed-1", &ec),
    ];
    for (alg, kid, signer) in mismatches {
        let header = json!({ "alg": alg, "typ": "at+jwt", "kid": kid }).to_string();
        cases.push(case(
            format!("{alg} header on the key {kid}"),
            signer.sign_raw(&header, &payload),
        ));
    }
    // RS384 fits the RSA key but is neither configured nor the key's pinned algorithm.
    let rs384 = json!({ "alg": "RS384", "kid": "rsa-1" }).to_string();
    cases.push(case(
        "RS384 not configured",
        rsa.sign_raw_with(Algorithm::RS384, &rs384, &payload),
    ));

    fx.assert_all_rejected(&cases).await;
}

#[tokio::test]
async fn ps256_only_where_configured() {
    let rsa = TestKey::rsa("rsa-1", 0);
    // Without `alg` in the JWK, the provider's `algorithms` alone decide.
    let unpinned = rsa.unpinned_jwk();
    let rs256_only = Fixture::start(&[&unpinned], "algorithms = [\"RS256\"]", "").await;
    let with_ps256 = Fixture::start(&[&unpinned], "algorithms = [\"RS256\", \"PS256\"]", "").await;
    let ps256_header = json!({ "alg": "PS256", "typ": "at+jwt", "kid": "rsa-1" }).to_string();
    let ps256 = rsa.sign_raw_with(Algorithm::PS256, &ps256_header, &claims().to_string());

    rs256_only.assert_accepted(&rsa.token(), "RS256").await;
    rs256_only
        .assert_all_rejected(&[case("PS256 not configured", ps256.clone())])
        .await;
    with_ps256.assert_accepted(&rsa.token(), "RS256").await;
    with_ps256.assert_accepted(&ps256, "PS256 configured").await;

    // A JWK pinned to RS256 rejects PS256 even where the provider allows it.
    let pinned = Fixture::start(&[&rsa.jwk], "algorithms = [\"RS256\", \"PS256\"]", "").await;
    pinned
        .assert_all_rejected(&[case("PS256 on a key pinned to RS256", ps256)])
        .await;
}

#[tokio::test]
async fn signature_bytes_rejected() {
    let rsa = TestKey::rsa("rsa-1", 0);
    let ec = TestKey::ec("ec-1");
    let ed = TestKey::ed25519("ed-1");
    let fx = Fixture::start(&[&rsa.jwk, &ec.jwk, &ed.jwk], "", "").await;
    let ec_token = ec.token();
    let ed_token = ed.token();
    let rsa_token = rsa.token();
    for token in [&ec_token, &ed_token, &rsa_token] {
        fx.assert_accepted(token, "valid").await;
    }

    let order = hex(P256_ORDER);
    let raw = unb64(&segments(&ec_token).2);
    assert_eq!(raw.len(), 64, "ES256 signatures are r and s, 32 bytes each");
    let (r, s) = raw.split_at(32);
    let mut order_plus_one = order.clone();
    order_plus_one[31] += 1;
    let der = p256::ecdsa::Signature::from_slice(&raw)
        .expect("valid signature")
        .to_der();
    let mut cases = vec![
        case("ECDSA r = s = 0", with_signature(&ec_token, &[0; 64])),
        case(
            "ECDSA r = 0",
            with_signature(&ec_token, &[&[0; 32], s].concat()),
        ),
        case(
            "ECDSA s = 0",
            with_signature(&ec_token, &[r, &[0; 32]].concat()),
        ),
        case(
            "ECDSA r = n",
            with_signature(&ec_token, &[&order, s].concat()),
        ),
        case(
            "ECDSA s = n",
            with_signature(&ec_token, &[r, &order].concat()),
        ),
        case(
            "ECDSA s = n + 1",
            with_signature(&ec_token, &[r, &order_plus_one].concat()),
        ),
        case(
            "ECDSA r = 2^256 - 1",
            with_signature(&ec_token, &[&[0xff; 32], s].concat()),
        ),
        case("ECDSA in DER", with_signature(&ec_token, der.as_bytes())),
        case("ECDSA 63 bytes", with_signature(&ec_token, &raw[..63])),
        case(
            "ECDSA 65 bytes",
            with_signature(&ec_token, &[&raw[..], &[0]].concat()),
        ),
        case("ECDSA r only", with_signature(&ec_token, r)),
    ];

    let ed_raw = unb64(&segments(&ed_token).2);
    assert_eq!(ed_raw.len(), 64);
    // S + L is the same scalar modulo L; RFC 8032 requires S < L, so it must fail.
    let mut s_plus_order = ed_raw[32..].to_vec();
    let mut carry = 0u16;
    for (byte, add) in s_plus_order.iter_mut().zip(hex(ED25519_ORDER_LE)) {
        let sum = u16::from(*byte) + u16::from(add) + carry;
        *byte = (sum & 0xff) as u8;
        carry = sum >> 8;
    }
    cases.extend([
        case(
            "Ed25519 extra byte",
            with_signature(&ed_token, &[&ed_raw[..], &[0]].concat()),
        ),
        case("Ed25519 63 bytes", with_signature(&ed_token, &ed_raw[..63])),
        case(
            "Ed25519 S + L",
            with_signature(&ed_token, &[&ed_raw[..32], &s_plus_order].concat()),
        ),
    ]);

    let rsa_raw = unb64(&segments(&rsa_token).2);
    cases.extend([
        case(
            "RSA extra byte",
            with_signature(&rsa_token, &[&rsa_raw[..], &[0]].concat()),
        ),
        case(
            "RSA leading zero",
            with_signature(&rsa_token, &[&[0], &rsa_raw[..]].concat()),
        ),
        case(
            "RSA one byte short",
            with_signature(&rsa_token, &rsa_raw[1..]),
        ),
    ]);

    // The signature must cover the exact received segments, not their decoded meaning.
    let (header, payload, signature) = segments(&ec_token);
    let decoded_claims: Value = serde_json::from_slice(&unb64(&payload)).expect("claims");
    let spaced_header = b64(format!(
        " {}",
        String::from_utf8(unb64(&header)).expect("UTF-8")
    ));
    let pretty_payload = b64(serde_json::to_string_pretty(&decoded_claims).expect("JSON"));
    let mut admin = decoded_claims.clone();
    admin["sub"] = json!("admin");
    let other_token = ec.token();
    cases.extend([
        case(
            "header re-encoded",
            format!("{spaced_header}.{payload}.{signature}"),
        ),
        case(
            "payload re-encoded",
            format!("{header}.{pretty_payload}.{signature}"),
        ),
        case(
            "payload changed",
            format!("{header}.{}.{signature}", b64(admin.to_string())),
        ),
        case(
            "signature of another token",
            format!("{header}.{payload}.{}", segments(&other_token).2),
        ),
        case(
            "signature by another EC key",
            with_signature(&ec_token, &unb64(&segments(&TestKey::ec("ec-1").token()).2)),
        ),
    ]);

    fx.assert_all_rejected(&cases).await;
}

#[tokio::test]
async fn encoding_variants_rejected() {
    let ec = TestKey::ec("ec-1");
    let fx = Fixture::start(
        &[&ec.jwk],
        "",
        "[token_sources]\nquery_parameter = \"access_token\"\n",
    )
    .await;
    let token = ec.token();
    fx.assert_accepted(&token, "valid").await;
    let (header, payload, signature) = segments(&token);
    let claims_text = claims().to_string();
    let header_text = ec.header().to_string();
    let sign = |header: &str, payload: &str| ec.sign_raw(header, payload);

    // Standard base64 spells `-` and `_` as `+` and `/`.
    let mut standard = ec.token();
    while !standard.contains(['-', '_']) {
        standard = ec.token();
    }
    let standard = standard.replace('-', "+").replace('_', "/");

    // A 64-byte ES256 signature leaves 4 spare bits in its last character; setting one
    // decodes to the same bytes under a lax decoder.
    let alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let last = signature.chars().last().expect("signature");
    let bumped = alphabet
        .chars()
        .nth(alphabet.find(last).expect("base64url") + 1)
        .unwrap_or('A');
    let spare_bits = format!(
        "{header}.{payload}.{}{bumped}",
        &signature[..signature.len() - 1]
    );

    let mut cases = vec![
        case("header padding", format!("{header}=.{payload}.{signature}")),
        case(
            "payload padding",
            format!("{header}.{payload}==.{signature}"),
        ),
        case(
            "signature padding",
            format!("{header}.{payload}.{signature}="),
        ),
        case("standard alphabet", standard),
        case("spare bits set", spare_bits),
        case("tab inside", format!("{header}.{payload}\t.{signature}")),
        case("one segment", header.clone()),
        case("two segments", format!("{header}.{payload}")),
        case("four segments", format!("{token}.{signature}")),
        case("five segments", format!("{token}.{payload}.{signature}")),
        case("empty header", format!(".{payload}.{signature}")),
        case("empty payload", format!("{header}..{signature}")),
        case("empty signature", format!("{header}.{payload}.")),
        case("only dots", "..".to_owned()),
    ];
    for (name, json) in [
        ("array", "[]"),
        ("string", "\"x\""),
        ("number", "1"),
        ("null", "null"),
        ("true", "true"),
        ("trailing data", "{\"alg\":\"ES256\",\"kid\":\"ec-1\"} x"),
        ("two objects", "{\"alg\":\"ES256\",\"kid\":\"ec-1\"}{}"),
        (
            "byte order mark",
            "\u{feff}{\"alg\":\"ES256\",\"kid\":\"ec-1\"}",
        ),
    ] {
        cases.push(case(format!("header {name}"), sign(json, &claims_text)));
        let payload = json.replace("{\"alg\":\"ES256\",\"kid\":\"ec-1\"}", &claims_text);
        cases.push(case(
            format!("payload {name}"),
            sign(&header_text, &payload),
        ));
    }
    let invalid_utf8 = format!("{}.{}.{signature}", b64(b"{\"alg\":\"\xff\"}"), payload);
    cases.push(case("header not UTF-8", invalid_utf8));

    let rest = &claims_text[1..];
    for (name, header_json, payload_json) in [
        (
            "duplicate alg",
            r#"{"alg":"ES256","alg":"none","kid":"ec-1"}"#.to_owned(),
            claims_text.clone(),
        ),
        (
            "duplicate kid",
            r#"{"alg":"ES256","kid":"other","kid":"ec-1"}"#.to_owned(),
            claims_text.clone(),
        ),
        (
            "duplicate sub",
            header_text.clone(),
            format!("{{\"sub\":\"admin\",{rest}"),
        ),
        (
            "duplicate exp",
            header_text.clone(),
            format!("{{\"exp\":{},{rest}", now() + 86_400),
        ),
        (
            "duplicate aud",
            header_text.clone(),
            format!("{{\"aud\":\"payments\",{rest}"),
        ),
        (
            "duplicate iss",
            header_text.clone(),
            format!("{{\"iss\":\"https://evil.test\",{rest}"),
        ),
        (
            "nested duplicate",
            header_text.clone(),
            format!("{{\"ctx\":{{\"a\":1,\"a\":2}},{rest}"),
        ),
        (
            "duplicate sub spelled with an escape",
            header_text.clone(),
            format!("{{\"\\u0073ub\":\"admin\",{rest}"),
        ),
        (
            "duplicate kid spelled with an escape",
            r#"{"alg":"ES256","kid":"other","\u006bid":"ec-1"}"#.to_owned(),
            claims_text.clone(),
        ),
        (
            "duplicate unknown member",
            header_text.clone(),
            format!("{{\"ctx\":1,\"ctx\":2,{rest}"),
        ),
        (
            "duplicate after many members",
            header_text.clone(),
            format!(
                "{{\"a\":1,\"b\":1,\"c\":1,\"d\":1,\"e\":1,\"f\":1,\"g\":1,\"h\":1,\"i\":1,\"i\":2,{rest}"
            ),
        ),
    ] {
        cases.push(case(name, sign(&header_json, &payload_json)));
    }
    fx.assert_all_rejected(&cases).await;

    // Escapes spell the same names and values: a kid written with one still selects the key.
    let escaped_kid = sign(r#"{"alg":"ES256","kid":"ec\u002d1"}"#, &claims_text);
    fx.assert_accepted(&escaped_kid, "kid with an escape").await;

    // Line breaks and spaces cannot travel in an Authorization header, but they can in a
    // query parameter; the token itself must still be rejected.
    let before = fx.app.requests().len();
    for (name, inside) in [("line feed", "\n"), ("CRLF", "\r\n"), ("space", " ")] {
        let broken = format!("{header}.{payload}{inside}.{signature}");
        let query: String = form_urlencoded::byte_serialize(broken.as_bytes()).collect();
        let reply = get(
            fx.sidecar.inbound_addr(),
            &format!("/orders?access_token={query}"),
            None,
        )
        .await
        .expect("request");
        assert_invalid_token(&reply, name);
        assert_eq!(fx.app.requests().len(), before, "{name}");
    }
}

#[tokio::test]
async fn key_selection_uses_only_the_jwks() {
    let rsa = TestKey::rsa("rsa-1", 0);
    let ec = TestKey::ec("ec-1");
    let ed = TestKey::ed25519("ed-1");
    let fx = Fixture::start(&[&rsa.jwk, &ec.jwk, &ed.jwk], "", "").await;
    fx.assert_accepted(&ec.token(), "valid").await;
    let initial_fetches = fx.server.hits("/jwks.json");
    let attacker = TestKey::ec("attacker");
    // The trap serves the attacker's key, so a sidecar that followed `jku` would accept.
    let trap = KeyServer::start(jwks(&[&attacker])).await;
    let payload = claims().to_string();

    let certificate = {
        let key_pair = rcgen::KeyPair::generate().expect("P-256 key");
        let cert = rcgen::CertificateParams::new(vec!["sts.test".to_owned()])
            .expect("params")
            .self_signed(&key_pair)
            .expect("certificate");
        base64::Engine::encode(&base64::engine::general_purpose::STANDARD, cert.der())
    };
    let mut embedded = Vec::new();
    for kid in ["attacker", "ec-1"] {
        let headers = [
            (
                "jwk",
                json!({ "alg": "ES256", "kid": kid, "jwk": attacker.jwk }),
            ),
            (
                "jku",
                json!({ "alg": "ES256", "kid": kid, "jku": trap.jwks_uri() }),
            ),
            (
                "x5u",
                json!({ "alg": "ES256", "kid": kid, "x5u": format!("{}/cert.pem", trap.base()) }),
            ),
            (
                "x5c",
                json!({ "alg": "ES256", "kid": kid, "x5c": [certificate] }),
            ),
        ];
        for (name, header) in headers {
            embedded.push(case(
                format!("{name} header, kid {kid}"),
                attacker.sign_raw(&header.to_string(), &payload),
            ));
        }
    }
    let jku_without_kid = json!({ "alg": "ES256", "jku": trap.jwks_uri() }).to_string();
    embedded.push(case(
        "jku header without kid",
        attacker.sign_raw(&jku_without_kid, &payload),
    ));
    fx.assert_all_rejected(&embedded).await;
    assert_eq!(trap.total_hits(), 0, "header URLs must never be fetched");

    let long_kid = "k".repeat(10 * 1024);
    let odd_kids = [
        "../../../../etc/passwd",
        "/dev/null",
        "file:///etc/passwd",
        "' OR '1'='1",
        "ec-1\u{0}",
        "ec-1 ",
        "EC-1",
        "%65c-1",
        "ec-1\r\nX-Injected: 1",
        &trap.jwks_uri(),
        &long_kid,
    ];
    let mut odd = Vec::new();
    for kid in odd_kids {
        let header = json!({ "alg": "ES256", "typ": "at+jwt", "kid": kid }).to_string();
        odd.push(case(
            format!("kid {:?}", &kid[..kid.len().min(40)]),
            ec.sign_raw(&header, &payload),
        ));
    }
    let no_kid = json!({ "alg": "ES256", "typ": "at+jwt" }).to_string();
    odd.push(case(
        "no kid with three keys",
        ec.sign_raw(&no_kid, &payload),
    ));
    fx.assert_all_rejected(&odd).await;

    assert_eq!(trap.total_hits(), 0, "a kid is never fetched");
    let refetches = fx.server.hits("/jwks.json") - initial_fetches;
    assert!(
        refetches <= 1,
        "unknown kids caused {refetches} JWKS fetches within one cooldown"
    );
}

#[tokio::test]
async fn audience_shapes_checked() {
    let ec = TestKey::ec("ec-1");
    let fx = Fixture::start(&[&ec.jwk], "", "").await;
    for aud in [
        json!("orders"),
        json!(["orders"]),
        json!(["payments", "orders"]),
    ] {
        let token = ec.sign(&claims_with(json!({ "aud": aud })));
        fx.assert_accepted(&token, &format!("aud {aud}")).await;
    }

    let mut cases = vec![case(
        "aud missing",
        ec.sign(&claims_with(json!({ "aud": null }))),
    )];
    let mut explicit_null = claims();
    explicit_null["aud"] = Value::Null;
    cases.push(case("aud null", ec.sign(&explicit_null)));
    for aud in [
        json!(""),
        json!([]),
        json!(7),
        json!(true),
        json!({ "aud": "orders" }),
        json!([["orders"]]),
        json!(["orders", 7]),
        json!("Orders"),
        json!(["ORDERS"]),
        json!("orders "),
        json!("payments"),
    ] {
        cases.push(case(
            format!("aud {aud}"),
            ec.sign(&claims_with(json!({ "aud": aud }))),
        ));
    }
    fx.assert_all_rejected(&cases).await;
}

#[tokio::test]
async fn time_claims_checked() {
    let ec = TestKey::ec("ec-1");
    // The default leeway of 60 seconds applies.
    let fx = Fixture::start(&[&ec.jwk], "", "").await;
    let now = now();
    // Inside the leeway by 10 seconds, so a request that crosses a second boundary still
    // lands inside it.
    let accepted = [
        (
            "exp 50 s ago",
            json!({ "exp": now - 50, "iat": now - 100, "nbf": now - 100 }),
        ),
        ("nbf 50 s ahead", json!({ "nbf": now + 50 })),
        ("fractional exp", json!({ "exp": now as f64 + 300.5 })),
    ];
    for (name, changes) in accepted {
        fx.assert_accepted(&ec.sign(&claims_with(changes)), name)
            .await;
    }

    let mut cases = Vec::new();
    for (name, changes) in [
        ("exp missing", json!({ "exp": null })),
        (
            "exp 61 s ago",
            json!({ "exp": now - 61, "iat": now - 100, "nbf": now - 100 }),
        ),
        ("exp string", json!({ "exp": (now + 600).to_string() })),
        ("exp boolean", json!({ "exp": true })),
        ("exp array", json!({ "exp": [now + 600] })),
        ("nbf 100 s ahead", json!({ "nbf": now + 100 })),
        ("nbf string", json!({ "nbf": now.to_string() })),
        ("iat string", json!({ "iat": now.to_string() })),
    ] {
        cases.push(case(name, ec.sign(&claims_with(changes))));
    }
    let mut exp_null = claims();
    exp_null["exp"] = Value::Null;
    cases.push(case("exp null", ec.sign(&exp_null)));
    fx.assert_all_rejected(&cases).await;
}

#[tokio::test]
async fn max_token_lifetime_enforced() {
    let ec = TestKey::ec("ec-1");
    let fx = Fixture::start(&[&ec.jwk], "max_token_lifetime_secs = 600", "").await;
    let now = now();
    let issued = now - 10;
    let at_limit = claims_with(json!({ "iat": issued, "nbf": issued, "exp": issued + 600 }));
    fx.assert_accepted(&ec.sign(&at_limit), "lifetime 600 s")
        .await;

    let cases = [
        case(
            "lifetime 601 s",
            ec.sign(&claims_with(json!({ "iat": issued, "exp": issued + 601 }))),
        ),
        case("iat missing", ec.sign(&claims_with(json!({ "iat": null })))),
        case(
            "iat beyond the leeway",
            ec.sign(&claims_with(
                json!({ "iat": now + 120, "nbf": null, "exp": now + 180 }),
            )),
        ),
    ];
    fx.assert_all_rejected(&cases).await;
}

#[tokio::test]
async fn issuer_must_match_exactly() {
    let ec = TestKey::ec("ec-1");
    let fx = Fixture::start(&[&ec.jwk], "", "").await;
    fx.assert_accepted(&ec.token(), "valid").await;
    let fetches = fx.server.total_hits();

    let mut cases = Vec::new();
    for iss in [
        json!("https://sts.test/"),
        json!("https://STS.test"),
        json!("HTTPS://sts.test"),
        json!("http://sts.test"),
        json!("https://sts.test "),
        json!("https://evil.test"),
        json!(7),
        json!(["https://sts.test"]),
        Value::Null,
    ] {
        let mut claims = claims();
        claims["iss"] = iss.clone();
        cases.push(case(format!("iss {iss}"), ec.sign(&claims)));
    }
    cases.push(case(
        "iss missing",
        ec.sign(&claims_with(json!({ "iss": null }))),
    ));
    fx.assert_all_rejected(&cases).await;

    assert_eq!(
        fx.server.total_hits(),
        fetches,
        "an untrusted issuer never causes a fetch"
    );
}

#[tokio::test]
async fn providers_keep_their_own_keys_and_audiences() {
    let app = App::start().await;
    let dir = tempfile::tempdir().expect("temporary folder");
    let key_a = TestKey::ec("a-1");
    let key_b = TestKey::ed25519("b-1");
    let server_a = KeyServer::start(jwks(&[&key_a])).await;
    let server_b = KeyServer::start(jwks(&[&key_b])).await;
    const ISSUER_B: &str = "https://other-sts.test";
    let body = format!(
        "{}\n{}",
        provider_toml(ISSUER, "orders", &server_a, ""),
        provider_toml(ISSUER_B, "orders-b", &server_b, "")
    );
    let sidecar = start(dir.path(), &config_toml(app.addr, &body)).await;
    let send = |token: String| {
        let addr = sidecar.inbound_addr();
        async move { get(addr, "/orders", Some(&token)).await.expect("request") }
    };
    let from_b = |changes: Value| {
        let mut claims = claims_with(changes);
        claims["iss"] = json!(ISSUER_B);
        claims
    };

    let reply = send(key_a.token()).await;
    assert_eq!(reply.status, StatusCode::OK, "issuer A: {}", reply.body);
    let reply = send(key_b.sign(&from_b(json!({ "aud": "orders-b" })))).await;
    assert_eq!(reply.status, StatusCode::OK, "issuer B: {}", reply.body);
    assert_eq!(app.requests().len(), 2);

    let named_a = [
        ("issuer A signed with B's key", key_b.sign(&claims())),
        (
            "issuer A signed with B's key under A's kid",
            key_b.sign_raw(
                &json!({ "alg": "EdDSA", "kid": "a-1" }).to_string(),
                &claims().to_string(),
            ),
        ),
    ];
    let named_b = [
        (
            "issuer B with only A's audience",
            key_b.sign(&from_b(json!({ "aud": "orders" }))),
        ),
        (
            "issuer B signed with A's key",
            key_a.sign(&from_b(json!({ "aud": "orders-b" }))),
        ),
    ];
    let hits_b = server_b.total_hits();
    for (case, token) in named_a {
        let reply = send(token).await;
        assert_invalid_token(&reply, case);
    }
    assert_eq!(
        server_b.total_hits(),
        hits_b,
        "tokens naming issuer A never make the sidecar fetch B's keys"
    );
    for (case, token) in named_b {
        let reply = send(token).await;
        assert_invalid_token(&reply, case);
    }

    let hits = (server_a.total_hits(), server_b.total_hits());
    let unknown = key_a.sign(&claims_with(json!({ "iss": "https://third.test" })));
    let reply = send(unknown).await;
    assert_invalid_token(&reply, "unknown issuer");
    assert_eq!(
        (server_a.total_hits(), server_b.total_hits()),
        hits,
        "an unknown issuer causes no fetch"
    );
    assert_eq!(
        app.requests().len(),
        2,
        "the app must not see any rejected request"
    );
}
