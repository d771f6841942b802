//! Sidecar injection for Kubernetes: adds a Portcullis sidecar to every pod that opts in with
//! the annotation `portcullis.io/inject: enabled`.
//!
//! Two front ends share one decision ([`plan`]) and one description of the sidecar
//! ([`sidecar`]):
//! - `portcullis inject` ([`inject_yaml`]) edits YAML manifests as text, inserting the
//!   sidecar and leaving every other byte as it was.
//! - `portcullis injector` ([`injector`]) is a mutating admission webhook that returns a
//!   JSON Patch for each pod creation ([`webhook`]).
//!
//! Modules:
//! - `tree`: YAML documents as node trees with byte offsets.
//! - `settings`: the `portcullis.io/*` annotations.
//! - `plan`: which pods opt in, whether they already have the sidecar, where it goes.
//! - `sidecar`: the container and volumes added, as YAML or JSON.
//! - `edit`: the text insertions for `portcullis inject`.
//! - [`webhook`]: `AdmissionReview` in, JSON Patch out.
//! - [`injector`]: the HTTPS server of the webhook.
//! - [`cli`]: the `inject` and `injector` subcommands.

pub mod cli;
mod edit;
pub mod injector;
mod plan;
mod settings;
mod sidecar;
mod tree;
pub mod webhook;

pub use plan::PlanError;
pub use settings::{
    AnnotationError, Settings, ADMIN_PORT_ANNOTATION, CONFIG_ANNOTATION, DEFAULT_ADMIN_PORT,
    DEFAULT_CONFIG_MAP, DEFAULT_INBOUND_PORT, DEFAULT_TLS_SECRET, INBOUND_PORT_ANNOTATION,
    INJECT_ANNOTATION, TLS_SECRET_ANNOTATION,
};
pub use sidecar::{
    ADMIN_PORT_NAME, CONFIG_DIR, CONFIG_FILE, CONFIG_VOLUME, CONTAINER_NAME, INBOUND_PORT_NAME,
    TLS_DIR, TLS_VOLUME,
};
pub use tree::SyntaxError;

use plan::Decision;

/// The sidecar image used when none is given: the local tag the repository's `Dockerfile`
/// documents for this version.
pub const DEFAULT_IMAGE: &str = concat!("portcullis:", env!("CARGO_PKG_VERSION"));

/// Choices that apply to every injected pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InjectOptions {
    /// The sidecar container image.
    pub image: String,
}

impl Default for InjectOptions {
    fn default() -> Self {
        InjectOptions {
            image: DEFAULT_IMAGE.to_owned(),
        }
    }
}

/// The result of injection for one pod or workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Injected,
    AlreadyInjected,
    NotOptedIn,
}

/// The outcome for one workload, such as `deployment/orders`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub workload: String,
    pub outcome: Outcome,
}

/// The injected YAML and what happened to each workload in it.
#[derive(Debug, Clone)]
pub struct Injected {
    pub yaml: String,
    pub reports: Vec<Report>,
}

/// A failure to inject a YAML stream. Nothing is written when any document fails.
#[derive(Debug, thiserror::Error)]
pub enum InjectError {
    #[error(transparent)]
    Syntax(#[from] SyntaxError),
    #[error(transparent)]
    Plan(#[from] PlanError),
}

/// Adds the sidecar to every opted-in Deployment, StatefulSet, DaemonSet and Pod of a YAML
/// stream (several documents allowed, `List` documents included) and returns the new text.
///
/// Text outside the insertions is returned byte for byte, comments included. A workload that
/// already has a container named `portcullis` is left alone, so injecting twice gives the
/// same text as injecting once.
pub fn inject_yaml(text: &str, options: &InjectOptions) -> Result<Injected, InjectError> {
    let documents = tree::parse_stream(text)?;
    let mut insertions = Vec::new();
    let mut reports = Vec::new();
    for document in &documents {
        for workload in plan::workloads(document) {
            let outcome = match plan::decide(&workload)? {
                Decision::NotOptedIn => Outcome::NotOptedIn,
                Decision::AlreadyInjected => Outcome::AlreadyInjected,
                Decision::Inject(plan) => {
                    insertions.extend(edit::insertions(text, &plan, &options.image, &workload.id)?);
                    Outcome::Injected
                }
            };
            reports.push(Report {
                workload: workload.id,
                outcome,
            });
        }
    }
    Ok(Injected {
        yaml: edit::apply(text, insertions),
        reports,
    })
}

#[cfg(test)]
mod tests;
