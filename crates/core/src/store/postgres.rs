//! PostgreSQL as the store engine for several Serval nodes sharing one database.
//!
//! `tokio-postgres` with a `deadpool-postgres` pool, next to `rusqlite` for the embedded
//! default (see ARCHITECTURE.md for why not sqlx). The store traits the services use are
//! synchronous (SQLite answers in microseconds, so they are called inline), so this handle
//! runs each database job on a small runtime of its own and waits for it on a plain channel:
//! callable from a tokio worker, a blocking thread or the CLI alike, never nesting runtimes.
//!
//! Migrations are the same per-component, versioned lists as on SQLite, recorded in
//! `serval_schema`; two nodes starting at once serialise on an advisory lock.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio_postgres::NoTls;

use super::StoreError;

/// How to reach the database.
#[derive(Clone)]
pub struct PgSettings {
    /// `postgres://user@host:port/db` or a libpq key=value string; the password may come
    /// separately, so it never has to be in a config file's URL.
    pub url: String,
    pub password: Option<String>,
    pub pool_size: usize,
    /// Every statement is cancelled after this long (`statement_timeout`).
    pub statement_timeout: Duration,
    /// How long a job waits for a pooled connection (and a new one to connect).
    pub connect_timeout: Duration,
}

impl std::fmt::Debug for PgSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgSettings")
            .field("url", &redact(&self.url))
            .field("password", &self.password.as_ref().map(|_| "***"))
            .field("pool_size", &self.pool_size)
            .finish()
    }
}

/// The URL with any password replaced, for logs and errors.
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url
            .split_whitespace()
            .map(|kv| {
                if kv.starts_with("password=") {
                    "password=***"
                } else {
                    kv
                }
            })
            .collect::<Vec<_>>()
            .join(" ");
    };
    match rest.split_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

/// Cheap-to-clone handle to a PostgreSQL store.
#[derive(Clone)]
pub struct PgStore {
    inner: Arc<PgInner>,
}

struct PgInner {
    pool: Pool,
    /// Always `Some` until drop.
    runtime: Option<tokio::runtime::Runtime>,
    target: String,
}

impl Drop for PgInner {
    fn drop(&mut self) {
        // The last handle may go away inside a tokio task, where a blocking shutdown panics.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore")
            .field("target", &self.inner.target)
            .finish()
    }
}

/// A pooled connection, as jobs get it.
pub type PgClient = deadpool_postgres::Object;

impl PgStore {
    /// Connects, checks the server answers, and applies the core migrations.
    pub fn connect(settings: &PgSettings) -> Result<PgStore, StoreError> {
        let target = redact(&settings.url);
        let mut config: tokio_postgres::Config = settings.url.parse().map_err(|e| {
            StoreError::Unavailable(format!("invalid PostgreSQL URL {target}: {e}"))
        })?;
        if let Some(password) = &settings.password {
            config.password(password);
        }
        config.connect_timeout(settings.connect_timeout);
        config.application_name("serval");
        config.options(format!(
            "-c statement_timeout={}",
            settings.statement_timeout.as_millis()
        ));
        let manager = Manager::from_config(
            config,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("serval-pg")
            .enable_all()
            .build()
            .map_err(|e| StoreError::Task(e.to_string()))?;
        let pool = {
            let _entered = runtime.enter();
            Pool::builder(manager)
                .max_size(settings.pool_size.max(1))
                .wait_timeout(Some(settings.connect_timeout))
                .create_timeout(Some(settings.connect_timeout))
                .runtime(deadpool_postgres::Runtime::Tokio1)
                .build()
                .map_err(|e| StoreError::Unavailable(format!("{target}: {e}")))?
        };
        let store = PgStore {
            inner: Arc::new(PgInner {
                pool,
                runtime: Some(runtime),
                target,
            }),
        };
        store.run(|client| async move {
            client
                .batch_execute(
                    "CREATE TABLE IF NOT EXISTS serval_schema (
                        component TEXT PRIMARY KEY,
                        version BIGINT NOT NULL,
                        applied_at BIGINT NOT NULL
                    )",
                )
                .await?;
            Ok::<_, StoreError>(())
        })?;
        crate::directory::migrate_postgres(&store)?;
        store.migrate("admin", crate::admin::session::PG_MIGRATIONS)?;
        Ok(store)
    }

    /// Where this store points, password removed.
    pub fn target(&self) -> &str {
        &self.inner.target
    }

    /// Runs `job` with a pooled connection on the store's runtime and waits for its result.
    /// `E` is the caller's error type (a service's own store error), built from core's.
    pub fn run<T, E, F, Fut>(&self, job: F) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
        F: FnOnce(PgClient) -> Fut + Send + 'static,
        Fut: Future<Output = Result<T, E>> + Send + 'static,
    {
        let pool = self.inner.pool.clone();
        let target = self.inner.target.clone();
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        let runtime =
            self.inner.runtime.as_ref().ok_or_else(|| {
                E::from(StoreError::Task("PostgreSQL store is shutting down".into()))
            })?;
        runtime.spawn(async move {
            let result = match pool.get().await {
                Ok(client) => job(client).await,
                Err(e) => Err(E::from(StoreError::Unavailable(format!(
                    "PostgreSQL at {target} is unreachable: {e}"
                )))),
            };
            let _ = tx.send(result);
        });
        rx.recv()
            .map_err(|_| E::from(StoreError::Task("PostgreSQL job was dropped".into())))?
    }

    /// Applies `migrations[version..]` for `component`, each in its own transaction. A
    /// database whose recorded version is above `migrations.len()` was written by a newer
    /// Serval and is refused.
    pub fn migrate(
        &self,
        component: &str,
        migrations: &'static [&'static str],
    ) -> Result<(), StoreError> {
        let component = component.to_owned();
        let target = self.inner.target.clone();
        self.run(move |mut client| async move {
            let known = i64::try_from(migrations.len()).unwrap_or(i64::MAX);
            for (index, sql) in migrations.iter().enumerate() {
                let version = i64::try_from(index).unwrap_or(i64::MAX) + 1;
                let tx = client.transaction().await?;
                // One node migrates at a time; the others see its result.
                tx.execute("SELECT pg_advisory_xact_lock(7400001)", &[])
                    .await?;
                let found: i64 = tx
                    .query_opt(
                        "SELECT version FROM serval_schema WHERE component = $1",
                        &[&component],
                    )
                    .await?
                    .map_or(0, |row| row.get(0));
                if found > known {
                    return Err(StoreError::TooNew {
                        path: target.clone().into(),
                        component: component.clone(),
                        found,
                        known,
                    });
                }
                if found >= version {
                    tx.commit().await?;
                    continue;
                }
                tx.batch_execute(sql).await.map_err(|e| {
                    StoreError::Postgres(format!(
                        "migration {component} v{version}: {}",
                        describe(&e)
                    ))
                })?;
                tx.execute(
                    "INSERT INTO serval_schema (component, version, applied_at)
                     VALUES ($1, $2, extract(epoch from now())::bigint)
                     ON CONFLICT (component) DO UPDATE SET version = excluded.version,
                         applied_at = excluded.applied_at",
                    &[&component, &version],
                )
                .await?;
                tx.commit().await?;
            }
            Ok(())
        })
    }

    /// The recorded schema version of each component.
    pub fn schema_versions(&self) -> Result<Vec<(String, i64)>, StoreError> {
        self.run(|client| async move {
            let rows = client
                .query(
                    "SELECT component, version FROM serval_schema ORDER BY component",
                    &[],
                )
                .await?;
            Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
        })
    }
}

/// Connects once without changing anything and reads the recorded schema versions (empty
/// for a database Serval has not used yet): what `serval check` reports.
pub fn probe(settings: &PgSettings) -> Result<Vec<(String, i64)>, StoreError> {
    let target = redact(&settings.url);
    let mut config: tokio_postgres::Config = settings
        .url
        .parse()
        .map_err(|e| StoreError::Unavailable(format!("invalid PostgreSQL URL {target}: {e}")))?;
    if let Some(password) = &settings.password {
        config.password(password);
    }
    config.connect_timeout(settings.connect_timeout);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| StoreError::Task(e.to_string()))?;
    // A separate thread: `serval check` may itself run inside a runtime one day.
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                runtime.block_on(async {
                    let (client, connection) = config.connect(NoTls).await.map_err(|e| {
                        let reason = describe(&e);
                        let hint = match e.as_db_error().map(|d| d.code().code()) {
                            Some("28P01") | Some("28000") => {
                                " (authentication failed: check the user, store.password_file or $PGPASSWORD)"
                            }
                            Some("3D000") => " (the database does not exist: create it with createdb)",
                            _ => " (is PostgreSQL running and reachable from here?)",
                        };
                        StoreError::Unavailable(format!("cannot connect to {target}: {reason}{hint}"))
                    })?;
                    tokio::spawn(connection);
                    let exists = client
                        .query_opt("SELECT to_regclass('serval_schema')::text", &[])
                        .await?
                        .and_then(|r| r.get::<_, Option<String>>(0))
                        .is_some();
                    if !exists {
                        return Ok(Vec::new());
                    }
                    let rows = client
                        .query("SELECT component, version FROM serval_schema ORDER BY component", &[])
                        .await?;
                    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
                })
            })
            .join()
            .unwrap_or_else(|_| Err(StoreError::Task("probe thread panicked".into())))
    })
}

/// Schema versions this binary's core knows, per component.
pub fn core_schema_versions() -> Vec<(&'static str, i64)> {
    vec![
        ("admin", crate::admin::session::PG_MIGRATIONS.len() as i64),
        ("directory", crate::directory::postgres_schema_version()),
    ]
}

/// A PostgreSQL error as the server put it (SQLSTATE and message), not tokio-postgres's
/// terse "db error".
pub fn describe(error: &tokio_postgres::Error) -> String {
    match error.as_db_error() {
        Some(db) => format!("{} ({})", db.message(), db.code().code()),
        None => error.to_string(),
    }
}

impl From<tokio_postgres::Error> for StoreError {
    fn from(error: tokio_postgres::Error) -> Self {
        if error.is_closed()
            || error.as_db_error().is_none() && error.to_string().contains("connect")
        {
            StoreError::Unavailable(describe(&error))
        } else {
            StoreError::Postgres(describe(&error))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn passwords_never_reach_logs() {
        assert_eq!(
            redact("postgres://serval:hunter2@db.example.test:5432/serval"),
            "postgres://serval:***@db.example.test:5432/serval"
        );
        assert_eq!(
            redact("postgres://serval@db/serval"),
            "postgres://serval@db/serval"
        );
        assert_eq!(
            redact("host=db user=serval password=hunter2"),
            "host=db user=serval password=***"
        );
    }
}
