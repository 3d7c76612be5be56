//! DNS service for Serval: the office's resolver with its local names (the job of OS X
//! Server's BIND).
//!
//! Built so far: local zones answered authoritatively ([`zone`]), client ACLs, forwarding to
//! configured resolvers, over UDP and TCP. Full recursion from the root with DNSSEC
//! validation, priming and serve-stale (issue 15) comes next; until then the service is off by
//! default.
//!
//! Code map: [`config`] (the `[dns]` table), [`zone`] (local zones), [`server`] (the sans-IO
//! core: a query's bytes and the client's address in, what to do out), `net` (the tokio driver
//! for UDP, TCP and the forwarders), `service` (`bind`).

mod admin;
pub mod client;
pub mod config;
pub mod fuzzing;
mod net;
pub mod recursor;
pub mod server;
mod service;
pub mod zone;

pub use config::DnsConfig;
pub use service::{bind, DnsError};
