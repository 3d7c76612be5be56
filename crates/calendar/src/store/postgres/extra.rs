//! [`ScheduleStore`] and [`ShareePropStore`] over PostgreSQL.

use super::{load_collection, object_row, PgCalendarStore, COLLECTION_COLUMNS, OBJECT_COLUMNS};
use crate::dav::request::PropName;
use crate::store::schedule::{NewItip, QueuedItip, ScheduleStore, INBOX, MAX_QUEUE_LISTING};
use crate::store::sharee_props::ShareePropStore;
use crate::store::{Collection, StoreError, StoredObject};

impl ScheduleStore for PgCalendarStore {
    fn object_by_uid(
        &self,
        owner: &str,
        uid: &str,
    ) -> Result<Option<(Collection, StoredObject)>, StoreError> {
        let (owner, uid) = (owner.to_owned(), uid.to_owned());
        self.run(move |client| async move {
            let found = client
                .query_opt(
                    &client.prepare_cached("SELECT c.id, o.href FROM cal_object o JOIN cal_collection c ON c.id = o.collection_id
                     WHERE c.owner = $1 AND o.uid = $2 AND c.name != $3 ORDER BY c.name LIMIT 1").await?,
                    &[&owner, &uid, &INBOX],
                )
                .await?;
            let Some(found) = found else {
                return Ok(None);
            };
            let (collection_id, href): (i64, String) = (found.get(0), found.get(1));
            let row = client
                .query_one(
                    &client.prepare_cached(&format!("SELECT {COLLECTION_COLUMNS} FROM cal_collection WHERE id = $1")).await?,
                    &[&collection_id],
                )
                .await?;
            let collection = load_collection(&client, &row).await?;
            let object = client
                .query_one(
                    &client.prepare_cached(&format!("SELECT {OBJECT_COLUMNS} FROM cal_object WHERE collection_id = $1 AND href = $2")).await?,
                    &[&collection_id, &href],
                )
                .await?;
            Ok(Some((collection, object_row(&object))))
        })
    }

    fn href_of_uid(&self, collection_id: i64, uid: &str) -> Result<Option<String>, StoreError> {
        let uid = uid.to_owned();
        self.run(move |client| async move {
            Ok(client
                .query_opt(
                    &client
                        .prepare_cached(
                            "SELECT href FROM cal_object WHERE collection_id = $1 AND uid = $2",
                        )
                        .await?,
                    &[&collection_id, &uid],
                )
                .await?
                .map(|r| r.get(0)))
        })
    }

    fn queue_itip(&self, message: &NewItip<'_>, now: i64) -> Result<i64, StoreError> {
        let fields = [
            message.sender.to_owned(),
            message.recipient.to_owned(),
            message.method.to_owned(),
            message.uid.to_owned(),
            message.message.to_owned(),
        ];
        self.run(move |client| async move {
            let [sender, recipient, method, uid, text] = &fields;
            Ok(client
                .query_one(
                    &client.prepare_cached("INSERT INTO cal_itip_queue (sender, recipient, method, uid, message, queued_at)
                     VALUES ($1, $2, $3, $4, $5, $6) RETURNING id").await?,
                    &[sender, recipient, method, uid, text, &now],
                )
                .await?
                .get(0))
        })
    }

    fn itip_queue(&self, limit: usize) -> Result<Vec<QueuedItip>, StoreError> {
        let limit = i64::try_from(limit.min(MAX_QUEUE_LISTING)).unwrap_or(0);
        self.run(move |client| async move {
            let rows = client
                .query(
                    &client.prepare_cached("SELECT id, sender, recipient, method, uid, message, queued_at FROM cal_itip_queue
                     ORDER BY id DESC LIMIT $1").await?,
                    &[&limit],
                )
                .await?;
            Ok(rows
                .iter()
                .map(|r| QueuedItip {
                    id: r.get(0),
                    sender: r.get(1),
                    recipient: r.get(2),
                    method: r.get(3),
                    uid: r.get(4),
                    message: r.get(5),
                    queued_at: r.get(6),
                })
                .collect())
        })
    }
}

impl ShareePropStore for PgCalendarStore {
    fn sharee_props(
        &self,
        collection_id: i64,
        sharee: &str,
    ) -> Result<Vec<(PropName, String)>, StoreError> {
        let sharee = sharee.to_owned();
        self.run(move |client| async move {
            let rows = client
                .query(
                    &client.prepare_cached("SELECT ns, name, value FROM cal_sharee_prop WHERE collection_id = $1 AND sharee = $2
                     ORDER BY ns, name").await?,
                    &[&collection_id, &sharee],
                )
                .await?;
            Ok(rows
                .iter()
                .map(|r| (PropName { ns: r.get(0), name: r.get(1) }, r.get(2)))
                .collect())
        })
    }

    fn set_sharee_props(
        &self,
        collection_id: i64,
        sharee: &str,
        updates: &[(PropName, Option<String>)],
    ) -> Result<bool, StoreError> {
        let sharee = sharee.to_owned();
        let updates = updates.to_vec();
        self.run(move |mut client| async move {
            let tx = client.transaction().await?;
            // The share row is locked, so a share withdrawn meanwhile stores nothing.
            let shared = tx
                .query_opt(
                    &tx.prepare_cached("SELECT 1 FROM cal_share WHERE collection_id = $1 AND sharee = $2 FOR UPDATE").await?,
                    &[&collection_id, &sharee],
                )
                .await?
                .is_some();
            if !shared {
                return Ok(false);
            }
            for (prop, value) in &updates {
                match value {
                    Some(value) => tx
                        .execute(
                            &tx.prepare_cached("INSERT INTO cal_sharee_prop (collection_id, sharee, ns, name, value)
                             VALUES ($1, $2, $3, $4, $5)
                             ON CONFLICT (collection_id, sharee, ns, name) DO UPDATE SET value = excluded.value").await?,
                            &[&collection_id, &sharee, &prop.ns, &prop.name, value],
                        )
                        .await?,
                    None => tx
                        .execute(
                            &tx.prepare_cached("DELETE FROM cal_sharee_prop WHERE collection_id = $1 AND sharee = $2
                             AND ns = $3 AND name = $4").await?,
                            &[&collection_id, &sharee, &prop.ns, &prop.name],
                        )
                        .await?,
                };
            }
            tx.commit().await?;
            Ok(true)
        })
    }

    fn clear_sharee_props(&self, collection_id: i64, sharee: &str) -> Result<usize, StoreError> {
        let sharee = sharee.to_owned();
        self.run(move |client| async move {
            let n = client
                .execute(
                    &client
                        .prepare_cached(
                            "DELETE FROM cal_sharee_prop WHERE collection_id = $1 AND sharee = $2",
                        )
                        .await?,
                    &[&collection_id, &sharee],
                )
                .await?;
            Ok(usize::try_from(n).unwrap_or(usize::MAX))
        })
    }
}
