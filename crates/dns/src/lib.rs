//! DNS service for Serval: the office's resolver with its local names (the job of OS X
//! Server's BIND).
//!
//! Full recursion from the root ([`recursor`]) with DNSSEC validation, priming, serve-stale
//! and RFC 5011; local zones answered authoritatively ([`zone`]); client ACLs; forwarding when
//! `forwarders` are set; over UDP and TCP.
//!
//! Code map: [`config`] (the `[dns]` table), [`zone`] (local zones), [`server`] (the sans-IO
//! front: a query's bytes and the client's address in, what to do out), [`recursor`] (the
//! walk, cache and validation), `net` (the tokio driver for UDP and TCP), `service` (`bind`),
//! `admin` (the admin page's DNS panel), [`client`] (`serval dns query`).

mod admin;
pub mod client;
pub mod config;
pub mod fuzzing;
pub mod import_named;
mod net;
pub mod recursor;
pub mod server;
mod service;
pub mod testing;
pub mod zone;

pub use config::DnsConfig;
pub use service::{bind, DnsError};
