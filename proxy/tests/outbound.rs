//! The outbound listener end to end: the "orders" sidecar's outbound listener forwards to an
//! "inventory" sidecar's mutual-TLS inbound listener, which verifies the same token again.

mod common;

use common::{get_h2c, metric, metrics_text, pki, raw_request, signer, App, Pki, Spec};
use portcullis::RunningSidecar;

/// Two sidecars and two apps: orders (with an outbound service `inventory`) and inventory
/// (mutual TLS, audience `inventory`).
struct Mesh {
    orders_app: App,
    inventory_app: App,
    orders: RunningSidecar,
    inventory: RunningSidecar,
    _pki: Pki,
    _dir: tempfile::TempDir,
}

impl Mesh {
    async fn start() -> Mesh {
        let dir = tempfile::tempdir().unwrap();
        let pki = pki();
        let inventory_app = App::start().await;
        let orders_app = App::start().await;

        let inventory_dir = dir.path().join("inventory");
        std::fs::create_dir(&inventory_dir).unwrap();
        let mut inventory_spec = Spec::new(&inventory_dir, inventory_app.addr).with_tls(&pki, true);
        inventory_spec.audience = "inventory";
        let inventory = inventory_spec.start().await;

        let orders_dir = dir.path().join("orders");
        std::fs::create_dir(&orders_dir).unwrap();
        let mut orders_spec = Spec::new(&orders_dir, orders_app.addr);
        orders_spec.extra = format!(
            r#"
[outbound]
listen = "127.0.0.1:0"

[[outbound.services]]
name = "inventory"
upstream = "https://localhost:{port}"
tls = {{ ca = {ca:?}, cert = {cert:?}, key = {key:?} }}
"#,
            port = inventory.inbound_addr().port(),
            ca = pki.ca,
            cert = pki.client_cert,
            key = pki.client_key,
        );
        let orders = orders_spec.start().await;

        Mesh {
            orders_app,
            inventory_app,
            orders,
            inventory,
            _pki: pki,
            _dir: dir,
        }
    }

    fn outbound(&self) -> std::net::SocketAddr {
        self.orders
            .outbound_addr()
            .expect("orders has an outbound listener")
    }
}

#[tokio::test]
async fn host_routes_over_mutual_tls() {
    let mesh = Mesh::start().await;
    let token = signer().token();

    let reply = raw_request(
        mesh.outbound(),
        &format!(
            "PUT /inventory?sku=42 HTTP/1.1\r\nHost: Inventory:80\r\nAuthorization: Bearer {token}\r\n\
             X-Request-Id: abc\r\nConnection: X-Hop\r\nX-Hop: 1\r\nContent-Length: 0\r\n"
        ),
    )
    .await;

    assert_eq!(reply.status, 200, "{}", reply.body);
    let requests = mesh.inventory_app.requests();
    assert_eq!(requests.len(), 1);
    let request = &requests[0];
    assert_eq!(request.method, "PUT");
    assert_eq!(request.uri, "/inventory?sku=42");
    assert_eq!(request.one("authorization"), format!("Bearer {token}"));
    assert_eq!(request.one("x-request-id"), "abc");
    assert!(request.all("x-hop").is_empty());
    assert_eq!(
        request.one("host"),
        format!("localhost:{}", mesh.inventory.inbound_addr().port())
    );
    // The inventory sidecar verified the token and set the identity for its app.
    assert_eq!(request.one("x-portcullis-subject"), "peter");
    assert!(mesh.orders_app.requests().is_empty());
}

#[tokio::test]
async fn absolute_form_request_routed() {
    let mesh = Mesh::start().await;
    let token = signer().token();

    let reply = raw_request(
        mesh.outbound(),
        &format!(
            "GET http://inventory/items?page=3 HTTP/1.1\r\nHost: inventory\r\n\
             Authorization: Bearer {token}\r\n"
        ),
    )
    .await;

    assert_eq!(reply.status, 200, "{}", reply.body);
    let requests = mesh.inventory_app.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].uri, "/items?page=3");
}

#[tokio::test]
async fn unknown_host_sends_nothing() {
    let mesh = Mesh::start().await;

    for head in [
        "GET /steal HTTP/1.1\r\nHost: evil.example\r\n",
        "GET http://evil.example/steal HTTP/1.1\r\nHost: inventory\r\n",
        "GET /steal HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n",
    ] {
        let reply = raw_request(mesh.outbound(), head).await;
        assert_eq!(reply.status, 502, "{head}");
        let body: serde_json::Value = serde_json::from_str(&reply.body).unwrap();
        assert_eq!(body["error"], "unknown_service", "{head}");
        let message = body["message"].as_str().unwrap();
        assert!(message.contains("[[outbound.services]]"), "{message}");
        assert!(message.contains("inventory"), "{message}");
    }

    assert!(mesh.inventory_app.requests().is_empty());
    assert!(mesh.orders_app.requests().is_empty());
    let text = metrics_text(mesh.orders.admin_addr()).await;
    assert_eq!(
        metric(
            &text,
            r#"portcullis_upstream_errors_total{direction="outbound",kind="unknown_service"}"#
        ),
        Some(3.0),
        "{text}"
    );
}

#[tokio::test]
async fn connect_method_rejected() {
    let mesh = Mesh::start().await;

    let reply = raw_request(
        mesh.outbound(),
        "CONNECT inventory:443 HTTP/1.1\r\nHost: inventory:443\r\n",
    )
    .await;

    assert_eq!(reply.status, 405, "{}", reply.body);
    assert!(mesh.inventory_app.requests().is_empty());
}

#[tokio::test]
async fn peer_rejection_passes_through() {
    let mesh = Mesh::start().await;

    let reply = raw_request(
        mesh.outbound(),
        "GET /inventory HTTP/1.1\r\nHost: inventory\r\n",
    )
    .await;
    assert_eq!(reply.status, 401, "{}", reply.body);
    assert!(
        reply
            .head
            .contains(r#"www-authenticate: bearer realm="portcullis""#),
        "{}",
        reply.head
    );
    assert!(mesh.inventory_app.requests().is_empty());
}

#[tokio::test]
async fn h2c_request_routed_by_authority() {
    let mesh = Mesh::start().await;
    let token = signer().token();

    let reply = get_h2c(
        mesh.outbound(),
        "http://inventory/items?page=1",
        Some(&token),
    )
    .await;

    assert_eq!(reply.status, http::StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.version, http::Version::HTTP_2);
    let requests = mesh.inventory_app.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].uri, "/items?page=1");
    assert_eq!(requests[0].one("authorization"), format!("Bearer {token}"));
}
