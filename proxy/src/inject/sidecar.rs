//! The additions injection makes to a pod: the sidecar as a native sidecar container (an init
//! container with `restartPolicy: Always`, Kubernetes 1.29 and later) and the two volumes it
//! mounts, plus the YAML and JSON text of those additions.

use serde::ser::{SerializeMap, SerializeSeq};
use serde::{Serialize, Serializer};

use super::settings::Settings;

/// Name of the injected container; a pod that already has a container of this name counts
/// as injected.
pub const CONTAINER_NAME: &str = "portcullis";

/// Volume with the ConfigMap that contains `portcullis.toml`.
pub const CONFIG_VOLUME: &str = "portcullis-config";

/// Volume with the TLS Secret.
pub const TLS_VOLUME: &str = "portcullis-tls";

/// Mount path of the ConfigMap.
pub const CONFIG_DIR: &str = "/etc/portcullis/config";

/// The file the sidecar reads: the `portcullis.toml` key of the ConfigMap.
pub const CONFIG_FILE: &str = "/etc/portcullis/config/portcullis.toml";

/// Mount path of the Secret, whose keys appear as files (`tls.crt`, `tls.key`, `ca.crt`, ...).
pub const TLS_DIR: &str = "/etc/portcullis/tls";

/// Name of the container port of the inbound listener; a Service targets it by this name.
pub const INBOUND_PORT_NAME: &str = "portcullis";

/// Name of the container port of the admin listener, which the probes use.
pub const ADMIN_PORT_NAME: &str = "portcullis-admin";

/// The user of the distroless `nonroot` base image the sidecar image runs as.
pub const RUN_AS_USER: i64 = 65532;

/// A value of a Kubernetes object in a fixed order, so the emitted YAML reads the way people
/// write manifests (`name` first).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Template {
    Str(String),
    Int(i64),
    Bool(bool),
    List(Vec<Template>),
    Map(Vec<(&'static str, Template)>),
}

fn s(text: &str) -> Template {
    Template::Str(text.to_owned())
}

fn map(entries: Vec<(&'static str, Template)>) -> Template {
    Template::Map(entries)
}

/// Builds the sidecar container.
///
/// The listen addresses come from the environment, which overrides the configuration file,
/// so the declared container ports always match what the sidecar binds. The admin listener
/// binds every interface because the kubelet probes the pod IP.
pub(crate) fn container(image: &str, settings: &Settings) -> Template {
    let http_get = |path: &str| map(vec![("path", s(path)), ("port", s(ADMIN_PORT_NAME))]);
    map(vec![
        ("name", s(CONTAINER_NAME)),
        ("image", s(image)),
        ("args", Template::List(vec![s("--config"), s(CONFIG_FILE)])),
        // Makes this init container a native sidecar: it starts before the app containers,
        // keeps running beside them, and stops after them.
        ("restartPolicy", s("Always")),
        (
            "env",
            Template::List(vec![
                env(
                    "PORTCULLIS_INBOUND_LISTEN",
                    &format!("0.0.0.0:{}", settings.inbound_port),
                ),
                env(
                    "PORTCULLIS_ADMIN_LISTEN",
                    &format!("0.0.0.0:{}", settings.admin_port),
                ),
            ]),
        ),
        (
            "ports",
            Template::List(vec![
                port(INBOUND_PORT_NAME, settings.inbound_port),
                port(ADMIN_PORT_NAME, settings.admin_port),
            ]),
        ),
        // The kubelet starts the app containers only once this probe passes, that is once the
        // sidecar has every issuer's keys. Two minutes covers a token service that starts
        // at the same time as the workload.
        (
            "startupProbe",
            map(vec![
                ("httpGet", http_get("/readyz")),
                ("periodSeconds", Template::Int(1)),
                ("failureThreshold", Template::Int(120)),
            ]),
        ),
        (
            "readinessProbe",
            map(vec![
                ("httpGet", http_get("/readyz")),
                ("periodSeconds", Template::Int(5)),
            ]),
        ),
        (
            "livenessProbe",
            map(vec![
                ("httpGet", http_get("/healthz")),
                ("periodSeconds", Template::Int(10)),
            ]),
        ),
        ("resources", resources()),
        (
            "securityContext",
            map(vec![
                ("runAsNonRoot", Template::Bool(true)),
                ("runAsUser", Template::Int(RUN_AS_USER)),
                ("runAsGroup", Template::Int(RUN_AS_USER)),
                ("readOnlyRootFilesystem", Template::Bool(true)),
                ("allowPrivilegeEscalation", Template::Bool(false)),
                (
                    "capabilities",
                    map(vec![("drop", Template::List(vec![s("ALL")]))]),
                ),
                ("seccompProfile", map(vec![("type", s("RuntimeDefault"))])),
            ]),
        ),
        (
            "volumeMounts",
            Template::List(vec![
                mount(CONFIG_VOLUME, CONFIG_DIR),
                mount(TLS_VOLUME, TLS_DIR),
            ]),
        ),
    ])
}

/// Requests and limits of the sidecar container.
///
/// NOTE: sized from one benchmark run of the release binary (`docs/deployment.md`, "Sizing
/// the sidecar"), not from production traffic. Raise the memory limit for many concurrent
/// connections or a larger verified-token cache.
fn resources() -> Template {
    map(vec![
        (
            "requests",
            map(vec![("cpu", s("50m")), ("memory", s("32Mi"))]),
        ),
        ("limits", map(vec![("memory", s("128Mi"))])),
    ])
}

fn env(name: &str, value: &str) -> Template {
    map(vec![("name", s(name)), ("value", s(value))])
}

fn port(name: &str, number: u16) -> Template {
    map(vec![
        ("name", s(name)),
        ("containerPort", Template::Int(i64::from(number))),
    ])
}

fn mount(volume: &str, path: &str) -> Template {
    map(vec![
        ("name", s(volume)),
        ("mountPath", s(path)),
        ("readOnly", Template::Bool(true)),
    ])
}

/// Builds the two volumes the sidecar mounts. The Secret is optional, because a sidecar
/// whose configuration uses no TLS file needs none. A sidecar that does use one fails at
/// startup with an error naming the missing file.
pub(crate) fn volumes(settings: &Settings) -> Vec<Template> {
    vec![
        map(vec![
            ("name", s(CONFIG_VOLUME)),
            ("configMap", map(vec![("name", s(&settings.config_map))])),
        ]),
        map(vec![
            ("name", s(TLS_VOLUME)),
            (
                "secret",
                map(vec![
                    ("secretName", s(&settings.tls_secret)),
                    ("optional", Template::Bool(true)),
                ]),
            ),
        ]),
    ]
}

impl Serialize for Template {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Template::Str(text) => serializer.serialize_str(text),
            Template::Int(number) => serializer.serialize_i64(*number),
            Template::Bool(flag) => serializer.serialize_bool(*flag),
            Template::List(items) => {
                let mut seq = serializer.serialize_seq(Some(items.len()))?;
                for item in items {
                    seq.serialize_element(item)?;
                }
                seq.end()
            }
            Template::Map(entries) => {
                let mut out = serializer.serialize_map(Some(entries.len()))?;
                for (key, value) in entries {
                    out.serialize_entry(key, value)?;
                }
                out.end()
            }
        }
    }
}

impl Template {
    /// Returns compact JSON, which is also valid YAML flow syntax.
    pub fn to_json_text(&self) -> String {
        // serde_json fails only on non-string map keys and on failing `Serialize` impls, and
        // `Template` has string keys and only strings, integers and booleans as leaves.
        serde_json::to_string(self).unwrap_or_default()
    }

    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or_default()
    }

    /// Appends this value as a block sequence item at `indent` spaces: `- ` and the value,
    /// further lines indented two more spaces.
    pub fn write_item(&self, indent: usize, out: &mut String) {
        let pad = " ".repeat(indent);
        match self {
            Template::Map(entries) if !entries.is_empty() => {
                let mut body = String::new();
                write_entries(entries, indent + 2, &mut body);
                // The first line carries the dash in place of two spaces of indentation.
                out.push_str(&pad);
                out.push_str("- ");
                out.push_str(&body[indent + 2..]);
            }
            other => {
                out.push_str(&pad);
                out.push_str("- ");
                out.push_str(&other.inline());
                out.push('\n');
            }
        }
    }

    /// Returns the text of a scalar or an empty collection on one line.
    fn inline(&self) -> String {
        match self {
            Template::Str(text) => scalar_text(text),
            Template::Int(number) => number.to_string(),
            Template::Bool(flag) => flag.to_string(),
            Template::List(_) | Template::Map(_) => self.to_json_text(),
        }
    }
}

/// Appends block mapping entries at `indent` spaces. Sequences are written at the key's
/// indentation, the layout `kubectl` prints.
fn write_entries(entries: &[(&'static str, Template)], indent: usize, out: &mut String) {
    let pad = " ".repeat(indent);
    for (key, value) in entries {
        match value {
            Template::Map(inner) if !inner.is_empty() => {
                out.push_str(&format!("{pad}{key}:\n"));
                write_entries(inner, indent + 2, out);
            }
            Template::List(items) if !items.is_empty() => {
                out.push_str(&format!("{pad}{key}:\n"));
                for item in items {
                    item.write_item(indent, out);
                }
            }
            other => out.push_str(&format!("{pad}{key}: {}\n", other.inline())),
        }
    }
}

/// Returns a string plain when no YAML 1.1 or 1.2 reader could take it for anything but a
/// string, and as a JSON (double-quoted YAML) string otherwise.
fn scalar_text(text: &str) -> String {
    const LOOKS_TYPED: [&str; 11] = [
        "y", "n", "yes", "no", "on", "off", "true", "false", "null", "nan", "inf",
    ];
    let plain = text
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '/')
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '/' | '-'))
        && !LOOKS_TYPED.contains(&text.to_ascii_lowercase().as_str());
    if plain {
        text.to_owned()
    } else {
        // A JSON string is a valid double-quoted YAML scalar with the same value.
        serde_json::Value::String(text.to_owned()).to_string()
    }
}
