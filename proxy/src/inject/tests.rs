use serde_json::{json, Value};

use super::plan::{self, Decision};
use super::settings::{self, Request};
use super::tree::{self, Node};
use super::{inject_yaml, InjectError, InjectOptions, Outcome, PlanError};

fn inject(text: &str) -> super::Injected {
    inject_yaml(text, &InjectOptions::default()).expect("injection succeeds")
}

/// Parses YAML output with an independent parser, so a malformed insertion fails the test.
fn parse(text: &str) -> Vec<Value> {
    use serde::Deserialize;
    serde_norway::Deserializer::from_str(text)
        .map(|document| Value::deserialize(document).expect("output is valid YAML"))
        .filter(|document| !document.is_null())
        .collect()
}

fn names(list: &Value) -> Vec<&str> {
    list.as_array()
        .expect("a list")
        .iter()
        .map(|item| item["name"].as_str().expect("a name"))
        .collect()
}

const DEPLOYMENT: &str = "\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  template:
    metadata:
      annotations:
        portcullis.io/inject: enabled
    spec:
      containers:
      - name: app
        image: nginx
";

#[test]
fn deployment_gets_sidecar_and_volumes() {
    let result = inject(DEPLOYMENT);
    let output = &parse(&result.yaml)[0];
    let spec = &output["spec"]["template"]["spec"];

    assert_eq!(names(&spec["initContainers"]), ["portcullis"]);
    assert_eq!(names(&spec["containers"]), ["app"]);
    assert_eq!(
        names(&spec["volumes"]),
        ["portcullis-config", "portcullis-tls"]
    );
    let sidecar = &spec["initContainers"][0];
    assert_eq!(sidecar["restartPolicy"], "Always");
    assert_eq!(sidecar["image"], super::DEFAULT_IMAGE);
    assert_eq!(sidecar["ports"][0]["containerPort"], 9443);
    assert_eq!(sidecar["startupProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(spec["volumes"][0]["configMap"]["name"], "portcullis");
    assert_eq!(result.reports[0].workload, "deployment/web");
    assert_eq!(result.reports[0].outcome, Outcome::Injected);
}

/// Returns whether every line of `input` appears in `output`, unchanged and in order.
fn keeps_every_line(input: &str, output: &str) -> bool {
    let mut output_lines = output.lines();
    input
        .lines()
        .all(|line| output_lines.any(|candidate| candidate == line))
}

#[test]
fn text_outside_insertions_is_unchanged() {
    let input = "# leading comment\n".to_owned()
        + DEPLOYMENT
        + "      volumes:\n      - name: keys   # mode in octal, as YAML 1.1 reads it\n        secret: {secretName: keys, defaultMode: 0400}\n";
    let output = inject(&input).yaml;

    assert!(keeps_every_line(&input, &output), "{output}");
    let added = output.lines().count() - input.lines().count();
    let sidecar_lines = inject(DEPLOYMENT).yaml.lines().count() - DEPLOYMENT.lines().count();
    // The same container and volumes as without the existing volume, minus one `volumes:` key.
    assert_eq!(added, sidecar_lines - 1, "{output}");
    let volumes = &parse(&output)[0]["spec"]["template"]["spec"]["volumes"];
    assert_eq!(
        names(volumes),
        ["portcullis-config", "portcullis-tls", "keys"]
    );
}

#[test]
fn second_run_changes_nothing() {
    let once = inject(DEPLOYMENT);
    let twice = inject(&once.yaml);
    assert_eq!(twice.yaml, once.yaml);
    assert_eq!(twice.reports[0].outcome, Outcome::AlreadyInjected);
}

#[test]
fn workloads_without_annotation_unchanged() {
    let input = "\
apiVersion: apps/v1
kind: Deployment
metadata: {name: plain}
spec:
  template:
    spec:
      containers: [{name: app, image: nginx}]
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: off}
spec:
  template:
    metadata:
      annotations: {portcullis.io/inject: disabled}
    spec:
      containers: [{name: app, image: nginx}]
---
apiVersion: v1
kind: ConfigMap
metadata: {name: settings}
data: {portcullis.io/inject: enabled}
";
    let result = inject(input);
    assert_eq!(result.yaml, input);
    let outcomes: Vec<Outcome> = result.reports.iter().map(|r| r.outcome).collect();
    assert_eq!(outcomes, [Outcome::NotOptedIn, Outcome::NotOptedIn]);
}

#[test]
fn every_workload_kind_injected() {
    let template = |kind: &str| {
        format!(
            "apiVersion: apps/v1\nkind: {kind}\nmetadata:\n  name: w\nspec:\n  template:\n    metadata:\n      annotations:\n        portcullis.io/inject: enabled\n    spec:\n      containers:\n      - name: app\n        image: nginx\n"
        )
    };
    let pod = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\n  annotations:\n    portcullis.io/inject: enabled\nspec:\n  containers:\n  - name: app\n    image: nginx\n";
    let input = [
        template("Deployment"),
        template("StatefulSet"),
        template("DaemonSet"),
        pod.to_owned(),
    ]
    .join("---\n");
    let result = inject(&input);
    let documents = parse(&result.yaml);

    assert_eq!(documents.len(), 4);
    for document in &documents[..3] {
        let spec = &document["spec"]["template"]["spec"];
        assert_eq!(names(&spec["initContainers"]), ["portcullis"], "{document}");
    }
    assert_eq!(
        names(&documents[3]["spec"]["initContainers"]),
        ["portcullis"]
    );
    assert!(result
        .reports
        .iter()
        .all(|report| report.outcome == Outcome::Injected));
}

#[test]
fn list_items_injected() {
    let input = format!(
        "apiVersion: v1\nkind: List\nitems:\n- {}",
        DEPLOYMENT.replace('\n', "\n  ").trim_end()
    );
    let result = inject(&(input + "\n"));
    let documents = parse(&result.yaml);
    let spec = &documents[0]["items"][0]["spec"]["template"]["spec"];
    assert_eq!(names(&spec["initContainers"]), ["portcullis"]);
}

#[test]
fn existing_init_containers_follow_sidecar() {
    let input = DEPLOYMENT.replace(
        "      containers:\n",
        "      initContainers:\n        - name: migrate\n          image: tool\n      containers:\n",
    );
    let output = &parse(&inject(&input).yaml)[0];
    let spec = &output["spec"]["template"]["spec"];
    assert_eq!(names(&spec["initContainers"]), ["portcullis", "migrate"]);
}

#[test]
fn flow_and_json_documents_stay_valid() {
    let input = r#"{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "annotations": {"portcullis.io/inject": "enabled"}}, "spec": {"containers": [{"name": "app", "image": "nginx"}], "volumes": []}}
---
apiVersion: v1
kind: Pod
metadata: {name: q, annotations: {portcullis.io/inject: enabled}}
spec: {initContainers: [{name: first, image: tool}], containers: [{name: app, image: nginx}]}
"#;
    let documents = parse(&inject(input).yaml);

    assert_eq!(
        names(&documents[0]["spec"]["initContainers"]),
        ["portcullis"]
    );
    assert_eq!(
        names(&documents[0]["spec"]["volumes"]),
        ["portcullis-config", "portcullis-tls"]
    );
    assert_eq!(
        names(&documents[1]["spec"]["initContainers"]),
        ["portcullis", "first"]
    );
    assert_eq!(
        names(&documents[1]["spec"]["volumes"]),
        ["portcullis-config", "portcullis-tls"]
    );
}

#[test]
fn crlf_input_keeps_crlf() {
    let input = DEPLOYMENT.replace('\n', "\r\n");
    let output = inject(&input).yaml;
    assert!(!output.replace("\r\n", "").contains('\n'), "{output:?}");
    assert_eq!(
        names(&parse(&output)[0]["spec"]["template"]["spec"]["initContainers"]),
        ["portcullis"]
    );
}

#[test]
fn annotations_choose_names_and_ports() {
    let input = DEPLOYMENT.replace(
        "        portcullis.io/inject: enabled\n",
        "        portcullis.io/inject: enabled\n        portcullis.io/config: orders-sidecar\n        portcullis.io/tls-secret: orders-tls\n        portcullis.io/inbound-port: \"8443\"\n        portcullis.io/admin-port: \"9000\"\n",
    );
    let output = &parse(&inject(&input).yaml)[0];
    let spec = &output["spec"]["template"]["spec"];
    let sidecar = &spec["initContainers"][0];

    assert_eq!(spec["volumes"][0]["configMap"]["name"], "orders-sidecar");
    assert_eq!(spec["volumes"][1]["secret"]["secretName"], "orders-tls");
    assert_eq!(sidecar["ports"][0]["containerPort"], 8443);
    assert_eq!(sidecar["ports"][1]["containerPort"], 9000);
    assert_eq!(
        sidecar["env"],
        json!([
            {"name": "PORTCULLIS_INBOUND_LISTEN", "value": "0.0.0.0:8443"},
            {"name": "PORTCULLIS_ADMIN_LISTEN", "value": "0.0.0.0:9000"},
        ])
    );
}

#[test]
fn invalid_annotations_rejected() {
    let cases = [
        ("portcullis.io/inject: enable", "portcullis.io/inject"),
        (
            "portcullis.io/inject: enabled\n        portcullis.io/inbound-port: \"70000\"",
            "portcullis.io/inbound-port",
        ),
        (
            "portcullis.io/inject: enabled\n        portcullis.io/admin-port: \"9443\"",
            "portcullis.io/admin-port",
        ),
        (
            "portcullis.io/inject: enabled\n        portcullis.io/config: Bad_Name",
            "portcullis.io/config",
        ),
    ];
    for (annotations, named) in cases {
        let input = DEPLOYMENT.replace("portcullis.io/inject: enabled", annotations);
        let error = inject_yaml(&input, &InjectOptions::default()).expect_err(annotations);
        let message = error.to_string();
        assert!(message.starts_with("deployment/web: "), "{message}");
        assert!(message.contains(named), "{message}");
    }
}

#[test]
fn taken_volume_name_rejected() {
    let input = DEPLOYMENT.to_owned()
        + "      volumes:\n      - name: portcullis-tls\n        emptyDir: {}\n";
    let error = inject_yaml(&input, &InjectOptions::default()).expect_err("conflict");
    assert!(matches!(
        error,
        InjectError::Plan(PlanError::Unsupported { .. })
    ));
    assert!(error.to_string().contains("portcullis-tls"), "{error}");
}

#[test]
fn null_init_containers_rejected() {
    let input = DEPLOYMENT.replace(
        "      containers:\n",
        "      initContainers:\n      containers:\n",
    );
    let error = inject_yaml(&input, &InjectOptions::default()).expect_err("null list");
    assert!(
        error
            .to_string()
            .contains("spec.initContainers is not a list"),
        "{error}"
    );
}

#[test]
fn syntax_error_names_line() {
    let error = inject_yaml("kind: Pod\nspec: [unclosed\n", &InjectOptions::default())
        .expect_err("invalid YAML");
    assert!(matches!(error, InjectError::Syntax(_)));
    assert!(error.to_string().contains("line"), "{error}");
}

#[test]
fn tree_offsets_are_bytes() {
    let text = "# ünïcode ✓\nkind: Pod\nspec:\n  containers:\n  - name: app\n";
    let documents = tree::parse_stream(text).expect("valid YAML");
    let containers = documents[0]
        .path(&["spec", "containers"])
        .expect("containers");
    let first = &containers.items()[0];
    let name = first.get("name").expect("name");
    assert_eq!(&text[name.start..name.start + 3], "app");
}

#[test]
fn settings_defaults() {
    let metadata = Node::from_json(&json!({"annotations": {"portcullis.io/inject": "enabled"}}));
    let Request::Inject(settings) = settings::read(Some(&metadata)).expect("valid") else {
        panic!("expected injection");
    };
    assert_eq!(settings.config_map, "portcullis");
    assert_eq!(settings.tls_secret, "portcullis-tls");
    assert_eq!(settings.inbound_port, 9443);
    assert_eq!(settings.admin_port, 9901);
}

#[test]
fn sidecar_in_containers_counts_as_injected() {
    let pod = Node::from_json(&json!({
        "kind": "Pod",
        "metadata": {"annotations": {"portcullis.io/inject": "enabled"}},
        "spec": {"containers": [{"name": "portcullis"}, {"name": "app"}]},
    }));
    let workloads = plan::workloads(&pod);
    assert!(matches!(
        plan::decide(&workloads[0]),
        Ok(Decision::AlreadyInjected)
    ));
}
