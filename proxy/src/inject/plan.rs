//! Finding the pods in a document and deciding, for each, whether to inject and where the
//! additions go. The same decision drives the YAML edit (`portcullis inject`) and the JSON
//! Patch (`portcullis injector`).

use super::settings::{self, AnnotationError, Request, Settings};
use super::sidecar::{CONFIG_VOLUME, CONTAINER_NAME, TLS_VOLUME};
use super::tree::{Node, NodeValue};

/// A pod, or the pod template of a workload, found in a document.
#[derive(Debug)]
pub(crate) struct Workload<'a> {
    /// `kind/name` in lowercase kind, such as `deployment/orders`, for messages.
    pub id: String,
    /// The pod's `metadata`, where the annotations are.
    pub metadata: Option<&'a Node>,
    /// The pod's `spec`; `None` when the document lacks it.
    pub spec: Option<&'a Node>,
}

/// The injection decision for one workload.
#[derive(Debug)]
pub(crate) enum Decision<'a> {
    NotOptedIn,
    /// A container named `portcullis` is already there, so nothing changes: running the
    /// injection twice gives the same output as running it once.
    AlreadyInjected,
    Inject(Plan<'a>),
}

/// The places in one pod spec where injection adds the sidecar.
#[derive(Debug)]
pub(crate) struct Plan<'a> {
    pub settings: Settings,
    pub spec: &'a Node,
    /// The existing `initContainers` sequence, prepended to; `None` adds the field.
    pub init_containers: Option<&'a Node>,
    /// The existing `volumes` sequence, prepended to; `None` adds the field.
    pub volumes: Option<&'a Node>,
}

/// A workload that opted in but cannot be injected.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error("{workload}: {source}")]
    Annotation {
        workload: String,
        source: AnnotationError,
    },
    #[error("{workload}: {problem}")]
    Unsupported { workload: String, problem: String },
}

/// Kinds whose pod template lives at `spec.template`.
const TEMPLATE_KINDS: [&str; 3] = ["Deployment", "StatefulSet", "DaemonSet"];

/// Collects the pods and pod templates of a document, looking inside `List` documents such
/// as `kubectl get -o yaml` prints. Other kinds contain none.
pub(crate) fn workloads(document: &Node) -> Vec<Workload<'_>> {
    let mut found = Vec::new();
    collect(document, &mut found);
    found
}

fn collect<'a>(document: &'a Node, found: &mut Vec<Workload<'a>>) {
    let Some(kind) = document.get("kind").and_then(Node::as_str) else {
        return;
    };
    let metadata = document.get("metadata");
    let name = metadata
        .and_then(|metadata| {
            metadata
                .get("name")
                .or_else(|| metadata.get("generateName"))
        })
        .and_then(Node::as_str)
        .unwrap_or("(unnamed)");
    let id = format!("{}/{name}", kind.to_ascii_lowercase());

    // `List`, as `kubectl get` prints, and typed lists such as `DeploymentList`.
    if kind.ends_with("List") {
        for item in document.get("items").map(Node::items).unwrap_or(&[]) {
            collect(item, found);
        }
    } else if kind == "Pod" {
        found.push(Workload {
            id,
            metadata,
            spec: document.get("spec"),
        });
    } else if TEMPLATE_KINDS.contains(&kind) {
        let template = document.path(&["spec", "template"]);
        found.push(Workload {
            id,
            metadata: template.and_then(|template| template.get("metadata")),
            spec: template.and_then(|template| template.get("spec")),
        });
    }
}

/// Decides what to do with `workload`.
pub(crate) fn decide<'a>(workload: &Workload<'a>) -> Result<Decision<'a>, PlanError> {
    let request = settings::read(workload.metadata).map_err(|source| PlanError::Annotation {
        workload: workload.id.clone(),
        source,
    })?;
    let settings = match request {
        Request::NotOptedIn => return Ok(Decision::NotOptedIn),
        Request::Inject(settings) => settings,
    };
    let unsupported = |problem: String| PlanError::Unsupported {
        workload: workload.id.clone(),
        problem,
    };

    let spec = match workload.spec {
        Some(spec) if matches!(spec.value, NodeValue::Mapping { .. }) => spec,
        _ => {
            return Err(unsupported(
                "the pod spec is missing or not a mapping".into(),
            ))
        }
    };
    let init_containers = sequence_field(spec, "initContainers").map_err(&unsupported)?;
    let containers = sequence_field(spec, "containers").map_err(&unsupported)?;
    let volumes = sequence_field(spec, "volumes").map_err(&unsupported)?;

    let has_sidecar = [init_containers, containers]
        .into_iter()
        .flatten()
        .flat_map(Node::items)
        .any(|container| name_of(container) == Some(CONTAINER_NAME));
    if has_sidecar {
        return Ok(Decision::AlreadyInjected);
    }
    if let Some(taken) = volumes
        .map(Node::items)
        .unwrap_or(&[])
        .iter()
        .filter_map(name_of)
        .find(|name| [CONFIG_VOLUME, TLS_VOLUME].contains(name))
    {
        return Err(unsupported(format!(
            "the pod already has a volume named {taken:?} but no {CONTAINER_NAME:?} container; \
             rename that volume or remove it before injecting"
        )));
    }

    Ok(Decision::Inject(Plan {
        settings,
        spec,
        init_containers,
        volumes,
    }))
}

/// Returns a pod spec field that must be a sequence when present.
fn sequence_field<'a>(spec: &'a Node, field: &str) -> Result<Option<&'a Node>, String> {
    match spec.get(field) {
        None => Ok(None),
        Some(node) if matches!(node.value, NodeValue::Sequence { .. }) => Ok(Some(node)),
        Some(_) => Err(format!(
            "spec.{field} is not a list; write a list (`[]` when empty) or remove the field"
        )),
    }
}

fn name_of(item: &Node) -> Option<&str> {
    item.get("name").and_then(Node::as_str)
}
