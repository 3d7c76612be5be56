//! Calendar storage behind [`CalendarStore`], with a SQLite implementation over core's store.
//!
//! Tables: collections (per owner, with their properties and a sync revision that doubles
//! as the ctag), objects (UNIQUE (collection, uid) so a PUT never scans the calendar), an
//! instance index of expanded occurrences for time-range queries and free-busy, and an
//! append-only change log per collection for sync-collection, shares, and each sharee's
//! own view properties of a shared calendar. The trait is blocking; the
//! HTTP layer calls it from `spawn_blocking`.

mod postgres;
pub mod schedule;
pub mod sharee_props;
mod sqlite;

pub use postgres::PgCalendarStore;
pub use schedule::ScheduleStore;
pub use sharee_props::ShareePropStore;
pub use sqlite::SqliteCalendarStore;

use crate::dav::request::PropName;
use crate::ical::expand::{BusyStatus, TimeRange};
use crate::ical::ComponentKind;
use crate::query::freebusy::BusyPeriod;

/// The calendar's tables for `serval store migrate` (SQLite to PostgreSQL).
pub fn copy_tables() -> &'static [serval_core::store::copy::TableCopy] {
    postgres::copy_tables()
}

/// The calendar schema version this binary writes on PostgreSQL (for `serval check`).
pub fn postgres_schema_version() -> i64 {
    postgres::schema_version()
}

/// The calendar store over the node's engine, migrated.
pub fn open(
    engine: &serval_core::store::Engine,
) -> Result<std::sync::Arc<dyn CalendarStore>, StoreError> {
    Ok(match engine {
        serval_core::store::Engine::Sqlite(store) => {
            std::sync::Arc::new(SqliteCalendarStore::open(store.clone())?)
        }
        serval_core::store::Engine::Postgres(store) => {
            std::sync::Arc::new(PgCalendarStore::open(store.clone())?)
        }
    })
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(transparent)]
    Core(#[from] serval_core::store::StoreError),
    #[error("store: {0}")]
    Sqlite(#[from] rusqlite::Error),
}

/// A calendar collection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Collection {
    pub id: i64,
    pub owner: String,
    /// Path segment under the owner's home.
    pub name: String,
    /// Components accepted (supported-calendar-component-set).
    pub components: Vec<ComponentKind>,
    /// Sync revision: bumped by every change; the ctag and sync-token derive from it.
    pub revision: i64,
    /// Properties set by clients (displayname, calendar-color, ...), value as text.
    pub props: Vec<(PropName, String)>,
    /// Set when this is another user's calendar mounted in `owner`'s home by a share:
    /// the real owner's name. The store always returns `None`.
    pub shared_from: Option<String>,
}

impl Collection {
    pub fn prop(&self, ns: &str, name: &str) -> Option<&str> {
        self.props
            .iter()
            .find(|(n, _)| n.is(ns, name))
            .map(|(_, v)| v.as_str())
    }
}

/// Metadata of a stored calendar object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectMeta {
    pub href: String,
    pub etag: String,
    pub size: usize,
    pub kind: ComponentKind,
    pub modified_at: i64,
}

/// A stored calendar object with its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredObject {
    pub meta: ObjectMeta,
    pub uid: String,
    pub data: String,
}

/// One indexed occurrence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexedInstance {
    pub start: i64,
    pub end: i64,
    pub busy: BusyStatus,
}

/// Everything a PUT writes, computed before the store is touched.
#[derive(Debug, Clone)]
pub struct NewObject {
    pub uid: String,
    pub kind: ComponentKind,
    pub etag: String,
    pub data: String,
    pub instances: Vec<IndexedInstance>,
    /// Instances are indexed only for starts before this; `None` when all are indexed.
    pub indexed_until: Option<i64>,
}

/// HTTP preconditions of a PUT (RFC 7232).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PutCondition {
    /// `If-Match`: the current ETag must equal this (quoted) value, or `*` for any.
    pub if_match: Option<String>,
    /// `If-None-Match: *`: the resource must not exist.
    pub if_none_match_any: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PutOutcome {
    Created {
        etag: String,
    },
    Updated {
        etag: String,
    },
    PreconditionFailed,
    /// Another resource in the collection has this UID (CALDAV:no-uid-conflict).
    UidConflict {
        existing_href: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeleteOutcome {
    Deleted,
    NotFound,
    PreconditionFailed,
}

/// A change since a sync revision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub href: String,
    pub deleted: bool,
    /// Revision of this (latest) change of the href.
    pub revision: i64,
}

/// A delegation grant (CalendarServer calendar-proxy).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delegate {
    pub owner: String,
    /// A user name, or `group:NAME`.
    pub delegate: String,
    pub write: bool,
}

/// Where a sharing invitation stands (CalendarServer sharing).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShareStatus {
    Pending,
    Accepted,
    Declined,
}

/// A calendar shared with one user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Share {
    pub collection_id: i64,
    /// The sharer and their calendar's name.
    pub owner: String,
    pub calendar: String,
    pub sharee: String,
    pub write: bool,
    pub status: ShareStatus,
    /// Invitation id (the notification's name, `in-reply-to` of the reply).
    pub uid: String,
    /// Name under the sharee's home once accepted.
    pub mount: Option<String>,
    pub summary: String,
}

/// Everything the service stores; scheduling's part is [`ScheduleStore`], sharees' own
/// view properties of shared calendars [`ShareePropStore`].
pub trait CalendarStore: ScheduleStore + ShareePropStore + Send + Sync + 'static {
    fn collections(&self, owner: &str) -> Result<Vec<Collection>, StoreError>;
    fn collection(&self, owner: &str, name: &str) -> Result<Option<Collection>, StoreError>;
    /// `None` when it already exists.
    fn create_collection(
        &self,
        owner: &str,
        name: &str,
        components: &[ComponentKind],
        props: &[(PropName, String)],
        now: i64,
    ) -> Result<Option<Collection>, StoreError>;
    fn delete_collection(&self, id: i64) -> Result<(), StoreError>;
    /// Sets (`Some`) or removes (`None`) properties; bumps the revision.
    fn set_props(&self, id: i64, updates: &[(PropName, Option<String>)]) -> Result<(), StoreError>;

    fn objects(&self, collection_id: i64) -> Result<Vec<ObjectMeta>, StoreError>;
    fn object(&self, collection_id: i64, href: &str) -> Result<Option<StoredObject>, StoreError>;
    /// The objects at `hrefs`, in order (`None` where there is none): one round trip on
    /// engines where a lookup crosses the network.
    fn objects_at(
        &self,
        collection_id: i64,
        hrefs: &[String],
    ) -> Result<Vec<Option<StoredObject>>, StoreError> {
        hrefs
            .iter()
            .map(|h| self.object(collection_id, h))
            .collect()
    }
    fn put_object(
        &self,
        collection_id: i64,
        href: &str,
        object: &NewObject,
        condition: &PutCondition,
        now: i64,
    ) -> Result<PutOutcome, StoreError>;
    fn delete_object(
        &self,
        collection_id: i64,
        href: &str,
        if_match: Option<&str>,
    ) -> Result<DeleteOutcome, StoreError>;

    /// Objects of `kind` with an indexed instance overlapping `range`, plus objects whose
    /// index stops before the range end (the caller re-expands those). Without a range:
    /// every object of the kind. Returns (object, needs_check).
    fn query(
        &self,
        collection_id: i64,
        kind: Option<ComponentKind>,
        range: Option<TimeRange>,
    ) -> Result<Vec<(StoredObject, bool)>, StoreError>;
    /// Busy intervals from the index for free-busy; plus objects to re-expand.
    fn busy(
        &self,
        collection_ids: &[i64],
        range: TimeRange,
    ) -> Result<(Vec<BusyPeriod>, Vec<String>), StoreError>;

    /// Changes after `revision` (latest per href, in revision order) up to the current
    /// revision, which is returned with them; `None` if `revision` is unknown.
    fn changes_since(
        &self,
        collection_id: i64,
        revision: i64,
    ) -> Result<Option<(Vec<Change>, i64)>, StoreError>;

    /// Drops change-log rows logged before `before` (Unix seconds) that a sync no longer
    /// needs; tokens older than the newest dropped revision become unknown (`None` from
    /// [`Self::changes_since`]). Returns the number of rows removed.
    fn prune_changes(&self, before: i64) -> Result<usize, StoreError>;

    fn delegates(&self, owner: &str) -> Result<Vec<Delegate>, StoreError>;
    /// Owners who granted `delegate` (a user or `group:NAME`) read or write.
    fn delegations_to(&self, delegates: &[String]) -> Result<Vec<Delegate>, StoreError>;
    /// Replaces the owner's read (`write == false`) or write proxy list.
    fn set_delegates(
        &self,
        owner: &str,
        write: bool,
        delegates: &[String],
    ) -> Result<(), StoreError>;

    /// Invites `sharee` (or changes their access); keeps an earlier answer.
    fn upsert_share(
        &self,
        collection_id: i64,
        sharee: &str,
        write: bool,
        uid: &str,
        summary: &str,
        now: i64,
    ) -> Result<(), StoreError>;
    fn remove_share(&self, collection_id: i64, sharee: &str) -> Result<bool, StoreError>;
    fn shares_of(&self, collection_id: i64) -> Result<Vec<Share>, StoreError>;
    fn shares_for(&self, sharee: &str) -> Result<Vec<Share>, StoreError>;
    /// Records the sharee's answer to invitation `uid`; `mount` names the calendar in their home.
    fn reply_share(
        &self,
        sharee: &str,
        uid: &str,
        accept: bool,
        mount: &str,
    ) -> Result<Option<Share>, StoreError>;
    /// The accepted share mounted as `mount` in `sharee`'s home, with the real calendar.
    fn mounted_share(
        &self,
        sharee: &str,
        mount: &str,
    ) -> Result<Option<(Share, Collection)>, StoreError>;
}

/// The calendar store on each engine, for tests that must hold on both.
#[cfg(test)]
pub(crate) mod engines {
    use super::{CalendarStore, PgCalendarStore, SqliteCalendarStore};

    /// Keeps a test's store alive: its SQLite folder or its PostgreSQL server.
    #[allow(dead_code)]
    pub enum Keep {
        Sqlite(tempfile::TempDir),
        Postgres(serval_core::store::pg_testing::TestPostgres),
    }

    pub fn stores() -> Vec<(Keep, Box<dyn CalendarStore>)> {
        let dir = tempfile::tempdir().unwrap();
        let core = serval_core::Store::open(&dir.path().join("serval.db")).unwrap();
        let sqlite = SqliteCalendarStore::open(core).unwrap();
        let server = serval_core::store::pg_testing::TestPostgres::start();
        let postgres = PgCalendarStore::open(server.store()).unwrap();
        vec![
            (Keep::Sqlite(dir), Box::new(sqlite)),
            (Keep::Postgres(server), Box::new(postgres)),
        ]
    }
}
