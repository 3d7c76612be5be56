//! The embedded store: one SQLite database in WAL mode shared by the directory, admin sessions and
//! every service, with versioned migrations per component.
//!
//! Writes go through one connection behind a mutex (SQLite allows one writer at a time anyway);
//! reads use a small pool of read-only connections so readers never wait for a writer (WAL).
//! `synchronous = NORMAL` in WAL mode keeps every committed transaction across a process crash
//! (`kill -9`); only an OS crash or power loss may lose the last transactions, the trade-off most
//! embedded servers make. Set `SERVAL_STORE_SYNC=full` to fsync on every commit.
//!
//! Services reach the store through traits of their own (e.g. `CalendarStore`) with a SQLite
//! implementation over this handle, so a PostgreSQL engine can be added behind the same traits.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use rusqlite::{Connection, OpenFlags, Transaction};

pub mod copy;
pub mod pg_testing;
pub mod postgres;
pub use postgres::{PgSettings, PgStore};

/// The engine a node's data lives in: the embedded SQLite file, or a PostgreSQL database
/// several nodes share. Each store trait has an implementation over each.
#[derive(Clone, Debug)]
pub enum Engine {
    Sqlite(Store),
    Postgres(PgStore),
}

/// Bumped when the core's own tables change; stored in `PRAGMA user_version`.
const CORE_FORMAT: i64 = 1;
const READERS: usize = 4;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open the store at {path}: {source}")]
    Open {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error(
        "the store at {path} was written by a newer Serval ({component} schema version {found}, this \
         binary knows up to {known}); run the newer Serval or restore a backup made by this version"
    )]
    TooNew {
        path: PathBuf,
        component: String,
        found: i64,
        known: i64,
    },
    #[error("store migration {component} v{version} failed: {source}")]
    Migration {
        component: String,
        version: i64,
        source: rusqlite::Error,
    },
    #[error("store: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("store task failed: {0}")]
    Task(String),
    #[error("PostgreSQL: {0}")]
    Postgres(String),
    /// The database cannot be reached now; services answer 503 and retry on the next request.
    #[error("store unavailable: {0}")]
    Unavailable(String),
}

/// Cheap-to-clone handle to the store.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    writer: Mutex<Connection>,
    readers: Vec<Mutex<Connection>>,
    next_reader: AtomicUsize,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("path", &self.inner.path)
            .finish()
    }
}

impl Store {
    /// Opens (creating if needed) the store file and applies the core migrations.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        let open_err = |source| StoreError::Open {
            path: path.to_path_buf(),
            source,
        };
        let writer = Connection::open(path).map_err(open_err)?;
        configure(&writer).map_err(open_err)?;
        let found: i64 = writer
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(open_err)?;
        if found > CORE_FORMAT {
            return Err(StoreError::TooNew {
                path: path.to_path_buf(),
                component: "core".into(),
                found,
                known: CORE_FORMAT,
            });
        }
        writer
            .execute_batch(
                "CREATE TABLE IF NOT EXISTS serval_schema (
                    component TEXT PRIMARY KEY,
                    version INTEGER NOT NULL,
                    applied_at INTEGER NOT NULL
                );",
            )
            .map_err(open_err)?;
        writer
            .pragma_update(None, "user_version", CORE_FORMAT)
            .map_err(open_err)?;
        let mut readers = Vec::with_capacity(READERS);
        for _ in 0..READERS {
            let conn = Connection::open_with_flags(
                path,
                OpenFlags::SQLITE_OPEN_READ_ONLY
                    | OpenFlags::SQLITE_OPEN_NO_MUTEX
                    | OpenFlags::SQLITE_OPEN_URI,
            )
            .map_err(open_err)?;
            conn.busy_timeout(std::time::Duration::from_secs(10))
                .map_err(open_err)?;
            readers.push(Mutex::new(conn));
        }
        let store = Store {
            inner: Arc::new(Inner {
                path: path.to_path_buf(),
                writer: Mutex::new(writer),
                readers,
                next_reader: AtomicUsize::new(0),
            }),
        };
        crate::directory::migrate(&store)?;
        Ok(store)
    }

    /// In-memory-like store in a fresh temporary file, for tests.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Applies `migrations[version..]` for `component`, each in its own transaction, in order.
    ///
    /// Migration `i` (0-based) brings the component to version `i + 1`. A store whose recorded
    /// version is above `migrations.len()` was written by a newer Serval and is refused.
    pub fn migrate(&self, component: &str, migrations: &[&str]) -> Result<(), StoreError> {
        let mut conn = self.writer();
        let current: i64 = conn
            .query_row(
                "SELECT version FROM serval_schema WHERE component = ?1",
                [component],
                |r| r.get(0),
            )
            .or_else(|e| match e {
                rusqlite::Error::QueryReturnedNoRows => Ok(0),
                e => Err(e),
            })?;
        let known = i64::try_from(migrations.len()).unwrap_or(i64::MAX);
        if current > known {
            return Err(StoreError::TooNew {
                path: self.inner.path.clone(),
                component: component.to_string(),
                found: current,
                known,
            });
        }
        for (i, sql) in migrations.iter().enumerate() {
            let version = i64::try_from(i).unwrap_or(i64::MAX) + 1;
            if version <= current {
                continue;
            }
            let fail = |source| StoreError::Migration {
                component: component.into(),
                version,
                source,
            };
            let tx = conn.transaction().map_err(fail)?;
            tx.execute_batch(sql).map_err(fail)?;
            tx.execute(
                "INSERT INTO serval_schema (component, version, applied_at) VALUES (?1, ?2, strftime('%s','now'))
                 ON CONFLICT(component) DO UPDATE SET version = excluded.version, applied_at = excluded.applied_at",
                rusqlite::params![component, version],
            )
            .map_err(fail)?;
            tx.commit().map_err(fail)?;
        }
        Ok(())
    }

    /// Runs `f` on a read connection (blocking). Sees the last committed state.
    pub fn read<T>(
        &self,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T>,
    ) -> Result<T, StoreError> {
        let n = self.inner.next_reader.fetch_add(1, Ordering::Relaxed) % self.inner.readers.len();
        let conn = lock(&self.inner.readers[n]);
        Ok(f(&conn)?)
    }

    /// Runs `f` in a write transaction (blocking) and commits it when `f` returns `Ok`.
    pub fn write<T>(
        &self,
        f: impl FnOnce(&Transaction<'_>) -> rusqlite::Result<T>,
    ) -> Result<T, StoreError> {
        let mut conn = self.writer();
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let value = f(&tx)?;
        tx.commit()?;
        Ok(value)
    }

    /// [`Store::read`] on tokio's blocking pool.
    pub async fn read_async<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, StoreError> {
        let store = self.clone();
        tokio::task::spawn_blocking(move || store.read(f))
            .await
            .map_err(|e| StoreError::Task(e.to_string()))?
    }

    /// [`Store::write`] on tokio's blocking pool.
    pub async fn write_async<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Transaction<'_>) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, StoreError> {
        let store = self.clone();
        tokio::task::spawn_blocking(move || store.write(f))
            .await
            .map_err(|e| StoreError::Task(e.to_string()))?
    }

    /// Writes a consistent snapshot of the live store to `dest` (SQLite online backup API).
    pub fn backup_to(
        &self,
        dest: &Path,
        mut progress: impl FnMut(u64, u64),
    ) -> Result<(), StoreError> {
        let src = self.writer();
        let mut dst = Connection::open(dest)?;
        {
            let backup = rusqlite::backup::Backup::new(&src, &mut dst)?;
            loop {
                let step = backup.step(256)?;
                let p = backup.progress();
                let total = u64::try_from(p.pagecount).unwrap_or(0);
                let done = total.saturating_sub(u64::try_from(p.remaining).unwrap_or(0));
                progress(done, total);
                match step {
                    rusqlite::backup::StepResult::Done => break,
                    rusqlite::backup::StepResult::More => {}
                    rusqlite::backup::StepResult::Busy | rusqlite::backup::StepResult::Locked => {
                        std::thread::sleep(std::time::Duration::from_millis(20))
                    }
                    _ => {}
                }
            }
        }
        // A backup file is self-contained: no WAL beside it.
        dst.pragma_update(None, "journal_mode", "DELETE")?;
        Ok(())
    }

    /// Checkpoints the WAL into the main file; called at shutdown so the file alone is complete.
    pub fn checkpoint(&self) -> Result<(), StoreError> {
        self.writer()
            .execute_batch("PRAGMA wal_checkpoint(TRUNCATE);")?;
        Ok(())
    }

    fn writer(&self) -> MutexGuard<'_, Connection> {
        lock(&self.inner.writer)
    }
}

/// A panic while holding a connection leaves it usable (SQLite rolled back the transaction when
/// the `Transaction` dropped), so a poisoned lock is taken over rather than propagated.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn configure(conn: &Connection) -> rusqlite::Result<()> {
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        tracing::warn!(mode, "store could not switch to WAL mode");
    }
    let sync = match std::env::var("SERVAL_STORE_SYNC").as_deref() {
        Ok("full") => "FULL",
        _ => "NORMAL",
    };
    conn.pragma_update(None, "synchronous", sync)?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    Ok(())
}

/// Replaces the store file at `store_path` with the backup at `backup`, after checking that the
/// backup is a Serval store this binary can read. The caller must hold the data directory lock.
pub fn restore_from(backup: &Path, store_path: &Path) -> Result<(), StoreError> {
    {
        let conn = Connection::open_with_flags(backup, OpenFlags::SQLITE_OPEN_READ_ONLY).map_err(
            |source| StoreError::Open {
                path: backup.to_path_buf(),
                source,
            },
        )?;
        let ok: String = conn.query_row("PRAGMA integrity_check", [], |r| r.get(0))?;
        if ok != "ok" {
            return Err(StoreError::Task(format!(
                "{} fails its integrity check: {ok}",
                backup.display()
            )));
        }
        let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        if version > CORE_FORMAT {
            return Err(StoreError::TooNew {
                path: backup.to_path_buf(),
                component: "core".into(),
                found: version,
                known: CORE_FORMAT,
            });
        }
        conn.query_row("SELECT count(*) FROM serval_schema", [], |r| {
            r.get::<_, i64>(0)
        })
        .map_err(|_| {
            StoreError::Task(format!(
                "{} is an SQLite file but not a Serval store",
                backup.display()
            ))
        })?;
    }
    let tmp = store_path.with_extension("restoring");
    std::fs::copy(backup, &tmp)
        .map_err(|e| StoreError::Task(format!("copy {}: {e}", backup.display())))?;
    for ext in ["db-wal", "db-shm"] {
        let _ = std::fs::remove_file(store_path.with_extension(ext));
    }
    std::fs::rename(&tmp, store_path)
        .map_err(|e| StoreError::Task(format!("rename into place: {e}")))?;
    Ok(())
}

/// Opens the node's store as `[store]` says: the SQLite file at `sqlite_path`, or the
/// PostgreSQL database (password from `password_file`, relative to `data_dir`, or
/// `$PGPASSWORD`). Core and admin migrations are applied either way.
pub fn open_engine(
    config: &crate::config::StoreConfig,
    sqlite_path: &Path,
    data_dir: &Path,
) -> Result<Engine, StoreError> {
    match config.engine {
        crate::config::StoreEngineKind::Sqlite => {
            let store = Store::open(sqlite_path)?;
            crate::admin::migrate(&store)?;
            Ok(Engine::Sqlite(store))
        }
        crate::config::StoreEngineKind::Postgres => Ok(Engine::Postgres(PgStore::connect(
            &pg_settings(config, data_dir)?,
        )?)),
    }
}

/// The PostgreSQL connection settings of `[store]`.
pub fn pg_settings(
    config: &crate::config::StoreConfig,
    data_dir: &Path,
) -> Result<PgSettings, StoreError> {
    let password = if config.password_file.is_empty() {
        std::env::var("PGPASSWORD").ok()
    } else {
        let path = data_dir.join(&config.password_file);
        let text = std::fs::read_to_string(&path).map_err(|e| {
            StoreError::Unavailable(format!(
                "cannot read store.password_file {}: {e}",
                path.display()
            ))
        })?;
        Some(text.lines().next().unwrap_or_default().to_owned())
    };
    Ok(PgSettings {
        url: config.url.clone(),
        password,
        pool_size: config.pool_size,
        statement_timeout: config.statement_timeout.0,
        connect_timeout: std::time::Duration::from_secs(5),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_apply_once_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s.db")).unwrap();
        let m = ["CREATE TABLE a (x INTEGER);", "INSERT INTO a VALUES (1);"];
        store.migrate("t", &m).unwrap();
        store.migrate("t", &m).unwrap();
        let n: i64 = store
            .read(|c| c.query_row("SELECT count(*) FROM a", [], |r| r.get(0)))
            .unwrap();
        assert_eq!(n, 1);
    }

    #[test]
    fn newer_store_is_refused_with_a_clear_message() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s.db")).unwrap();
        store.migrate("t", &["SELECT 1;", "SELECT 1;"]).unwrap();
        let err = store.migrate("t", &["SELECT 1;"]).unwrap_err().to_string();
        assert!(err.contains("newer Serval"), "{err}");
        assert!(err.contains("schema version 2"), "{err}");
    }

    #[test]
    fn backup_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s.db")).unwrap();
        store.migrate("t", &["CREATE TABLE a (x TEXT);"]).unwrap();
        store
            .write(|tx| tx.execute("INSERT INTO a VALUES ('kept')", []))
            .unwrap();
        let backup = dir.path().join("b.db");
        store.backup_to(&backup, |_, _| {}).unwrap();
        store.write(|tx| tx.execute("DELETE FROM a", [])).unwrap();
        drop(store);
        let path = dir.path().join("s.db");
        restore_from(&backup, &path).unwrap();
        let store = Store::open(&path).unwrap();
        let x: String = store
            .read(|c| c.query_row("SELECT x FROM a", [], |r| r.get(0)))
            .unwrap();
        assert_eq!(x, "kept");
    }
}
