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

/// Creates a session for `user`, returning the cookie value.
pub fn create(store: &Store, user: &str) -> Result<String, StoreError> {
    let token = random_token();
    let (hash, user, csrf) = (hash_token(&token), user.to_string(), random_token());
    let now = i64::try_from(crate::now_unix()).unwrap_or(i64::MAX);
    store.write(move |tx| {
        tx.execute(
            "INSERT INTO admin_sessions (token_hash, user, csrf, created_at, last_seen) VALUES (?1, ?2, ?3, ?4, ?4)",
            params![hash, user, csrf, now],
        )
    })?;
    Ok(token)
}

/// Looks up a live session and refreshes its idle timer.
pub fn find(
    store: &Store,
    token: &str,
    idle_secs: u64,
) -> Result<Option<AdminSession>, StoreError> {
    let hash = hash_token(token);
    let now = i64::try_from(crate::now_unix()).unwrap_or(i64::MAX);
    let oldest = now.saturating_sub(i64::try_from(idle_secs).unwrap_or(i64::MAX));
    let found =
        {
            let hash = hash.clone();
            store.read(move |c| {
                c.query_row(
                "SELECT user, csrf FROM admin_sessions WHERE token_hash = ?1 AND last_seen >= ?2",
                params![hash, oldest],
                |r| Ok(AdminSession { user: r.get(0)?, csrf: r.get(1)? }),
            )
            .optional()
            })?
        };
    if found.is_some() {
        store.write(move |tx| {
            tx.execute(
                "UPDATE admin_sessions SET last_seen = ?2 WHERE token_hash = ?1",
                params![hash, now],
            )?;
            tx.execute(
                "DELETE FROM admin_sessions WHERE last_seen < ?1",
                params![oldest],
            )
        })?;
    }
    Ok(found)
}

pub fn delete(store: &Store, token: &str) -> Result<(), StoreError> {
    let hash = hash_token(token);
    store
        .write(move |tx| tx.execute("DELETE FROM admin_sessions WHERE token_hash = ?1", [hash]))?;
    Ok(())
}

/// Value of cookie `name` in a `Cookie` header.
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
