//! The directory's storage on SQLite (the embedded store).

use rusqlite::{params, OptionalExtension};

use super::{DirectoryStore, Group, PasswordHashes, PrincipalKind, User};
use crate::store::{Store, StoreError};

const MIGRATIONS: &[&str] = &["
    CREATE TABLE users (
        name TEXT PRIMARY KEY,
        full_name TEXT NOT NULL DEFAULT '',
        email TEXT NOT NULL DEFAULT '',
        kind TEXT NOT NULL DEFAULT 'person' CHECK (kind IN ('person', 'room', 'resource')),
        password_hash TEXT,
        legacy_crypt TEXT,
        created_at INTEGER NOT NULL
    );
    CREATE TABLE user_digest (
        user TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,
        realm TEXT NOT NULL,
        algorithm TEXT NOT NULL CHECK (algorithm IN ('MD5', 'SHA-256')),
        ha1 TEXT NOT NULL,
        PRIMARY KEY (user, realm, algorithm)
    );
    CREATE TABLE groups (
        name TEXT PRIMARY KEY,
        created_at INTEGER NOT NULL
    );
    CREATE TABLE group_members (
        grp TEXT NOT NULL REFERENCES groups(name) ON DELETE CASCADE,
        user TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,
        PRIMARY KEY (grp, user)
    );
    CREATE INDEX group_members_by_user ON group_members(user);
    INSERT INTO groups (name, created_at) VALUES ('admin', strftime('%s','now'));
"];

pub(crate) fn migrate(store: &Store) -> Result<(), StoreError> {
    store.migrate("directory", MIGRATIONS)
}

/// [`DirectoryStore`] over the SQLite store.
pub struct SqliteDirectoryStore {
    store: Store,
}

impl SqliteDirectoryStore {
    pub fn new(store: Store) -> SqliteDirectoryStore {
        SqliteDirectoryStore { store }
    }
}

const USER_COLUMNS: &str = "name, full_name, email, kind, created_at, password_hash IS NOT NULL";

fn row_to_user(r: &rusqlite::Row<'_>) -> rusqlite::Result<User> {
    Ok(User {
        name: r.get(0)?,
        full_name: r.get(1)?,
        email: r.get(2)?,
        kind: PrincipalKind::from_db(&r.get::<_, String>(3)?),
        created_at: r.get(4)?,
        has_password: r.get(5)?,
    })
}

fn write_digests(
    tx: &rusqlite::Transaction<'_>,
    name: &str,
    realm: &str,
    h: &PasswordHashes,
) -> rusqlite::Result<()> {
    for (algorithm, ha1) in [("MD5", &h.md5_ha1), ("SHA-256", &h.sha256_ha1)] {
        tx.execute(
            "INSERT INTO user_digest (user, realm, algorithm, ha1) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT(user, realm, algorithm) DO UPDATE SET ha1 = excluded.ha1",
            params![name, realm, algorithm, ha1],
        )?;
    }
    Ok(())
}

impl DirectoryStore for SqliteDirectoryStore {
    fn insert_user(
        &self,
        user: &User,
        hashes: Option<&PasswordHashes>,
        realm: &str,
    ) -> Result<bool, StoreError> {
        self.store.write(|tx| {
            let inserted = tx.execute(
                "INSERT INTO users (name, full_name, email, kind, password_hash, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, strftime('%s','now')) ON CONFLICT(name) DO NOTHING",
                params![
                    user.name,
                    user.full_name,
                    user.email,
                    user.kind.as_str(),
                    hashes.map(|h| &h.phc)
                ],
            )?;
            if inserted > 0 {
                if let Some(h) = hashes {
                    write_digests(tx, &user.name, realm, h)?;
                }
            }
            Ok(inserted > 0)
        })
    }

    fn set_password(
        &self,
        name: &str,
        hashes: &PasswordHashes,
        realm: &str,
    ) -> Result<bool, StoreError> {
        self.store.write(|tx| {
            let n = tx.execute(
                "UPDATE users SET password_hash = ?2, legacy_crypt = NULL WHERE name = ?1",
                params![name, hashes.phc],
            )?;
            if n > 0 {
                tx.execute("DELETE FROM user_digest WHERE user = ?1", [name])?;
                write_digests(tx, name, realm, hashes)?;
            }
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
        self.store.write(|tx| {
            tx.execute(
                "INSERT INTO users (name, legacy_crypt, created_at) VALUES (?1, ?2, strftime('%s','now'))
                 ON CONFLICT(name) DO UPDATE SET legacy_crypt = COALESCE(users.legacy_crypt, excluded.legacy_crypt)",
                params![name, legacy_crypt],
            )?;
            tx.execute(
                "INSERT INTO user_digest (user, realm, algorithm, ha1) VALUES (?1, ?2, 'MD5', ?3)
                 ON CONFLICT(user, realm, algorithm) DO UPDATE SET ha1 = excluded.ha1",
                params![name, realm, md5_ha1],
            )?;
            Ok(())
        })
    }

    fn delete_user(&self, name: &str) -> Result<bool, StoreError> {
        self.store
            .write(|tx| Ok(tx.execute("DELETE FROM users WHERE name = ?1", [name])? > 0))
    }

    fn update_user(
        &self,
        name: &str,
        full_name: Option<&str>,
        email: Option<&str>,
    ) -> Result<bool, StoreError> {
        self.store.write(|tx| {
            let n = tx.execute(
                "UPDATE users SET full_name = COALESCE(?2, full_name), email = COALESCE(?3, email) WHERE name = ?1",
                params![name, full_name, email],
            )?;
            Ok(n > 0)
        })
    }

    fn user(&self, name: &str) -> Result<Option<User>, StoreError> {
        self.store.read(|c| {
            c.query_row(
                &format!("SELECT {USER_COLUMNS} FROM users WHERE name = ?1"),
                [name],
                row_to_user,
            )
            .optional()
        })
    }

    fn user_by_email(&self, email: &str) -> Result<Option<User>, StoreError> {
        self.store.read(|c| {
            c.query_row(
                &format!("SELECT {USER_COLUMNS} FROM users WHERE email = ?1 COLLATE NOCASE AND email != '' LIMIT 1"),
                [email],
                row_to_user,
            )
            .optional()
        })
    }

    fn list_users(&self) -> Result<Vec<User>, StoreError> {
        self.store.read(|c| {
            let mut stmt = c.prepare(&format!("SELECT {USER_COLUMNS} FROM users ORDER BY name"))?;
            let rows = stmt.query_map([], row_to_user)?;
            rows.collect()
        })
    }

    fn password_hash(&self, name: &str) -> Result<Option<Option<String>>, StoreError> {
        self.store.read(|c| {
            c.query_row(
                "SELECT password_hash FROM users WHERE name = ?1",
                [name],
                |r| r.get(0),
            )
            .optional()
        })
    }

    fn digest_ha1(
        &self,
        name: &str,
        realm: &str,
        algorithm: &str,
    ) -> Result<Option<String>, StoreError> {
        self.store.read(|c| {
            c.query_row(
                "SELECT ha1 FROM user_digest WHERE user = ?1 AND realm = ?2 AND algorithm = ?3",
                params![name, realm, algorithm],
                |row| row.get(0),
            )
            .optional()
        })
    }

    fn insert_group(&self, name: &str) -> Result<bool, StoreError> {
        self.store.write(|tx| {
            let n = tx.execute(
                "INSERT INTO groups (name, created_at) VALUES (?1, strftime('%s','now')) ON CONFLICT DO NOTHING",
                [name],
            )?;
            Ok(n > 0)
        })
    }

    fn delete_group(&self, name: &str) -> Result<bool, StoreError> {
        self.store
            .write(|tx| Ok(tx.execute("DELETE FROM groups WHERE name = ?1", [name])? > 0))
    }

    fn group_exists(&self, name: &str) -> Result<bool, StoreError> {
        self.store.read(|c| {
            Ok(
                c.query_row("SELECT 1 FROM groups WHERE name = ?1", [name], |_| Ok(()))
                    .optional()?
                    .is_some(),
            )
        })
    }

    fn set_member(&self, group: &str, user: &str, member: bool) -> Result<(), StoreError> {
        self.store.write(|tx| {
            let sql = if member {
                "INSERT INTO group_members (grp, user) VALUES (?1, ?2) ON CONFLICT DO NOTHING"
            } else {
                "DELETE FROM group_members WHERE grp = ?1 AND user = ?2"
            };
            tx.execute(sql, [group, user])?;
            Ok(())
        })
    }

    fn list_groups(&self) -> Result<Vec<Group>, StoreError> {
        self.store.read(|c| {
            let mut stmt = c.prepare(
                "SELECT g.name, m.user FROM groups g LEFT JOIN group_members m ON m.grp = g.name ORDER BY g.name, m.user",
            )?;
            let mut groups: Vec<Group> = Vec::new();
            let mut rows = stmt.query([])?;
            while let Some(row) = rows.next()? {
                let name: String = row.get(0)?;
                let member: Option<String> = row.get(1)?;
                if groups.last().is_none_or(|g| g.name != name) {
                    groups.push(Group { name, members: Vec::new() });
                }
                if let (Some(m), Some(g)) = (member, groups.last_mut()) {
                    g.members.push(m);
                }
            }
            Ok(groups)
        })
    }

    fn groups_of(&self, user: &str) -> Result<Vec<String>, StoreError> {
        self.store.read(|c| {
            let mut stmt =
                c.prepare("SELECT grp FROM group_members WHERE user = ?1 ORDER BY grp")?;
            let rows = stmt.query_map([user], |r| r.get(0))?;
            rows.collect()
        })
    }

    fn group_members(&self, group: &str) -> Result<Vec<String>, StoreError> {
        self.store.read(|c| {
            let mut stmt =
                c.prepare("SELECT user FROM group_members WHERE grp = ?1 ORDER BY user")?;
            let rows = stmt.query_map([group], |r| r.get(0))?;
            rows.collect()
        })
    }

    fn is_member(&self, group: &str, user: &str) -> Result<bool, StoreError> {
        self.store.read(|c| {
            Ok(c.query_row(
                "SELECT 1 FROM group_members WHERE grp = ?1 AND user = ?2",
                [group, user],
                |_| Ok(()),
            )
            .optional()?
            .is_some())
        })
    }
}
