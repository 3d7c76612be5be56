//! The directory's storage on PostgreSQL: the same tables as on SQLite (`user` is reserved
//! in PostgreSQL, so member columns are `user_name`). Every call is one statement or one
//! transaction, so a user added on one node can log in on another at once.

use super::{DirectoryStore, Group, PasswordHashes, PrincipalKind, User};
use crate::store::{PgStore, StoreError};

pub(crate) const MIGRATIONS: &[&str] = &["
    CREATE TABLE users (
        name TEXT PRIMARY KEY,
        full_name TEXT NOT NULL DEFAULT '',
        email TEXT NOT NULL DEFAULT '',
        kind TEXT NOT NULL DEFAULT 'person' CHECK (kind IN ('person', 'room', 'resource')),
        password_hash TEXT,
        legacy_crypt TEXT,
        created_at BIGINT NOT NULL
    );
    CREATE INDEX users_by_email ON users (lower(email));
    CREATE TABLE user_digest (
        user_name TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,
        realm TEXT NOT NULL,
        algorithm TEXT NOT NULL CHECK (algorithm IN ('MD5', 'SHA-256')),
        ha1 TEXT NOT NULL,
        PRIMARY KEY (user_name, realm, algorithm)
    );
    CREATE TABLE groups (
        name TEXT PRIMARY KEY,
        created_at BIGINT NOT NULL
    );
    CREATE TABLE group_members (
        grp TEXT NOT NULL REFERENCES groups(name) ON DELETE CASCADE,
        user_name TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,
        PRIMARY KEY (grp, user_name)
    );
    CREATE INDEX group_members_by_user ON group_members(user_name);
    INSERT INTO groups (name, created_at) VALUES ('admin', extract(epoch from now())::bigint);
"];

const NOW: &str = "extract(epoch from now())::bigint";

/// [`DirectoryStore`] over a PostgreSQL store.
pub struct PgDirectoryStore {
    store: PgStore,
}

impl PgDirectoryStore {
    pub fn new(store: PgStore) -> PgDirectoryStore {
        PgDirectoryStore { store }
    }
}

const USER_COLUMNS: &str = "name, full_name, email, kind, created_at, password_hash IS NOT NULL";

fn row_to_user(row: &tokio_postgres::Row) -> User {
    User {
        name: row.get(0),
        full_name: row.get(1),
        email: row.get(2),
        kind: PrincipalKind::from_db(row.get::<_, &str>(3)),
        created_at: row.get(4),
        has_password: row.get(5),
    }
}

async fn write_digests(
    tx: &deadpool_postgres::Transaction<'_>,
    name: &str,
    realm: &str,
    hashes: &PasswordHashes,
) -> Result<(), StoreError> {
    for (algorithm, ha1) in [("MD5", &hashes.md5_ha1), ("SHA-256", &hashes.sha256_ha1)] {
        tx.execute(
            &tx.prepare_cached(
                "INSERT INTO user_digest (user_name, realm, algorithm, ha1) VALUES ($1, $2, $3, $4)
             ON CONFLICT (user_name, realm, algorithm) DO UPDATE SET ha1 = excluded.ha1",
            )
            .await?,
            &[&name, &realm, &algorithm, ha1],
        )
        .await?;
    }
    Ok(())
}

/// Owned copies of the hashes, so jobs can move them to the store's runtime.
#[derive(Clone)]
struct Hashes {
    phc: String,
    md5_ha1: String,
    sha256_ha1: String,
}

impl Hashes {
    fn of(h: &PasswordHashes) -> Hashes {
        Hashes {
            phc: h.phc.clone(),
            md5_ha1: h.md5_ha1.clone(),
            sha256_ha1: h.sha256_ha1.clone(),
        }
    }

    fn as_hashes(&self) -> PasswordHashes {
        PasswordHashes {
            phc: self.phc.clone(),
            md5_ha1: self.md5_ha1.clone(),
            sha256_ha1: self.sha256_ha1.clone(),
        }
    }
}

impl DirectoryStore for PgDirectoryStore {
    fn insert_user(
        &self,
        user: &User,
        hashes: Option<&PasswordHashes>,
        realm: &str,
    ) -> Result<bool, StoreError> {
        let (name, full_name, email, kind) = (
            user.name.clone(),
            user.full_name.clone(),
            user.email.clone(),
            user.kind.as_str(),
        );
        let hashes = hashes.map(Hashes::of);
        let realm = realm.to_owned();
        self.store.run(move |mut client| async move {
            let tx = client.transaction().await?;
            let inserted = tx
                .execute(
                    &format!(
                        "INSERT INTO users (name, full_name, email, kind, password_hash, created_at)
                         VALUES ($1, $2, $3, $4, $5, {NOW}) ON CONFLICT (name) DO NOTHING"
                    ),
                    &[
                        &name,
                        &full_name,
                        &email,
                        &kind,
                        &hashes.as_ref().map(|h| h.phc.clone()),
                    ],
                )
                .await?;
            if inserted > 0 {
                if let Some(h) = &hashes {
                    write_digests(&tx, &name, &realm, &h.as_hashes()).await?;
                }
            }
            tx.commit().await?;
            Ok(inserted > 0)
        })
    }

    fn set_password(
        &self,
        name: &str,
        hashes: &PasswordHashes,
        realm: &str,
    ) -> Result<bool, StoreError> {
        let (name, realm, hashes) = (name.to_owned(), realm.to_owned(), Hashes::of(hashes));
        self.store.run(move |mut client| async move {
            let tx = client.transaction().await?;
            let n = tx
                .execute(
                    &tx.prepare_cached(
                        "UPDATE users SET password_hash = $2, legacy_crypt = NULL WHERE name = $1",
                    )
                    .await?,
                    &[&name, &hashes.phc],
                )
                .await?;
            if n > 0 {
                tx.execute(
                    &tx.prepare_cached("DELETE FROM user_digest WHERE user_name = $1")
                        .await?,
                    &[&name],
                )
                .await?;
                write_digests(&tx, &name, &realm, &hashes.as_hashes()).await?;
            }
            tx.commit().await?;
            Ok(n > 0)
        })
    }

    fn import_digest(
        &self,
        name: &str,
        realm: &str,
        md5_ha1: &str,
        legacy_crypt: Option<&str>,
    ) -> Result<(), StoreError> {
        let (name, realm, ha1) = (name.to_owned(), realm.to_owned(), md5_ha1.to_owned());
        let legacy = legacy_crypt.map(str::to_owned);
        self.store.run(move |mut client| async move {
            let tx = client.transaction().await?;
            tx.execute(
                &format!(
                    "INSERT INTO users (name, legacy_crypt, created_at) VALUES ($1, $2, {NOW})
                     ON CONFLICT (name) DO UPDATE
                     SET legacy_crypt = COALESCE(users.legacy_crypt, excluded.legacy_crypt)"
                ),
                &[&name, &legacy],
            )
            .await?;
            tx.execute(
                &tx.prepare_cached("INSERT INTO user_digest (user_name, realm, algorithm, ha1) VALUES ($1, $2, 'MD5', $3)
                 ON CONFLICT (user_name, realm, algorithm) DO UPDATE SET ha1 = excluded.ha1").await?,
                &[&name, &realm, &ha1],
            )
            .await?;
            tx.commit().await?;
            Ok(())
        })
    }

    fn delete_user(&self, name: &str) -> Result<bool, StoreError> {
        let name = name.to_owned();
        self.store.run(move |client| async move {
            Ok(client
                .execute(
                    &client
                        .prepare_cached("DELETE FROM users WHERE name = $1")
                        .await?,
                    &[&name],
                )
                .await?
                > 0)
        })
    }

    fn update_user(
        &self,
        name: &str,
        full_name: Option<&str>,
        email: Option<&str>,
    ) -> Result<bool, StoreError> {
        let name = name.to_owned();
        let (full_name, email) = (full_name.map(str::to_owned), email.map(str::to_owned));
        self.store.run(move |client| async move {
            Ok(client
                .execute(
                    &client
                        .prepare_cached(
                            "UPDATE users SET full_name = COALESCE($2, full_name),
                     email = COALESCE($3, email) WHERE name = $1",
                        )
                        .await?,
                    &[&name, &full_name, &email],
                )
                .await?
                > 0)
        })
    }

    fn user(&self, name: &str) -> Result<Option<User>, StoreError> {
        let name = name.to_owned();
        self.store.run(move |client| async move {
            let row = client
                .query_opt(
                    &format!("SELECT {USER_COLUMNS} FROM users WHERE name = $1"),
                    &[&name],
                )
                .await?;
            Ok(row.as_ref().map(row_to_user))
        })
    }

    fn user_by_email(&self, email: &str) -> Result<Option<User>, StoreError> {
        let email = email.to_owned();
        self.store.run(move |client| async move {
            let row = client
                .query_opt(
                    &format!(
                        "SELECT {USER_COLUMNS} FROM users
                         WHERE lower(email) = lower($1) AND email != '' ORDER BY name LIMIT 1"
                    ),
                    &[&email],
                )
                .await?;
            Ok(row.as_ref().map(row_to_user))
        })
    }

    fn list_users(&self) -> Result<Vec<User>, StoreError> {
        self.store.run(|client| async move {
            let rows = client
                .query(
                    &format!("SELECT {USER_COLUMNS} FROM users ORDER BY name"),
                    &[],
                )
                .await?;
            Ok(rows.iter().map(row_to_user).collect())
        })
    }

    fn password_hash(&self, name: &str) -> Result<Option<Option<String>>, StoreError> {
        let name = name.to_owned();
        self.store.run(move |client| async move {
            let row = client
                .query_opt(
                    &client
                        .prepare_cached("SELECT password_hash FROM users WHERE name = $1")
                        .await?,
                    &[&name],
                )
                .await?;
            Ok(row.map(|r| r.get(0)))
        })
    }

    fn digest_ha1(
        &self,
        name: &str,
        realm: &str,
        algorithm: &str,
    ) -> Result<Option<String>, StoreError> {
        let (name, realm, algorithm) = (name.to_owned(), realm.to_owned(), algorithm.to_owned());
        self.store.run(move |client| async move {
            let row = client
                .query_opt(
                    &client.prepare_cached("SELECT ha1 FROM user_digest WHERE user_name = $1 AND realm = $2 AND algorithm = $3").await?,
                    &[&name, &realm, &algorithm],
                )
                .await?;
            Ok(row.map(|r| r.get(0)))
        })
    }

    fn insert_group(&self, name: &str) -> Result<bool, StoreError> {
        let name = name.to_owned();
        self.store.run(move |client| async move {
            Ok(client
                .execute(
                    &format!(
                        "INSERT INTO groups (name, created_at) VALUES ($1, {NOW}) ON CONFLICT DO NOTHING"
                    ),
                    &[&name],
                )
                .await?
                > 0)
        })
    }

    fn delete_group(&self, name: &str) -> Result<bool, StoreError> {
        let name = name.to_owned();
        self.store.run(move |client| async move {
            Ok(client
                .execute(
                    &client
                        .prepare_cached("DELETE FROM groups WHERE name = $1")
                        .await?,
                    &[&name],
                )
                .await?
                > 0)
        })
    }

    fn group_exists(&self, name: &str) -> Result<bool, StoreError> {
        let name = name.to_owned();
        self.store.run(move |client| async move {
            Ok(client
                .query_opt(
                    &client
                        .prepare_cached("SELECT 1 FROM groups WHERE name = $1")
                        .await?,
                    &[&name],
                )
                .await?
                .is_some())
        })
    }

    fn set_member(&self, group: &str, user: &str, member: bool) -> Result<(), StoreError> {
        let (group, user) = (group.to_owned(), user.to_owned());
        self.store.run(move |client| async move {
            let sql = if member {
                "INSERT INTO group_members (grp, user_name) VALUES ($1, $2) ON CONFLICT DO NOTHING"
            } else {
                "DELETE FROM group_members WHERE grp = $1 AND user_name = $2"
            };
            client.execute(sql, &[&group, &user]).await?;
            Ok(())
        })
    }

    fn list_groups(&self) -> Result<Vec<Group>, StoreError> {
        self.store.run(|client| async move {
            let rows = client
                .query(
                    &client
                        .prepare_cached(
                            "SELECT g.name, m.user_name FROM groups g
                     LEFT JOIN group_members m ON m.grp = g.name ORDER BY g.name, m.user_name",
                        )
                        .await?,
                    &[],
                )
                .await?;
            let mut groups: Vec<Group> = Vec::new();
            for row in rows {
                let name: String = row.get(0);
                let member: Option<String> = row.get(1);
                if groups.last().is_none_or(|g| g.name != name) {
                    groups.push(Group {
                        name,
                        members: Vec::new(),
                    });
                }
                if let (Some(m), Some(g)) = (member, groups.last_mut()) {
                    g.members.push(m);
                }
            }
            Ok(groups)
        })
    }

    fn groups_of(&self, user: &str) -> Result<Vec<String>, StoreError> {
        let user = user.to_owned();
        self.store.run(move |client| async move {
            let rows = client
                .query(
                    &client
                        .prepare_cached(
                            "SELECT grp FROM group_members WHERE user_name = $1 ORDER BY grp",
                        )
                        .await?,
                    &[&user],
                )
                .await?;
            Ok(rows.iter().map(|r| r.get(0)).collect())
        })
    }

    fn group_members(&self, group: &str) -> Result<Vec<String>, StoreError> {
        let group = group.to_owned();
        self.store.run(move |client| async move {
            let rows = client
                .query(
                    &client
                        .prepare_cached(
                            "SELECT user_name FROM group_members WHERE grp = $1 ORDER BY user_name",
                        )
                        .await?,
                    &[&group],
                )
                .await?;
            Ok(rows.iter().map(|r| r.get(0)).collect())
        })
    }

    fn is_member(&self, group: &str, user: &str) -> Result<bool, StoreError> {
        let (group, user) = (group.to_owned(), user.to_owned());
        self.store.run(move |client| async move {
            Ok(client
                .query_opt(
                    &client
                        .prepare_cached(
                            "SELECT 1 FROM group_members WHERE grp = $1 AND user_name = $2",
                        )
                        .await?,
                    &[&group, &user],
                )
                .await?
                .is_some())
        })
    }
}
