//! The item list `[{"code": "101", "qty": 1}, ...]`: the body of inventory's
//! `PUT /inventory` and the `items` field of an order.

use std::collections::HashMap;
use std::fmt;
use std::num::NonZeroU32;

use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ToSql, ToSqlOutput, ValueRef};
use serde::de::{Error as _, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};
use thiserror::Error;

use crate::json::{requirement, Object};
use crate::text::NonEmptyString;

/// An item code such as `"101"`: any non-empty string. Whether the inventory stocks the
/// item is for the inventory to decide.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ItemCode(NonEmptyString);

impl ItemCode {
    /// Returns the code, or `None` when it is empty.
    pub fn new(code: String) -> Option<Self> {
        NonEmptyString::new(code).map(Self)
    }

    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }
}

impl fmt::Display for ItemCode {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(formatter)
    }
}

impl ToSql for ItemCode {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        self.0.to_sql()
    }
}

impl FromSql for ItemCode {
    fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
        NonEmptyString::column_result(value).map(Self)
    }
}

/// A quantity of an item: a positive integer that fits in 32 bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Quantity(NonZeroU32);

impl Quantity {
    /// Returns the quantity, or `None` for zero.
    pub fn new(quantity: u32) -> Option<Self> {
        NonZeroU32::new(quantity).map(Self)
    }

    pub fn get(self) -> u32 {
        self.0.get()
    }
}

impl fmt::Display for Quantity {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(formatter)
    }
}

impl<'de> Deserialize<'de> for Quantity {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // `as_u64` is `None` for negative numbers and for any number written with a
        // fraction or exponent, such as `1.0`, so those are rejected too.
        let value = serde_json::Value::deserialize(deserializer)?;
        match value.as_u64() {
            Some(0) | None => Err(requirement("be a positive integer")),
            Some(quantity) => u32::try_from(quantity)
                .ok()
                .and_then(Self::new)
                .ok_or_else(|| requirement(format_args!("be at most {}", u32::MAX))),
        }
    }
}

impl ToSql for Quantity {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::from(i64::from(self.get())))
    }
}

impl FromSql for Quantity {
    fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
        let quantity = i64::column_result(value)?;
        u32::try_from(quantity)
            .ok()
            .and_then(Self::new)
            .ok_or(FromSqlError::OutOfRange(quantity))
    }
}

/// One entry of an item list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StockItem {
    pub code: ItemCode,
    pub qty: Quantity,
}

/// A non-empty list of items in which every code appears once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct ItemList(Vec<StockItem>);

/// A rule of [`ItemList`] that a list of items breaks.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum ItemListError {
    #[error("must contain at least one item")]
    Empty,

    #[error("must list each code once, but code {code:?} appears at [{first}] and [{second}]")]
    DuplicateCode {
        code: String,
        first: usize,
        second: usize,
    },
}

impl ItemList {
    /// Checks that `items` is not empty and lists each code once.
    pub fn new(items: Vec<StockItem>) -> Result<Self, ItemListError> {
        if items.is_empty() {
            return Err(ItemListError::Empty);
        }

        let mut first_index: HashMap<&str, usize> = HashMap::with_capacity(items.len());
        for (index, item) in items.iter().enumerate() {
            if let Some(&first) = first_index.get(item.code.as_str()) {
                return Err(ItemListError::DuplicateCode {
                    code: item.code.to_string(),
                    first,
                    second: index,
                });
            }
            first_index.insert(item.code.as_str(), index);
        }
        Ok(Self(items))
    }

    pub fn as_slice(&self) -> &[StockItem] {
        &self.0
    }

    pub fn iter(&self) -> std::slice::Iter<'_, StockItem> {
        self.0.iter()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Always `false`, because a list contains at least one item. Present for clippy's
    /// `len_without_is_empty` convention.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl<'a> IntoIterator for &'a ItemList {
    type Item = &'a StockItem;
    type IntoIter = std::slice::Iter<'a, StockItem>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

impl<'de> Deserialize<'de> for ItemList {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let items = deserializer.deserialize_seq(ItemListVisitor)?;
        // Every `ItemListError` message starts with "must", as `parse_json` expects of a
        // broken rule.
        ItemList::new(items).map_err(D::Error::custom)
    }
}

/// Collects the array elements, each from a JSON object only. A visitor, unlike
/// `Vec::deserialize`, lets the error for a non-array value describe what belongs there.
struct ItemListVisitor;

impl<'de> Visitor<'de> for ItemListVisitor {
    type Value = Vec<StockItem>;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("an array of items such as [{\"code\": \"101\", \"qty\": 1}]")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut sequence: A) -> Result<Self::Value, A::Error> {
        let mut items = Vec::new();
        while let Some(Object(item)) = sequence.next_element()? {
            items.push(item);
        }
        Ok(items)
    }
}

#[cfg(test)]
mod tests;
