//! Mail service for Serval: the office's relay, submission server and local mailboxes (the
//! job of OS X Server's Postfix).

pub mod config;
pub mod envelope;
pub mod smtp;

pub use config::MailConfig;
