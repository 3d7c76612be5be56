//! `serval sendmail`: the sendmail(1) interface hooks and cron jobs call. The message comes
//! on standard input; it is handed to the running server over SMTP (its first `listen`
//! address, which `mynetworks` lets relay) or, when no server answers, written into the
//! queue directory, where the server picks it up when it starts or on its next rescan
//! (like Postfix's maildrop).

use std::path::Path;
use std::time::Duration;

use crate::envelope::{Envelope, Notify, Origin, Recipient, Ret};
use crate::message::{fields, split_headers};
use crate::smtp::client::{Connection, Failure, Hop, TlsPolicy};
use crate::smtp::session::{RecipientClass, Recipients};

/// sysexits(3) codes, which callers of sendmail (cron, git, PHP's mail()) understand.
pub const EX_USAGE: u8 = 64;
pub const EX_DATAERR: u8 = 65;
pub const EX_NOUSER: u8 = 67;
pub const EX_UNAVAILABLE: u8 = 69;
pub const EX_TEMPFAIL: u8 = 75;
pub const EX_CANTCREAT: u8 = 73;

/// Reads the message from sendmail's standard input: line ends become CRLF and, unless
/// `ignore_dots` (`-i`, `-oi`), a line holding a single dot ends the message, as in sendmail.
pub fn read_message(input: &[u8], ignore_dots: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len() + input.len() / 40 + 2);
    for line in input.split_inclusive(|&b| b == b'\n') {
        let text = line
            .strip_suffix(b"\n")
            .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
            .unwrap_or(line);
        if !ignore_dots && text == b"." {
            break;
        }
        out.extend_from_slice(text);
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// The addresses of the To, Cc and Bcc fields (for `-t`), in order, without duplicates.
pub fn header_recipients(message: &[u8]) -> Vec<String> {
    let (headers, _) = split_headers(message);
    let mut block = headers.to_vec();
    block.extend_from_slice(b"\r\n");
    let Some(parsed) = mail_parser::MessageParser::default().parse_headers(&block) else {
        return Vec::new();
    };
    let mut out: Vec<String> = Vec::new();
    for list in [parsed.to(), parsed.cc(), parsed.bcc()]
        .into_iter()
        .flatten()
    {
        for addr in list.iter() {
            if let Some(a) = addr.address() {
                let a = a.trim().to_string();
                if !a.is_empty() && !out.iter().any(|o| o.eq_ignore_ascii_case(&a)) {
                    out.push(a);
                }
            }
        }
    }
    out
}

/// Adds `From: sender` when the message has no From field (cron's mail often has none).
pub fn add_from_if_missing(message: Vec<u8>, sender: &str) -> Vec<u8> {
    let (headers, _) = split_headers(&message);
    if fields(headers).iter().any(|(name, _)| name == "from") {
        return message;
    }
    let mut out = format!("From: {sender}\r\n").into_bytes();
    // A message without headers at all gets the blank line that starts its body.
    if headers.is_empty() || !headers.contains(&b':') {
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(&message);
    out
}

fn recipient(address: &str, local_user: Option<String>) -> Recipient {
    Recipient {
        address: address.to_string(),
        local_user,
        notify: Notify::default_notices(),
        orcpt: None,
    }
}

/// How `submit` ended.
pub enum Submitted {
    /// The server took it: "250 2.0.0 Ok: queued as ID".
    Queued(String),
    /// The server refused it (a recipient, the size): its reply, and the sysexits code.
    Refused { reply: String, code: u8 },
    /// No server answered at `addr`: the caller writes to the queue directory instead.
    NoServer(String),
}

/// Hands the message to the running server at `addr` over SMTP.
pub async fn submit(
    addr: std::net::SocketAddr,
    helo: &str,
    sender: &str,
    recipients: &[String],
    message: &[u8],
) -> Submitted {
    let hop = Hop {
        host: addr.ip().to_string(),
        port: addr.port(),
        addresses: vec![addr.ip()],
        tls: TlsPolicy::None,
        tls_required_by: String::new(),
        roots: std::sync::Arc::new(rustls::RootCertStore::empty()),
        auth: None,
        helo: helo.to_string(),
    };
    let mut conn = match Connection::open(&hop).await {
        Ok(c) => c,
        Err(f) if f.reply.is_none() => return Submitted::NoServer(f.message),
        Err(f) => return refused(f),
    };
    let envelope = Envelope {
        sender: sender.to_string(),
        recipients: recipients.iter().map(|r| recipient(r, None)).collect(),
        ret: Ret::Full,
        envid: None,
        smtputf8: !message.is_ascii() || !sender.is_ascii(),
        origin: Origin::default(),
        received_at: 0,
    };
    if let Err(f) = conn.mail(&envelope, message.len()).await {
        return refused(f);
    }
    for r in &envelope.recipients {
        match conn.rcpt(r).await {
            Ok(reply) if reply.is_ok() => {}
            Ok(reply) => {
                return Submitted::Refused {
                    code: if reply.code == 550 || reply.code == 551 || reply.code == 553 {
                        EX_NOUSER
                    } else if reply.is_permanent() {
                        EX_UNAVAILABLE
                    } else {
                        EX_TEMPFAIL
                    },
                    reply: format!("<{}>: {}", r.address, reply.text()),
                }
            }
            Err(f) => return refused(f),
        }
    }
    let result = match conn.data(message).await {
        Ok(reply) => {
            let text = reply.text();
            Submitted::Queued(
                text.rsplit_once("queued as ")
                    .map(|(_, id)| id.trim().to_string())
                    .unwrap_or(text),
            )
        }
        Err(f) => refused(f),
    };
    let _ = tokio::time::timeout(Duration::from_secs(2), conn.quit()).await;
    result
}

fn refused(f: Failure) -> Submitted {
    Submitted::Refused {
        code: if f.permanent {
            EX_UNAVAILABLE
        } else {
            EX_TEMPFAIL
        },
        reply: format!("{} failed: {}", f.stage.name(), f.message),
    }
}

/// Writes the message into the queue directory (no server runs). Local recipients are
/// checked against the directory now, as the server would at RCPT. Returns the queue ID.
pub fn drop_into_queue(
    mail_dir: &Path,
    hostname: &str,
    users: &dyn Recipients,
    sender: &str,
    recipients: &[String],
    message: &[u8],
) -> Result<String, (String, u8)> {
    let mut list = Vec::new();
    for address in recipients {
        let local_user = match users.classify(address) {
            RecipientClass::Local { user } => Some(user),
            RecipientClass::Remote => None,
            RecipientClass::UnknownLocal => {
                return Err((format!("<{address}>: no such user here"), EX_NOUSER))
            }
            RecipientClass::Unavailable => {
                return Err((
                    format!("<{address}>: the directory cannot be read now"),
                    EX_TEMPFAIL,
                ))
            }
        };
        list.push(recipient(address, local_user));
    }
    let now = serval_core::now_unix();
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_default();
    let envelope = Envelope {
        sender: sender.to_string(),
        recipients: list,
        ret: Ret::Full,
        envid: None,
        smtputf8: !message.is_ascii() || !sender.is_ascii(),
        origin: Origin {
            via: "sendmail".into(),
            auth_user: (!user.is_empty()).then_some(user),
            ..Origin::default()
        },
        received_at: now,
    };
    let spool = crate::queue::spool::Spool::open(mail_dir)
        .map_err(|e| (format!("{}: {e}", mail_dir.display()), EX_CANTCREAT))?;
    let id = crate::queue::spool::new_queue_id(crate::queue::now_micros());
    let prepared = crate::message::prepare(message, &envelope, &id, hostname, now);
    spool
        .write(&id, &envelope, &prepared)
        .map_err(|e| (format!("{}: {e}", spool.queue.display()), EX_CANTCREAT))?;
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_line_ends_input_unless_ignored() {
        let input = b"Subject: x\n\nbody\n.\nafter\n";
        assert_eq!(read_message(input, false), b"Subject: x\r\n\r\nbody\r\n");
        assert_eq!(
            read_message(input, true),
            b"Subject: x\r\n\r\nbody\r\n.\r\nafter\r\n"
        );
        assert_eq!(read_message(b"no newline", false), b"no newline\r\n");
    }

    #[test]
    fn recipients_from_to_cc_bcc() {
        let msg = read_message(
            b"From: a@example.test\nTo: \"Doe, Jane\" <jane@example.test>, bob@remote.test\nCc: Team: carol@example.test;\nBcc: hidden@remote.test,\n BOB@remote.test\nSubject: s\n\nTo: notme@example.test\n",
            true,
        );
        assert_eq!(
            header_recipients(&msg),
            [
                "jane@example.test",
                "bob@remote.test",
                "carol@example.test",
                "hidden@remote.test"
            ]
        );
    }

    #[test]
    fn from_added_only_when_missing() {
        let msg = add_from_if_missing(b"Subject: s\r\n\r\nbody\r\n".to_vec(), "root@h");
        assert_eq!(msg, b"From: root@h\r\nSubject: s\r\n\r\nbody\r\n");
        let msg = add_from_if_missing(b"From: x@y\r\n\r\nb\r\n".to_vec(), "root@h");
        assert_eq!(msg, b"From: x@y\r\n\r\nb\r\n");
        let msg = add_from_if_missing(b"just a body\r\n".to_vec(), "root@h");
        assert_eq!(msg, b"From: root@h\r\n\r\njust a body\r\n");
    }
}
