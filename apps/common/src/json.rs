//! Parsing a JSON request body into validated types, with errors that name the field path.
//!
//! Validated types report a broken rule through [`requirement`], whose message starts with
//! "must" so that [`parse_json`] can put the field path in front of it:
//! `items[1].qty must be a positive integer`. Errors that serde itself raises (a missing
//! field, an object where an array belongs) are reworded the same way.

use std::fmt::{self, Display, Write};
use std::marker::PhantomData;

use serde::de::value::MapAccessDeserializer;
use serde::de::{DeserializeOwned, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};
use serde_path_to_error::{Path, Segment};
use thiserror::Error;

/// A failure to parse a request body into the expected type. Every variant names the
/// value.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum JsonError {
    #[error("request body is not valid JSON: {reason}")]
    Syntax { reason: String },

    #[error("{path} is missing")]
    MissingField { path: String },

    /// A broken rule of a validated type. `requirement` starts with "must".
    #[error("{path} {requirement}")]
    Requirement { path: String, requirement: String },

    #[error("{path} is invalid: {reason}")]
    Invalid { path: String, reason: String },
}

/// Creates the error a validated type returns when `value` breaks its rule, for example
/// `requirement("be a positive integer")`.
pub fn requirement<E: serde::de::Error>(rule: impl Display) -> E {
    E::custom(format_args!("{REQUIREMENT_PREFIX}{rule}"))
}

const REQUIREMENT_PREFIX: &str = "must ";

/// Deserializes a struct from a JSON object only. Use it as
/// `#[serde(deserialize_with = "deserialize_object")]` on a struct-typed field.
///
/// serde's derived struct impls also accept an array of the field values in declaration
/// order. No client of these apps means to send that, and its errors
/// (`payment_method[0] must be a non-empty string`) would only confuse.
pub fn deserialize_object<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    deserializer.deserialize_map(ObjectVisitor(PhantomData))
}

/// A `T` deserialized from a JSON object only, for a body whose root is a struct. See
/// [`deserialize_object`] for the reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Object<T>(pub T);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Object<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserialize_object(deserializer).map(Object)
    }
}

struct ObjectVisitor<T>(PhantomData<T>);

impl<'de, T: Deserialize<'de>> Visitor<'de> for ObjectVisitor<T> {
    type Value = T;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
        T::deserialize(MapAccessDeserializer::new(map))
    }
}

/// Parses `body` as JSON into `T`.
///
/// `root` names the whole body in messages: `"request body"` for an object, or the name of
/// the list when the body is an array (`"items"` turns the path `[1].qty` into
/// `items[1].qty`). Unknown object fields are ignored unless `T` rejects them.
pub fn parse_json<T: DeserializeOwned>(body: &[u8], root: &str) -> Result<T, JsonError> {
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    let value = serde_path_to_error::deserialize(&mut deserializer)
        .map_err(|error| describe_error(&error, root))?;

    // Trailing characters after the value are a syntax error, which has no field path.
    deserializer.end().map_err(|error| JsonError::Syntax {
        reason: error.to_string(),
    })?;
    Ok(value)
}

fn describe_error(error: &serde_path_to_error::Error<serde_json::Error>, root: &str) -> JsonError {
    if !error.inner().is_data() {
        return JsonError::Syntax {
            reason: error.inner().to_string(),
        };
    }

    let message = message_without_position(error.inner());
    if let Some(field) = missing_field_name(&message) {
        return JsonError::MissingField {
            path: field_path(root, error.path(), Some(field)),
        };
    }

    let path = field_path(root, error.path(), None);
    if message.starts_with(REQUIREMENT_PREFIX) {
        JsonError::Requirement {
            path,
            requirement: message,
        }
    } else {
        JsonError::Invalid {
            path,
            reason: message,
        }
    }
}

/// Returns serde_json's message without the " at line L column C" suffix, because the
/// field path already shows where the problem is.
fn message_without_position(error: &serde_json::Error) -> String {
    let full = error.to_string();
    let suffix = format!(" at line {} column {}", error.line(), error.column());
    match full.strip_suffix(&suffix) {
        Some(message) => message.to_owned(),
        None => full,
    }
}

/// Extracts `x` from serde's "missing field `x`" message.
fn missing_field_name(message: &str) -> Option<&str> {
    message
        .strip_prefix("missing field `")
        .and_then(|rest| rest.strip_suffix('`'))
}

/// Formats `path` (plus an optional trailing `field`) as `items[1].qty`, using `root` for
/// the body itself and in front of a leading array index.
fn field_path(root: &str, path: &Path, field: Option<&str>) -> String {
    let mut text = String::new();
    for segment in path.iter() {
        match segment {
            Segment::Seq { index } => {
                if text.is_empty() {
                    text.push_str(root);
                }
                // Writing to a String cannot fail.
                let _ = write!(text, "[{index}]");
            }
            Segment::Map { key } | Segment::Enum { variant: key } => push_member(&mut text, key),
            Segment::Unknown => push_member(&mut text, "?"),
        }
    }
    if let Some(field) = field {
        push_member(&mut text, field);
    }
    if text.is_empty() {
        text.push_str(root);
    }
    text
}

fn push_member(text: &mut String, name: &str) {
    if !text.is_empty() {
        text.push('.');
    }
    text.push_str(name);
}
