//! Mail service for Serval: the office's relay, submission server and local mailboxes (the
//! job of OS X Server's Postfix).
//!
//! Code map: [`config`] (the `[mail]` table), [`smtp`] (the sans-IO server session, the DATA
//! reader, the outbound client), [`envelope`] (what travels with a message), [`message`]
//! (Received, Message-ID, Date, Bcc), [`queue`] (the durable spool and the delivery loop),
//! [`deliver`] (Maildir, smarthost), [`mx`] (direct MX delivery), [`mta_sts`] (RFC 8461 policies), [`dane`] (RFC 7672 TLSA checks), [`dsn`] (RFC 3464 reports), [`dkim`], [`inbound`] (SPF, DKIM, DMARC of mail from outside), [`users`]
//! (who is local), and the command-line tools' cores: [`sendmail`], [`relay_test`],
//! [`import_postfix`].

mod admin;
pub mod config;
pub mod dane;
pub mod deliver;
pub mod dkim;
pub mod dsn;
pub mod envelope;
pub mod fuzzing;
pub mod import_postfix;
pub mod inbound;
pub mod message;
pub mod mta_sts;
pub mod mx;
mod net;
pub mod queue;
pub mod relay_test;
pub mod sendmail;
mod service;
pub mod smtp;
pub mod users;

pub use config::MailConfig;
pub use service::{bind, route, MailError};
