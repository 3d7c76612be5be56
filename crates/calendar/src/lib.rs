//! CalDAV calendar service (RFC 4791, RFC 4918, RFC 6578) for Serval.
//!
//! `ical`, `query` and `dav` are pure: text and numbers in, values out, no I/O or clock.
//! `store` persists collections, objects, the instance index and the change log.

pub mod dav;
pub mod ical;
pub mod query;
pub mod store;
