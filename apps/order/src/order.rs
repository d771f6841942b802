//! The order as clients send it ([`OrderDetails`]) and as the app returns it ([`Order`]).
//!
//! The request types parse into values that cannot be invalid, so the handlers need no
//! further checks. Each rule's error message names the field through
//! [`apps_common::json::parse_json`], for example `payment_method.expiration must have the
//! form MM/YY with a month from 01 to 12`.

use std::fmt;

use apps_common::items::ItemList;
use apps_common::json::{deserialize_object, requirement};
use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ToSql, ToSqlOutput, ValueRef};
use serde::{Deserialize, Deserializer, Serialize};
use uuid::Uuid;

pub use apps_common::text::NonEmptyString;

/// A card's expiration as `MM/YY`, for example `01/22`.
///
/// Only the shape is checked, not whether the date has passed: the book's sample order
/// uses `01/22` and must keep working.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct CardExpiration(String);

const EXPIRATION_RULE: &str = "have the form MM/YY with a month from 01 to 12";

impl CardExpiration {
    /// Returns the expiration, or `None` when `text` is not `MM/YY` with a month from 01
    /// to 12.
    pub fn new(text: String) -> Option<Self> {
        let bytes = text.as_bytes();
        let [month_tens, month_ones, b'/', year_tens, year_ones] = *bytes else {
            return None;
        };
        let digits = [month_tens, month_ones, year_tens, year_ones];
        if !digits.iter().all(u8::is_ascii_digit) {
            return None;
        }
        let month = (month_tens - b'0') * 10 + (month_ones - b'0');
        (1..=12).contains(&month).then_some(Self(text))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for CardExpiration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        match serde_json::Value::deserialize(deserializer)? {
            serde_json::Value::String(text) => {
                Self::new(text).ok_or_else(|| requirement(EXPIRATION_RULE))
            }
            _ => Err(requirement(EXPIRATION_RULE)),
        }
    }
}

impl ToSql for CardExpiration {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        self.0.to_sql()
    }
}

impl FromSql for CardExpiration {
    fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
        Self::new(String::column_result(value)?)
            .ok_or_else(|| FromSqlError::Other("card expiration is not MM/YY".into()))
    }
}

/// The card an order is paid with. The book's orders carry no card number, and neither
/// does this type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentMethod {
    pub card_type: NonEmptyString,
    pub expiration: CardExpiration,
    pub name: NonEmptyString,
    pub billing_address: NonEmptyString,
}

/// The body of `POST /orders`. Parse it as
/// [`Object<OrderDetails>`](apps_common::json::Object) so that only a JSON object is
/// accepted. Unknown fields are ignored, so clients may send extra data without breaking.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderDetails {
    pub customer_id: NonEmptyString,
    #[serde(deserialize_with = "deserialize_object")]
    pub payment_method: PaymentMethod,
    pub items: ItemList,
    pub shipping_address: NonEmptyString,
}

/// The lifecycle state of an order. An order is stored only after the inventory has
/// taken its stock, so `created` is the only state so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderStatus {
    Created,
}

impl OrderStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Created => "created",
        }
    }
}

impl fmt::Display for OrderStatus {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.as_str())
    }
}

impl ToSql for OrderStatus {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::from(self.as_str()))
    }
}

impl FromSql for OrderStatus {
    fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
        match value.as_str()? {
            "created" => Ok(Self::Created),
            other => Err(FromSqlError::Other(
                format!("unknown order status {other:?}").into(),
            )),
        }
    }
}

/// A stored order, as `POST /orders` and `GET /orders/{id}` return it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Order {
    pub order_id: Uuid,
    #[serde(flatten)]
    pub details: OrderDetails,
    pub status: OrderStatus,
    /// The subject of the caller's token, from the sidecar's `X-Portcullis-Subject`
    /// header, or `None` when the request had no such header.
    pub created_by: Option<String>,
    /// When the order was stored, in RFC 3339 UTC with milliseconds.
    pub created_at: String,
}

#[cfg(test)]
mod tests;
