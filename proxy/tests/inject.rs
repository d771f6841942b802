//! `portcullis inject` and `portcullis injector` as a user runs them: the binary on files and
//! standard input, and the webhook on 127.0.0.1 over HTTPS, which receives real
//! `AdmissionReview` requests and returns a JSON Patch.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde::Deserialize;
use serde_json::{json, Value};

use common::{pki, read_reply, tls_client_config, Pki, Reply, WAIT_LIMIT};

const BINARY: &str = env!("CARGO_BIN_EXE_portcullis");

const ORDERS: &str = "\
# The order service, opted in to injection.
apiVersion: apps/v1
kind: Deployment
metadata:
  name: orders
spec:
  selector:
    matchLabels: {app: orders}
  template:
    metadata:
      labels: {app: orders}
      annotations:
        portcullis.io/inject: enabled
        portcullis.io/config: orders-portcullis
    spec:
      containers:
      - name: order-app
        image: order-app:1.0
        args: [\"--listen\", \"127.0.0.1:8081\"]
";

const SERVICE: &str = "\
apiVersion: v1
kind: Service
metadata:
  name: orders   # not a workload: unchanged
spec:
  ports:
  - port: 9443
    targetPort: portcullis
";

const PLAIN: &str = "\
apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: plain
spec:
  template:
    spec:
      containers:
      - name: app
        image: app:1.0
";

fn run_inject(args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(BINARY)
        .arg("inject")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start portcullis inject");
    let mut input = child.stdin.take().expect("stdin");
    input
        .write_all(stdin.unwrap_or_default().as_bytes())
        .expect("write stdin");
    drop(input);
    child
        .wait_with_output()
        .expect("portcullis inject finishes")
}

fn stdout(output: &Output) -> String {
    String::from_utf8(output.stdout.clone()).expect("UTF-8 output")
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn parse_yaml(text: &str) -> Vec<Value> {
    serde_norway::Deserializer::from_str(text)
        .map(|document| Value::deserialize(document).expect("output is valid YAML"))
        .filter(|document| !document.is_null())
        .collect()
}

fn container_names(list: &Value) -> Vec<String> {
    list.as_array()
        .map(|items| {
            items
                .iter()
                .map(|item| item["name"].as_str().unwrap_or_default().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn inject_reads_stdin_without_files() {
    let input = [ORDERS, SERVICE, PLAIN].join("---\n");
    let output = run_inject(&[], Some(&input));

    assert!(output.status.success(), "{}", stderr(&output));
    let documents = parse_yaml(&stdout(&output));
    assert_eq!(documents.len(), 3);
    let orders = &documents[0]["spec"]["template"]["spec"];
    assert_eq!(container_names(&orders["initContainers"]), ["portcullis"]);
    assert_eq!(container_names(&orders["containers"]), ["order-app"]);
    assert_eq!(
        orders["volumes"][0]["configMap"]["name"],
        "orders-portcullis"
    );
    assert!(stderr(&output).contains("deployment/orders: injected"));
    assert!(stderr(&output).contains("1 injected, 0 already injected, 1 without"));
}

#[test]
fn inject_keeps_other_documents_byte_for_byte() {
    let input = [ORDERS, SERVICE, PLAIN].join("---\n");
    let output = stdout(&run_inject(&["-"], Some(&input)));

    let after_orders = output
        .split_once("---\n")
        .map(|(_, rest)| rest)
        .expect("separator kept");
    assert_eq!(after_orders, [SERVICE, PLAIN].join("---\n"));
    assert!(output.starts_with("# The order service, opted in to injection.\n"));
    // Every line of the opted-in document is still there, in order.
    let mut lines = output.lines();
    for line in ORDERS.lines() {
        assert!(
            lines.any(|candidate| candidate == line),
            "lost line {line:?}"
        );
    }
}

#[test]
fn inject_reads_files_in_order() {
    let dir = tempfile::tempdir().expect("temporary folder");
    let orders = dir.path().join("orders.yaml");
    let plain = dir.path().join("plain.yaml");
    std::fs::write(&orders, ORDERS).expect("write");
    std::fs::write(&plain, PLAIN).expect("write");

    let output = run_inject(&[path(&orders), path(&plain)], None);

    assert!(output.status.success(), "{}", stderr(&output));
    let documents = parse_yaml(&stdout(&output));
    assert_eq!(documents.len(), 2);
    assert_eq!(documents[0]["metadata"]["name"], "orders");
    assert_eq!(documents[1]["metadata"]["name"], "plain");
    assert!(documents[1]["spec"]["template"]["spec"]
        .get("initContainers")
        .is_none());
    assert!(stdout(&output).ends_with(PLAIN));
}

#[test]
fn inject_twice_equals_once() {
    let once = stdout(&run_inject(&[], Some(ORDERS)));
    let second = run_inject(&[], Some(&once));

    assert!(second.status.success(), "{}", stderr(&second));
    assert_eq!(stdout(&second), once);
    assert!(stderr(&second).contains("deployment/orders: already has the sidecar"));
}

#[test]
fn inject_failure_writes_nothing() {
    let dir = tempfile::tempdir().expect("temporary folder");
    let good = dir.path().join("good.yaml");
    let bad = dir.path().join("bad.yaml");
    std::fs::write(&good, ORDERS).expect("write");
    std::fs::write(&bad, ORDERS.replace("inject: enabled", "inject: enable")).expect("write");

    let output = run_inject(&[path(&good), path(&bad)], None);

    assert_eq!(output.status.code(), Some(1));
    assert!(output.stdout.is_empty(), "{}", stdout(&output));
    let message = stderr(&output);
    assert!(message.contains("bad.yaml"), "{message}");
    assert!(message.contains("deployment/orders"), "{message}");
    assert!(
        message.contains("expected enabled or disabled"),
        "{message}"
    );
}

#[test]
fn inject_missing_file_reported() {
    let output = run_inject(&["/nonexistent/portcullis-test.yaml"], None);
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr(&output).contains("cannot read /nonexistent/portcullis-test.yaml"));
}

#[test]
fn inject_uses_image_flag() {
    let output = run_inject(&["--image", "registry.test/portcullis:9.9"], Some(ORDERS));
    let documents = parse_yaml(&stdout(&output));
    assert_eq!(
        documents[0]["spec"]["template"]["spec"]["initContainers"][0]["image"],
        "registry.test/portcullis:9.9"
    );
}

fn path(file: &Path) -> &str {
    file.to_str().expect("UTF-8 path")
}

// ---------------------------------------------------------------------------------------
// The admission webhook

/// A running `portcullis injector`, killed on drop.
struct Injector {
    child: Child,
    addr: SocketAddr,
    pki: Pki,
}

impl Drop for Injector {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Injector {
    /// Starts the binary on 127.0.0.1 port 0 and reads the bound address from its log.
    fn start() -> Injector {
        let pki = pki();
        let mut child = Command::new(BINARY)
            .args([
                "injector",
                "--listen",
                "127.0.0.1:0",
                "--image",
                "portcullis:test",
            ])
            .arg("--cert")
            .arg(&pki.server_cert)
            .arg("--key")
            .arg(&pki.server_key)
            .env("NO_COLOR", "1")
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start portcullis injector");
        let stdout = child.stdout.take().expect("stdout");
        let (sender, receiver) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(addr) = listening_addr(&line) {
                    let _ = sender.send(addr);
                }
            }
        });
        let addr = receiver
            .recv_timeout(WAIT_LIMIT)
            .expect("the injector logs its listening address");
        Injector { child, addr, pki }
    }

    async fn post(&self, path: &str, body: String) -> Reply {
        self.send(
            Request::post(self.url(path)).header("content-type", "application/json"),
            body,
        )
        .await
    }

    async fn get(&self, path: &str) -> Reply {
        self.send(Request::get(self.url(path)), String::new()).await
    }

    fn url(&self, path: &str) -> String {
        format!("https://localhost:{}{path}", self.addr.port())
    }

    async fn send(&self, request: http::request::Builder, body: String) -> Reply {
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls_client_config(&self.pki, false))
            .https_only()
            .enable_http1()
            .enable_http2()
            .build();
        let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build(connector);
        let response = client
            .request(request.body(Full::new(Bytes::from(body))).expect("request"))
            .await
            .expect("the injector answers");
        read_reply(response).await
    }

    /// Sends a review and returns its `response` member.
    async fn review(&self, review: &Value) -> Value {
        let reply = self.post("/inject", review.to_string()).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
        let body = reply.json();
        assert_eq!(body["apiVersion"], "admission.k8s.io/v1");
        assert_eq!(body["kind"], "AdmissionReview");
        assert_eq!(body["response"]["uid"], review["request"]["uid"]);
        body["response"].clone()
    }
}

/// Finds `addr=127.0.0.1:PORT` in the injector's "injector listening" log line.
fn listening_addr(line: &str) -> Option<SocketAddr> {
    if !line.contains("injector listening") {
        return None;
    }
    line.split_whitespace()
        .find_map(|field| field.strip_prefix("addr="))
        .and_then(|addr| addr.parse().ok())
}

/// Builds a pod as the ReplicaSet controller creates it, with the fields the API server has
/// set by the time mutating webhooks run.
fn replica_set_pod(annotations: Value) -> Value {
    json!({
        "kind": "Pod",
        "apiVersion": "v1",
        "metadata": {
            "generateName": "orders-7c9d8f6b5d-",
            "namespace": "shop",
            "creationTimestamp": null,
            "labels": {"app": "orders", "pod-template-hash": "7c9d8f6b5d"},
            "annotations": annotations,
            "ownerReferences": [{
                "apiVersion": "apps/v1",
                "kind": "ReplicaSet",
                "name": "orders-7c9d8f6b5d",
                "uid": "1d6a2b3c-4d5e-4f60-8a7b-9c0d1e2f3a4b",
                "controller": true,
                "blockOwnerDeletion": true
            }]
        },
        "spec": {
            "volumes": [{
                "name": "kube-api-access-x7k2p",
                "projected": {
                    "sources": [
                        {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
                        {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}}
                    ],
                    "defaultMode": 420
                }
            }],
            "containers": [{
                "name": "order-app",
                "image": "order-app:1.0",
                "args": ["--listen", "127.0.0.1:8081"],
                "resources": {},
                "volumeMounts": [{
                    "name": "kube-api-access-x7k2p",
                    "readOnly": true,
                    "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount"
                }],
                "terminationMessagePath": "/dev/termination-log",
                "terminationMessagePolicy": "File",
                "imagePullPolicy": "IfNotPresent"
            }],
            "restartPolicy": "Always",
            "terminationGracePeriodSeconds": 30,
            "dnsPolicy": "ClusterFirst",
            "serviceAccountName": "default",
            "serviceAccount": "default",
            "securityContext": {},
            "schedulerName": "default-scheduler",
            "tolerations": [
                {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}
            ],
            "priority": 0,
            "enableServiceLinks": true,
            "preemptionPolicy": "PreemptLowerPriority"
        },
        "status": {}
    })
}

/// Wraps `pod` in an `AdmissionReview` as the API server sends it for a pod creation.
fn pod_review(uid: &str, pod: Value) -> Value {
    json!({
        "kind": "AdmissionReview",
        "apiVersion": "admission.k8s.io/v1",
        "request": {
            "uid": uid,
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "requestKind": {"group": "", "version": "v1", "kind": "Pod"},
            "requestResource": {"group": "", "version": "v1", "resource": "pods"},
            "namespace": "shop",
            "operation": "CREATE",
            "userInfo": {
                "username": "system:serviceaccount:kube-system:replicaset-controller",
                "uid": "5b8e2f1a-0c3d-4e7f-9a1b-2c3d4e5f6a7b",
                "groups": ["system:serviceaccounts", "system:serviceaccounts:kube-system", "system:authenticated"]
            },
            "object": pod,
            "oldObject": null,
            "dryRun": false,
            "options": {"kind": "CreateOptions", "apiVersion": "meta.k8s.io/v1"}
        }
    })
}

fn opted_in() -> Value {
    json!({"portcullis.io/inject": "enabled", "portcullis.io/config": "orders-portcullis"})
}

/// Decodes the response's JSON Patch and applies it to `pod`.
fn apply_patch(response: &Value, pod: &Value) -> (Vec<Value>, Value) {
    assert_eq!(response["patchType"], "JSONPatch");
    let encoded = response["patch"]
        .as_str()
        .expect("patch is a base64 string");
    let operations: Vec<Value> =
        serde_json::from_slice(&STANDARD.decode(encoded).expect("valid base64"))
            .expect("patch is a JSON array");
    let patch: json_patch::Patch =
        serde_json::from_value(Value::Array(operations.clone())).expect("valid JSON Patch");
    let mut patched = pod.clone();
    json_patch::patch(&mut patched, &patch).expect("patch applies to the pod");
    (operations, patched)
}

#[tokio::test]
async fn webhook_patches_opted_in_pod() {
    let injector = Injector::start();
    let pod = replica_set_pod(opted_in());

    let response = injector
        .review(&pod_review(
            "e2d4f8a0-1111-4c1e-9e0f-000000000001",
            pod.clone(),
        ))
        .await;

    assert_eq!(response["allowed"], true);
    let (operations, patched) = apply_patch(&response, &pod);
    let paths: Vec<&str> = operations
        .iter()
        .map(|operation| operation["path"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(
        paths,
        ["/spec/initContainers", "/spec/volumes/0", "/spec/volumes/1"]
    );
    assert!(operations.iter().all(|operation| operation["op"] == "add"));

    let spec = &patched["spec"];
    let sidecar = &spec["initContainers"][0];
    assert_eq!(sidecar["name"], "portcullis");
    assert_eq!(sidecar["image"], "portcullis:test");
    assert_eq!(sidecar["restartPolicy"], "Always");
    assert_eq!(
        container_names(&spec["volumes"]),
        [
            "portcullis-config",
            "portcullis-tls",
            "kube-api-access-x7k2p"
        ]
    );
    assert_eq!(spec["volumes"][0]["configMap"]["name"], "orders-portcullis");

    // Removing the additions gives back the pod exactly as sent.
    let mut restored = patched.clone();
    let restored_spec = restored["spec"].as_object_mut().expect("spec");
    restored_spec.remove("initContainers");
    restored_spec["volumes"]
        .as_array_mut()
        .expect("volumes")
        .drain(..2);
    assert_eq!(restored, pod);
}

#[tokio::test]
async fn webhook_matches_inject_command() {
    let injector = Injector::start();
    let pod = replica_set_pod(opted_in());

    let response = injector
        .review(&pod_review(
            "e2d4f8a0-1111-4c1e-9e0f-000000000002",
            pod.clone(),
        ))
        .await;
    let (_, patched) = apply_patch(&response, &pod);

    let output = run_inject(&["--image", "portcullis:test"], Some(&pod.to_string()));
    assert!(output.status.success(), "{}", stderr(&output));
    let injected = &parse_yaml(&stdout(&output))[0];
    assert_eq!(&patched, injected);
}

#[tokio::test]
async fn webhook_prepends_to_existing_init_containers() {
    let injector = Injector::start();
    let mut pod = replica_set_pod(opted_in());
    pod["spec"]["initContainers"] = json!([{"name": "migrate", "image": "tool:1"}]);

    let response = injector
        .review(&pod_review(
            "e2d4f8a0-1111-4c1e-9e0f-000000000003",
            pod.clone(),
        ))
        .await;
    let (operations, patched) = apply_patch(&response, &pod);

    assert_eq!(operations[0]["path"], "/spec/initContainers/0");
    assert_eq!(
        container_names(&patched["spec"]["initContainers"]),
        ["portcullis", "migrate"]
    );
}

#[tokio::test]
async fn webhook_leaves_other_pods_alone() {
    let injector = Injector::start();
    let cases = [
        ("not opted in", replica_set_pod(json!({"team": "shop"}))),
        (
            "disabled",
            replica_set_pod(json!({"portcullis.io/inject": "disabled"})),
        ),
        ("already injected", {
            let mut pod = replica_set_pod(opted_in());
            pod["spec"]["initContainers"] =
                json!([{"name": "portcullis", "image": "portcullis:old"}]);
            pod
        }),
    ];
    for (index, (case, pod)) in cases.into_iter().enumerate() {
        let uid = format!("e2d4f8a0-2222-4c1e-9e0f-00000000000{index}");
        let response = injector.review(&pod_review(&uid, pod)).await;
        assert_eq!(response["allowed"], true, "{case}");
        assert!(response.get("patch").is_none(), "{case}: {response}");
    }

    // A review of another kind is allowed unchanged too.
    let mut review = pod_review(
        "e2d4f8a0-3333-4c1e-9e0f-000000000001",
        json!({"kind": "ConfigMap"}),
    );
    review["request"]["kind"] = json!({"group": "", "version": "v1", "kind": "ConfigMap"});
    let response = injector.review(&review).await;
    assert_eq!(response["allowed"], true);
    assert!(response.get("patch").is_none(), "{response}");
}

#[tokio::test]
async fn webhook_rejects_invalid_annotations() {
    let injector = Injector::start();
    let pod = replica_set_pod(json!({
        "portcullis.io/inject": "enabled",
        "portcullis.io/inbound-port": "http",
    }));

    let response = injector
        .review(&pod_review("e2d4f8a0-4444-4c1e-9e0f-000000000001", pod))
        .await;

    assert_eq!(response["allowed"], false);
    assert_eq!(response["status"]["code"], 400);
    let message = response["status"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("portcullis.io/inbound-port"), "{message}");
    assert!(message.contains("\"http\""), "{message}");
}

#[tokio::test]
async fn webhook_rejects_malformed_requests() {
    let injector = Injector::start();

    let not_json = injector.post("/inject", "not json".into()).await;
    assert_eq!(not_json.status, StatusCode::BAD_REQUEST);
    assert!(
        not_json.body.contains("not an AdmissionReview"),
        "{}",
        not_json.body
    );

    let mut old_version = pod_review(
        "e2d4f8a0-5555-4c1e-9e0f-000000000001",
        replica_set_pod(opted_in()),
    );
    old_version["apiVersion"] = json!("admission.k8s.io/v1beta1");
    let reply = injector.post("/inject", old_version.to_string()).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert!(
        reply.body.contains("admissionReviewVersions"),
        "{}",
        reply.body
    );

    let unknown = injector.get("/mutate").await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn webhook_health_endpoint() {
    let injector = Injector::start();
    let reply = injector.get("/healthz").await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.body, "ok\n");
}

// ---------------------------------------------------------------------------------------
// The repository's Kubernetes manifests

/// The workloads in `k8s/base` carry the sidecar as `portcullis inject` writes it, so the
/// manifests and the injector cannot drift apart: removing the sidecar and injecting again
/// gives the committed manifest back.
#[test]
fn base_manifests_match_injection() {
    let base = Path::new(env!("CARGO_MANIFEST_DIR")).join("../k8s/base");
    for file in ["orders.yaml", "inventory.yaml"] {
        let text = std::fs::read_to_string(base.join(file)).expect("manifest");
        let committed = parse_yaml(&text)
            .into_iter()
            .find(|document| document["kind"] == "Deployment")
            .expect("a Deployment");

        let mut stripped = committed.clone();
        let spec = stripped["spec"]["template"]["spec"]
            .as_object_mut()
            .expect("pod spec");
        let init = spec
            .remove("initContainers")
            .expect("the sidecar is present");
        assert_eq!(container_names(&init), ["portcullis"], "{file}");
        spec["volumes"]
            .as_array_mut()
            .expect("volumes")
            .retain(|volume| {
                !volume["name"]
                    .as_str()
                    .unwrap_or_default()
                    .starts_with("portcullis-")
            });

        let output = run_inject(&[], Some(&stripped.to_string()));
        assert!(output.status.success(), "{file}: {}", stderr(&output));
        assert_eq!(parse_yaml(&stdout(&output))[0], committed, "{file}");

        let again = run_inject(&[], Some(&text));
        assert_eq!(
            stdout(&again),
            text,
            "{file}: injecting the committed file changes it"
        );
    }
}
