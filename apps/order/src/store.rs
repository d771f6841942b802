//! The `orders` and `order_items` tables.

use std::path::Path;

use apps_common::items::{ItemList, StockItem};
use apps_common::sqlite::{Database, DatabaseError};
use rusqlite::types::Type;
use rusqlite::{params, Connection, OptionalExtension, Row};
use uuid::Uuid;

use crate::order::{Order, OrderDetails, OrderStatus, PaymentMethod};

const SCHEMA: &str = "
    CREATE TABLE IF NOT EXISTS orders (
        order_id         TEXT PRIMARY KEY NOT NULL,
        customer_id      TEXT NOT NULL,
        card_type        TEXT NOT NULL,
        card_expiration  TEXT NOT NULL,
        cardholder_name  TEXT NOT NULL,
        billing_address  TEXT NOT NULL,
        shipping_address TEXT NOT NULL,
        status           TEXT NOT NULL,
        created_by       TEXT,
        created_at       TEXT NOT NULL
    );
    CREATE TABLE IF NOT EXISTS order_items (
        order_id TEXT NOT NULL REFERENCES orders (order_id),
        position INTEGER NOT NULL,
        code     TEXT NOT NULL,
        qty      INTEGER NOT NULL CHECK (qty > 0),
        PRIMARY KEY (order_id, position)
    );
";

/// The orders, stored in SQLite.
#[derive(Debug)]
pub struct OrderStore {
    database: Database,
}

impl OrderStore {
    /// Opens the database and creates the tables when missing.
    pub async fn open(path: &Path) -> Result<Self, DatabaseError> {
        let database = Database::open(path).await?;
        database
            .run(|connection| connection.execute_batch(SCHEMA))
            .await?;
        Ok(Self { database })
    }

    /// Stores a new order with status `created` and returns it as stored.
    pub async fn insert(
        &self,
        order_id: Uuid,
        details: OrderDetails,
        created_by: Option<String>,
    ) -> Result<Order, DatabaseError> {
        self.database
            .run(move |connection| {
                let created_at =
                    insert_order(connection, order_id, &details, created_by.as_deref())?;
                Ok(Order {
                    order_id,
                    details,
                    status: OrderStatus::Created,
                    created_by,
                    created_at,
                })
            })
            .await
    }

    /// Returns the order with `order_id`, or `None` when there is none.
    pub async fn get(&self, order_id: Uuid) -> Result<Option<Order>, DatabaseError> {
        self.database
            .run(move |connection| read_order(connection, order_id))
            .await
    }

    /// Returns the status of the order with `order_id`, or `None` when there is none.
    pub async fn status(&self, order_id: Uuid) -> Result<Option<OrderStatus>, DatabaseError> {
        self.database
            .run(move |connection| {
                connection
                    .query_row(
                        "SELECT status FROM orders WHERE order_id = ?1",
                        [order_id.to_string()],
                        |row| row.get(0),
                    )
                    .optional()
            })
            .await
    }
}

/// Inserts the order and its items in one transaction and returns the `created_at`
/// that SQLite assigned.
fn insert_order(
    connection: &mut Connection,
    order_id: Uuid,
    details: &OrderDetails,
    created_by: Option<&str>,
) -> rusqlite::Result<String> {
    let transaction = connection.transaction()?;
    let id = order_id.to_string();
    let payment = &details.payment_method;

    let created_at: String = transaction.query_row(
        "INSERT INTO orders (order_id, customer_id, card_type, card_expiration, cardholder_name,
                             billing_address, shipping_address, status, created_by, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
         RETURNING created_at",
        params![
            id,
            details.customer_id,
            payment.card_type,
            payment.expiration,
            payment.name,
            payment.billing_address,
            details.shipping_address,
            OrderStatus::Created,
            created_by,
        ],
        |row| row.get(0),
    )?;

    {
        let mut insert_item = transaction.prepare(
            "INSERT INTO order_items (order_id, position, code, qty) VALUES (?1, ?2, ?3, ?4)",
        )?;
        for (position, item) in details.items.iter().enumerate() {
            // An item list is bounded by the request size limit, far below i64::MAX.
            let position = i64::try_from(position).unwrap_or(i64::MAX);
            insert_item.execute(params![id, position, item.code, item.qty])?;
        }
    }
    transaction.commit()?;
    Ok(created_at)
}

fn read_order(connection: &mut Connection, order_id: Uuid) -> rusqlite::Result<Option<Order>> {
    let id = order_id.to_string();

    let mut select_items = connection
        .prepare("SELECT code, qty FROM order_items WHERE order_id = ?1 ORDER BY position")?;
    let items = select_items
        .query_map([&id], |row| {
            Ok(StockItem {
                code: row.get(0)?,
                qty: row.get(1)?,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;

    connection
        .query_row(
            "SELECT customer_id, card_type, card_expiration, cardholder_name, billing_address,
                    shipping_address, status, created_by, created_at
             FROM orders WHERE order_id = ?1",
            [&id],
            |row| order_from_row(order_id, items, row),
        )
        .optional()
}

/// Builds an order from its `orders` row and its `order_items` rows.
fn order_from_row(order_id: Uuid, items: Vec<StockItem>, row: &Row<'_>) -> rusqlite::Result<Order> {
    let items = ItemList::new(items).map_err(|error| {
        rusqlite::Error::FromSqlConversionFailure(0, Type::Text, Box::new(error))
    })?;
    Ok(Order {
        order_id,
        details: OrderDetails {
            customer_id: row.get("customer_id")?,
            payment_method: PaymentMethod {
                card_type: row.get("card_type")?,
                expiration: row.get("card_expiration")?,
                name: row.get("cardholder_name")?,
                billing_address: row.get("billing_address")?,
            },
            items,
            shipping_address: row.get("shipping_address")?,
        },
        status: row.get("status")?,
        created_by: row.get("created_by")?,
        created_at: row.get("created_at")?,
    })
}
