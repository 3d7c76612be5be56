//! CalDAV calendar service for Serval (RFC 4791, RFC 4918, RFC 6578, RFC 6764, RFC 3744
//! subset, CalendarServer calendar-proxy and sharing): iCal Server's job.
//!
//! Code map, in reading order:
//! - [`ical`]: iCalendar resources (calcard) validated per RFC 4791 §4.1, expanded into UTC
//!   instances ([`ical::expand`]); REPORT calendar-data options in [`ical::calendar_data`].
//! - [`query`]: calendar-query filters and their evaluation; free-busy merging.
//! - [`schedule`]: RFC 6638/5546 iTIP messages (REQUEST, CANCEL, REPLY, VFREEBUSY, and
//!   CANCEL of single instances) over content lines, pure; `http::scheduling` delivers
//!   them, `http::outbox` answers free-busy.
//! - [`dav`]: WebDAV/CalDAV request bodies in (quick-xml), multistatus/errors out.
//! - [`store`]: `CalendarStore` and its SQLite implementation over core's store:
//!   collections, objects with a UNIQUE UID index, the instance index, the change log,
//!   delegates, shares.
//! - [`http`]: the axum driver (auth: Basic and Digest over core's `auth`, rights, one
//!   handler per method, REPORTs, sharing).
//! - [`paths`]: the URL space; [`service`]: `bind`; [`admin`]: CLI/admin-page operations;
//!   [`mod@bench`]: the benchmark client.
//!
//! **Architecture invariants:** `ical`, `query` and `dav` are pure (no tokio, no store, no
//! clock); the HTTP layer reads the clock and passes `now` down. Every access to another
//! user's data goes through `http::rights` (owner, proxy delegate, group member) or a share
//! (`http::objects::resolve_collection`); everything else answers 404. Nothing is advertised
//! in the DAV header that does not work (`calendar-auto-schedule` came with RFC 6638).
//!
//! **API boundary:** [`bind`], [`CalendarConfig`], [`CalendarError`], [`admin`] (delegate, share,
//! import_ics, export_ics), [`mod@bench`].

pub mod admin;
pub mod bench;
pub mod config;
pub mod dav;
pub mod http;
pub mod ical;
pub mod paths;
pub mod query;
pub mod schedule;
pub mod service;
pub mod store;

pub use config::CalendarConfig;
pub use service::{bind, CalendarError};
