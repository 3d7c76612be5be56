//! Storage for RFC 6638 scheduling: finding a user's copy of a meeting by UID across
//! their calendars, and the outgoing iTIP queue for recipients outside Serval (to be sent
//! as iMIP, RFC 6047, by the mail service once it exists).
//!
//! Scheduling inboxes are ordinary collections named [`INBOX`]; outboxes hold nothing and
//! are not stored.

use super::{Collection, StoreError, StoredObject};

/// Collection name of a user's scheduling inbox (RFC 6638 §2.2).
pub const INBOX: &str = "inbox";
/// Path segment of a user's scheduling outbox (RFC 6638 §2.1); never stored.
pub const OUTBOX: &str = "outbox";

/// An iTIP message waiting for the mail service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuedItip {
    pub id: i64,
    /// The Serval user whose action produced it.
    pub sender: String,
    /// `mailto:` address of the recipient.
    pub recipient: String,
    /// REQUEST, CANCEL or REPLY.
    pub method: String,
    pub uid: String,
    /// The iTIP message, a whole VCALENDAR with METHOD.
    pub message: String,
    pub queued_at: i64,
}

/// A message to queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewItip<'a> {
    pub sender: &'a str,
    pub recipient: &'a str,
    pub method: &'a str,
    pub uid: &'a str,
    pub message: &'a str,
}

/// Most queue rows listed at once (the admin page shows the newest).
pub const MAX_QUEUE_LISTING: usize = 500;

pub trait ScheduleStore {
    /// The owner's copy of `uid` in one of their calendars (never the inbox).
    fn object_by_uid(
        &self,
        owner: &str,
        uid: &str,
    ) -> Result<Option<(Collection, StoredObject)>, StoreError>;
    /// The href holding `uid` in one collection.
    fn href_of_uid(&self, collection_id: i64, uid: &str) -> Result<Option<String>, StoreError>;
    fn queue_itip(&self, message: &NewItip<'_>, now: i64) -> Result<i64, StoreError>;
    /// The newest queued messages, newest first, at most `limit` (capped at
    /// [`MAX_QUEUE_LISTING`]).
    fn itip_queue(&self, limit: usize) -> Result<Vec<QueuedItip>, StoreError>;
}
