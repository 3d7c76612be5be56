//! What travels with a message through the queue: sender, recipients with their DSN
//! requests, and where the message came from.

use serde::{Deserialize, Serialize};

/// RFC 3461 NOTIFY of one recipient.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notify {
    pub success: bool,
    /// Absent NOTIFY means failure (and delay) notices, as RFC 3461 4.1 says.
    pub failure: bool,
    pub delay: bool,
    pub never: bool,
}

impl Notify {
    pub fn default_notices() -> Notify {
        Notify {
            failure: true,
            delay: true,
            ..Notify::default()
        }
    }

    pub fn from_flags(flags: u64) -> Notify {
        use smtp_proto::*;
        if flags
            & (RCPT_NOTIFY_SUCCESS | RCPT_NOTIFY_FAILURE | RCPT_NOTIFY_DELAY | RCPT_NOTIFY_NEVER)
            == 0
        {
            return Notify::default_notices();
        }
        Notify {
            success: flags & RCPT_NOTIFY_SUCCESS != 0,
            failure: flags & RCPT_NOTIFY_FAILURE != 0,
            delay: flags & RCPT_NOTIFY_DELAY != 0,
            never: flags & RCPT_NOTIFY_NEVER != 0,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recipient {
    pub address: String,
    /// The directory user (or postmaster) whose Maildir gets it; `None`: another domain.
    pub local_user: Option<String>,
    pub notify: Notify,
    /// ORCPT as given ("rfc822;bob@example.com").
    pub orcpt: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum Ret {
    /// Return the whole message in a DSN.
    #[default]
    Full,
    /// Only its headers.
    Headers,
}

/// The client that handed the message over.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Origin {
    /// "smtp", "submission", "sendmail" or "bounce".
    pub via: String,
    pub ip: String,
    pub helo: String,
    pub auth_user: Option<String>,
    pub tls: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    /// The reverse path; empty for bounces (the null sender).
    pub sender: String,
    pub recipients: Vec<Recipient>,
    pub ret: Ret,
    pub envid: Option<String>,
    pub smtputf8: bool,
    pub origin: Origin,
    /// Unix seconds when the message was accepted.
    pub received_at: u64,
}

/// Splits an address into local part and lower-cased domain; `None` without an `@`.
pub fn split_address(address: &str) -> Option<(&str, String)> {
    let (local, domain) = address.rsplit_once('@')?;
    if local.is_empty() || domain.is_empty() {
        return None;
    }
    Some((local, domain.trim_end_matches('.').to_ascii_lowercase()))
}

/// Whether `address` is a plausible mailbox (local@domain, no spaces or controls).
pub fn is_mailbox(address: &str) -> bool {
    match split_address(address) {
        Some((local, domain)) => {
            local.len() <= 64
                && !address.bytes().any(|b| b <= b' ' || b == 0x7f)
                && crate::config::is_domain(&domain)
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses() {
        assert_eq!(
            split_address("Bob@Example.COM."),
            Some(("Bob", "example.com".into()))
        );
        assert!(is_mailbox("a.b+c@mail.example.test"));
        assert!(!is_mailbox("nobody"));
        assert!(!is_mailbox("a b@example.test"));
        assert!(!is_mailbox("a@-bad-.test"));
    }

    #[test]
    fn notify_defaults_to_failure_and_delay() {
        assert_eq!(Notify::from_flags(0), Notify::default_notices());
        let never = Notify::from_flags(smtp_proto::RCPT_NOTIFY_NEVER);
        assert!(never.never && !never.failure);
    }
}
