//! [`NonEmptyString`], the validated type behind every required text field.

use std::fmt;

use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ToSql, ToSqlOutput, ValueRef};
use serde::{Deserialize, Deserializer, Serialize};

use crate::json::requirement;

/// A string with at least one character.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct NonEmptyString(String);

impl NonEmptyString {
    /// Returns the string, or `None` when it is empty.
    pub fn new(text: String) -> Option<Self> {
        (!text.is_empty()).then_some(Self(text))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for NonEmptyString {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for NonEmptyString {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        match serde_json::Value::deserialize(deserializer)? {
            serde_json::Value::String(text) => {
                Self::new(text).ok_or_else(|| requirement("be a non-empty string"))
            }
            _ => Err(requirement("be a non-empty string")),
        }
    }
}

impl ToSql for NonEmptyString {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        self.0.to_sql()
    }
}

impl FromSql for NonEmptyString {
    fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
        Self::new(String::column_result(value)?).ok_or_else(|| {
            FromSqlError::Other("empty string in a column that requires text".into())
        })
    }
}
