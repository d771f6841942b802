//! The `stock` table: seeding on first start, reading a level, and taking the stock for a
//! whole item list at once.

use std::path::Path;

use apps_common::items::{ItemCode, ItemList};
use apps_common::sqlite::{Database, DatabaseError};
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use tracing::info;

/// The stock written on first start. The crate documentation explains the levels.
const SEED_STOCK: [(&str, i64); 5] = [
    ("101", 9_999),
    ("102", 9_999),
    ("103", 9_999),
    ("104", 100),
    ("105", 2),
];

/// The result of a request to take stock.
#[derive(Debug, PartialEq, Eq)]
pub enum TakeOutcome {
    /// Every item was available and all were taken.
    Taken,
    /// The item at `index` has a code that the inventory does not stock. Nothing was taken.
    UnknownCode { index: usize, code: ItemCode },
    /// The first item in request order with less stock than requested. Nothing was taken.
    Insufficient {
        code: ItemCode,
        requested: u32,
        available: i64,
    },
}

/// The stock levels, stored in SQLite.
#[derive(Debug)]
pub struct StockStore {
    database: Database,
}

impl StockStore {
    /// Opens the database, creates the `stock` table when missing and seeds it when empty.
    pub async fn open(path: &Path) -> Result<Self, DatabaseError> {
        let database = Database::open(path).await?;
        let seeded = database.run(create_and_seed).await?;
        if seeded {
            info!(path = %path.display(), items = SEED_STOCK.len(), "seeded an empty stock table");
        }
        Ok(Self { database })
    }

    /// Returns the stock level of `code`, or `None` when the inventory does not stock it.
    pub async fn level(&self, code: String) -> Result<Option<i64>, DatabaseError> {
        self.database
            .run(move |connection| {
                connection
                    .query_row("SELECT qty FROM stock WHERE code = ?1", [code], |row| {
                        row.get(0)
                    })
                    .optional()
            })
            .await
    }

    /// Takes the requested quantity of every item, or nothing at all.
    ///
    /// The checks and updates run in one `BEGIN IMMEDIATE` transaction, which takes the
    /// write lock up front, so no other writer can change a level between the check and
    /// the update.
    pub async fn take(&self, items: ItemList) -> Result<TakeOutcome, DatabaseError> {
        self.database
            .run(move |connection| take_in_transaction(connection, &items))
            .await
    }
}

/// Creates the table, seeds it when it is empty, and returns whether it seeded.
fn create_and_seed(connection: &mut Connection) -> rusqlite::Result<bool> {
    let transaction = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
    transaction.execute(
        "CREATE TABLE IF NOT EXISTS stock (
            code TEXT PRIMARY KEY NOT NULL,
            qty  INTEGER NOT NULL CHECK (qty >= 0)
        )",
        [],
    )?;

    let rows: i64 = transaction.query_row("SELECT COUNT(*) FROM stock", [], |row| row.get(0))?;
    let seeded = rows == 0;
    if seeded {
        let mut insert = transaction.prepare("INSERT INTO stock (code, qty) VALUES (?1, ?2)")?;
        for (code, qty) in SEED_STOCK {
            insert.execute(params![code, qty])?;
        }
    }
    transaction.commit()?;
    Ok(seeded)
}

fn take_in_transaction(
    connection: &mut Connection,
    items: &ItemList,
) -> rusqlite::Result<TakeOutcome> {
    // Returning before `commit` drops the transaction, which rolls it back.
    let transaction = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;

    let mut levels = Vec::with_capacity(items.len());
    {
        let mut select = transaction.prepare_cached("SELECT qty FROM stock WHERE code = ?1")?;
        for (index, item) in items.iter().enumerate() {
            let level: Option<i64> = select
                .query_row([&item.code], |row| row.get(0))
                .optional()?;
            match level {
                Some(level) => levels.push(level),
                None => {
                    return Ok(TakeOutcome::UnknownCode {
                        index,
                        code: item.code.clone(),
                    })
                }
            }
        }
    }

    let short = items
        .iter()
        .zip(&levels)
        .find(|(item, &available)| i64::from(item.qty.get()) > available);
    if let Some((item, &available)) = short {
        return Ok(TakeOutcome::Insufficient {
            code: item.code.clone(),
            requested: item.qty.get(),
            available,
        });
    }

    {
        let mut update =
            transaction.prepare_cached("UPDATE stock SET qty = qty - ?2 WHERE code = ?1")?;
        for item in items {
            update.execute(params![item.code, item.qty])?;
        }
    }
    transaction.commit()?;
    Ok(TakeOutcome::Taken)
}

#[cfg(test)]
mod tests {
    use apps_common::json::parse_json;

    use super::*;

    fn items(json: &str) -> ItemList {
        parse_json(json.as_bytes(), "items").unwrap()
    }

    async fn open_temp() -> (tempfile::TempDir, StockStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = StockStore::open(&dir.path().join("inventory.db"))
            .await
            .unwrap();
        (dir, store)
    }

    #[tokio::test]
    async fn open_seeds_empty_table() {
        let (_dir, store) = open_temp().await;

        for (code, qty) in SEED_STOCK {
            assert_eq!(
                store.level(code.to_owned()).await.unwrap(),
                Some(qty),
                "code {code}"
            );
        }
        assert_eq!(store.level("106".to_owned()).await.unwrap(), None);
    }

    #[tokio::test]
    async fn reopen_keeps_changed_levels() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("inventory.db");
        let store = StockStore::open(&path).await.unwrap();
        let outcome = store
            .take(items(r#"[{"code":"104","qty":40}]"#))
            .await
            .unwrap();
        assert_eq!(outcome, TakeOutcome::Taken);
        drop(store);

        let reopened = StockStore::open(&path).await.unwrap();

        assert_eq!(reopened.level("104".to_owned()).await.unwrap(), Some(60));
    }

    #[tokio::test]
    async fn take_reports_first_short_item_and_takes_nothing() {
        let (_dir, store) = open_temp().await;

        let outcome = store
            .take(items(
                r#"[{"code":"101","qty":1},{"code":"105","qty":3},{"code":"104","qty":101}]"#,
            ))
            .await
            .unwrap();

        assert_eq!(
            outcome,
            TakeOutcome::Insufficient {
                code: ItemCode::new("105".to_owned()).unwrap(),
                requested: 3,
                available: 2
            }
        );
        assert_eq!(store.level("101".to_owned()).await.unwrap(), Some(9_999));
        assert_eq!(store.level("104".to_owned()).await.unwrap(), Some(100));
        assert_eq!(store.level("105".to_owned()).await.unwrap(), Some(2));
    }

    #[tokio::test]
    async fn take_reports_unknown_code_and_takes_nothing() {
        let (_dir, store) = open_temp().await;

        let outcome = store
            .take(items(r#"[{"code":"101","qty":1},{"code":"999","qty":1}]"#))
            .await
            .unwrap();

        assert_eq!(
            outcome,
            TakeOutcome::UnknownCode {
                index: 1,
                code: ItemCode::new("999".to_owned()).unwrap()
            }
        );
        assert_eq!(store.level("101".to_owned()).await.unwrap(), Some(9_999));
    }

    #[tokio::test]
    async fn take_can_empty_an_item() {
        let (_dir, store) = open_temp().await;

        let first = store
            .take(items(r#"[{"code":"105","qty":2}]"#))
            .await
            .unwrap();
        let second = store
            .take(items(r#"[{"code":"105","qty":1}]"#))
            .await
            .unwrap();

        assert_eq!(first, TakeOutcome::Taken);
        assert!(matches!(
            second,
            TakeOutcome::Insufficient { available: 0, .. }
        ));
        assert_eq!(store.level("105".to_owned()).await.unwrap(), Some(0));
    }
}
