//! The book's flow, run against a live demo: each step sends one request, checks the
//! response, and prints what it saw. [`run`] returns how many steps failed.

use bytes::Bytes;
use http::{Method, StatusCode};

use crate::client::{DemoClient, Reply};
use crate::RunningDemo;

/// The order body from *Microservices Security in Action*, chapter 10.
pub const BOOK_ORDER: &str = r#"{"customer_id":"101021","payment_method":{"card_type":"VISA","expiration":"01/22","name":"John Doe","billing_address":"201, 1st Street, San Jose, CA"},"items":[{"code":"101","qty":1},{"code":"103","qty":5}],"shipping_address":"201, 1st Street, San Jose, CA"}"#;

/// An order for more stock than the inventory has, so inventory returns 409.
const TOO_LARGE_ORDER: &str = r#"{"customer_id":"101021","payment_method":{"card_type":"VISA","expiration":"01/22","name":"John Doe","billing_address":"201, 1st Street, San Jose, CA"},"items":[{"code":"102","qty":1000000}],"shipping_address":"201, 1st Street, San Jose, CA"}"#;

const FORM: (&str, &str) = (
    "content-type",
    "application/x-www-form-urlencoded;charset=UTF-8",
);
const JSON: (&str, &str) = ("content-type", "application/json");
/// `applicationid:applicationsecret` in HTTP Basic form.
const BASIC_AUTH: &str = "Basic YXBwbGljYXRpb25pZDphcHBsaWNhdGlvbnNlY3JldA==";

/// Prints each step and its outcome, keeping count of failures.
struct Steps {
    number: usize,
    failures: usize,
}

impl Steps {
    fn check(&mut self, title: &str, outcome: Result<String, String>) {
        self.number += 1;
        match outcome {
            Ok(detail) => println!("[ok]   {:>2}. {title}: {detail}", self.number),
            Err(problem) => {
                self.failures += 1;
                println!("[FAIL] {:>2}. {title}: {problem}", self.number);
            }
        }
    }
}

/// Requires `status` and returns a short summary, or explains the mismatch.
fn expect_status(
    reply: Result<Reply, crate::client::ClientError>,
    status: StatusCode,
) -> Result<Reply, String> {
    match reply {
        Ok(reply) if reply.status == status => Ok(reply),
        Ok(reply) => Err(format!(
            "expected {status}, got {} with body {}",
            reply.status,
            String::from_utf8_lossy(&reply.body)
        )),
        Err(err) => Err(err.to_string()),
    }
}

/// Runs every step against `demo` and returns the number of failed steps.
pub async fn run(demo: &RunningDemo) -> Result<usize, crate::DemoError> {
    let client = DemoClient::new(&demo.certs.ca, None)?;
    let mut steps = Steps {
        number: 0,
        failures: 0,
    };
    let token_url = format!("{}/oauth/token", demo.sts_url());
    let orders_url = format!("{}/orders", demo.orders_url());

    // 1. The book's token request: password grant, client credentials in HTTP Basic.
    let reply = client
        .send(
            Method::POST,
            &token_url,
            &[("authorization", BASIC_AUTH), FORM],
            "grant_type=password&username=peter&password=peter123&scope=foo",
        )
        .await;
    let token = match expect_status(reply, StatusCode::OK) {
        Ok(reply) => match reply.json()["access_token"].as_str() {
            Some(token) => {
                steps.check(
                    "get a token for peter with scope foo",
                    Ok(format!("200, scope {}", reply.json()["scope"])),
                );
                token.to_owned()
            }
            None => {
                steps.check("get a token", Err("no access_token in the response".into()));
                return Ok(steps.failures);
            }
        },
        Err(problem) => {
            steps.check("get a token", Err(problem));
            return Ok(steps.failures);
        }
    };
    let bearer = format!("Bearer {token}");

    // 2. No token: 401 with a Bearer challenge and no error code.
    let reply = client
        .send(Method::POST, &orders_url, &[JSON], BOOK_ORDER)
        .await;
    steps.check(
        "place an order without a token",
        expect_status(reply, StatusCode::UNAUTHORIZED).and_then(|reply| {
            let challenge = reply.header("www-authenticate").to_owned();
            if challenge.starts_with("Bearer realm=") && !challenge.contains("error=") {
                Ok(format!("401, WWW-Authenticate: {challenge}"))
            } else {
                Err(format!("unexpected challenge `{challenge}`"))
            }
        }),
    );

    // 3. The book's order with the token: the sidecar verifies it, the order app calls
    //    inventory through both sidecars, and the order is stored.
    let reply = client
        .send(
            Method::POST,
            &orders_url,
            &[JSON, ("authorization", &bearer)],
            BOOK_ORDER,
        )
        .await;
    let created = expect_status(reply, StatusCode::CREATED);
    let order_id = created
        .as_ref()
        .ok()
        .and_then(|reply| reply.json()["order_id"].as_str().map(str::to_owned));
    steps.check(
        "place the book's order with the token",
        created.and_then(|reply| {
            let body = reply.json();
            match (body["order_id"].as_str(), body["created_by"].as_str()) {
                (Some(id), Some("peter")) => Ok(format!(
                    "201, order {id} created by peter, Location {}",
                    reply.header("location")
                )),
                _ => Err(format!("unexpected body {body}")),
            }
        }),
    );

    // 4. Read the order back.
    if let Some(order_id) = &order_id {
        let reply = client
            .send(
                Method::GET,
                &format!("{orders_url}/{order_id}"),
                &[("authorization", &bearer)],
                Bytes::new(),
            )
            .await;
        steps.check(
            "read the order back",
            expect_status(reply, StatusCode::OK).and_then(|reply| {
                match reply.json()["order_id"].as_str() == Some(order_id) {
                    true => Ok(format!("200, status {}", reply.json()["status"])),
                    false => Err(format!("unexpected body {}", reply.json())),
                }
            }),
        );
    }

    // 5. A token whose signature was changed is rejected.
    let tampered = tamper(&token);
    let reply = client
        .send(
            Method::GET,
            &format!("{orders_url}/{}", order_id.as_deref().unwrap_or("1")),
            &[("authorization", &format!("Bearer {tampered}"))],
            Bytes::new(),
        )
        .await;
    steps.check(
        "use a token with a tampered signature",
        expect_status(reply, StatusCode::UNAUTHORIZED).and_then(|reply| {
            let challenge = reply.header("www-authenticate").to_owned();
            match challenge.contains("error=\"invalid_token\"") {
                true => Ok(format!("401, WWW-Authenticate: {challenge}")),
                false => Err(format!("unexpected challenge `{challenge}`")),
            }
        }),
    );

    // 6. A token with only scope bar cannot place orders.
    let reply = client
        .send(
            Method::POST,
            &token_url,
            &[("authorization", BASIC_AUTH), FORM],
            "grant_type=password&username=peter&password=peter123&scope=bar",
        )
        .await;
    match expect_status(reply, StatusCode::OK)
        .map(|reply| reply.json()["access_token"].as_str().map(str::to_owned))
    {
        Ok(Some(bar_token)) => {
            let reply = client
                .send(
                    Method::POST,
                    &orders_url,
                    &[JSON, ("authorization", &format!("Bearer {bar_token}"))],
                    BOOK_ORDER,
                )
                .await;
            steps.check(
                "place an order with a token that has only scope bar",
                expect_status(reply, StatusCode::FORBIDDEN).and_then(|reply| {
                    let challenge = reply.header("www-authenticate").to_owned();
                    match challenge.contains("error=\"insufficient_scope\"") {
                        true => Ok(format!("403, WWW-Authenticate: {challenge}")),
                        false => Err(format!("unexpected challenge `{challenge}`")),
                    }
                }),
            );
        }
        Ok(None) => steps.check("get a token with scope bar", Err("no access_token".into())),
        Err(problem) => steps.check("get a token with scope bar", Err(problem)),
    }

    // 7. Inventory cannot supply the order: 409 and nothing stored.
    let reply = client
        .send(
            Method::POST,
            &orders_url,
            &[JSON, ("authorization", &bearer)],
            TOO_LARGE_ORDER,
        )
        .await;
    steps.check(
        "order more than the inventory holds",
        expect_status(reply, StatusCode::CONFLICT)
            .map(|reply| format!("409, {}", String::from_utf8_lossy(&reply.body))),
    );

    // 8. The inventory sidecar accepts only clients with a certificate from the demo CA.
    let reply = client
        .send(
            Method::PUT,
            &format!("{}/inventory", demo.inventory_url()),
            &[JSON, ("authorization", &bearer)],
            r#"[{"code":"101","qty":1}]"#,
        )
        .await;
    steps.check(
        "call the inventory sidecar without a client certificate",
        match reply {
            Err(err) => Ok(format!("rejected in the TLS handshake ({err})")),
            Ok(reply) => Err(format!("expected a TLS failure, got {}", reply.status)),
        },
    );

    // 9. The admin endpoints report readiness and count what happened.
    let reply = client
        .send(
            Method::GET,
            &format!("http://127.0.0.1:{}/metrics", demo.ports.orders_admin),
            &[],
            Bytes::new(),
        )
        .await;
    steps.check(
        "read the orders sidecar's metrics",
        expect_status(reply, StatusCode::OK).and_then(|reply| {
            let text = String::from_utf8_lossy(&reply.body).into_owned();
            match text.contains("portcullis_requests_total") {
                true => Ok("200, portcullis_requests_total present".to_owned()),
                false => Err("portcullis_requests_total is missing".to_owned()),
            }
        }),
    );

    Ok(steps.failures)
}

/// Returns `token` with one character in the middle of its signature changed. The last
/// character is left alone because in base64url some of its bits may be padding.
fn tamper(token: &str) -> String {
    let mut chars: Vec<char> = token.chars().collect();
    let index = chars.len().saturating_sub(10);
    if let Some(c) = chars.get_mut(index) {
        *c = if *c == 'A' { 'B' } else { 'A' };
    }
    chars.into_iter().collect()
}
