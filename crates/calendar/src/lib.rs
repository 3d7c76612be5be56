//! CalDAV calendar service (RFC 4791, RFC 4918, RFC 6578) for Serval.
//!
//! `ical`, `query` and `dav` are pure: text and numbers in, values out, no I/O or clock.
//! `store` persists collections, objects, the instance index and the change log; `http`
//! is the axum driver and `service` starts it.
//!
//! **API boundary:** [`bind`], [`CalendarConfig`], [`CalendarError`].

pub mod admin;
pub mod bench;
pub mod config;
pub mod dav;
pub mod http;
pub mod ical;
pub mod paths;
pub mod query;
pub mod service;
pub mod store;

pub use config::CalendarConfig;
pub use service::{bind, CalendarError};
