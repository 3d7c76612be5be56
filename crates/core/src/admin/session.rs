//! Admin login sessions and CSRF tokens.
//!
//! A session cookie carries 32 random bytes; the store keeps only their SHA-256, so a leaked store
//! file does not hand out live sessions. Each session has its own CSRF token that every form and
//! every state-changing API call must echo. The login form, which has no session yet, uses a
//! double-submit token: a random cookie that the form must repeat.

use base64::Engine as _;
use rusqlite::{params, OptionalExtension};
use sha2::{Digest as _, Sha256};

use crate::store::{Store, StoreError};

pub const SESSION_COOKIE: &str = "serval_session";
pub const LOGIN_CSRF_COOKIE: &str = "serval_login_csrf";
pub const CSRF_FIELD: &str = "csrf";

pub(crate) const MIGRATIONS: &[&str] = &["
    CREATE TABLE admin_sessions (
        token_hash TEXT PRIMARY KEY,
        user TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,
        csrf TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        last_seen INTEGER NOT NULL
    );
"];

/// The same table on PostgreSQL (`user` is reserved there).
pub(crate) const PG_MIGRATIONS: &[&str] = &["
    CREATE TABLE admin_sessions (
        token_hash TEXT PRIMARY KEY,
        user_name TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,
        csrf TEXT NOT NULL,
        created_at BIGINT NOT NULL,
        last_seen BIGINT NOT NULL
    );
"];

/// A logged-in admin.
#[derive(Clone, Debug)]
pub struct AdminSession {
    pub user: String,
    pub csrf: String,
}

pub fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Where admin sessions are kept: the embedded SQLite store today; a PostgreSQL engine can
/// implement the same trait. Pure storage of token hashes: token generation, hashing and the
/// idle timeout stay in [`create`], [`find`] and [`delete`].
pub trait AdminSessionStore: Send + Sync {
    fn insert(&self, token_hash: &str, user: &str, csrf: &str, now: i64) -> Result<(), StoreError>;
    /// The session whose token hashes to `token_hash`, if seen at or after `oldest`.
    fn find_live(&self, token_hash: &str, oldest: i64) -> Result<Option<AdminSession>, StoreError>;
    /// Marks the session seen at `now` and forgets every session last seen before `oldest`.
    fn touch(&self, token_hash: &str, now: i64, oldest: i64) -> Result<(), StoreError>;
    fn remove(&self, token_hash: &str) -> Result<(), StoreError>;
}

/// [`AdminSessionStore`] over the embedded SQLite store (table `admin_sessions`).
pub struct SqliteAdminSessions {
    store: Store,
}

impl SqliteAdminSessions {
    pub fn new(store: Store) -> SqliteAdminSessions {
        SqliteAdminSessions { store }
    }
}

impl AdminSessionStore for SqliteAdminSessions {
    fn insert(&self, token_hash: &str, user: &str, csrf: &str, now: i64) -> Result<(), StoreError> {
        let (hash, user, csrf) = (token_hash.to_owned(), user.to_owned(), csrf.to_owned());
        self.store.write(move |tx| {
            tx.execute(
                "INSERT INTO admin_sessions (token_hash, user, csrf, created_at, last_seen) VALUES (?1, ?2, ?3, ?4, ?4)",
                params![hash, user, csrf, now],
            )
        })?;
        Ok(())
    }

    fn find_live(&self, token_hash: &str, oldest: i64) -> Result<Option<AdminSession>, StoreError> {
        let hash = token_hash.to_owned();
        self.store.read(move |c| {
            c.query_row(
                "SELECT user, csrf FROM admin_sessions WHERE token_hash = ?1 AND last_seen >= ?2",
                params![hash, oldest],
                |r| {
                    Ok(AdminSession {
                        user: r.get(0)?,
                        csrf: r.get(1)?,
                    })
                },
            )
            .optional()
        })
    }

    fn touch(&self, token_hash: &str, now: i64, oldest: i64) -> Result<(), StoreError> {
        let hash = token_hash.to_owned();
        self.store.write(move |tx| {
            tx.execute(
                "UPDATE admin_sessions SET last_seen = ?2 WHERE token_hash = ?1",
                params![hash, now],
            )?;
            tx.execute(
                "DELETE FROM admin_sessions WHERE last_seen < ?1",
                params![oldest],
            )
        })?;
        Ok(())
    }

    fn remove(&self, token_hash: &str) -> Result<(), StoreError> {
        let hash = token_hash.to_owned();
        self.store.write(move |tx| {
            tx.execute("DELETE FROM admin_sessions WHERE token_hash = ?1", [hash])
        })?;
        Ok(())
    }
}

/// [`AdminSessionStore`] over PostgreSQL: a login on one node is valid on every node.
pub struct PgAdminSessions {
    store: crate::store::PgStore,
}

impl PgAdminSessions {
    pub fn new(store: crate::store::PgStore) -> PgAdminSessions {
        PgAdminSessions { store }
    }
}

impl AdminSessionStore for PgAdminSessions {
    fn insert(&self, token_hash: &str, user: &str, csrf: &str, now: i64) -> Result<(), StoreError> {
        let (hash, user, csrf) = (token_hash.to_owned(), user.to_owned(), csrf.to_owned());
        self.store.run(move |client| async move {
            client
                .execute(
                    "INSERT INTO admin_sessions (token_hash, user_name, csrf, created_at, last_seen)
                     VALUES ($1, $2, $3, $4, $4)",
                    &[&hash, &user, &csrf, &now],
                )
                .await?;
            Ok(())
        })
    }

    fn find_live(&self, token_hash: &str, oldest: i64) -> Result<Option<AdminSession>, StoreError> {
        let hash = token_hash.to_owned();
        self.store.run(move |client| async move {
            let row = client
                .query_opt(
                    "SELECT user_name, csrf FROM admin_sessions WHERE token_hash = $1 AND last_seen >= $2",
                    &[&hash, &oldest],
                )
                .await?;
            Ok(row.map(|r| AdminSession {
                user: r.get(0),
                csrf: r.get(1),
            }))
        })
    }

    fn touch(&self, token_hash: &str, now: i64, oldest: i64) -> Result<(), StoreError> {
        let hash = token_hash.to_owned();
        self.store.run(move |client| async move {
            client
                .execute(
                    "UPDATE admin_sessions SET last_seen = $2 WHERE token_hash = $1",
                    &[&hash, &now],
                )
                .await?;
            client
                .execute(
                    "DELETE FROM admin_sessions WHERE last_seen < $1",
                    &[&oldest],
                )
                .await?;
            Ok(())
        })
    }

    fn remove(&self, token_hash: &str) -> Result<(), StoreError> {
        let hash = token_hash.to_owned();
        self.store.run(move |client| async move {
            client
                .execute("DELETE FROM admin_sessions WHERE token_hash = $1", &[&hash])
                .await?;
            Ok(())
        })
    }
}

/// The admin session store of the node's engine.
pub fn store_for(engine: &crate::store::Engine) -> std::sync::Arc<dyn AdminSessionStore> {
    match engine {
        crate::store::Engine::Sqlite(store) => {
            std::sync::Arc::new(SqliteAdminSessions::new(store.clone()))
        }
        crate::store::Engine::Postgres(store) => {
            std::sync::Arc::new(PgAdminSessions::new(store.clone()))
        }
    }
}

/// Creates a session for `user`, returning the cookie value.
pub fn create(sessions: &dyn AdminSessionStore, user: &str) -> Result<String, StoreError> {
    let token = random_token();
    let now = i64::try_from(crate::now_unix()).unwrap_or(i64::MAX);
    sessions.insert(&hash_token(&token), user, &random_token(), now)?;
    Ok(token)
}

/// Looks up a live session and refreshes its idle timer.
pub fn find(
    sessions: &dyn AdminSessionStore,
    token: &str,
    idle_secs: u64,
) -> Result<Option<AdminSession>, StoreError> {
    let hash = hash_token(token);
    let now = i64::try_from(crate::now_unix()).unwrap_or(i64::MAX);
    let oldest = now.saturating_sub(i64::try_from(idle_secs).unwrap_or(i64::MAX));
    let found = sessions.find_live(&hash, oldest)?;
    if found.is_some() {
        sessions.touch(&hash, now, oldest)?;
    }
    Ok(found)
}

pub fn delete(sessions: &dyn AdminSessionStore, token: &str) -> Result<(), StoreError> {
    sessions.remove(&hash_token(token))
}

pub fn cookie<'a>(headers: &'a axum::http::HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// A `Set-Cookie` value with the attributes every Serval cookie carries.
pub fn set_cookie(name: &str, value: &str, secure: bool, max_age: Option<u64>) -> String {
    let mut c = format!("{name}={value}; Path=/; HttpOnly; SameSite=Strict");
    if secure {
        c.push_str("; Secure");
    }
    if let Some(age) = max_age {
        c.push_str(&format!("; Max-Age={age}"));
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::DirectoryConfig;
    use crate::directory::{Directory, NewUser};
    use crate::store::Engine;

    /// Keeps a test's store alive: its SQLite folder or its PostgreSQL server.
    #[allow(dead_code)]
    enum Keep {
        Sqlite(tempfile::TempDir),
        Postgres(crate::store::pg_testing::TestPostgres),
    }

    /// Session stores on both engines, each with the user `root`.
    fn session_stores() -> Vec<(Keep, std::sync::Arc<dyn AdminSessionStore>)> {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s.db")).unwrap();
        crate::admin::migrate(&store).unwrap();
        let server = crate::store::pg_testing::TestPostgres::start();
        let postgres = Engine::Postgres(server.store());
        let engines = vec![
            (Keep::Sqlite(dir), Engine::Sqlite(store)),
            (Keep::Postgres(server), postgres),
        ];
        engines
            .into_iter()
            .map(|(keep, engine)| {
                Directory::on(engine.clone(), &DirectoryConfig::default())
                    .add_user(&NewUser {
                        name: "root",
                        password: Some("pw"),
                        ..NewUser::default()
                    })
                    .unwrap();
                (keep, store_for(&engine))
            })
            .collect()
    }

    #[test]
    fn a_session_is_found_by_its_token_until_deleted() {
        for (_keep, store) in session_stores() {
            let store = store.as_ref();
            let token = create(store, "root").unwrap();
            let found = find(store, &token, 3600).unwrap().expect("live session");
            assert_eq!(found.user, "root");
            assert!(find(store, "not-a-token", 3600).unwrap().is_none());
            // Only the hash is kept: the raw token finds nothing.
            assert!(store.find_live(&token, 0).unwrap().is_none());
            assert!(store.find_live(&hash_token(&token), 0).unwrap().is_some());
            delete(store, &token).unwrap();
            assert!(find(store, &token, 3600).unwrap().is_none());
        }
    }

    #[test]
    fn an_idle_session_expires() {
        for (_keep, store) in session_stores() {
            let store = store.as_ref();
            let token = create(store, "root").unwrap();
            let hash = hash_token(&token);
            // Seen long ago: outside any idle window that ends now.
            store.touch(&hash, 1_000, 0).unwrap();
            assert!(find(store, &token, 60).unwrap().is_none());
        }
    }
}
