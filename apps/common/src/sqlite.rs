//! One SQLite connection per app, used from blocking tasks so queries never stall the
//! async runtime.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use rusqlite::Connection;
use thiserror::Error;
use tokio::task::JoinError;

/// How long a statement waits for a lock held by another process (for example a `sqlite3`
/// shell open on the same file) before it fails with `SQLITE_BUSY`.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// A failed database operation, with the file it ran on.
#[derive(Debug, Error)]
pub enum DatabaseError {
    #[error("failed to create the database folder {path}: {source}")]
    CreateFolder { path: PathBuf, source: io::Error },

    #[error("failed to open the SQLite database {path}: {source}; check that the folder is writable or choose another database path")]
    Open {
        path: PathBuf,
        source: rusqlite::Error,
    },

    #[error("SQLite statement on {path} failed: {source}")]
    Statement {
        path: PathBuf,
        source: rusqlite::Error,
    },

    #[error("database task on {path} failed: {source}")]
    Task { path: PathBuf, source: JoinError },
}

/// A SQLite database file with one connection behind a mutex.
///
/// A single connection serializes every query of the process. That is enough for a demo
/// app, and the inventory's stock updates must be serialized anyway. Cloning is cheap and
/// shares the connection.
#[derive(Clone, Debug)]
pub struct Database {
    connection: Arc<Mutex<Connection>>,
    path: Arc<PathBuf>,
}

impl Database {
    /// Opens or creates the database file, creating its parent folder when missing.
    ///
    /// The file uses write-ahead logging with `synchronous = NORMAL`, so commits do not wait
    /// for an fsync. SQLite's documentation of `PRAGMA synchronous` states the cost: a power
    /// loss or OS crash can roll back the last commits but leaves the file consistent, and an
    /// app crash loses nothing. That is the right trade for demo data.
    pub async fn open(path: &Path) -> Result<Self, DatabaseError> {
        let path = path.to_path_buf();
        let opened_path = path.clone();
        let opened = tokio::task::spawn_blocking(move || open_connection(&opened_path)).await;
        let connection = match opened {
            Ok(result) => result?,
            Err(source) => return Err(DatabaseError::Task { path, source }),
        };
        Ok(Self {
            connection: Arc::new(Mutex::new(connection)),
            path: Arc::new(path),
        })
    }

    /// Returns the path of the database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `work` on the connection in a blocking task and returns its result.
    ///
    /// `work` may open a transaction: if it returns early or panics, rusqlite rolls the
    /// transaction back when it is dropped.
    pub async fn run<T, F>(&self, work: F) -> Result<T, DatabaseError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        let connection = Arc::clone(&self.connection);
        let outcome = tokio::task::spawn_blocking(move || {
            // A poisoned lock means an earlier `work` panicked. Its transaction was rolled
            // back when it unwound, so the connection is still consistent and safe to reuse.
            let mut connection = connection.lock().unwrap_or_else(PoisonError::into_inner);
            work(&mut connection)
        })
        .await;

        let path = self.path.to_path_buf();
        match outcome {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(source)) => Err(DatabaseError::Statement { path, source }),
            Err(source) => Err(DatabaseError::Task { path, source }),
        }
    }
}

fn open_connection(path: &Path) -> Result<Connection, DatabaseError> {
    if let Some(folder) = path
        .parent()
        .filter(|folder| !folder.as_os_str().is_empty())
    {
        fs::create_dir_all(folder).map_err(|source| DatabaseError::CreateFolder {
            path: folder.to_path_buf(),
            source,
        })?;
    }

    let open_error = |source| DatabaseError::Open {
        path: path.to_path_buf(),
        source,
    };
    let connection = Connection::open(path).map_err(open_error)?;
    connection.busy_timeout(BUSY_TIMEOUT).map_err(open_error)?;
    connection
        .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get::<_, String>(0))
        .map_err(open_error)?;
    connection
        .pragma_update(None, "synchronous", "NORMAL")
        .map_err(open_error)?;
    connection
        .pragma_update(None, "foreign_keys", "ON")
        .map_err(open_error)?;
    Ok(connection)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn open_creates_missing_folder() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nested").join("folder").join("test.db");

        let database = Database::open(&path).await.unwrap();
        let answer = database
            .run(|connection| connection.query_row("SELECT 41 + 1", [], |row| row.get::<_, i64>(0)))
            .await
            .unwrap();

        assert_eq!(answer, 42);
        assert!(path.exists());
    }

    #[tokio::test]
    async fn run_reports_failed_statement_with_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("test.db");
        let database = Database::open(&path).await.unwrap();

        let error = database
            .run(|connection| connection.execute("SELECT * FROM missing_table", []))
            .await
            .unwrap_err();

        assert!(matches!(error, DatabaseError::Statement { .. }));
        assert!(error.to_string().contains(&path.display().to_string()));
    }

    #[tokio::test]
    async fn open_fails_when_folder_is_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("not-a-folder");
        fs::write(&file, b"x").unwrap();

        let error = Database::open(&file.join("test.db")).await.unwrap_err();

        assert!(matches!(error, DatabaseError::CreateFolder { .. }));
    }
}
