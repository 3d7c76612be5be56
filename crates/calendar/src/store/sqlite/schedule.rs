//! [`ScheduleStore`] over SQLite: UID lookups across a user's calendars and the outgoing
//! iTIP queue table (`cal_itip_queue`, created by the calendar migrations).

use super::{collection_row, load_collection, object_row, SqliteCalendarStore, OBJECT_COLUMNS};
use crate::store::schedule::{NewItip, QueuedItip, ScheduleStore, INBOX, MAX_QUEUE_LISTING};
use crate::store::{Collection, StoreError, StoredObject};
use rusqlite::{params, OptionalExtension};

impl ScheduleStore for SqliteCalendarStore {
    fn object_by_uid(
        &self,
        owner: &str,
        uid: &str,
    ) -> Result<Option<(Collection, StoredObject)>, StoreError> {
        Ok(self.store.read(|conn| {
            let found: Option<(i64, String)> = conn
                .prepare_cached(
                    "SELECT c.id, o.href FROM cal_object o JOIN cal_collection c ON c.id = o.collection_id
                     WHERE c.owner = ?1 AND o.uid = ?2 AND c.name != ?3 ORDER BY c.name LIMIT 1",
                )?
                .query_row(params![owner, uid, INBOX], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()?;
            let Some((collection_id, href)) = found else {
                return Ok(None);
            };
            let row = conn
                .prepare_cached(
                    "SELECT id, owner, name, components, revision FROM cal_collection WHERE id = ?1",
                )?
                .query_row([collection_id], collection_row)?;
            let collection = load_collection(conn, row)?;
            let object = conn
                .prepare_cached(&format!(
                    "SELECT {OBJECT_COLUMNS} FROM cal_object WHERE collection_id = ?1 AND href = ?2"
                ))?
                .query_row(params![collection_id, href], object_row)?;
            Ok(Some((collection, object)))
        })?)
    }

    fn href_of_uid(&self, collection_id: i64, uid: &str) -> Result<Option<String>, StoreError> {
        Ok(self.store.read(|conn| {
            conn.prepare_cached(
                "SELECT href FROM cal_object WHERE collection_id = ?1 AND uid = ?2",
            )?
            .query_row(params![collection_id, uid], |r| r.get(0))
            .optional()
        })?)
    }

    fn queue_itip(&self, message: &NewItip<'_>, now: i64) -> Result<i64, StoreError> {
        Ok(self.store.write(|tx| {
            tx.execute(
                "INSERT INTO cal_itip_queue (sender, recipient, method, uid, message, queued_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    message.sender,
                    message.recipient,
                    message.method,
                    message.uid,
                    message.message,
                    now
                ],
            )?;
            Ok(tx.last_insert_rowid())
        })?)
    }

    fn itip_queue(&self, limit: usize) -> Result<Vec<QueuedItip>, StoreError> {
        let limit = i64::try_from(limit.min(MAX_QUEUE_LISTING)).unwrap_or(0);
        Ok(self.store.read(|conn| {
            conn.prepare_cached(
                "SELECT id, sender, recipient, method, uid, message, queued_at FROM cal_itip_queue
                 ORDER BY id DESC LIMIT ?1",
            )?
            .query_map([limit], |r| {
                Ok(QueuedItip {
                    id: r.get(0)?,
                    sender: r.get(1)?,
                    recipient: r.get(2)?,
                    method: r.get(3)?,
                    uid: r.get(4)?,
                    message: r.get(5)?,
                    queued_at: r.get(6)?,
                })
            })?
            .collect()
        })?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ical::ComponentKind;
    use crate::store::{NewObject, PutCondition};

    fn object(uid: &str) -> NewObject {
        NewObject {
            uid: uid.into(),
            kind: ComponentKind::Event,
            etag: format!("\"{uid}\""),
            data: format!("data {uid}"),
            instances: Vec::new(),
            indexed_until: None,
        }
    }

    #[test]
    fn uid_lookup_skips_the_inbox_and_other_owners() {
        for (_keep, s) in crate::store::engines::stores() {
            let s = s.as_ref();
            let inbox = s
                .create_collection("bob", INBOX, &[ComponentKind::Event], &[], 0)
                .unwrap()
                .unwrap();
            let cal = s
                .create_collection("bob", "calendar", &[ComponentKind::Event], &[], 0)
                .unwrap()
                .unwrap();
            let none = PutCondition::default();
            s.put_object(inbox.id, "m-request.ics", &object("m"), &none, 1)
                .unwrap();
            assert!(s.object_by_uid("bob", "m").unwrap().is_none());
            s.put_object(cal.id, "m.ics", &object("m"), &none, 1)
                .unwrap();
            let (found_cal, found) = s.object_by_uid("bob", "m").unwrap().unwrap();
            assert_eq!(
                (found_cal.name.as_str(), found.meta.href.as_str()),
                ("calendar", "m.ics")
            );
            assert!(s.object_by_uid("ann", "m").unwrap().is_none());
            assert_eq!(
                s.href_of_uid(inbox.id, "m").unwrap().as_deref(),
                Some("m-request.ics")
            );
        }
    }

    #[test]
    fn queue_lists_newest_first() {
        for (_keep, s) in crate::store::engines::stores() {
            let s = s.as_ref();
            for method in ["REQUEST", "CANCEL"] {
                s.queue_itip(
                    &NewItip {
                        sender: "ann",
                        recipient: "mailto:zed@elsewhere.org",
                        method,
                        uid: "m",
                        message: "BEGIN:VCALENDAR",
                    },
                    5,
                )
                .unwrap();
            }
            let queue = s.itip_queue(10).unwrap();
            assert_eq!(
                queue.iter().map(|q| q.method.as_str()).collect::<Vec<_>>(),
                ["CANCEL", "REQUEST"]
            );
            assert_eq!(queue[0].recipient, "mailto:zed@elsewhere.org");
        }
    }
}
