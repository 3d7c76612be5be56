//! Delivery status notifications (RFC 3464 multipart/report) to the sender, and the
//! postmaster's notice when a bounce itself cannot be delivered.
//!
//! The report is formatted here: its parts are fixed text fields, and writing them directly
//! keeps each one exactly as RFC 3464 spells it.

use crate::envelope::{Envelope, Ret};
use crate::message::{rfc5322_date, split_headers};

/// One recipient's line in a report.
#[derive(Debug, Clone)]
pub struct ReportedRecipient {
    pub address: String,
    pub orcpt: Option<String>,
    /// "failed", "delivered" or "delayed".
    pub action: &'static str,
    pub status: String,
    /// The next hop ("relay.example.com:587", "local").
    pub remote: Option<String>,
    /// The remote reply or the error, in words.
    pub diagnostic: String,
}

/// Most of the original returned in a report (Postfix's bounce_size_limit).
const RETURN_LIMIT: usize = 50_000;

pub struct Report<'a> {
    pub hostname: &'a str,
    pub queue_id: &'a str,
    pub envelope: &'a Envelope,
    pub message: &'a [u8],
    pub recipients: Vec<ReportedRecipient>,
    pub now: u64,
    /// Addressed to the postmaster about an undeliverable bounce (a double bounce).
    pub to_postmaster: Option<&'a str>,
    pub dsn_id: &'a str,
}

impl Report<'_> {
    pub fn render(&self) -> Vec<u8> {
        let boundary = format!("{}.{}/{}", self.dsn_id, self.now, self.hostname);
        let to = match self.to_postmaster {
            Some(pm) => pm.to_string(),
            None => self.envelope.sender.clone(),
        };
        let failed = self.recipients.iter().any(|r| r.action == "failed");
        let subject = match (self.to_postmaster.is_some(), failed) {
            (true, _) => "Postmaster notice: undeliverable mail nobody else can receive",
            (false, true) => "Undelivered Mail Returned to Sender",
            (false, false) => "Successful Mail Delivery Report",
        };
        let mut out = String::new();
        out.push_str(&format!(
            "From: Mail Delivery System <MAILER-DAEMON@{host}>\r\nTo: <{to}>\r\nSubject: {subject}\r\nDate: {date}\r\nMessage-ID: <{id}@{host}>\r\nAuto-Submitted: auto-replied\r\nMIME-Version: 1.0\r\nContent-Type: multipart/report; report-type=delivery-status;\r\n\tboundary=\"{boundary}\"\r\n\r\nThis is a MIME-encapsulated message.\r\n\r\n",
            host = self.hostname,
            date = rfc5322_date(self.now),
            id = self.dsn_id,
        ));
        // The human part.
        out.push_str(&format!(
            "--{boundary}\r\nContent-Description: Notification\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nThis is the mail system at host {}.\r\n\r\n",
            self.hostname
        ));
        if self.to_postmaster.is_some() {
            out.push_str(&format!(
                "A message (queue id {}) from <{}> could not be delivered, and no\r\nnotice could be sent back: its sender is empty (it was itself a bounce)\r\nor could not be reached. It is kept here so that nothing is lost.\r\n\r\n",
                self.queue_id, self.envelope.sender
            ));
        } else if failed {
            out.push_str("I'm sorry to have to inform you that your message could not\r\nbe delivered to one or more recipients. It's attached below.\r\n\r\n");
        } else {
            out.push_str("Your message was delivered to the recipients below.\r\n\r\n");
        }
        for r in &self.recipients {
            out.push_str(&format!(
                "<{}>: {} ({})\r\n",
                r.address, r.diagnostic, r.action
            ));
        }
        out.push_str("\r\n");
        // The machine-readable part.
        out.push_str(&format!(
            "--{boundary}\r\nContent-Description: Delivery report\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; {}\r\nX-Serval-Queue-ID: {}\r\n",
            self.hostname, self.queue_id
        ));
        if let Some(envid) = &self.envelope.envid {
            out.push_str(&format!("Original-Envelope-Id: {envid}\r\n"));
        }
        out.push_str(&format!(
            "Arrival-Date: {}\r\n",
            rfc5322_date(self.envelope.received_at)
        ));
        for r in &self.recipients {
            out.push_str(&format!("\r\nFinal-Recipient: rfc822; {}\r\n", r.address));
            if let Some(orcpt) = &r.orcpt {
                out.push_str(&format!("Original-Recipient: rfc822; {orcpt}\r\n"));
            }
            out.push_str(&format!("Action: {}\r\nStatus: {}\r\n", r.action, r.status));
            if let Some(remote) = &r.remote {
                out.push_str(&format!("Remote-MTA: dns; {remote}\r\n"));
            }
            out.push_str(&format!(
                "Diagnostic-Code: smtp; {}\r\nLast-Attempt-Date: {}\r\n",
                one_line(&r.diagnostic),
                rfc5322_date(self.now)
            ));
        }
        out.push_str("\r\n");
        let mut bytes = out.into_bytes();
        // The original.
        let (headers, _) = split_headers(self.message);
        let whole = self.envelope.ret == Ret::Full && self.message.len() <= RETURN_LIMIT;
        if whole {
            bytes.extend_from_slice(
                format!("--{boundary}\r\nContent-Description: Undelivered Message\r\nContent-Type: message/rfc822\r\n\r\n").as_bytes(),
            );
            bytes.extend_from_slice(self.message);
        } else {
            bytes.extend_from_slice(
                format!("--{boundary}\r\nContent-Description: Undelivered Message Headers\r\nContent-Type: text/rfc822-headers\r\n\r\n").as_bytes(),
            );
            bytes.extend_from_slice(headers);
        }
        if !bytes.ends_with(b"\r\n") {
            bytes.extend_from_slice(b"\r\n");
        }
        bytes.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
        bytes
    }
}

fn one_line(text: &str) -> String {
    text.replace(['\r', '\n'], " ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envelope::{Origin, Recipient};

    #[test]
    fn report_has_the_three_parts() {
        let envelope = Envelope {
            sender: "alice@example.test".into(),
            recipients: vec![Recipient {
                address: "bob@remote.test".into(),
                local_user: None,
                notify: crate::envelope::Notify::default_notices(),
                orcpt: None,
            }],
            ret: Ret::Full,
            envid: Some("E1".into()),
            smtputf8: false,
            origin: Origin::default(),
            received_at: 1_800_000_000,
        };
        let msg = b"Subject: hello\r\n\r\nbody\r\n";
        let report = Report {
            hostname: "mail.example.test",
            queue_id: "Q1",
            envelope: &envelope,
            message: msg,
            recipients: vec![ReportedRecipient {
                address: "bob@remote.test".into(),
                orcpt: None,
                action: "failed",
                status: "5.1.1".into(),
                remote: Some("relay.test:587".into()),
                diagnostic: "RCPT failed: 550 5.1.1 no such user".into(),
            }],
            now: 1_800_000_100,
            to_postmaster: None,
            dsn_id: "D1",
        };
        let text = String::from_utf8(report.render()).unwrap();
        assert!(text.contains("To: <alice@example.test>\r\n"));
        assert!(text.contains("Content-Type: multipart/report; report-type=delivery-status;"));
        assert!(text.contains("\r\nFinal-Recipient: rfc822; bob@remote.test\r\nAction: failed\r\nStatus: 5.1.1\r\nRemote-MTA: dns; relay.test:587\r\nDiagnostic-Code: smtp; RCPT failed: 550 5.1.1 no such user\r\n"));
        assert!(text.contains("Original-Envelope-Id: E1\r\n"));
        assert!(text.contains("Content-Type: message/rfc822\r\n\r\nSubject: hello\r\n\r\nbody\r\n"));
        assert!(text.trim_end().ends_with("--"));
    }
}
