//! The user directory every service shares: users (people, rooms, resources), groups, password
//! verification, Digest hashes per realm, and the failed-login limiter.
//!
//! Passwords are stored as argon2id PHC strings. Protocols whose clients only speak Digest (RTSP
//! players) need `H(user:realm:password)`, which cannot be derived from an argon2 hash, so the
//! Digest HA1 values (MD5 and SHA-256) for the directory realm are computed when a password is set,
//! as the old streaming server's `qtusers` file did. Imported accounts may carry only a legacy HA1
//! for another realm; they keep working for Digest in that realm until the user sets a password.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use argon2::password_hash::{
    rand_core::OsRng, PasswordHash, PasswordHasher, PasswordVerifier, SaltString,
};
use argon2::Argon2;
use md5::{Digest as _, Md5};
use sha2::Sha256;

use crate::config::DirectoryConfig;
use crate::store::{Engine, Store, StoreError};

/// The group whose members may use the admin page.
pub const ADMIN_GROUP: &str = "admin";
/// Longest accepted password; bounds the work an attacker can make argon2 do per attempt.
pub const MAX_PASSWORD_BYTES: usize = 1024;

mod postgres;
mod sqlite;

pub use postgres::PgDirectoryStore;
pub use sqlite::SqliteDirectoryStore;

pub(crate) fn migrate(store: &Store) -> Result<(), StoreError> {
    sqlite::migrate(store)
}

pub(crate) fn postgres_schema_version() -> i64 {
    postgres::MIGRATIONS.len() as i64
}

pub(crate) fn migrate_postgres(store: &crate::store::PgStore) -> Result<(), StoreError> {
    store.migrate("directory", postgres::MIGRATIONS)
}

/// Where the directory keeps its entries: the embedded SQLite store today; a PostgreSQL engine can
/// implement the same trait. Pure storage: validation, hashing and rate limiting stay in
/// [`Directory`].
pub trait DirectoryStore: Send + Sync {
    /// Inserts a user; `false` when the name is taken.
    fn insert_user(
        &self,
        user: &User,
        hashes: Option<&PasswordHashes>,
        realm: &str,
    ) -> Result<bool, StoreError>;
    /// Replaces the password hash and Digest HA1 values; `false` when there is no such user.
    fn set_password(
        &self,
        name: &str,
        hashes: &PasswordHashes,
        realm: &str,
    ) -> Result<bool, StoreError>;
    fn import_digest(
        &self,
        name: &str,
        realm: &str,
        md5_ha1: &str,
        legacy_crypt: Option<&str>,
    ) -> Result<(), StoreError>;
    fn delete_user(&self, name: &str) -> Result<bool, StoreError>;
    fn update_user(
        &self,
        name: &str,
        full_name: Option<&str>,
        email: Option<&str>,
    ) -> Result<bool, StoreError>;
    fn user(&self, name: &str) -> Result<Option<User>, StoreError>;
    fn user_by_email(&self, email: &str) -> Result<Option<User>, StoreError>;
    fn list_users(&self) -> Result<Vec<User>, StoreError>;
    /// `None`: no such user; `Some(None)`: a user without a password (room, imported account).
    fn password_hash(&self, name: &str) -> Result<Option<Option<String>>, StoreError>;
    fn digest_ha1(
        &self,
        name: &str,
        realm: &str,
        algorithm: &str,
    ) -> Result<Option<String>, StoreError>;
    fn insert_group(&self, name: &str) -> Result<bool, StoreError>;
    fn delete_group(&self, name: &str) -> Result<bool, StoreError>;
    fn group_exists(&self, name: &str) -> Result<bool, StoreError>;
    fn set_member(&self, group: &str, user: &str, member: bool) -> Result<(), StoreError>;
    fn list_groups(&self) -> Result<Vec<Group>, StoreError>;
    fn groups_of(&self, user: &str) -> Result<Vec<String>, StoreError>;
    fn group_members(&self, group: &str) -> Result<Vec<String>, StoreError>;
    fn is_member(&self, group: &str, user: &str) -> Result<bool, StoreError>;
}

#[derive(Debug, thiserror::Error)]
pub enum DirectoryError {
    #[error("`{0}` is not a valid name: use 1-64 letters, digits, `.`, `_` or `-`, starting with a letter or digit, optionally as an address `name@domain`")]
    InvalidName(String),
    #[error("user `{0}` already exists")]
    UserExists(String),
    #[error("no user named `{0}`")]
    NoSuchUser(String),
    #[error("group `{0}` already exists")]
    GroupExists(String),
    #[error("no group named `{0}`")]
    NoSuchGroup(String),
    #[error("the password is empty")]
    EmptyPassword,
    #[error("the password is longer than {MAX_PASSWORD_BYTES} bytes")]
    PasswordTooLong,
    #[error("cannot hash the password: {0}")]
    Hash(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<rusqlite::Error> for DirectoryError {
    fn from(e: rusqlite::Error) -> Self {
        DirectoryError::Store(StoreError::Sqlite(e))
    }
}

/// Why a login failed. Deliberately does not say whether the user exists.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AuthError {
    #[error("wrong user name or password")]
    BadCredentials,
    #[error("too many failed logins from this address; retry in {} s", retry_after.as_secs().max(1))]
    RateLimited { retry_after: Duration },
    #[error("the directory is unavailable")]
    Unavailable,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PrincipalKind {
    Person,
    Room,
    Resource,
}

impl PrincipalKind {
    pub fn as_str(self) -> &'static str {
        match self {
            PrincipalKind::Person => "person",
            PrincipalKind::Room => "room",
            PrincipalKind::Resource => "resource",
        }
    }
    pub(crate) fn from_db(s: &str) -> PrincipalKind {
        match s {
            "room" => PrincipalKind::Room,
            "resource" => PrincipalKind::Resource,
            _ => PrincipalKind::Person,
        }
    }
}

impl std::str::FromStr for PrincipalKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "person" => Ok(PrincipalKind::Person),
            "room" => Ok(PrincipalKind::Room),
            "resource" => Ok(PrincipalKind::Resource),
            other => Err(format!(
                "`{other}` is not a kind; use person, room or resource"
            )),
        }
    }
}

/// A directory entry as services see it (never carries a password hash).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct User {
    pub name: String,
    pub full_name: String,
    pub email: String,
    pub kind: PrincipalKind,
    /// Unix seconds.
    pub created_at: i64,
    pub has_password: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Group {
    pub name: String,
    pub members: Vec<String>,
}

/// New user fields for [`Directory::add_user`].
#[derive(Clone, Debug, Default)]
pub struct NewUser<'a> {
    pub name: &'a str,
    pub password: Option<&'a str>,
    pub full_name: &'a str,
    pub email: &'a str,
    pub kind: Option<PrincipalKind>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DigestAlgorithm {
    Md5,
    Sha256,
}

impl DigestAlgorithm {
    pub fn as_str(self) -> &'static str {
        match self {
            DigestAlgorithm::Md5 => "MD5",
            DigestAlgorithm::Sha256 => "SHA-256",
        }
    }
    /// Hex digest of `data` with this algorithm.
    pub fn hex(self, data: &[u8]) -> String {
        match self {
            DigestAlgorithm::Md5 => hex::encode(Md5::digest(data)),
            DigestAlgorithm::Sha256 => hex::encode(Sha256::digest(data)),
        }
    }
}

/// `H(user:realm:password)`, the Digest HA1 (RFC 7616 §3.4.2).
pub fn digest_ha1(algorithm: DigestAlgorithm, user: &str, realm: &str, password: &str) -> String {
    algorithm.hex(format!("{user}:{realm}:{password}").as_bytes())
}

/// Shared handle to the directory.
#[derive(Clone)]
pub struct Directory {
    engine: Engine,
    backend: Arc<dyn DirectoryStore>,
    realm: Arc<str>,
    limiter: Arc<LoginLimiter>,
    verified: Arc<Mutex<HashMap<String, VerifiedPassword>>>,
    cache_key: Arc<[u8; 32]>,
}

/// A password recently verified against a given stored hash, so protocols that authenticate every
/// request (CalDAV Basic) do not pay argon2's deliberate cost each time. Keyed by a salted SHA-256
/// of the password with a per-process random key; never persisted.
struct VerifiedPassword {
    stored_hash: String,
    password_digest: [u8; 32],
    until: Instant,
}

const VERIFIED_TTL: Duration = Duration::from_secs(300);

impl std::fmt::Debug for Directory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Directory")
            .field("realm", &self.realm)
            .finish()
    }
}

impl Directory {
    /// The directory in the embedded SQLite store.
    pub fn new(store: Store, config: &DirectoryConfig) -> Directory {
        Self::on(Engine::Sqlite(store), config)
    }

    /// The directory in whichever engine the node's store is.
    pub fn on(engine: Engine, config: &DirectoryConfig) -> Directory {
        let mut cache_key = [0u8; 32];
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut cache_key);
        let backend: Arc<dyn DirectoryStore> = match &engine {
            Engine::Sqlite(store) => Arc::new(SqliteDirectoryStore::new(store.clone())),
            Engine::Postgres(store) => Arc::new(PgDirectoryStore::new(store.clone())),
        };
        Directory {
            backend,
            engine,
            realm: config.realm.as_str().into(),
            limiter: Arc::new(LoginLimiter::new(
                config.max_failed_logins,
                config.failed_login_window.0,
            )),
            verified: Arc::default(),
            cache_key: Arc::new(cache_key),
        }
    }

    /// The Digest realm of the directory.
    pub fn realm(&self) -> &str {
        &self.realm
    }

    /// The engine the directory (and the node's other data) lives in.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    pub fn add_user(&self, new: &NewUser<'_>) -> Result<User, DirectoryError> {
        check_name(new.name)?;
        let hashes = match new.password {
            Some(p) => Some(self.hash_password(new.name, p)?),
            None => None,
        };
        let user = User {
            name: new.name.to_string(),
            full_name: new.full_name.to_string(),
            email: new.email.to_string(),
            kind: new.kind.unwrap_or(PrincipalKind::Person),
            created_at: 0,
            has_password: hashes.is_some(),
        };
        if !self
            .backend
            .insert_user(&user, hashes.as_ref(), &self.realm)?
        {
            return Err(DirectoryError::UserExists(user.name));
        }
        self.user(new.name)?
            .ok_or_else(|| DirectoryError::NoSuchUser(new.name.to_string()))
    }

    pub fn set_password(&self, name: &str, password: &str) -> Result<(), DirectoryError> {
        let hashes = self.hash_password(name, password)?;
        if !self.backend.set_password(name, &hashes, &self.realm)? {
            return Err(DirectoryError::NoSuchUser(name.to_string()));
        }
        self.forget_verified(name);
        Ok(())
    }

    /// Stores a Digest HA1 for `realm` as given (importing an old `qtusers` file). `legacy_crypt`
    /// keeps the file's crypt(3) hash for reference; Basic logins of such accounts are refused until
    /// the user sets a password, because crypt(3) DES hashes are too weak to keep trusting.
    pub fn import_digest_user(
        &self,
        name: &str,
        realm: &str,
        md5_ha1: &str,
        legacy_crypt: Option<&str>,
    ) -> Result<(), DirectoryError> {
        check_name(name)?;
        self.backend
            .import_digest(name, realm, &md5_ha1.to_ascii_lowercase(), legacy_crypt)?;
        Ok(())
    }

    pub fn delete_user(&self, name: &str) -> Result<(), DirectoryError> {
        let deleted = self.backend.delete_user(name)?;
        self.forget_verified(name);
        if !deleted {
            return Err(DirectoryError::NoSuchUser(name.to_string()));
        }
        Ok(())
    }

    pub fn update_user(
        &self,
        name: &str,
        full_name: Option<&str>,
        email: Option<&str>,
    ) -> Result<(), DirectoryError> {
        if !self.backend.update_user(name, full_name, email)? {
            return Err(DirectoryError::NoSuchUser(name.to_string()));
        }
        Ok(())
    }

    pub fn user(&self, name: &str) -> Result<Option<User>, DirectoryError> {
        Ok(self.backend.user(name)?)
    }

    /// Finds a user by e-mail address (case-insensitive), e.g. for a `mailto:` calendar address.
    pub fn user_by_email(&self, email: &str) -> Result<Option<User>, DirectoryError> {
        Ok(self.backend.user_by_email(email)?)
    }

    pub fn list_users(&self) -> Result<Vec<User>, DirectoryError> {
        Ok(self.backend.list_users()?)
    }

    pub fn add_group(&self, name: &str) -> Result<(), DirectoryError> {
        check_name(name)?;
        if !self.backend.insert_group(name)? {
            return Err(DirectoryError::GroupExists(name.to_string()));
        }
        Ok(())
    }

    pub fn delete_group(&self, name: &str) -> Result<(), DirectoryError> {
        if !self.backend.delete_group(name)? {
            return Err(DirectoryError::NoSuchGroup(name.to_string()));
        }
        Ok(())
    }

    pub fn add_member(&self, group: &str, user: &str) -> Result<(), DirectoryError> {
        self.require_group_and_user(group, user)?;
        Ok(self.backend.set_member(group, user, true)?)
    }

    pub fn remove_member(&self, group: &str, user: &str) -> Result<(), DirectoryError> {
        self.require_group_and_user(group, user)?;
        Ok(self.backend.set_member(group, user, false)?)
    }

    pub fn group_exists(&self, group: &str) -> Result<bool, DirectoryError> {
        Ok(self.backend.group_exists(group)?)
    }

    pub fn list_groups(&self) -> Result<Vec<Group>, DirectoryError> {
        Ok(self.backend.list_groups()?)
    }

    pub fn groups_of(&self, user: &str) -> Result<Vec<String>, DirectoryError> {
        Ok(self.backend.groups_of(user)?)
    }

    pub fn group_members(&self, group: &str) -> Result<Vec<String>, DirectoryError> {
        Ok(self.backend.group_members(group)?)
    }

    pub fn is_member(&self, group: &str, user: &str) -> Result<bool, DirectoryError> {
        Ok(self.backend.is_member(group, user)?)
    }

    pub fn is_admin(&self, user: &str) -> Result<bool, DirectoryError> {
        self.is_member(ADMIN_GROUP, user)
    }

    /// Checks a user name and password (Basic, login forms), rate-limited per client address.
    pub fn authenticate(
        &self,
        name: &str,
        password: &str,
        peer: IpAddr,
    ) -> Result<User, AuthError> {
        self.limiter.check(peer)?;
        match self.verify_password(name, password) {
            Ok(Some(user)) => Ok(user),
            Ok(None) => {
                self.limiter.record_failure(peer);
                // The password is never logged; the name is, so admins can spot guessing.
                tracing::warn!(target: "serval_core::auth", %peer, user = name, "failed login");
                Err(AuthError::BadCredentials)
            }
            Err(e) => {
                tracing::error!(target: "serval_core::auth", error = %e, "directory unavailable during login");
                Err(AuthError::Unavailable)
            }
        }
    }

    /// Records a failed login that was checked outside [`Directory::authenticate`] (Digest).
    pub fn record_failed_login(&self, name: &str, peer: IpAddr) {
        self.limiter.record_failure(peer);
        tracing::warn!(target: "serval_core::auth", %peer, user = name, "failed login");
    }

    /// Errors with `RateLimited` if `peer` has failed too often recently.
    pub fn check_rate_limit(&self, peer: IpAddr) -> Result<(), AuthError> {
        self.limiter.check(peer)
    }

    /// The stored Digest HA1 of `name` for `realm`, if any.
    pub fn digest_ha1(
        &self,
        name: &str,
        realm: &str,
        algorithm: DigestAlgorithm,
    ) -> Result<Option<String>, DirectoryError> {
        Ok(self.backend.digest_ha1(name, realm, algorithm.as_str())?)
    }

    fn verify_password(&self, name: &str, password: &str) -> Result<Option<User>, DirectoryError> {
        if password.len() > MAX_PASSWORD_BYTES {
            return Ok(None);
        }
        let stored = self.backend.password_hash(name)?;
        let Some(Some(stored)) = stored else {
            // Spend about the same time as a real check so response timing does not reveal
            // which names exist.
            let _ = Argon2::default()
                .hash_password(password.as_bytes(), &SaltString::generate(&mut OsRng));
            return Ok(None);
        };
        let digest = self.password_digest(password);
        let cached = {
            let cache = self.verified.lock().unwrap_or_else(|p| p.into_inner());
            cache.get(name).is_some_and(|v| {
                v.stored_hash == stored && v.until > Instant::now() && v.password_digest == digest
            })
        };
        if !cached {
            let parsed =
                PasswordHash::new(&stored).map_err(|e| DirectoryError::Hash(e.to_string()))?;
            if Argon2::default()
                .verify_password(password.as_bytes(), &parsed)
                .is_err()
            {
                return Ok(None);
            }
            let mut cache = self.verified.lock().unwrap_or_else(|p| p.into_inner());
            // Bound the cache: an office directory is small, but a flood of distinct valid logins
            // must not grow memory without limit.
            if cache.len() > 10_000 {
                cache.clear();
            }
            cache.insert(
                name.to_string(),
                VerifiedPassword {
                    stored_hash: stored,
                    password_digest: digest,
                    until: Instant::now() + VERIFIED_TTL,
                },
            );
        }
        self.user(name)
    }

    fn password_digest(&self, password: &str) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(self.cache_key.as_slice());
        h.update(password.as_bytes());
        h.finalize().into()
    }

    fn forget_verified(&self, name: &str) {
        self.verified
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(name);
    }

    fn hash_password(&self, name: &str, password: &str) -> Result<PasswordHashes, DirectoryError> {
        if password.is_empty() {
            return Err(DirectoryError::EmptyPassword);
        }
        if password.len() > MAX_PASSWORD_BYTES {
            return Err(DirectoryError::PasswordTooLong);
        }
        let salt = SaltString::generate(&mut OsRng);
        let phc = Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map_err(|e| DirectoryError::Hash(e.to_string()))?
            .to_string();
        Ok(PasswordHashes {
            phc,
            md5_ha1: digest_ha1(DigestAlgorithm::Md5, name, &self.realm, password),
            sha256_ha1: digest_ha1(DigestAlgorithm::Sha256, name, &self.realm, password),
        })
    }

    fn require_group_and_user(&self, group: &str, user: &str) -> Result<(), DirectoryError> {
        if !self.group_exists(group)? {
            return Err(DirectoryError::NoSuchGroup(group.to_string()));
        }
        if self.user(user)?.is_none() {
            return Err(DirectoryError::NoSuchUser(user.to_string()));
        }
        Ok(())
    }
}

/// What setting a password stores: the argon2id PHC string and the Digest HA1 values for the
/// directory realm.
pub struct PasswordHashes {
    pub phc: String,
    pub md5_ha1: String,
    pub sha256_ha1: String,
}

/// Names are used in URLs (`/principals/users/NAME/`) and file names, so they are restricted.
/// One `@` may join a local part and a domain (email-style logins, as many offices use):
/// it is a legal path character (RFC 3986 `pchar`) and harmless in a file name.
pub fn check_name(name: &str) -> Result<(), DirectoryError> {
    let part_ok = |part: &str| {
        part.bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphanumeric())
            && part
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    };
    let ok = (1..=64).contains(&name.len())
        && match name.split_once('@') {
            None => part_ok(name),
            Some((local, domain)) => part_ok(local) && part_ok(domain) && !domain.contains(".."),
        };
    if ok {
        Ok(())
    } else {
        Err(DirectoryError::InvalidName(name.to_string()))
    }
}

/// Counts failed logins per client address in a sliding window.
struct LoginLimiter {
    max_failures: u32,
    window: Duration,
    failures: Mutex<HashMap<IpAddr, VecDeque<Instant>>>,
}

impl LoginLimiter {
    fn new(max_failures: u32, window: Duration) -> LoginLimiter {
        LoginLimiter {
            max_failures: max_failures.max(1),
            window,
            failures: Mutex::default(),
        }
    }

    fn check(&self, peer: IpAddr) -> Result<(), AuthError> {
        let now = Instant::now();
        let mut map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        let Some(times) = map.get_mut(&peer) else {
            return Ok(());
        };
        while times
            .front()
            .is_some_and(|t| now.duration_since(*t) > self.window)
        {
            times.pop_front();
        }
        if times.is_empty() {
            map.remove(&peer);
            return Ok(());
        }
        if times.len() >= usize::try_from(self.max_failures).unwrap_or(usize::MAX) {
            let oldest = times.front().copied().unwrap_or(now);
            let retry_after = self.window.saturating_sub(now.duration_since(oldest));
            return Err(AuthError::RateLimited { retry_after });
        }
        Ok(())
    }

    fn record_failure(&self, peer: IpAddr) {
        let mut map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        // Bound memory under a distributed guessing attack: forget everything rather than grow.
        if map.len() > 100_000 {
            map.clear();
        }
        let times = map.entry(peer).or_default();
        times.push_back(Instant::now());
        let cap = usize::try_from(self.max_failures)
            .unwrap_or(usize::MAX)
            .saturating_add(1);
        while times.len() > cap {
            times.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Keeps a test's store alive: its SQLite folder or its PostgreSQL server.
    #[allow(dead_code)]
    enum Keep {
        Sqlite(tempfile::TempDir),
        Postgres(crate::store::pg_testing::TestPostgres),
    }

    /// The same directory on each engine: every test runs on both.
    fn directories() -> Vec<(Keep, Directory)> {
        let config = DirectoryConfig {
            max_failed_logins: 3,
            ..DirectoryConfig::default()
        };
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("s.db")).unwrap();
        let sqlite = Directory::new(store, &config);
        let server = crate::store::pg_testing::TestPostgres::start();
        let postgres = Directory::on(Engine::Postgres(server.store()), &config);
        vec![
            (Keep::Sqlite(dir), sqlite),
            (Keep::Postgres(server), postgres),
        ]
    }

    fn add(d: &Directory, name: &str, password: &str) {
        d.add_user(&NewUser {
            name,
            password: Some(password),
            ..NewUser::default()
        })
        .unwrap();
    }

    const PEER: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 1));

    #[test]
    fn passwords_are_argon2id_and_verify() {
        for (_keep, d) in directories() {
            add(&d, "alice", "s3cret");
            let stored: String = d.backend.password_hash("alice").unwrap().unwrap().unwrap();
            assert!(stored.starts_with("$argon2id$"), "{stored}");
            assert!(!stored.contains("s3cret"));
            assert_eq!(
                d.authenticate("alice", "s3cret", PEER).unwrap().name,
                "alice"
            );
            assert_eq!(
                d.authenticate("alice", "wrong", PEER),
                Err(AuthError::BadCredentials)
            );
            assert_eq!(
                d.authenticate("nobody", "s3cret", PEER),
                Err(AuthError::BadCredentials)
            );
        }
    }

    #[test]
    fn digest_ha1_is_computed_when_the_password_is_set() {
        for (_keep, d) in directories() {
            add(&d, "bob", "pw1");
            let md5 = d
                .digest_ha1("bob", "Serval", DigestAlgorithm::Md5)
                .unwrap()
                .unwrap();
            assert_eq!(md5, hex::encode(Md5::digest(b"bob:Serval:pw1")));
            let sha = d
                .digest_ha1("bob", "Serval", DigestAlgorithm::Sha256)
                .unwrap()
                .unwrap();
            assert_eq!(sha, hex::encode(Sha256::digest(b"bob:Serval:pw1")));
            d.set_password("bob", "pw2").unwrap();
            let md5 = d
                .digest_ha1("bob", "Serval", DigestAlgorithm::Md5)
                .unwrap()
                .unwrap();
            assert_eq!(md5, hex::encode(Md5::digest(b"bob:Serval:pw2")));
            assert!(
                d.authenticate("bob", "pw1", PEER).is_err(),
                "old password must stop working at once"
            );
            assert!(d.authenticate("bob", "pw2", PEER).is_ok());
        }
    }

    #[test]
    fn failed_logins_are_rate_limited_per_address() {
        for (_keep, d) in directories() {
            add(&d, "carol", "right");
            for _ in 0..3 {
                assert_eq!(
                    d.authenticate("carol", "wrong", PEER),
                    Err(AuthError::BadCredentials)
                );
            }
            assert!(matches!(
                d.authenticate("carol", "right", PEER),
                Err(AuthError::RateLimited { .. })
            ));
            let other: IpAddr = "192.0.2.2".parse().unwrap();
            assert!(
                d.authenticate("carol", "right", other).is_ok(),
                "other addresses are unaffected"
            );
        }
    }

    #[test]
    fn groups_and_membership() {
        for (_keep, d) in directories() {
            add(&d, "dave", "x");
            d.add_group("staff").unwrap();
            assert!(matches!(
                d.add_group("staff"),
                Err(DirectoryError::GroupExists(_))
            ));
            d.add_member("staff", "dave").unwrap();
            d.add_member(ADMIN_GROUP, "dave").unwrap();
            assert_eq!(d.groups_of("dave").unwrap(), vec!["admin", "staff"]);
            assert!(d.is_admin("dave").unwrap());
            d.remove_member(ADMIN_GROUP, "dave").unwrap();
            assert!(!d.is_admin("dave").unwrap());
            assert!(matches!(
                d.add_member("nogroup", "dave"),
                Err(DirectoryError::NoSuchGroup(_))
            ));
            d.delete_user("dave").unwrap();
            assert_eq!(d.group_members("staff").unwrap(), Vec::<String>::new());
        }
    }

    #[test]
    fn names_are_checked() {
        for bad in [
            "",
            "../x",
            "a b",
            "-x",
            &"x".repeat(65),
            "@x",
            "x@",
            "a@b@c",
            "a@.x",
            "a@b..c",
            "a@b/c",
        ] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
        for good in ["a", "alice.smith", "room-101", "R2_D2", "bob@example.test"] {
            assert!(check_name(good).is_ok(), "{good:?}");
        }
    }
}
