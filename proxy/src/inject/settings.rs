//! The `portcullis.io/*` pod annotations: whether a pod opts in to injection, and the names
//! and ports its sidecar uses.

use super::tree::Node;

/// The annotation that opts a pod in: `enabled` injects, `disabled` or absence leaves the pod
/// alone. Any other value is an error, so a typo such as `enable` is reported rather than
/// silently leaving the workload without a sidecar.
pub const INJECT_ANNOTATION: &str = "portcullis.io/inject";

/// The ConfigMap holding the sidecar's configuration under the key `portcullis.toml`.
pub const CONFIG_ANNOTATION: &str = "portcullis.io/config";

/// The Secret whose keys appear as files under `/etc/portcullis/tls/`.
pub const TLS_SECRET_ANNOTATION: &str = "portcullis.io/tls-secret";

/// The port of the inbound listener.
pub const INBOUND_PORT_ANNOTATION: &str = "portcullis.io/inbound-port";

/// The port of the admin listener, which the kubelet probes.
pub const ADMIN_PORT_ANNOTATION: &str = "portcullis.io/admin-port";

/// Default ConfigMap name: one sidecar configuration per namespace unless a pod names its own.
pub const DEFAULT_CONFIG_MAP: &str = "portcullis";

/// Default Secret name.
pub const DEFAULT_TLS_SECRET: &str = "portcullis-tls";

/// Default inbound port, the sidecar's own default (`0.0.0.0:9443`).
pub const DEFAULT_INBOUND_PORT: u16 = 9443;

/// Default admin port, the sidecar's own default (`127.0.0.1:9901`, opened to the pod
/// network by injection so the kubelet can probe it).
pub const DEFAULT_ADMIN_PORT: u16 = 9901;

/// The injection request the annotations make.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Request {
    /// No `portcullis.io/inject` annotation, or `disabled`.
    NotOptedIn,
    Inject(Settings),
}

/// The per-pod choices the injected sidecar depends on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub config_map: String,
    pub tls_secret: String,
    pub inbound_port: u16,
    pub admin_port: u16,
}

/// An annotation with a value injection cannot use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid value {value:?} for annotation {annotation}: {expected}")]
pub struct AnnotationError {
    pub annotation: &'static str,
    pub value: String,
    pub expected: &'static str,
}

/// Reads the annotations of a pod or pod template's `metadata`.
pub(crate) fn read(metadata: Option<&Node>) -> Result<Request, AnnotationError> {
    let annotations = metadata.and_then(|metadata| metadata.get("annotations"));
    let annotation = |name: &str| annotations.and_then(|all| all.get(name)?.as_str());

    match annotation(INJECT_ANNOTATION) {
        None | Some("disabled") => return Ok(Request::NotOptedIn),
        Some("enabled") => {}
        Some(other) => {
            return Err(AnnotationError {
                annotation: INJECT_ANNOTATION,
                value: other.to_owned(),
                expected: "expected enabled or disabled",
            })
        }
    }

    let config_map = resource_name(CONFIG_ANNOTATION, annotation(CONFIG_ANNOTATION))?
        .unwrap_or(DEFAULT_CONFIG_MAP)
        .to_owned();
    let tls_secret = resource_name(TLS_SECRET_ANNOTATION, annotation(TLS_SECRET_ANNOTATION))?
        .unwrap_or(DEFAULT_TLS_SECRET)
        .to_owned();
    let inbound_port = port(INBOUND_PORT_ANNOTATION, annotation(INBOUND_PORT_ANNOTATION))?
        .unwrap_or(DEFAULT_INBOUND_PORT);
    let admin_port = port(ADMIN_PORT_ANNOTATION, annotation(ADMIN_PORT_ANNOTATION))?
        .unwrap_or(DEFAULT_ADMIN_PORT);
    if inbound_port == admin_port {
        return Err(AnnotationError {
            annotation: ADMIN_PORT_ANNOTATION,
            value: admin_port.to_string(),
            expected: "expected a port other than the inbound port",
        });
    }
    Ok(Request::Inject(Settings {
        config_map,
        tls_secret,
        inbound_port,
        admin_port,
    }))
}

/// Checks a ConfigMap or Secret name: a DNS subdomain as Kubernetes defines it (RFC 1123:
/// lowercase letters, digits, `-` and `.`, starting and ending with a letter or digit, at
/// most 253 characters).
fn resource_name<'a>(
    annotation: &'static str,
    value: Option<&'a str>,
) -> Result<Option<&'a str>, AnnotationError> {
    let Some(name) = value else {
        return Ok(None);
    };
    let allowed = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.';
    let edge = |c: Option<char>| c.is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    let valid = name.len() <= 253
        && name.chars().all(allowed)
        && edge(name.chars().next())
        && edge(name.chars().last());
    if valid {
        Ok(Some(name))
    } else {
        Err(AnnotationError {
            annotation,
            value: name.to_owned(),
            expected: "expected a ConfigMap or Secret name: lowercase letters, digits, '-' and '.'",
        })
    }
}

fn port(annotation: &'static str, value: Option<&str>) -> Result<Option<u16>, AnnotationError> {
    let Some(text) = value else {
        return Ok(None);
    };
    match text.parse::<u16>() {
        Ok(port) if port > 0 => Ok(Some(port)),
        _ => Err(AnnotationError {
            annotation,
            value: text.to_owned(),
            expected: "expected a port number from 1 to 65535",
        }),
    }
}
