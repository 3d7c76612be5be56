//! Copying a SQLite store into PostgreSQL (`serval store migrate --to postgres://...`).
//!
//! Each component describes its tables as [`TableCopy`]: the same columns selected on both
//! sides in the same order, and the INSERT for PostgreSQL. Rows are read from a consistent
//! SQLite snapshot, written in one PostgreSQL transaction per table, then read back from
//! PostgreSQL and compared with the source by row count and a SHA-256 over every value.

use rusqlite::types::ValueRef;
use sha2::{Digest as _, Sha256};

use super::{PgStore, Store, StoreError};

/// How a column is typed, so SQLite's loose values become PostgreSQL's.
#[derive(Clone, Copy, Debug)]
pub enum Column {
    Text,
    OptText,
    Int,
    OptInt,
    /// SQLite 0/1, PostgreSQL BOOLEAN.
    Bool,
}

/// One table to copy.
pub struct TableCopy {
    pub name: &'static str,
    /// SELECT on SQLite, in a stable order.
    pub sqlite_select: &'static str,
    /// The same columns and order on PostgreSQL.
    pub pg_select: &'static str,
    /// INSERT with `$1..$n` in the select's column order.
    pub pg_insert: &'static str,
    pub columns: &'static [Column],
    /// Statements run after the copy (e.g. moving a sequence past the copied ids).
    pub after: &'static [&'static str],
}

/// A value in transit, in canonical form for the checksum.
#[derive(Clone, Debug, PartialEq)]
enum Value {
    Null,
    Int(i64),
    Text(String),
    Bool(bool),
}

impl Value {
    fn digest_into(&self, hash: &mut Sha256) {
        match self {
            Value::Null => hash.update([0u8]),
            Value::Int(i) => {
                hash.update([1u8]);
                hash.update(i.to_be_bytes());
            }
            Value::Text(t) => {
                hash.update([2u8]);
                hash.update((t.len() as u64).to_be_bytes());
                hash.update(t.as_bytes());
            }
            Value::Bool(b) => hash.update([3u8, u8::from(*b)]),
        }
    }
}

/// What was copied and checked for one table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableReport {
    pub table: &'static str,
    pub rows: u64,
    pub checksum: String,
}

fn read_sqlite(store: &Store, table: &TableCopy) -> Result<Vec<Vec<Value>>, StoreError> {
    let columns = table.columns;
    let sql = table.sqlite_select;
    store.read(move |conn| {
        let mut stmt = conn.prepare(sql)?;
        let mut rows = stmt.query([])?;
        let mut out = Vec::new();
        while let Some(row) = rows.next()? {
            let mut values = Vec::with_capacity(columns.len());
            for (i, column) in columns.iter().enumerate() {
                let value = match (column, row.get_ref(i)?) {
                    (_, ValueRef::Null) => Value::Null,
                    (Column::Bool, ValueRef::Integer(n)) => Value::Bool(n != 0),
                    (Column::Int | Column::OptInt, ValueRef::Integer(n)) => Value::Int(n),
                    (_, ValueRef::Integer(n)) => Value::Text(n.to_string()),
                    (_, ValueRef::Text(t)) => Value::Text(String::from_utf8_lossy(t).into_owned()),
                    (_, ValueRef::Real(r)) => Value::Text(r.to_string()),
                    (_, ValueRef::Blob(b)) => Value::Text(String::from_utf8_lossy(b).into_owned()),
                };
                values.push(value);
            }
            out.push(values);
        }
        Ok(out)
    })
}

fn checksum(rows: &[Vec<Value>]) -> String {
    let mut hash = Sha256::new();
    for row in rows {
        for value in row {
            value.digest_into(&mut hash);
        }
    }
    hex::encode(hash.finalize())
}

/// Copies `table` from the SQLite snapshot into PostgreSQL and verifies it.
pub fn copy_table(
    source: &Store,
    target: &PgStore,
    table: &'static TableCopy,
) -> Result<TableReport, StoreError> {
    let rows = read_sqlite(source, table)?;
    let source_sum = checksum(&rows);
    let count = rows.len() as u64;
    let written = rows.clone();
    target.run(move |mut client| async move {
        let tx = client.transaction().await?;
        let insert = tx.prepare(table.pg_insert).await?;
        for row in &written {
            let params: Vec<Box<dyn tokio_postgres::types::ToSql + Sync + Send>> = row
                .iter()
                .zip(table.columns)
                .map(
                    |(value, column)| -> Box<dyn tokio_postgres::types::ToSql + Sync + Send> {
                        match (value, column) {
                            (Value::Null, Column::OptInt | Column::Int) => Box::new(None::<i64>),
                            (Value::Null, Column::Bool) => Box::new(None::<bool>),
                            (Value::Null, _) => Box::new(None::<String>),
                            (Value::Int(n), _) => Box::new(*n),
                            (Value::Bool(b), _) => Box::new(*b),
                            (Value::Text(t), _) => Box::new(t.clone()),
                        }
                    },
                )
                .collect();
            let refs: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = params
                .iter()
                .map(|p| p.as_ref() as &(dyn tokio_postgres::types::ToSql + Sync))
                .collect();
            tx.execute(&insert, &refs).await?;
        }
        for statement in table.after {
            tx.batch_execute(statement).await?;
        }
        tx.commit().await?;
        Ok::<_, StoreError>(())
    })?;
    let copied: Vec<Vec<Value>> = target.run(move |client| async move {
        let rows = client.query(table.pg_select, &[]).await?;
        Ok::<_, StoreError>(
            rows.iter()
                .map(|row| {
                    table
                        .columns
                        .iter()
                        .enumerate()
                        .map(|(i, column)| match column {
                            Column::Text => Value::Text(row.get(i)),
                            Column::OptText => row
                                .get::<_, Option<String>>(i)
                                .map_or(Value::Null, Value::Text),
                            Column::Int => Value::Int(row.get(i)),
                            Column::OptInt => {
                                row.get::<_, Option<i64>>(i).map_or(Value::Null, Value::Int)
                            }
                            Column::Bool => Value::Bool(row.get(i)),
                        })
                        .collect()
                })
                .collect(),
        )
    })?;
    let target_sum = checksum(&copied);
    if copied.len() as u64 != count || target_sum != source_sum {
        return Err(StoreError::Postgres(format!(
            "table {}: copied {} of {count} rows, checksum {} vs {source_sum}",
            table.name,
            copied.len(),
            &target_sum[..12]
        )));
    }
    Ok(TableReport {
        table: table.name,
        rows: count,
        checksum: source_sum,
    })
}

/// The core's own tables (the directory); admin sessions are not copied: logins end.
pub static CORE_TABLES: &[TableCopy] = &[
    TableCopy {
        name: "users",
        sqlite_select: "SELECT name, full_name, email, kind, password_hash, legacy_crypt, created_at FROM users ORDER BY name",
        pg_select: "SELECT name, full_name, email, kind, password_hash, legacy_crypt, created_at FROM users ORDER BY name COLLATE \"C\"",
        pg_insert: "INSERT INTO users (name, full_name, email, kind, password_hash, legacy_crypt, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        columns: &[Column::Text, Column::Text, Column::Text, Column::Text, Column::OptText, Column::OptText, Column::Int],
        after: &[],
    },
    TableCopy {
        name: "user_digest",
        sqlite_select: "SELECT user, realm, algorithm, ha1 FROM user_digest ORDER BY user, realm, algorithm",
        pg_select: "SELECT user_name, realm, algorithm, ha1 FROM user_digest ORDER BY user_name COLLATE \"C\", realm COLLATE \"C\", algorithm COLLATE \"C\"",
        pg_insert: "INSERT INTO user_digest (user_name, realm, algorithm, ha1) VALUES ($1, $2, $3, $4)",
        columns: &[Column::Text, Column::Text, Column::Text, Column::Text],
        after: &[],
    },
    TableCopy {
        name: "groups",
        sqlite_select: "SELECT name, created_at FROM groups ORDER BY name",
        pg_select: "SELECT name, created_at FROM groups ORDER BY name COLLATE \"C\"",
        // The admin group exists in a fresh schema: keep the source's row.
        pg_insert: "INSERT INTO groups (name, created_at) VALUES ($1, $2) ON CONFLICT (name) DO UPDATE SET created_at = excluded.created_at",
        columns: &[Column::Text, Column::Int],
        after: &[],
    },
    TableCopy {
        name: "group_members",
        sqlite_select: "SELECT grp, user FROM group_members ORDER BY grp, user",
        pg_select: "SELECT grp, user_name FROM group_members ORDER BY grp COLLATE \"C\", user_name COLLATE \"C\"",
        pg_insert: "INSERT INTO group_members (grp, user_name) VALUES ($1, $2)",
        columns: &[Column::Text, Column::Text],
        after: &[],
    },
];
