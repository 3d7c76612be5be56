//! [`CalendarStore`] over PostgreSQL, for several nodes writing the same calendars.
//!
//! The tables are SQLite's, renamed where PostgreSQL reserves a word (`end`, `user`) or
//! would read one oddly (`write`). Every write to a calendar first locks its row in
//! `cal_collection` (`FOR UPDATE`): writers to one calendar queue behind each other across
//! nodes, so If-Match checks and the revision (the ctag and sync token) are decided with
//! nothing committing in between, and the change log grows in revision order. Reads need no
//! lock: each statement sees committed data (READ COMMITTED), and `changes_since` reads the
//! current revision before the changes it bounds, as on SQLite.

use super::{
    CalendarStore, Change, Collection, Delegate, DeleteOutcome, NewObject, ObjectMeta,
    PutCondition, PutOutcome, Share, ShareStatus, StoreError, StoredObject,
};
use crate::dav::request::PropName;
use crate::ical::expand::{BusyStatus, TimeRange};
use crate::ical::ComponentKind;
use crate::query::freebusy::BusyPeriod;
use serval_core::store::postgres::PgClient;
use serval_core::store::PgStore;

mod extra;
mod schema;

use schema::MIGRATIONS;

pub(super) fn copy_tables() -> &'static [serval_core::store::copy::TableCopy] {
    schema::COPY_TABLES
}

pub(super) fn schema_version() -> i64 {
    MIGRATIONS.len() as i64
}

#[derive(Clone, Debug)]
pub struct PgCalendarStore {
    store: PgStore,
}

impl PgCalendarStore {
    /// Applies the calendar migrations and returns the store.
    pub fn open(store: PgStore) -> Result<Self, StoreError> {
        store.migrate("calendar", MIGRATIONS)?;
        Ok(Self { store })
    }

    fn run<T, F, Fut>(&self, job: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(PgClient) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = Result<T, StoreError>> + Send + 'static,
    {
        self.store.run(job)
    }
}

impl From<tokio_postgres::Error> for StoreError {
    fn from(error: tokio_postgres::Error) -> Self {
        StoreError::Core(error.into())
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

const COLLECTION_COLUMNS: &str = "id, owner, name, components, revision";

async fn load_collection(
    client: &impl deadpool_postgres::GenericClient,
    row: &tokio_postgres::Row,
) -> Result<Collection, StoreError> {
    let id: i64 = row.get(0);
    let props = client
        .query(
            &client.prepare_cached("SELECT ns, name, value FROM cal_prop WHERE collection_id = $1 ORDER BY ns, name").await?,
            &[&id],
        )
        .await?
        .iter()
        .map(|r| {
            (
                PropName {
                    ns: r.get(0),
                    name: r.get(1),
                },
                r.get::<_, String>(2),
            )
        })
        .collect();
    Ok(Collection {
        id,
        owner: row.get(1),
        name: row.get(2),
        components: kinds_from_text(row.get(3)),
        revision: row.get(4),
        props,
        shared_from: None,
    })
}

const SHARE_COLUMNS: &str =
    "s.collection_id, c.owner, c.name, s.sharee, s.can_write, s.status, s.uid, s.mount, s.summary";

fn share_row(r: &tokio_postgres::Row) -> Share {
    Share {
        collection_id: r.get(0),
        owner: r.get(1),
        calendar: r.get(2),
        sharee: r.get(3),
        write: r.get(4),
        status: match r.get::<_, i64>(5) {
            1 => ShareStatus::Accepted,
            2 => ShareStatus::Declined,
            _ => ShareStatus::Pending,
        },
        uid: r.get(6),
        mount: r.get(7),
        summary: r.get(8),
    }
}

const OBJECT_COLUMNS: &str = "href, etag, octet_length(data)::bigint, kind, modified_at, uid, data";

fn object_row(r: &tokio_postgres::Row) -> StoredObject {
    StoredObject {
        meta: ObjectMeta {
            href: r.get(0),
            etag: r.get(1),
            size: usize::try_from(r.get::<_, i64>(2)).unwrap_or(0),
            kind: kind_from_text(r.get(3)),
            modified_at: r.get(4),
        },
        uid: r.get(5),
        data: r.get(6),
    }
}

/// Locks the calendar's row for this transaction: writers to one calendar, on any node,
/// take turns. `false` when the calendar is gone.
async fn lock_collection(
    tx: &deadpool_postgres::Transaction<'_>,
    collection_id: i64,
) -> Result<bool, StoreError> {
    Ok(tx
        .query_opt(
            &tx.prepare_cached("SELECT 1 FROM cal_collection WHERE id = $1 FOR UPDATE")
                .await?,
            &[&collection_id],
        )
        .await?
        .is_some())
}

/// Bumps the calendar's revision and logs `href` as changed at it.
async fn log_change(
    tx: &deadpool_postgres::Transaction<'_>,
    collection_id: i64,
    href: &str,
    deleted: bool,
) -> Result<i64, StoreError> {
    let revision: i64 = tx
        .query_one(
            &tx.prepare_cached("UPDATE cal_collection SET revision = revision + 1 WHERE id = $1 RETURNING revision").await?,
            &[&collection_id],
        )
        .await?
        .get(0);
    if !href.is_empty() {
        tx.execute(
            &tx.prepare_cached(
                "INSERT INTO cal_change (collection_id, revision, href, deleted, changed_at)
             VALUES ($1, $2, $3, $4, extract(epoch from now())::bigint)",
            )
            .await?,
            &[&collection_id, &revision, &href, &deleted],
        )
        .await?;
    }
    Ok(revision)
}

impl CalendarStore for PgCalendarStore {
    fn collections(&self, owner: &str) -> Result<Vec<Collection>, StoreError> {
        let owner = owner.to_owned();
        self.run(move |client| async move {
            let rows = client
                .query(
                    &client.prepare_cached(&format!("SELECT {COLLECTION_COLUMNS} FROM cal_collection WHERE owner = $1 ORDER BY name")).await?,
                    &[&owner],
                )
                .await?;
            let mut out = Vec::with_capacity(rows.len());
            for row in &rows {
                out.push(load_collection(&client, row).await?);
            }
            Ok(out)
        })
    }

    fn collection(&self, owner: &str, name: &str) -> Result<Option<Collection>, StoreError> {
        let (owner, name) = (owner.to_owned(), name.to_owned());
        self.run(move |client| async move {
            let row = client
                .query_opt(
                    &client.prepare_cached(&format!("SELECT {COLLECTION_COLUMNS} FROM cal_collection WHERE owner = $1 AND name = $2")).await?,
                    &[&owner, &name],
                )
                .await?;
            match row {
                Some(row) => Ok(Some(load_collection(&client, &row).await?)),
                None => Ok(None),
            }
        })
    }

    fn create_collection(
        &self,
        owner: &str,
        name: &str,
        components: &[ComponentKind],
        props: &[(PropName, String)],
        now: i64,
    ) -> Result<Option<Collection>, StoreError> {
        let (owner_c, name_c) = (owner.to_owned(), name.to_owned());
        let components = kinds_to_text(components);
        let props = props.to_vec();
        let created = self.run(move |mut client| async move {
            let tx = client.transaction().await?;
            let row = tx
                .query_opt(
                    &tx.prepare_cached("INSERT INTO cal_collection (owner, name, components, created_at) VALUES ($1, $2, $3, $4)
                     ON CONFLICT DO NOTHING RETURNING id").await?,
                    &[&owner_c, &name_c, &components, &now],
                )
                .await?;
            let Some(row) = row else {
                return Ok(false);
            };
            let id: i64 = row.get(0);
            for (prop, value) in &props {
                tx.execute(
                    &tx.prepare_cached("INSERT INTO cal_prop (collection_id, ns, name, value) VALUES ($1, $2, $3, $4)
                     ON CONFLICT (collection_id, ns, name) DO UPDATE SET value = excluded.value").await?,
                    &[&id, &prop.ns, &prop.name, value],
                )
                .await?;
            }
            log_change(&tx, id, "", false).await?;
            tx.commit().await?;
            Ok(true)
        })?;
        if created {
            self.collection(owner, name)
        } else {
            Ok(None)
        }
    }

    fn delete_collection(&self, id: i64) -> Result<(), StoreError> {
        self.run(move |client| async move {
            // Objects, instances, changes, props, shares and their props cascade.
            client
                .execute(
                    &client
                        .prepare_cached("DELETE FROM cal_instance WHERE collection_id = $1")
                        .await?,
                    &[&id],
                )
                .await?;
            client
                .execute(
                    &client
                        .prepare_cached("DELETE FROM cal_collection WHERE id = $1")
                        .await?,
                    &[&id],
                )
                .await?;
            Ok(())
        })
    }

    fn set_props(&self, id: i64, updates: &[(PropName, Option<String>)]) -> Result<(), StoreError> {
        let updates = updates.to_vec();
        self.run(move |mut client| async move {
            let tx = client.transaction().await?;
            if !lock_collection(&tx, id).await? {
                return Ok(());
            }
            for (prop, value) in &updates {
                match value {
                    Some(value) => tx
                        .execute(
                            &tx.prepare_cached("INSERT INTO cal_prop (collection_id, ns, name, value) VALUES ($1, $2, $3, $4)
                             ON CONFLICT (collection_id, ns, name) DO UPDATE SET value = excluded.value").await?,
                            &[&id, &prop.ns, &prop.name, value],
                        )
                        .await?,
                    None => tx
                        .execute(
                            &tx.prepare_cached("DELETE FROM cal_prop WHERE collection_id = $1 AND ns = $2 AND name = $3").await?,
                            &[&id, &prop.ns, &prop.name],
                        )
                        .await?,
                };
            }
            log_change(&tx, id, "", false).await?;
            tx.commit().await?;
            Ok(())
        })
    }

    fn objects(&self, collection_id: i64) -> Result<Vec<ObjectMeta>, StoreError> {
        self.run(move |client| async move {
            let rows = client
                .query(
                    &client.prepare_cached("SELECT href, etag, octet_length(data)::bigint, kind, modified_at FROM cal_object
                     WHERE collection_id = $1 ORDER BY href").await?,
                    &[&collection_id],
                )
                .await?;
            Ok(rows
                .iter()
                .map(|r| ObjectMeta {
                    href: r.get(0),
                    etag: r.get(1),
                    size: usize::try_from(r.get::<_, i64>(2)).unwrap_or(0),
                    kind: kind_from_text(r.get(3)),
                    modified_at: r.get(4),
                })
                .collect())
        })
    }

    fn object(&self, collection_id: i64, href: &str) -> Result<Option<StoredObject>, StoreError> {
        let href = href.to_owned();
        self.run(move |client| async move {
            let row = client
                .query_opt(
                    &client.prepare_cached(&format!("SELECT {OBJECT_COLUMNS} FROM cal_object WHERE collection_id = $1 AND href = $2")).await?,
                    &[&collection_id, &href],
                )
                .await?;
            Ok(row.as_ref().map(object_row))
        })
    }

    fn objects_at(
        &self,
        collection_id: i64,
        hrefs: &[String],
    ) -> Result<Vec<Option<StoredObject>>, StoreError> {
        let hrefs = hrefs.to_vec();
        self.run(move |client| async move {
            let rows = client
                .query(
                    &client.prepare_cached(&format!("SELECT {OBJECT_COLUMNS} FROM cal_object WHERE collection_id = $1 AND href = ANY($2)")).await?,
                    &[&collection_id, &hrefs],
                )
                .await?;
            let by_href: std::collections::HashMap<String, StoredObject> = rows
                .iter()
                .map(object_row)
                .map(|o| (o.meta.href.clone(), o))
                .collect();
            Ok(hrefs.iter().map(|h| by_href.get(h).cloned()).collect())
        })
    }

    fn put_object(
        &self,
        collection_id: i64,
        href: &str,
        object: &NewObject,
        condition: &PutCondition,
        now: i64,
    ) -> Result<PutOutcome, StoreError> {
        let href = href.to_owned();
        let object = object.clone();
        let condition = condition.clone();
        self.run(move |mut client| async move {
            let tx = client.transaction().await?;
            if !lock_collection(&tx, collection_id).await? {
                return Ok(PutOutcome::PreconditionFailed);
            }
            let current: Option<(i64, String)> = tx
                .query_opt(
                    &tx.prepare_cached("SELECT id, etag FROM cal_object WHERE collection_id = $1 AND href = $2").await?,
                    &[&collection_id, &href],
                )
                .await?
                .map(|r| (r.get(0), r.get(1)));
            if condition.if_none_match_any && current.is_some() {
                return Ok(PutOutcome::PreconditionFailed);
            }
            if let Some(expected) = &condition.if_match {
                match &current {
                    None => return Ok(PutOutcome::PreconditionFailed),
                    Some((_, etag)) if expected != "*" && expected != etag => {
                        return Ok(PutOutcome::PreconditionFailed)
                    }
                    Some(_) => {}
                }
            }
            let uid_owner: Option<String> = tx
                .query_opt(
                    &tx.prepare_cached("SELECT href FROM cal_object WHERE collection_id = $1 AND uid = $2").await?,
                    &[&collection_id, &object.uid],
                )
                .await?
                .map(|r| r.get(0));
            if let Some(existing_href) = uid_owner.filter(|h| *h != href) {
                return Ok(PutOutcome::UidConflict { existing_href });
            }
            let kind = object.kind.as_str();
            let object_id: i64 = match &current {
                Some((id, _)) => {
                    tx.execute(
                        &tx.prepare_cached("UPDATE cal_object SET uid = $2, kind = $3, etag = $4, data = $5,
                         indexed_until = $6, modified_at = $7 WHERE id = $1").await?,
                        &[id, &object.uid, &kind, &object.etag, &object.data, &object.indexed_until, &now],
                    )
                    .await?;
                    tx.execute(&tx.prepare_cached("DELETE FROM cal_instance WHERE object_id = $1").await?, &[id]).await?;
                    *id
                }
                None => tx
                    .query_one(
                        &tx.prepare_cached("INSERT INTO cal_object (collection_id, href, uid, kind, etag, data, indexed_until, modified_at)
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id").await?,
                        &[&collection_id, &href, &object.uid, &kind, &object.etag, &object.data, &object.indexed_until, &now],
                    )
                    .await?
                    .get(0),
            };
            if !object.instances.is_empty() {
                // One statement for every instance: the arrays are unnested server-side.
                let starts: Vec<i64> = object.instances.iter().map(|i| i.start).collect();
                let ends: Vec<i64> = object.instances.iter().map(|i| i.end).collect();
                let busy: Vec<i64> = object.instances.iter().map(|i| i.busy.as_i64()).collect();
                tx.execute(
                    &tx.prepare_cached("INSERT INTO cal_instance (object_id, collection_id, starts_at, ends_at, busy)
                     SELECT $1, $2, s, e, b FROM unnest($3::bigint[], $4::bigint[], $5::bigint[]) AS t(s, e, b)").await?,
                    &[&object_id, &collection_id, &starts, &ends, &busy],
                )
                .await?;
            }
            log_change(&tx, collection_id, &href, false).await?;
            tx.commit().await?;
            let etag = object.etag.clone();
            Ok(if current.is_some() {
                PutOutcome::Updated { etag }
            } else {
                PutOutcome::Created { etag }
            })
        })
    }

    fn delete_object(
        &self,
        collection_id: i64,
        href: &str,
        if_match: Option<&str>,
    ) -> Result<DeleteOutcome, StoreError> {
        let href = href.to_owned();
        let if_match = if_match.map(str::to_owned);
        self.run(move |mut client| async move {
            let tx = client.transaction().await?;
            if !lock_collection(&tx, collection_id).await? {
                return Ok(DeleteOutcome::NotFound);
            }
            let current: Option<(i64, String)> = tx
                .query_opt(
                    &tx.prepare_cached(
                        "SELECT id, etag FROM cal_object WHERE collection_id = $1 AND href = $2",
                    )
                    .await?,
                    &[&collection_id, &href],
                )
                .await?
                .map(|r| (r.get(0), r.get(1)));
            let Some((id, etag)) = current else {
                return Ok(DeleteOutcome::NotFound);
            };
            if if_match
                .as_deref()
                .is_some_and(|expected| expected != "*" && expected != etag)
            {
                return Ok(DeleteOutcome::PreconditionFailed);
            }
            tx.execute(
                &tx.prepare_cached("DELETE FROM cal_instance WHERE object_id = $1")
                    .await?,
                &[&id],
            )
            .await?;
            tx.execute(
                &tx.prepare_cached("DELETE FROM cal_object WHERE id = $1")
                    .await?,
                &[&id],
            )
            .await?;
            log_change(&tx, collection_id, &href, true).await?;
            tx.commit().await?;
            Ok(DeleteOutcome::Deleted)
        })
    }

    fn query(
        &self,
        collection_id: i64,
        kind: Option<ComponentKind>,
        range: Option<TimeRange>,
    ) -> Result<Vec<(StoredObject, bool)>, StoreError> {
        let kind_text = kind.map(|k| k.as_str().to_owned());
        self.run(move |client| async move {
            let Some(range) = range else {
                let rows = client
                    .query(
                        &format!(
                            "SELECT {OBJECT_COLUMNS} FROM cal_object WHERE collection_id = $1
                             AND ($2::text IS NULL OR kind = $2) ORDER BY href"
                        ),
                        &[&collection_id, &kind_text],
                    )
                    .await?;
                return Ok(rows.iter().map(|r| (object_row(r), false)).collect());
            };
            let start = range.start.unwrap_or(i64::MIN);
            let end = range.end.unwrap_or(i64::MAX);
            let rows = client
                .query(
                    &format!(
                        "SELECT {OBJECT_COLUMNS} FROM cal_object WHERE id IN (
                            SELECT object_id FROM cal_instance WHERE collection_id = $1 AND starts_at < $3
                              AND (ends_at > $2 OR (ends_at = starts_at AND starts_at >= $2))
                         ) AND ($4::text IS NULL OR kind = $4) ORDER BY href"
                    ),
                    &[&collection_id, &start, &end, &kind_text],
                )
                .await?;
            let mut seen = std::collections::HashSet::new();
            let mut out = Vec::with_capacity(rows.len());
            for row in &rows {
                let object = object_row(row);
                seen.insert(object.meta.href.clone());
                out.push((object, false));
            }
            let open = client
                .query(
                    &format!(
                        "SELECT {OBJECT_COLUMNS} FROM cal_object WHERE collection_id = $1
                         AND indexed_until IS NOT NULL AND indexed_until < $2 AND ($3::text IS NULL OR kind = $3)"
                    ),
                    &[&collection_id, &end, &kind_text],
                )
                .await?;
            for row in &open {
                let object = object_row(row);
                if !seen.contains(&object.meta.href) {
                    out.push((object, true));
                }
            }
            Ok(out)
        })
    }

    fn busy(
        &self,
        collection_ids: &[i64],
        range: TimeRange,
    ) -> Result<(Vec<BusyPeriod>, Vec<String>), StoreError> {
        let ids = collection_ids.to_vec();
        let start = range.start.unwrap_or(i64::MIN);
        let end = range.end.unwrap_or(i64::MAX);
        self.run(move |client| async move {
            let periods = client
                .query(
                    &client.prepare_cached("SELECT starts_at, ends_at, busy FROM cal_instance WHERE collection_id = ANY($1)
                     AND starts_at < $3 AND ends_at > $2 AND busy != 0").await?,
                    &[&ids, &start, &end],
                )
                .await?
                .iter()
                .map(|r| BusyPeriod {
                    start: r.get(0),
                    end: r.get(1),
                    status: BusyStatus::from_i64(r.get(2)),
                })
                .collect();
            let reexpand = client
                .query(
                    &client.prepare_cached("SELECT data FROM cal_object WHERE collection_id = ANY($1)
                     AND indexed_until IS NOT NULL AND indexed_until < $2").await?,
                    &[&ids, &end],
                )
                .await?
                .iter()
                .map(|r| r.get(0))
                .collect();
            Ok((periods, reexpand))
        })
    }

    fn changes_since(
        &self,
        collection_id: i64,
        revision: i64,
    ) -> Result<Option<(Vec<Change>, i64)>, StoreError> {
        self.run(move |client| async move {
            let current = client
                .query_opt(
                    &client.prepare_cached("SELECT revision, pruned_through FROM cal_collection WHERE id = $1").await?,
                    &[&collection_id],
                )
                .await?;
            let Some(current) = current else {
                return Ok(None);
            };
            let (current, pruned_through): (i64, i64) = (current.get(0), current.get(1));
            if revision > current || revision < 0 || (revision > 0 && revision < pruned_through) {
                return Ok(None);
            }
            let rows = client
                .query(
                    &client.prepare_cached("SELECT c.href, c.deleted, c.revision FROM cal_change c
                     JOIN (SELECT href, max(revision) AS rev FROM cal_change
                           WHERE collection_id = $1 AND revision > $2 AND revision <= $3 GROUP BY href) latest
                       ON c.href = latest.href AND c.revision = latest.rev
                     WHERE c.collection_id = $1 ORDER BY c.revision").await?,
                    &[&collection_id, &revision, &current],
                )
                .await?;
            let changes = rows
                .iter()
                .map(|r| Change {
                    href: r.get(0),
                    deleted: r.get(1),
                    revision: r.get(2),
                })
                .collect();
            Ok(Some((changes, current)))
        })
    }

    fn prune_changes(&self, before: i64) -> Result<usize, StoreError> {
        self.run(move |mut client| async move {
            const PRUNABLE: &str = "c.changed_at < $1 AND (c.deleted OR EXISTS (
                SELECT 1 FROM cal_change later WHERE later.collection_id = c.collection_id
                  AND later.href = c.href AND later.revision > c.revision))";
            let tx = client.transaction().await?;
            tx.execute(
                &format!(
                    "UPDATE cal_collection SET pruned_through = GREATEST(pruned_through, COALESCE(
                       (SELECT max(c.revision) FROM cal_change c
                        WHERE c.collection_id = cal_collection.id AND {PRUNABLE}), 0))"
                ),
                &[&before],
            )
            .await?;
            let removed = tx
                .execute(
                    &tx.prepare_cached(&format!("DELETE FROM cal_change c WHERE {PRUNABLE}"))
                        .await?,
                    &[&before],
                )
                .await?;
            tx.commit().await?;
            Ok(usize::try_from(removed).unwrap_or(usize::MAX))
        })
    }

    fn delegates(&self, owner: &str) -> Result<Vec<Delegate>, StoreError> {
        let owner = owner.to_owned();
        self.run(move |client| async move {
            let rows = client
                .query(
                    &client.prepare_cached("SELECT owner, delegate, can_write FROM cal_delegate WHERE owner = $1 ORDER BY delegate").await?,
                    &[&owner],
                )
                .await?;
            Ok(rows.iter().map(delegate_row).collect())
        })
    }

    fn delegations_to(&self, delegates: &[String]) -> Result<Vec<Delegate>, StoreError> {
        let delegates = delegates.to_vec();
        self.run(move |client| async move {
            let rows = client
                .query(
                    &client.prepare_cached("SELECT owner, delegate, can_write FROM cal_delegate WHERE delegate = ANY($1)").await?,
                    &[&delegates],
                )
                .await?;
            Ok(rows.iter().map(delegate_row).collect())
        })
    }

    fn set_delegates(
        &self,
        owner: &str,
        write: bool,
        delegates: &[String],
    ) -> Result<(), StoreError> {
        let owner = owner.to_owned();
        let delegates = delegates.to_vec();
        self.run(move |mut client| async move {
            let tx = client.transaction().await?;
            tx.execute(
                &tx.prepare_cached("DELETE FROM cal_delegate WHERE owner = $1 AND can_write = $2")
                    .await?,
                &[&owner, &write],
            )
            .await?;
            for delegate in &delegates {
                tx.execute(
                    &tx.prepare_cached(
                        "INSERT INTO cal_delegate (owner, delegate, can_write) VALUES ($1, $2, $3)
                     ON CONFLICT (owner, delegate) DO UPDATE SET can_write = excluded.can_write",
                    )
                    .await?,
                    &[&owner, delegate, &write],
                )
                .await?;
            }
            tx.commit().await?;
            Ok(())
        })
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
        let (sharee, uid, summary) = (sharee.to_owned(), uid.to_owned(), summary.to_owned());
        self.run(move |client| async move {
            client
                .execute(
                    &client.prepare_cached("INSERT INTO cal_share (collection_id, sharee, can_write, uid, summary, created_at)
                     VALUES ($1, $2, $3, $4, $5, $6)
                     ON CONFLICT (collection_id, sharee) DO UPDATE
                     SET can_write = excluded.can_write, summary = excluded.summary").await?,
                    &[&collection_id, &sharee, &write, &uid, &summary, &now],
                )
                .await?;
            Ok(())
        })
    }

    fn remove_share(&self, collection_id: i64, sharee: &str) -> Result<bool, StoreError> {
        let sharee = sharee.to_owned();
        self.run(move |client| async move {
            Ok(client
                .execute(
                    &client
                        .prepare_cached(
                            "DELETE FROM cal_share WHERE collection_id = $1 AND sharee = $2",
                        )
                        .await?,
                    &[&collection_id, &sharee],
                )
                .await?
                > 0)
        })
    }

    fn shares_of(&self, collection_id: i64) -> Result<Vec<Share>, StoreError> {
        self.run(move |client| async move {
            let rows = client
                .query(
                    &format!(
                        "SELECT {SHARE_COLUMNS} FROM cal_share s JOIN cal_collection c ON c.id = s.collection_id
                         WHERE s.collection_id = $1 ORDER BY s.sharee"
                    ),
                    &[&collection_id],
                )
                .await?;
            Ok(rows.iter().map(share_row).collect())
        })
    }

    fn shares_for(&self, sharee: &str) -> Result<Vec<Share>, StoreError> {
        let sharee = sharee.to_owned();
        self.run(move |client| async move {
            let rows = client
                .query(
                    &format!(
                        "SELECT {SHARE_COLUMNS} FROM cal_share s JOIN cal_collection c ON c.id = s.collection_id
                         WHERE s.sharee = $1 ORDER BY s.created_at, s.collection_id"
                    ),
                    &[&sharee],
                )
                .await?;
            Ok(rows.iter().map(share_row).collect())
        })
    }

    fn reply_share(
        &self,
        sharee: &str,
        uid: &str,
        accept: bool,
        mount: &str,
    ) -> Result<Option<Share>, StoreError> {
        let (sharee_c, uid_c) = (sharee.to_owned(), uid.to_owned());
        let mount = accept.then(|| mount.to_owned());
        let status: i64 = if accept { 1 } else { 2 };
        let updated = self.run(move |client| async move {
            Ok(client
                .execute(
                    &client.prepare_cached("UPDATE cal_share SET status = $3, mount = $4 WHERE sharee = $1 AND uid = $2").await?,
                    &[&sharee_c, &uid_c, &status, &mount],
                )
                .await?
                > 0)
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
        let (sharee, mount) = (sharee.to_owned(), mount.to_owned());
        let share = self.run(move |client| async move {
            let row = client
                .query_opt(
                    &format!(
                        "SELECT {SHARE_COLUMNS} FROM cal_share s JOIN cal_collection c ON c.id = s.collection_id
                         WHERE s.sharee = $1 AND s.mount = $2 AND s.status = 1"
                    ),
                    &[&sharee, &mount],
                )
                .await?;
            Ok(row.as_ref().map(share_row))
        })?;
        let Some(share) = share else { return Ok(None) };
        let collection = self.collection(&share.owner, &share.calendar)?;
        Ok(collection.map(|c| (share, c)))
    }
}

fn delegate_row(r: &tokio_postgres::Row) -> Delegate {
    Delegate {
        owner: r.get(0),
        delegate: r.get(1),
        write: r.get(2),
    }
}

#[cfg(test)]
mod tests;
