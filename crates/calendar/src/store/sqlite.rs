//! [`CalendarStore`] over core's SQLite [`serval_core::Store`].

use super::{
    CalendarStore, Change, Collection, Delegate, DeleteOutcome, NewObject, ObjectMeta,
    PutCondition, PutOutcome, Share, ShareStatus, StoreError, StoredObject,
};
use crate::dav::request::PropName;
use crate::ical::expand::{BusyStatus, TimeRange};
use crate::ical::ComponentKind;
use crate::query::freebusy::BusyPeriod;
use rusqlite::{params, Connection, OptionalExtension};
use serval_core::Store;

/// Schema versions, applied in order once (core's `migrate`).
const MIGRATIONS: &[&str] = &[
    r"
CREATE TABLE cal_collection (
    id INTEGER PRIMARY KEY,
    owner TEXT NOT NULL,
    name TEXT NOT NULL,
    components TEXT NOT NULL,
    revision INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL,
    UNIQUE (owner, name)
);
CREATE TABLE cal_prop (
    collection_id INTEGER NOT NULL REFERENCES cal_collection(id) ON DELETE CASCADE,
    ns TEXT NOT NULL,
    name TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (collection_id, ns, name)
);
CREATE TABLE cal_object (
    id INTEGER PRIMARY KEY,
    collection_id INTEGER NOT NULL REFERENCES cal_collection(id) ON DELETE CASCADE,
    href TEXT NOT NULL,
    uid TEXT NOT NULL,
    kind TEXT NOT NULL,
    etag TEXT NOT NULL,
    data TEXT NOT NULL,
    indexed_until INTEGER,
    modified_at INTEGER NOT NULL,
    UNIQUE (collection_id, href),
    UNIQUE (collection_id, uid)
);
CREATE TABLE cal_instance (
    object_id INTEGER NOT NULL REFERENCES cal_object(id) ON DELETE CASCADE,
    collection_id INTEGER NOT NULL,
    start INTEGER NOT NULL,
    end INTEGER NOT NULL,
    busy INTEGER NOT NULL
);
CREATE INDEX cal_instance_range ON cal_instance (collection_id, start);
CREATE INDEX cal_instance_object ON cal_instance (object_id);
CREATE INDEX cal_object_open ON cal_object (collection_id, indexed_until) WHERE indexed_until IS NOT NULL;
CREATE TABLE cal_change (
    collection_id INTEGER NOT NULL REFERENCES cal_collection(id) ON DELETE CASCADE,
    revision INTEGER NOT NULL,
    href TEXT NOT NULL,
    deleted INTEGER NOT NULL,
    PRIMARY KEY (collection_id, revision)
);
CREATE INDEX cal_change_href ON cal_change (collection_id, href);
CREATE TABLE cal_delegate (
    owner TEXT NOT NULL,
    delegate TEXT NOT NULL,
    write INTEGER NOT NULL,
    PRIMARY KEY (owner, delegate)
);
CREATE INDEX cal_delegate_to ON cal_delegate (delegate);
",
    r"
CREATE TABLE cal_share (
    collection_id INTEGER NOT NULL REFERENCES cal_collection(id) ON DELETE CASCADE,
    sharee TEXT NOT NULL,
    write INTEGER NOT NULL,
    status INTEGER NOT NULL DEFAULT 0,
    uid TEXT NOT NULL,
    mount TEXT,
    summary TEXT NOT NULL DEFAULT '',
    created_at INTEGER NOT NULL,
    PRIMARY KEY (collection_id, sharee)
);
CREATE UNIQUE INDEX cal_share_uid ON cal_share (uid);
CREATE UNIQUE INDEX cal_share_mount ON cal_share (sharee, mount);
",
    // RFC 6638: iTIP messages for recipients outside Serval, kept for the mail service.
    r"
CREATE TABLE cal_itip_queue (
    id INTEGER PRIMARY KEY,
    sender TEXT NOT NULL,
    recipient TEXT NOT NULL,
    method TEXT NOT NULL,
    uid TEXT NOT NULL,
    message TEXT NOT NULL,
    queued_at INTEGER NOT NULL
);
",
    // Sync-token lifetime: changes carry their time so old ones can be pruned, and each
    // calendar remembers the newest pruned revision (older tokens are refused). Rows
    // logged before this version count as logged now, so no client is forced to resync
    // by the upgrade itself.
    r"
ALTER TABLE cal_change ADD COLUMN changed_at INTEGER NOT NULL DEFAULT 0;
UPDATE cal_change SET changed_at = unixepoch();
ALTER TABLE cal_collection ADD COLUMN pruned_through INTEGER NOT NULL DEFAULT 0;
CREATE INDEX cal_change_time ON cal_change (changed_at);
",
    // Per-sharee view properties of shared calendars (declared with their store code).
    sharee_props::MIGRATION,
];

mod changes;
mod schedule;
mod sharee_props;

use changes::log_change;

#[derive(Clone, Debug)]
pub struct SqliteCalendarStore {
    store: Store,
}

impl SqliteCalendarStore {
    /// Applies the calendar migrations and returns the store.
    pub fn open(store: Store) -> Result<Self, StoreError> {
        store.migrate("calendar", MIGRATIONS)?;
        Ok(Self { store })
    }
}

fn kinds_to_text(kinds: &[ComponentKind]) -> String {
    kinds
        .iter()
        .map(|k| k.as_str())
        .collect::<Vec<_>>()
        .join(",")
}

fn kinds_from_text(text: &str) -> Vec<ComponentKind> {
    text.split(',')
        .filter_map(ComponentKind::from_name)
        .collect()
}

fn kind_from_text(text: &str) -> ComponentKind {
    ComponentKind::from_name(text).unwrap_or(ComponentKind::Event)
}

fn load_collection(
    conn: &Connection,
    row: (i64, String, String, String, i64),
) -> rusqlite::Result<Collection> {
    let (id, owner, name, components, revision) = row;
    let mut stmt = conn.prepare_cached(
        "SELECT ns, name, value FROM cal_prop WHERE collection_id = ?1 ORDER BY ns, name",
    )?;
    let props = stmt
        .query_map([id], |r| {
            Ok((
                PropName {
                    ns: r.get(0)?,
                    name: r.get(1)?,
                },
                r.get::<_, String>(2)?,
            ))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(Collection {
        id,
        owner,
        name,
        components: kinds_from_text(&components),
        revision,
        props,
        shared_from: None,
    })
}

const SHARE_COLUMNS: &str =
    "s.collection_id, c.owner, c.name, s.sharee, s.write, s.status, s.uid, s.mount, s.summary";

fn share_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Share> {
    let status: i64 = r.get(5)?;
    Ok(Share {
        collection_id: r.get(0)?,
        owner: r.get(1)?,
        calendar: r.get(2)?,
        sharee: r.get(3)?,
        write: r.get(4)?,
        status: match status {
            1 => ShareStatus::Accepted,
            2 => ShareStatus::Declined,
            _ => ShareStatus::Pending,
        },
        uid: r.get(6)?,
        mount: r.get(7)?,
        summary: r.get(8)?,
    })
}

fn collection_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<(i64, String, String, String, i64)> {
    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
}

const OBJECT_COLUMNS: &str = "href, etag, length(data), kind, modified_at, uid, data";

fn object_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<StoredObject> {
    let size: i64 = r.get(2)?;
    let kind: String = r.get(3)?;
    Ok(StoredObject {
        meta: ObjectMeta {
            href: r.get(0)?,
            etag: r.get(1)?,
            size: usize::try_from(size).unwrap_or(0),
            kind: kind_from_text(&kind),
            modified_at: r.get(4)?,
        },
        uid: r.get(5)?,
        data: r.get(6)?,
    })
}

impl CalendarStore for SqliteCalendarStore {
    fn collections(&self, owner: &str) -> Result<Vec<Collection>, StoreError> {
        let owner = owner.to_owned();
        Ok(self.store.read(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT id, owner, name, components, revision FROM cal_collection WHERE owner = ?1 ORDER BY name",
            )?;
            let rows = stmt.query_map([owner], collection_row)?.collect::<rusqlite::Result<Vec<_>>>()?;
            rows.into_iter().map(|row| load_collection(conn, row)).collect()
        })?)
    }

    fn collection(&self, owner: &str, name: &str) -> Result<Option<Collection>, StoreError> {
        Ok(self.store.read(|conn| {
            let row = conn
                .prepare_cached("SELECT id, owner, name, components, revision FROM cal_collection WHERE owner = ?1 AND name = ?2")?
                .query_row([owner, name], collection_row)
                .optional()?;
            row.map(|row| load_collection(conn, row)).transpose()
        })?)
    }

    fn create_collection(
        &self,
        owner: &str,
        name: &str,
        components: &[ComponentKind],
        props: &[(PropName, String)],
        now: i64,
    ) -> Result<Option<Collection>, StoreError> {
        let created = self.store.write(|tx| {
            let inserted = tx.execute(
                "INSERT INTO cal_collection (owner, name, components, created_at) VALUES (?1, ?2, ?3, ?4) ON CONFLICT DO NOTHING",
                params![owner, name, kinds_to_text(components), now],
            )?;
            if inserted == 0 {
                return Ok(false);
            }
            let id = tx.last_insert_rowid();
            for (prop, value) in props {
                tx.execute(
                    "INSERT OR REPLACE INTO cal_prop (collection_id, ns, name, value) VALUES (?1, ?2, ?3, ?4)",
                    params![id, prop.ns, prop.name, value],
                )?;
            }
            log_change(tx, id, "", false)?;
            Ok(true)
        })?;
        if created {
            self.collection(owner, name)
        } else {
            Ok(None)
        }
    }

    fn delete_collection(&self, id: i64) -> Result<(), StoreError> {
        Ok(self.store.write(|tx| {
            tx.execute("DELETE FROM cal_instance WHERE collection_id = ?1", [id])?;
            tx.execute("DELETE FROM cal_object WHERE collection_id = ?1", [id])?;
            tx.execute("DELETE FROM cal_change WHERE collection_id = ?1", [id])?;
            tx.execute("DELETE FROM cal_prop WHERE collection_id = ?1", [id])?;
            tx.execute("DELETE FROM cal_collection WHERE id = ?1", [id])?;
            Ok(())
        })?)
    }

    fn set_props(&self, id: i64, updates: &[(PropName, Option<String>)]) -> Result<(), StoreError> {
        Ok(self.store.write(|tx| {
            for (prop, value) in updates {
                match value {
                    Some(value) => tx.execute(
                        "INSERT OR REPLACE INTO cal_prop (collection_id, ns, name, value) VALUES (?1, ?2, ?3, ?4)",
                        params![id, prop.ns, prop.name, value],
                    )?,
                    None => tx.execute(
                        "DELETE FROM cal_prop WHERE collection_id = ?1 AND ns = ?2 AND name = ?3",
                        params![id, prop.ns, prop.name],
                    )?,
                };
            }
            log_change(tx, id, "", false)?;
            Ok(())
        })?)
    }

    fn objects(&self, collection_id: i64) -> Result<Vec<ObjectMeta>, StoreError> {
        Ok(self.store.read(|conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT href, etag, length(data), kind, modified_at FROM cal_object WHERE collection_id = ?1 ORDER BY href",
            )?;
            let rows = stmt.query_map([collection_id], |r| {
                let size: i64 = r.get(2)?;
                let kind: String = r.get(3)?;
                Ok(ObjectMeta {
                    href: r.get(0)?,
                    etag: r.get(1)?,
                    size: usize::try_from(size).unwrap_or(0),
                    kind: kind_from_text(&kind),
                    modified_at: r.get(4)?,
                })
            })?;
            rows.collect()
        })?)
    }

    fn object(&self, collection_id: i64, href: &str) -> Result<Option<StoredObject>, StoreError> {
        Ok(self.store.read(|conn| {
            conn.prepare_cached(&format!(
                "SELECT {OBJECT_COLUMNS} FROM cal_object WHERE collection_id = ?1 AND href = ?2"
            ))?
            .query_row(params![collection_id, href], object_row)
            .optional()
        })?)
    }

    fn put_object(
        &self,
        collection_id: i64,
        href: &str,
        object: &NewObject,
        condition: &PutCondition,
        now: i64,
    ) -> Result<PutOutcome, StoreError> {
        Ok(self.store.write(|tx| {
            let current: Option<(i64, String)> = tx
                .prepare_cached("SELECT id, etag FROM cal_object WHERE collection_id = ?1 AND href = ?2")?
                .query_row(params![collection_id, href], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()?;
            if condition.if_none_match_any && current.is_some() {
                return Ok(PutOutcome::PreconditionFailed);
            }
            if let Some(expected) = &condition.if_match {
                match &current {
                    None => return Ok(PutOutcome::PreconditionFailed),
                    Some((_, etag)) if expected != "*" && expected != etag => return Ok(PutOutcome::PreconditionFailed),
                    Some(_) => {}
                }
            }
            // The UNIQUE (collection_id, uid) index answers this without scanning.
            let uid_owner: Option<String> = tx
                .prepare_cached("SELECT href FROM cal_object WHERE collection_id = ?1 AND uid = ?2")?
                .query_row(params![collection_id, object.uid], |r| r.get(0))
                .optional()?;
            if let Some(existing_href) = uid_owner.filter(|h| h != href) {
                return Ok(PutOutcome::UidConflict { existing_href });
            }
            let object_id = match &current {
                Some((id, _)) => {
                    tx.execute(
                        "UPDATE cal_object SET uid = ?2, kind = ?3, etag = ?4, data = ?5, indexed_until = ?6, modified_at = ?7 WHERE id = ?1",
                        params![id, object.uid, object.kind.as_str(), object.etag, object.data, object.indexed_until, now],
                    )?;
                    tx.execute("DELETE FROM cal_instance WHERE object_id = ?1", [id])?;
                    *id
                }
                None => {
                    tx.prepare_cached(
                        "INSERT INTO cal_object (collection_id, href, uid, kind, etag, data, indexed_until, modified_at)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                    )?
                    .execute(params![
                        collection_id,
                        href,
                        object.uid,
                        object.kind.as_str(),
                        object.etag,
                        object.data,
                        object.indexed_until,
                        now
                    ])?;
                    tx.last_insert_rowid()
                }
            };
            let mut insert = tx.prepare_cached(
                "INSERT INTO cal_instance (object_id, collection_id, start, end, busy) VALUES (?1, ?2, ?3, ?4, ?5)",
            )?;
            for instance in &object.instances {
                insert.execute(params![object_id, collection_id, instance.start, instance.end, instance.busy.as_i64()])?;
            }
            log_change(tx, collection_id, href, false)?;
            let etag = object.etag.clone();
            Ok(if current.is_some() { PutOutcome::Updated { etag } } else { PutOutcome::Created { etag } })
        })?)
    }

    fn delete_object(
        &self,
        collection_id: i64,
        href: &str,
        if_match: Option<&str>,
    ) -> Result<DeleteOutcome, StoreError> {
        Ok(self.store.write(|tx| {
            let current: Option<(i64, String)> = tx
                .query_row(
                    "SELECT id, etag FROM cal_object WHERE collection_id = ?1 AND href = ?2",
                    params![collection_id, href],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()?;
            let Some((id, etag)) = current else {
                return Ok(DeleteOutcome::NotFound);
            };
            if if_match.is_some_and(|expected| expected != "*" && expected != etag) {
                return Ok(DeleteOutcome::PreconditionFailed);
            }
            tx.execute("DELETE FROM cal_instance WHERE object_id = ?1", [id])?;
            tx.execute("DELETE FROM cal_object WHERE id = ?1", [id])?;
            log_change(tx, collection_id, href, true)?;
            Ok(DeleteOutcome::Deleted)
        })?)
    }

    fn query(
        &self,
        collection_id: i64,
        kind: Option<ComponentKind>,
        range: Option<TimeRange>,
    ) -> Result<Vec<(StoredObject, bool)>, StoreError> {
        let kind_text = kind.map(ComponentKind::as_str);
        Ok(self.store.read(|conn| {
            let mut out = Vec::new();
            let Some(range) = range else {
                let mut stmt = conn.prepare_cached(&format!(
                    "SELECT {OBJECT_COLUMNS} FROM cal_object WHERE collection_id = ?1 AND (?2 IS NULL OR kind = ?2) ORDER BY href"
                ))?;
                for row in stmt.query_map(params![collection_id, kind_text], object_row)? {
                    out.push((row?, false));
                }
                return Ok(out);
            };
            let start = range.start.unwrap_or(i64::MIN);
            let end = range.end.unwrap_or(i64::MAX);
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT {OBJECT_COLUMNS} FROM cal_object WHERE id IN (
                    SELECT object_id FROM cal_instance WHERE collection_id = ?1 AND start < ?3 AND (end > ?2 OR (end = start AND start >= ?2))
                 ) AND (?4 IS NULL OR kind = ?4) ORDER BY href"
            ))?;
            let mut seen = std::collections::HashSet::new();
            for row in stmt.query_map(params![collection_id, start, end, kind_text], object_row)? {
                let row = row?;
                seen.insert(row.meta.href.clone());
                out.push((row, false));
            }
            // Objects whose recurrences run past the indexed horizon: re-expanded by the caller.
            let mut open = conn.prepare_cached(&format!(
                "SELECT {OBJECT_COLUMNS} FROM cal_object WHERE collection_id = ?1 AND indexed_until IS NOT NULL AND indexed_until < ?2 AND (?3 IS NULL OR kind = ?3)"
            ))?;
            for row in open.query_map(params![collection_id, end, kind_text], object_row)? {
                let row = row?;
                if !seen.contains(&row.meta.href) {
                    out.push((row, true));
                }
            }
            Ok(out)
        })?)
    }

    fn busy(
        &self,
        collection_ids: &[i64],
        range: TimeRange,
    ) -> Result<(Vec<BusyPeriod>, Vec<String>), StoreError> {
        let start = range.start.unwrap_or(i64::MIN);
        let end = range.end.unwrap_or(i64::MAX);
        Ok(self.store.read(|conn| {
            let mut periods = Vec::new();
            let mut reexpand = Vec::new();
            let mut stmt = conn.prepare_cached(
                "SELECT start, end, busy FROM cal_instance WHERE collection_id = ?1 AND start < ?3 AND end > ?2 AND busy != 0",
            )?;
            let mut open = conn.prepare_cached(
                "SELECT data FROM cal_object WHERE collection_id = ?1 AND indexed_until IS NOT NULL AND indexed_until < ?2",
            )?;
            for id in collection_ids {
                for row in stmt.query_map(params![id, start, end], |r| {
                    Ok(BusyPeriod { start: r.get(0)?, end: r.get(1)?, status: BusyStatus::from_i64(r.get(2)?) })
                })? {
                    periods.push(row?);
                }
                for data in open.query_map(params![id, end], |r| r.get::<_, String>(0))? {
                    reexpand.push(data?);
                }
            }
            Ok((periods, reexpand))
        })?)
    }

    fn changes_since(
        &self,
        collection_id: i64,
        revision: i64,
    ) -> Result<Option<(Vec<Change>, i64)>, StoreError> {
        Ok(self.store.read(|conn| {
            // The current revision is read first and bounds the changes, so a change that
            // commits meanwhile is reported by the next sync instead of being skipped.
            let current: Option<(i64, i64)> = conn
                .query_row(
                    "SELECT revision, pruned_through FROM cal_collection WHERE id = ?1",
                    [collection_id],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()?;
            let Some((current, pruned_through)) = current else { return Ok(None) };
            // Revision 0 knows no objects, so deletions pruned since cannot matter to it;
            // any other revision before the pruned ones might have missed a deletion.
            if revision > current || revision < 0 || (revision > 0 && revision < pruned_through) {
                return Ok(None);
            }
            let mut stmt = conn.prepare_cached(
                "SELECT c.href, c.deleted, c.revision FROM cal_change c
                 JOIN (SELECT href, max(revision) AS rev FROM cal_change
                       WHERE collection_id = ?1 AND revision > ?2 AND revision <= ?3 GROUP BY href) latest
                   ON c.href = latest.href AND c.revision = latest.rev
                 WHERE c.collection_id = ?1 ORDER BY c.revision",
            )?;
            let rows = stmt
                .query_map(params![collection_id, revision, current], |r| {
                    Ok(Change { href: r.get(0)?, deleted: r.get(1)?, revision: r.get(2)? })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(Some((rows, current)))
        })?)
    }

    fn prune_changes(&self, before: i64) -> Result<usize, StoreError> {
        Ok(self.store.write(|tx| changes::prune(tx, before))?)
    }

    fn delegates(&self, owner: &str) -> Result<Vec<Delegate>, StoreError> {
        Ok(self.store.read(|conn| {
            let mut stmt = conn.prepare_cached("SELECT owner, delegate, write FROM cal_delegate WHERE owner = ?1 ORDER BY delegate")?;
            let rows = stmt.query_map([owner], |r| Ok(Delegate { owner: r.get(0)?, delegate: r.get(1)?, write: r.get(2)? }))?;
            rows.collect()
        })?)
    }

    fn delegations_to(&self, delegates: &[String]) -> Result<Vec<Delegate>, StoreError> {
        Ok(self.store.read(|conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT owner, delegate, write FROM cal_delegate WHERE delegate = ?1",
            )?;
            let mut out = Vec::new();
            for delegate in delegates {
                for row in stmt.query_map([delegate], |r| {
                    Ok(Delegate {
                        owner: r.get(0)?,
                        delegate: r.get(1)?,
                        write: r.get(2)?,
                    })
                })? {
                    out.push(row?);
                }
            }
            Ok(out)
        })?)
    }

    fn set_delegates(
        &self,
        owner: &str,
        write: bool,
        delegates: &[String],
    ) -> Result<(), StoreError> {
        Ok(self.store.write(|tx| {
            tx.execute("DELETE FROM cal_delegate WHERE owner = ?1 AND write = ?2", params![owner, write])?;
            for delegate in delegates {
                tx.execute(
                    "INSERT OR REPLACE INTO cal_delegate (owner, delegate, write) VALUES (?1, ?2, ?3)",
                    params![owner, delegate, write],
                )?;
            }
            Ok(())
        })?)
    }

    fn upsert_share(
        &self,
        collection_id: i64,
        sharee: &str,
        write: bool,
        uid: &str,
        summary: &str,
        now: i64,
    ) -> Result<(), StoreError> {
        Ok(self.store.write(|tx| {
            tx.execute(
                "INSERT INTO cal_share (collection_id, sharee, write, uid, summary, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT (collection_id, sharee) DO UPDATE SET write = excluded.write, summary = excluded.summary",
                params![collection_id, sharee, write, uid, summary, now],
            )?;
            Ok(())
        })?)
    }

    fn remove_share(&self, collection_id: i64, sharee: &str) -> Result<bool, StoreError> {
        Ok(self.store.write(|tx| {
            Ok(tx.execute(
                "DELETE FROM cal_share WHERE collection_id = ?1 AND sharee = ?2",
                params![collection_id, sharee],
            )? > 0)
        })?)
    }

    fn shares_of(&self, collection_id: i64) -> Result<Vec<Share>, StoreError> {
        Ok(self.store.read(|conn| {
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT {SHARE_COLUMNS} FROM cal_share s JOIN cal_collection c ON c.id = s.collection_id WHERE s.collection_id = ?1 ORDER BY s.sharee"
            ))?;
            let rows = stmt.query_map([collection_id], share_row)?;
            rows.collect()
        })?)
    }

    fn shares_for(&self, sharee: &str) -> Result<Vec<Share>, StoreError> {
        Ok(self.store.read(|conn| {
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT {SHARE_COLUMNS} FROM cal_share s JOIN cal_collection c ON c.id = s.collection_id WHERE s.sharee = ?1 ORDER BY s.created_at"
            ))?;
            let rows = stmt.query_map([sharee], share_row)?;
            rows.collect()
        })?)
    }

    fn reply_share(
        &self,
        sharee: &str,
        uid: &str,
        accept: bool,
        mount: &str,
    ) -> Result<Option<Share>, StoreError> {
        let updated = self.store.write(|tx| {
            let status = if accept { 1 } else { 2 };
            let mount = accept.then_some(mount);
            Ok(tx.execute(
                "UPDATE cal_share SET status = ?3, mount = ?4 WHERE sharee = ?1 AND uid = ?2",
                params![sharee, uid, status, mount],
            )? > 0)
        })?;
        if !updated {
            return Ok(None);
        }
        Ok(self.shares_for(sharee)?.into_iter().find(|s| s.uid == uid))
    }

    fn mounted_share(
        &self,
        sharee: &str,
        mount: &str,
    ) -> Result<Option<(Share, Collection)>, StoreError> {
        let share = self.store.read(|conn| {
            conn.prepare_cached(&format!(
                "SELECT {SHARE_COLUMNS} FROM cal_share s JOIN cal_collection c ON c.id = s.collection_id
                 WHERE s.sharee = ?1 AND s.mount = ?2 AND s.status = 1"
            ))?
            .query_row([sharee, mount], share_row)
            .optional()
        })?;
        let Some(share) = share else { return Ok(None) };
        let collection = self.collection(&share.owner, &share.calendar)?;
        Ok(collection.map(|c| (share, c)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::IndexedInstance;

    fn object(uid: &str, start: i64) -> NewObject {
        NewObject {
            uid: uid.into(),
            kind: ComponentKind::Event,
            etag: format!("\"{uid}-{start}\""),
            data: format!("data {uid}"),
            instances: vec![IndexedInstance {
                start,
                end: start + 3600,
                busy: BusyStatus::Busy,
            }],
            indexed_until: None,
        }
    }

    #[test]
    fn put_conditions_uid_conflict_and_changes() {
        for (_keep, s) in crate::store::engines::stores() {
            let s = s.as_ref();
            let cal = s
                .create_collection("ann", "work", &[ComponentKind::Event], &[], 0)
                .unwrap()
                .unwrap();
            assert!(s
                .create_collection("ann", "work", &[ComponentKind::Event], &[], 0)
                .unwrap()
                .is_none());
            let rev0 = s.collection("ann", "work").unwrap().unwrap().revision;
            let none = PutCondition::default();
            assert!(matches!(
                s.put_object(cal.id, "a.ics", &object("a", 0), &none, 1)
                    .unwrap(),
                PutOutcome::Created { .. }
            ));
            let create_only = PutCondition {
                if_none_match_any: true,
                ..PutCondition::default()
            };
            assert_eq!(
                s.put_object(cal.id, "a.ics", &object("a", 0), &create_only, 1)
                    .unwrap(),
                PutOutcome::PreconditionFailed
            );
            let stale = PutCondition {
                if_match: Some("\"nope\"".into()),
                ..PutCondition::default()
            };
            assert_eq!(
                s.put_object(cal.id, "a.ics", &object("a", 0), &stale, 1)
                    .unwrap(),
                PutOutcome::PreconditionFailed
            );
            assert_eq!(
                s.put_object(cal.id, "b.ics", &object("a", 0), &none, 1)
                    .unwrap(),
                PutOutcome::UidConflict {
                    existing_href: "a.ics".into()
                }
            );
            s.put_object(cal.id, "b.ics", &object("b", 7200), &none, 1)
                .unwrap();
            assert_eq!(
                s.delete_object(cal.id, "a.ics", None).unwrap(),
                DeleteOutcome::Deleted
            );
            let (changes, current) = s.changes_since(cal.id, rev0).unwrap().unwrap();
            let got: Vec<(&str, bool)> = changes
                .iter()
                .map(|c| (c.href.as_str(), c.deleted))
                .collect();
            assert_eq!(got, vec![("b.ics", false), ("a.ics", true)]);
            assert_eq!(current, changes.last().unwrap().revision);
            assert!(s.changes_since(cal.id, 999).unwrap().is_none());
        }
    }

    #[test]
    fn objects_at_answers_in_order_with_gaps_and_repeats() {
        for (_keep, s) in crate::store::engines::stores() {
            let s = s.as_ref();
            let cal = s
                .create_collection("ann", "work", &[ComponentKind::Event], &[], 0)
                .unwrap()
                .unwrap();
            for uid in ["a", "b"] {
                s.put_object(
                    cal.id,
                    &format!("{uid}.ics"),
                    &object(uid, 0),
                    &PutCondition::default(),
                    0,
                )
                .unwrap();
            }
            let hrefs: Vec<String> = ["b.ics", "missing.ics", "a.ics", "b.ics"]
                .iter()
                .map(|h| h.to_string())
                .collect();
            let got: Vec<Option<String>> = s
                .objects_at(cal.id, &hrefs)
                .unwrap()
                .into_iter()
                .map(|o| o.map(|o| o.uid))
                .collect();
            assert_eq!(
                got,
                vec![Some("b".into()), None, Some("a".into()), Some("b".into())]
            );
            assert!(s.objects_at(cal.id, &[]).unwrap().is_empty());
        }
    }

    #[test]
    fn time_range_query_uses_the_index() {
        for (_keep, s) in crate::store::engines::stores() {
            let s = s.as_ref();
            let cal = s
                .create_collection("ann", "work", &[ComponentKind::Event], &[], 0)
                .unwrap()
                .unwrap();
            for i in 0..10 {
                s.put_object(
                    cal.id,
                    &format!("{i}.ics"),
                    &object(&i.to_string(), i * 86_400),
                    &PutCondition::default(),
                    0,
                )
                .unwrap();
            }
            let hits = s
                .query(
                    cal.id,
                    Some(ComponentKind::Event),
                    Some(TimeRange::new(86_400, 3 * 86_400)),
                )
                .unwrap();
            let hrefs: Vec<&str> = hits.iter().map(|(o, _)| o.meta.href.as_str()).collect();
            assert_eq!(hrefs, vec!["1.ics", "2.ics"]);
            assert!(s
                .query(cal.id, Some(ComponentKind::Todo), None)
                .unwrap()
                .is_empty());
        }
    }
}
