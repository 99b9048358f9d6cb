//! Persistence on SQLite through sqlx. Every statement is a constant with bound parameters.
//!
//! Writes go through one dedicated connection behind an async mutex: SQLite serializes writers
//! anyway, and holding the lock across "commit, then fan out" keeps every room's events in
//! sequence order on every socket. Reads use a separate pool of read-only connections (WAL lets
//! them run beside the writer).

mod admin;
mod guests;
mod messages;
mod rooms;
mod users;

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{
    Sqlite, SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool,
    SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{ConnectOptions, Connection, Transaction};
use tokio::sync::{Mutex, MutexGuard};

pub use admin::*;
pub use guests::*;
pub use messages::*;
pub use rooms::*;
pub use users::*;

pub struct Store {
    read: SqlitePool,
    write: Mutex<SqliteConnection>,
}

pub type Writer<'a> = MutexGuard<'a, SqliteConnection>;

#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("cannot open database {path}: {source}")]
    Open { path: String, source: sqlx::Error },
    #[error("cannot migrate database {path}: {source}")]
    Migrate {
        path: String,
        source: sqlx::migrate::MigrateError,
    },
}

impl Store {
    /// Opens (creating if needed) the database file and applies pending migrations.
    pub async fn open(path: &Path) -> Result<Store, OpenError> {
        let shown = path.display().to_string();
        let open_err = |source| OpenError::Open {
            path: shown.clone(),
            source,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| open_err(sqlx::Error::Io(e)))?;
        }
        let options = SqliteConnectOptions::from_str("sqlite:")
            .map_err(open_err)?
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // NORMAL in WAL mode: a power cut may lose the last commits but never corrupts.
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(5));
        // Migrations run without foreign keys, on a connection of their own: rebuilding a
        // table (SQLite's way to change one) drops it, and with foreign keys on, dropping a
        // table deletes, cascading, every row that references it. The pragma cannot change
        // inside the transaction each migration runs in, so it is set when connecting.
        let mut migrating = options
            .clone()
            .foreign_keys(false)
            .connect()
            .await
            .map_err(open_err)?;
        sqlx::migrate!("../migrations/server")
            .run(&mut migrating)
            .await
            .map_err(|source| OpenError::Migrate {
                path: shown.clone(),
                source,
            })?;
        migrating.close().await.map_err(open_err)?;
        let write = options.connect().await.map_err(open_err)?;
        let read = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options.read_only(true))
            .await
            .map_err(open_err)?;
        Ok(Store {
            read,
            write: Mutex::new(write),
        })
    }

    pub fn reader(&self) -> &SqlitePool {
        &self.read
    }

    pub async fn writer(&self) -> Writer<'_> {
        self.write.lock().await
    }

    /// True when a trivial query succeeds on both the reader pool and the writer.
    pub async fn healthy(&self) -> bool {
        let read_ok = sqlx::query("SELECT 1").execute(&self.read).await.is_ok();
        // Do not queue behind a long write for a health probe.
        let write_ok = match self.write.try_lock() {
            Ok(mut w) => w.ping().await.is_ok(),
            Err(_) => true,
        };
        read_ok && write_ok
    }

    /// Checkpoints the WAL into the main file and closes every connection.
    pub async fn close(self) {
        self.read.close().await;
        let mut write = self.write.into_inner();
        if let Err(e) = sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
            .execute(&mut write)
            .await
        {
            tracing::warn!("WAL checkpoint at shutdown failed: {e}");
        }
        if let Err(e) = write.close().await {
            tracing::warn!("closing the database failed: {e}");
        }
    }
}

/// Starts a write transaction that holds SQLite's write lock from its first statement.
///
/// Another process may write to the same database (`parlor-server admin` beside a running
/// server). A deferred transaction that reads and then writes fails with SQLITE_BUSY_SNAPSHOT
/// when the other process commits between the two: in WAL mode its snapshot is stale, and the
/// busy timeout cannot help, since waiting never makes the snapshot current. `BEGIN IMMEDIATE`
/// takes the write lock before the first read, so a busy writer is waited for instead.
pub async fn begin_write(w: &mut SqliteConnection) -> sqlx::Result<Transaction<'_, Sqlite>> {
    w.begin_with("BEGIN IMMEDIATE").await
}

pub fn now_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// A store on a fresh database in a temporary folder (kept while the `TempDir` lives).
#[cfg(test)]
pub(crate) async fn temporary() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("server.db")).await.unwrap();
    (dir, store)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two processes on one database (two `Store`s stand in for them): a transaction that
    /// reads, then sees the other process commit, then writes. A deferred transaction fails
    /// that write with SQLITE_BUSY_SNAPSHOT ("database is locked", code 517); one begun by
    /// `begin_write` holds the lock from the start, so the other process is the one that waits
    /// (here, with no busy timeout, it is told "busy" at once) and ours commits.
    #[tokio::test]
    async fn a_write_transaction_survives_another_process_committing_between_its_read_and_write() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("server.db");
        let ours = Store::open(&path).await.unwrap();
        let theirs = Store::open(&path).await.unwrap();
        let mut w = ours.writer().await;
        sqlx::query("CREATE TABLE counter (n INTEGER NOT NULL)")
            .execute(&mut *w)
            .await
            .unwrap();
        sqlx::query("INSERT INTO counter (n) VALUES (0)")
            .execute(&mut *w)
            .await
            .unwrap();

        let mut tx = begin_write(&mut w).await.unwrap();
        let n: i64 = sqlx::query_scalar("SELECT n FROM counter")
            .fetch_one(&mut *tx)
            .await
            .unwrap();

        let mut other = theirs.writer().await;
        sqlx::query("PRAGMA busy_timeout = 0")
            .execute(&mut *other)
            .await
            .unwrap();
        let between = sqlx::query("UPDATE counter SET n = n + 100")
            .execute(&mut *other)
            .await;
        assert!(
            between.is_err(),
            "the other process wrote while our transaction held the write lock"
        );

        sqlx::query("UPDATE counter SET n = ?")
            .bind(n + 1)
            .execute(&mut *tx)
            .await
            .expect("our write after the read");
        tx.commit().await.unwrap();
        drop(w);

        // Once we are done the other process writes as usual.
        sqlx::query("UPDATE counter SET n = n + 100")
            .execute(&mut *other)
            .await
            .unwrap();
        let n: i64 = sqlx::query_scalar("SELECT n FROM counter")
            .fetch_one(theirs.reader())
            .await
            .unwrap();
        assert_eq!(n, 101);
    }
}
