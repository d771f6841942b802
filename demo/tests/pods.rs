//! Pods on one machine: the STS, the order pod and the inventory pod each get a Linux network
//! namespace with its own loopback, joined by veth pairs to a bridge in a fourth "node"
//! namespace, with a client in a fifth. Each pod runs its app and a `portcullis` sidecar, as
//! a Kubernetes pod does, and the test checks what crosses the network between them:
//! - a client reaches the order service only through its sidecar;
//! - the order app reaches the inventory only through its sidecar's outbound listener;
//! - the inventory app cannot be reached from outside its namespace at all;
//! - the book's flow works across the pods.
//!
//! The addresses are private ones on a bridge that has no link to the host's network, so no
//! packet leaves the namespaces this test creates. It needs root, iproute2 and curl, and the
//! release or debug binaries next to this test (`cargo test --workspace` builds them). When
//! any is missing it prints why and skips, unless PORTCULLIS_PODS_TEST=require, which turns
//! a skip into a failure (the test command sets it when running as root).

use std::fs::File;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use portcullis_demo::certs::DemoCerts;
use portcullis_demo::sidecar_config::{SidecarConfig, SidecarRole};
use portcullis_demo::walkthrough::BOOK_ORDER;

/// The bridge's subnet; the pods take the addresses below.
const PREFIX_LEN: u8 = 24;
const STS_ADDR: &str = "10.231.47.2";
const ORDERS_ADDR: &str = "10.231.47.3";
const INVENTORY_ADDR: &str = "10.231.47.4";
const CLIENT_ADDR: &str = "10.231.47.10";

/// Upper bound for each wait (readiness, a port opening). The test asserts states, never how
/// long they took; the bound only keeps a broken build from hanging.
const WAIT_LIMIT: Duration = Duration::from_secs(60);

/// curl's exit code for "Failed to connect to host" (connection refused).
const CURL_COULDNT_CONNECT: i32 = 7;

const BINARIES: [&str; 4] = ["portcullis", "portcullis-sts", "order-app", "inventory-app"];

#[test]
fn pods_in_network_namespaces() {
    let Some(mut lab) = Lab::create() else {
        return;
    };
    lab.start_pods();

    // The book's flow from the client namespace, through the order sidecar only.
    let token = lab.token();
    let placed = lab.curl(
        "client",
        &[
            "-X",
            "POST",
            &format!("https://{ORDERS_ADDR}:9443/orders"),
            "-H",
            "Content-Type: application/json",
            "-H",
            &format!("Authorization: Bearer {token}"),
            "-d",
            BOOK_ORDER,
        ],
    );
    assert_eq!(placed.status, Some(201), "placing an order: {placed:?}");
    let order: serde_json::Value =
        serde_json::from_str(&placed.body).expect("the order service returns JSON");
    let order_id = order["order_id"].as_str().expect("an order_id");

    let read = lab.curl(
        "client",
        &[
            &format!("https://{ORDERS_ADDR}:9443/orders/{order_id}"),
            "-H",
            &format!("Authorization: Bearer {token}"),
        ],
    );
    assert_eq!(read.status, Some(200), "reading the order back: {read:?}");

    let anonymous = lab.curl(
        "client",
        &[&format!("https://{ORDERS_ADDR}:9443/orders/{order_id}")],
    );
    assert_eq!(anonymous.status, Some(401), "no token: {anonymous:?}");

    // The order pod exposes nothing but the sidecar's inbound port.
    for (port, what) in [
        (8081, "order app"),
        (15001, "outbound listener"),
        (9901, "admin listener"),
    ] {
        let direct = lab.curl("client", &[&format!("http://{ORDERS_ADDR}:{port}/")]);
        assert_eq!(
            direct.exit_code, CURL_COULDNT_CONNECT,
            "the {what} answered the client: {direct:?}"
        );
    }

    // The inventory app responds inside its namespace and nowhere else.
    let inside = lab.curl("inventory", &["http://127.0.0.1:8082/"]);
    assert_eq!(
        inside.exit_code, 0,
        "the inventory app must answer on its loopback: {inside:?}"
    );
    for namespace in ["client", "orders"] {
        let outside = lab.curl(namespace, &[&format!("http://{INVENTORY_ADDR}:8082/")]);
        assert_eq!(
            outside.exit_code, CURL_COULDNT_CONNECT,
            "the inventory app answered from the {namespace} namespace: {outside:?}"
        );
    }

    // The inventory sidecar takes only clients with a certificate from the demo CA.
    let without_certificate = lab.curl(
        "client",
        &[
            "-X",
            "PUT",
            &format!("https://{INVENTORY_ADDR}:10443/inventory"),
            "-H",
            &format!("Authorization: Bearer {token}"),
            "-d",
            "[]",
        ],
    );
    assert_ne!(without_certificate.exit_code, 0, "{without_certificate:?}");
    assert_eq!(without_certificate.status, None, "{without_certificate:?}");

    // The order went from the order app through its outbound listener to the inventory
    // sidecar, which forwarded it to the inventory app (`PUT /inventory` returns 204).
    let outbound = lab.metric(
        "orders",
        r#"portcullis_requests_total{direction="outbound",status="204"}"#,
    );
    assert!(
        outbound >= 1.0,
        "the order sidecar forwarded no inventory call"
    );
    let inventory = lab.metric(
        "inventory",
        r#"portcullis_requests_total{direction="inbound",status="204"}"#,
    );
    assert!(
        inventory >= 1.0,
        "the inventory sidecar forwarded no request"
    );
}

/// The namespaces, files and processes of one run. Dropping it kills the processes and
/// deletes the namespaces, also when an assertion failed.
struct Lab {
    prefix: String,
    dir: tempfile::TempDir,
    bin: PathBuf,
    namespaces: Vec<String>,
    children: Vec<(String, Child)>,
}

impl Lab {
    /// Builds the network, or returns `None` after printing why the test is skipped.
    fn create() -> Option<Lab> {
        let required = std::env::var("PORTCULLIS_PODS_TEST").as_deref() == Ok("require");
        let skip = |reason: String| {
            if required {
                panic!("pods test required (PORTCULLIS_PODS_TEST=require) but {reason}");
            }
            eprintln!("SKIPPED pods_in_network_namespaces: {reason}");
            None
        };
        if !is_root() {
            return skip("it needs root to create network namespaces".into());
        }
        for tool in ["ip", "curl"] {
            if !runs(Command::new(tool).arg("-V")) {
                return skip(format!("`{tool}` is not installed"));
            }
        }
        let bin = binary_dir();
        if let Some(missing) = BINARIES.iter().find(|name| !bin.join(name).is_file()) {
            return skip(format!(
                "{} is missing; build the binaries first with `cargo build --workspace --bins`",
                bin.join(missing).display()
            ));
        }

        let mut lab = Lab {
            prefix: format!("pc{}", std::process::id() % 100_000),
            dir: tempfile::tempdir().expect("temporary folder"),
            bin,
            namespaces: Vec::new(),
            children: Vec::new(),
        };
        if let Err(error) = lab.add_namespace("node") {
            return skip(format!("`ip netns add` failed: {error}"));
        }
        lab.build_network();
        Some(lab)
    }

    fn namespace(&self, role: &str) -> String {
        format!("{}-{role}", self.prefix)
    }

    fn add_namespace(&mut self, role: &str) -> Result<(), String> {
        let name = self.namespace(role);
        ip(&["netns", "add", &name])?;
        self.namespaces.push(name.clone());
        ip(&["-n", &name, "link", "set", "lo", "up"])
    }

    /// Creates a bridge in the node namespace and one veth pair per pod: `eth0` in the pod,
    /// the other end on the bridge.
    fn build_network(&mut self) {
        let node = self.namespace("node");
        run_ip(&["-n", &node, "link", "add", "br0", "type", "bridge"]);
        run_ip(&["-n", &node, "link", "set", "br0", "up"]);
        for (role, addr) in [
            ("sts", STS_ADDR),
            ("orders", ORDERS_ADDR),
            ("inventory", INVENTORY_ADDR),
            ("client", CLIENT_ADDR),
        ] {
            self.add_namespace(role)
                .unwrap_or_else(|error| panic!("{error}"));
            let pod = self.namespace(role);
            run_ip(&[
                "-n", &node, "link", "add", role, "type", "veth", "peer", "name", "eth0", "netns",
                &pod,
            ]);
            run_ip(&["-n", &node, "link", "set", role, "master", "br0", "up"]);
            run_ip(&[
                "-n",
                &pod,
                "addr",
                "add",
                &format!("{addr}/{PREFIX_LEN}"),
                "dev",
                "eth0",
            ]);
            run_ip(&["-n", &pod, "link", "set", "eth0", "up"]);
        }
    }

    /// Writes the certificates and configuration files, starts every process, and waits
    /// until both sidecars are ready.
    fn start_pods(&mut self) {
        let dir = self.dir.path().to_owned();
        let names: Vec<String> = [STS_ADDR, ORDERS_ADDR, INVENTORY_ADDR]
            .iter()
            .map(|addr| addr.to_string())
            .collect();
        let certs = DemoCerts::load_or_create_with_names(&dir.join("certs"), &names)
            .expect("demo certificates");

        let sts_config = sts_toml(
            &certs,
            &dir,
            &self.hash("applicationsecret"),
            &self.hash("peter123"),
        );
        write(&dir.join("sts.toml"), &sts_config);
        let orders = SidecarRole::Orders {
            outbound_listen: SocketAddr::from(([127, 0, 0, 1], 15001)),
            inventory_url: format!("https://{INVENTORY_ADDR}:10443"),
        };
        write(&dir.join("orders.toml"), &sidecar_toml(&certs, orders));
        write(
            &dir.join("inventory.toml"),
            &sidecar_toml(&certs, SidecarRole::Inventory),
        );

        let bin = |name: &str| self.bin.join(name).display().to_string();
        let (sts, sidecar, order_app, inventory_app) = (
            bin("portcullis-sts"),
            bin("portcullis"),
            bin("order-app"),
            bin("inventory-app"),
        );
        let path = |name: &str| dir.join(name).display().to_string();

        self.spawn("sts", &[&sts, "--config", &path("sts.toml")]);
        self.spawn(
            "inventory",
            &[
                &inventory_app,
                "--listen",
                "127.0.0.1:8082",
                "--db",
                &path("inventory.db"),
            ],
        );
        self.spawn(
            "inventory",
            &[&sidecar, "--config", &path("inventory.toml")],
        );
        self.spawn(
            "orders",
            &[
                &order_app,
                "--listen",
                "127.0.0.1:8081",
                "--db",
                &path("orders.db"),
                "--outbound",
                "127.0.0.1:15001",
                "--inventory-host",
                "inventory",
            ],
        );
        self.spawn("orders", &[&sidecar, "--config", &path("orders.toml")]);

        for pod in ["inventory", "orders"] {
            self.wait_until(&format!("the {pod} sidecar is ready"), || {
                self.exec(pod, &[&sidecar, "probe", "http://127.0.0.1:9901/readyz"])
                    .status
                    .success()
            });
        }
        for (pod, port) in [("inventory", 8082), ("orders", 8081)] {
            self.wait_until(&format!("the {pod} app listens"), || {
                self.curl(pod, &[&format!("http://127.0.0.1:{port}/")])
                    .exit_code
                    == 0
            });
        }
    }

    /// Hashes a demo secret with `portcullis-sts hash-password`, as the STS README shows.
    fn hash(&self, secret: &str) -> String {
        let mut child = Command::new(self.bin.join("portcullis-sts"))
            .arg("hash-password")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start portcullis-sts hash-password");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(secret.as_bytes())
            .expect("write the secret");
        let output = child.wait_with_output().expect("hash-password finishes");
        assert!(output.status.success(), "hash-password failed");
        String::from_utf8(output.stdout)
            .expect("UTF-8")
            .trim()
            .to_owned()
    }

    /// Starts a long-running process in a pod, logging to a file in the temporary folder.
    fn spawn(&mut self, role: &str, command: &[&str]) {
        let name = Path::new(command[0])
            .file_name()
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_default();
        let log_path = self.dir.path().join(format!("{role}-{name}.log"));
        let log = File::create(&log_path).expect("log file");
        let child = Command::new("ip")
            .args(["netns", "exec", &self.namespace(role)])
            .args(command)
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdout(log.try_clone().expect("log file"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|error| panic!("cannot start {name} in {role}: {error}"));
        self.children.push((format!("{role}/{name}"), child));
    }

    /// Runs a short command in a pod's namespace.
    fn exec(&self, role: &str, command: &[&str]) -> Output {
        Command::new("ip")
            .args(["netns", "exec", &self.namespace(role)])
            .args(command)
            .output()
            .expect("run a command in a namespace")
    }

    /// Runs curl in a pod's namespace; HTTPS requests trust the demo CA.
    fn curl(&self, role: &str, args: &[&str]) -> CurlReply {
        let ca = self.dir.path().join("certs/ca.pem").display().to_string();
        let mut command = vec![
            "curl",
            "-s",
            "--max-time",
            "10",
            "--connect-timeout",
            "5",
            "--cacert",
            &ca,
            "-w",
            "\n%{http_code}",
        ];
        command.extend_from_slice(args);
        let output = self.exec(role, &command);
        let text = String::from_utf8_lossy(&output.stdout).into_owned();
        let (body, code) = text.rsplit_once('\n').unwrap_or(("", &text));
        CurlReply {
            exit_code: output.status.code().unwrap_or(-1),
            status: code.trim().parse().ok().filter(|status| *status != 0),
            body: body.to_owned(),
        }
    }

    /// Gets a token for the book's user with the book's client, as chapter 10 does.
    fn token(&self) -> String {
        let reply = self.curl(
            "client",
            &[
                "-u",
                "applicationid:applicationsecret",
                "-H",
                "Content-Type: application/x-www-form-urlencoded;charset=UTF-8",
                "-d",
                "grant_type=password&username=peter&password=peter123&scope=foo",
                &format!("https://{STS_ADDR}:8443/oauth/token"),
            ],
        );
        assert_eq!(reply.status, Some(200), "token request: {reply:?}");
        let body: serde_json::Value = serde_json::from_str(&reply.body).expect("JSON");
        body["access_token"]
            .as_str()
            .expect("an access_token")
            .to_owned()
    }

    /// Reads one sample from a sidecar's `/metrics`, inside its namespace.
    fn metric(&self, role: &str, sample: &str) -> f64 {
        let reply = self.curl(role, &["http://127.0.0.1:9901/metrics"]);
        reply
            .body
            .lines()
            .find_map(|line| {
                let (name, value) = line.rsplit_once(' ')?;
                (name == sample).then(|| value.parse().ok()).flatten()
            })
            .unwrap_or(0.0)
    }

    fn wait_until(&self, what: &str, mut done: impl FnMut() -> bool) {
        let deadline = Instant::now() + WAIT_LIMIT;
        while !done() {
            if let Some((name, status)) = self.exited_child() {
                panic!("{name} exited ({status}) before {what}");
            }
            assert!(Instant::now() < deadline, "timed out waiting until {what}");
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn exited_child(&self) -> Option<(String, String)> {
        self.children.iter().find_map(|(name, child)| {
            // `try_wait` needs `&mut`; read the state through /proc instead.
            let alive = Path::new(&format!("/proc/{}", child.id())).exists()
                && !std::fs::read_to_string(format!("/proc/{}/stat", child.id()))
                    .unwrap_or_default()
                    .contains(") Z ");
            (!alive).then(|| (name.clone(), "see its log below".to_owned()))
        })
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for (_, child) in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        if std::thread::panicking() {
            print_logs(self.dir.path());
        }
        for namespace in self.namespaces.iter().rev() {
            if let Err(error) = ip(&["netns", "del", namespace]) {
                eprintln!("cannot delete network namespace {namespace}: {error}");
            }
        }
    }
}

#[derive(Debug)]
struct CurlReply {
    exit_code: i32,
    /// The HTTP status, or `None` when no response arrived.
    status: Option<u16>,
    body: String,
}

fn print_logs(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.extension().is_some_and(|ext| ext == "log") {
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            eprintln!("----- {} -----\n{text}", path.display());
        }
    }
}

fn ip(args: &[&str]) -> Result<(), String> {
    let output = Command::new("ip")
        .args(args)
        .output()
        .map_err(|error| format!("cannot run ip: {error}"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        ))
    }
}

fn run_ip(args: &[&str]) {
    ip(args).unwrap_or_else(|error| panic!("{error}"));
}

fn runs(command: &mut Command) -> bool {
    command
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|line| line.strip_prefix("Uid:"))
                .and_then(|ids| ids.split_whitespace().nth(1).map(|euid| euid == "0"))
        })
        .unwrap_or(false)
}

/// Returns the folder of this build profile's binaries; the test runs from `deps/` below it.
fn binary_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    exe.parent()
        .and_then(Path::parent)
        .expect("the test executable sits in target/PROFILE/deps")
        .to_owned()
}

fn write(path: &Path, text: &str) {
    std::fs::write(path, text)
        .unwrap_or_else(|error| panic!("cannot write {}: {error}", path.display()));
}

fn sts_toml(certs: &DemoCerts, dir: &Path, client_hash: &str, user_hash: &str) -> String {
    format!(
        r#"listen = "{STS_ADDR}:8443"
issuer = "https://{STS_ADDR}:8443"
data_dir = "{data}"

[tls]
cert = "{cert}"
key = "{key}"

[[clients]]
id = "applicationid"
secret_hash = "{client_hash}"
grants = ["password"]
scopes = ["foo", "bar"]
audiences = ["orders", "inventory"]

[[users]]
username = "peter"
password_hash = "{user_hash}"
"#,
        data = dir.join("sts-data").display(),
        cert = certs.sts.cert.display(),
        key = certs.sts.key.display(),
    )
}

/// Returns the configuration of a pod's sidecar. Each pod has its own network namespace, so
/// both sidecars use the book's ports and admin port 9901, and the inbound listener takes
/// connections on every address of the pod.
fn sidecar_toml(certs: &DemoCerts, role: SidecarRole) -> String {
    let (inbound_port, app_port) = match role {
        SidecarRole::Orders { .. } => (9443, 8081),
        SidecarRole::Inventory => (10443, 8082),
    };
    SidecarConfig {
        role,
        header: Vec::new(),
        shutdown_grace_secs: 1,
        listen: SocketAddr::from(([0, 0, 0, 0], inbound_port)),
        upstream: SocketAddr::from(([127, 0, 0, 1], app_port)),
        admin: SocketAddr::from(([127, 0, 0, 1], 9901)),
        issuer: format!("https://{STS_ADDR}:8443"),
        jwks_uri: format!("https://{STS_ADDR}:8443/.well-known/jwks.json"),
        certs,
    }
    .render()
}
