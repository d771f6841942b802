//! The admission side of injection: an `admission.k8s.io/v1` `AdmissionReview` request in,
//! the review response with a JSON Patch (RFC 6902) out.
//!
//! Only pod creations are changed. Everything else, and every pod that did not opt in or
//! already has the sidecar, is allowed unchanged. A pod that opted in with an invalid
//! annotation is rejected with the reason, because creating it without its sidecar would
//! expose the app without token checks.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde::Deserialize;
use serde_json::{json, Value};

use super::plan::{self, Decision, Plan, PlanError, Workload};
use super::sidecar;
use super::tree::Node;
use super::InjectOptions;

/// The API version of the reviews this webhook reads and writes.
pub const ADMISSION_API_VERSION: &str = "admission.k8s.io/v1";

/// A request body that is not a usable `AdmissionReview`.
#[derive(Debug, thiserror::Error)]
pub enum ReviewError {
    #[error("the body is not an AdmissionReview: {0}")]
    Json(#[from] serde_json::Error),
    #[error("expected apiVersion {ADMISSION_API_VERSION} and kind AdmissionReview, got {api_version} {kind}; set admissionReviewVersions to [\"v1\"]")]
    Version { api_version: String, kind: String },
    #[error("the AdmissionReview has no request")]
    NoRequest,
    #[error("the AdmissionReview request for a Pod has no object")]
    NoObject,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Review {
    api_version: String,
    kind: String,
    request: Option<Request>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Request {
    uid: String,
    kind: GroupVersionKind,
    #[serde(default)]
    namespace: Option<String>,
    #[serde(default)]
    object: Option<Value>,
}

#[derive(Deserialize)]
struct GroupVersionKind {
    #[serde(default)]
    group: String,
    kind: String,
}

/// The decision for one review, for the log line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// The request's `uid`.
    pub uid: String,
    /// `namespace/pod` as far as known (pods of a Deployment have only a `generateName`).
    pub pod: String,
    pub outcome: VerdictOutcome,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VerdictOutcome {
    /// The object is not a pod.
    Ignored,
    NotOptedIn,
    AlreadyInjected,
    /// Allowed with a patch of this many operations.
    Patched(usize),
    /// Rejected with this message.
    Rejected(String),
}

/// Reviews one request: returns the response `AdmissionReview` and the verdict to log.
pub fn review(body: &[u8], options: &InjectOptions) -> Result<(Value, Verdict), ReviewError> {
    let review: Review = serde_json::from_slice(body)?;
    if review.api_version != ADMISSION_API_VERSION || review.kind != "AdmissionReview" {
        return Err(ReviewError::Version {
            api_version: review.api_version,
            kind: review.kind,
        });
    }
    let request = review.request.ok_or(ReviewError::NoRequest)?;
    let namespace = request.namespace.clone().unwrap_or_default();

    if !request.kind.group.is_empty() || request.kind.kind != "Pod" {
        let verdict = Verdict {
            uid: request.uid.clone(),
            pod: format!("{namespace}/-"),
            outcome: VerdictOutcome::Ignored,
        };
        return Ok((allowed(&request.uid, None), verdict));
    }

    let object = request.object.as_ref().ok_or(ReviewError::NoObject)?;
    let pod = Node::from_json(object);
    let workloads = plan::workloads(&pod);
    let workload = match workloads.into_iter().next() {
        Some(workload) => workload,
        // A pod object without `kind` (the API server always sets it, but be lenient).
        None => Workload {
            id: "pod/(unnamed)".to_owned(),
            metadata: pod.get("metadata"),
            spec: pod.get("spec"),
        },
    };
    let pod_name = workload.id.trim_start_matches("pod/");
    let verdict = |outcome| Verdict {
        uid: request.uid.clone(),
        pod: format!("{namespace}/{pod_name}"),
        outcome,
    };

    let response = match plan::decide(&workload) {
        Ok(Decision::NotOptedIn) => (
            allowed(&request.uid, None),
            verdict(VerdictOutcome::NotOptedIn),
        ),
        Ok(Decision::AlreadyInjected) => (
            allowed(&request.uid, None),
            verdict(VerdictOutcome::AlreadyInjected),
        ),
        Ok(Decision::Inject(plan)) => {
            let operations = patch(&plan, &options.image);
            let count = operations.len();
            (
                allowed(&request.uid, Some(operations)),
                verdict(VerdictOutcome::Patched(count)),
            )
        }
        Err(error) => {
            let message = match &error {
                PlanError::Annotation { source, .. } => source.to_string(),
                PlanError::Unsupported { problem, .. } => problem.clone(),
            };
            (
                rejected(&request.uid, &message),
                verdict(VerdictOutcome::Rejected(message)),
            )
        }
    };
    Ok(response)
}

/// Builds the JSON Patch operations that add the sidecar: the container in front of any
/// other init container, so it is up before them, and the volumes in front of the others.
pub(crate) fn patch(plan: &Plan<'_>, image: &str) -> Vec<Value> {
    let container = sidecar::container(image, &plan.settings).to_json();
    let volumes: Vec<Value> = sidecar::volumes(&plan.settings)
        .iter()
        .map(|volume| volume.to_json())
        .collect();

    let mut operations = Vec::new();
    match plan.init_containers {
        Some(_) => operations.push(add("/spec/initContainers/0", container)),
        None => operations.push(add("/spec/initContainers", json!([container]))),
    }
    match plan.volumes {
        Some(_) => {
            for (index, volume) in volumes.into_iter().enumerate() {
                operations.push(add(&format!("/spec/volumes/{index}"), volume));
            }
        }
        None => operations.push(add("/spec/volumes", Value::Array(volumes))),
    }
    operations
}

fn add(path: &str, value: Value) -> Value {
    json!({ "op": "add", "path": path, "value": value })
}

fn allowed(uid: &str, patch: Option<Vec<Value>>) -> Value {
    let mut response = json!({ "uid": uid, "allowed": true });
    if let Some(operations) = patch {
        let encoded = STANDARD.encode(Value::Array(operations).to_string());
        response["patchType"] = json!("JSONPatch");
        response["patch"] = json!(encoded);
    }
    wrap(response)
}

fn rejected(uid: &str, message: &str) -> Value {
    wrap(json!({
        "uid": uid,
        "allowed": false,
        "status": {
            "code": 400,
            "message": format!("portcullis injector: {message}"),
        },
    }))
}

fn wrap(response: Value) -> Value {
    json!({
        "apiVersion": ADMISSION_API_VERSION,
        "kind": "AdmissionReview",
        "response": response,
    })
}
