//! Header work on accepted messages: the Received line, a Message-ID and Date when the
//! client gave none, and no Bcc. Only the header block is touched; the body is copied as is.

use crate::envelope::Envelope;

/// Splits a message at the blank line after the headers: (headers with their last CRLF, body).
pub fn split_headers(message: &[u8]) -> (&[u8], &[u8]) {
    if message.starts_with(b"\r\n") {
        return (&message[..0], &message[2..]);
    }
    match find(message, b"\r\n\r\n") {
        Some(i) => (&message[..i + 2], &message[i + 4..]),
        // No body: everything is headers (if it looks like headers at all).
        None => (message, &message[message.len()..]),
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// The header fields as (name, whole field with continuation lines and CRLF).
pub fn fields(headers: &[u8]) -> Vec<(String, &[u8])> {
    let mut out: Vec<(String, &[u8])> = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while i < headers.len() {
        let end = match find(&headers[i..], b"\r\n") {
            Some(n) => i + n + 2,
            None => headers.len(),
        };
        let next_is_continuation = matches!(headers.get(end), Some(b' ' | b'\t'));
        if !next_is_continuation {
            let field = &headers[start..end];
            let name = field
                .iter()
                .position(|&b| b == b':')
                .map(|c| {
                    String::from_utf8_lossy(&field[..c])
                        .trim()
                        .to_ascii_lowercase()
                })
                .unwrap_or_default();
            out.push((name, field));
            start = end;
        }
        i = end;
    }
    out
}

/// The unfolded value of the first field called `name` (lower case).
pub fn header_value(headers: &[u8], name: &str) -> Option<String> {
    fields(headers)
        .into_iter()
        .find(|(n, _)| n == name)
        .map(|(_, f)| {
            let text = String::from_utf8_lossy(f);
            let value = text.split_once(':').map(|(_, v)| v).unwrap_or("");
            value.replace("\r\n", "").trim().to_string()
        })
}

/// RFC 5322 date ("Mon, 7 Dec 2026 18:20:00 +0000").
pub fn rfc5322_date(unix: u64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp(unix as i64)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    t.format(&time::format_description::well_known::Rfc2822)
        .unwrap_or_default()
}

/// The message as queued: Received on top, Bcc removed, Message-ID and Date added if missing.
pub fn prepare(message: &[u8], envelope: &Envelope, id: &str, hostname: &str, now: u64) -> Vec<u8> {
    let (headers, body) = split_headers(message);
    let list = fields(headers);
    let mut out = Vec::with_capacity(message.len() + 400);
    out.extend_from_slice(received(envelope, id, hostname, now).as_bytes());
    let mut has_id = false;
    let mut has_date = false;
    for (name, field) in &list {
        match name.as_str() {
            // Bcc recipients must not see each other or be seen (RFC 5322 3.6.3).
            "bcc" => continue,
            "message-id" => has_id = true,
            "date" => has_date = true,
            _ => {}
        }
        out.extend_from_slice(field);
        if !field.ends_with(b"\r\n") {
            out.extend_from_slice(b"\r\n");
        }
    }
    if !has_date {
        out.extend_from_slice(format!("Date: {}\r\n", rfc5322_date(now)).as_bytes());
    }
    if !has_id {
        out.extend_from_slice(format!("Message-ID: <{}@{}>\r\n", id, hostname).as_bytes());
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
    out
}

fn received(envelope: &Envelope, id: &str, hostname: &str, now: u64) -> String {
    let origin = &envelope.origin;
    // RFC 3848 protocol names.
    let with = match (origin.via.as_str(), origin.tls, origin.auth_user.is_some()) {
        ("sendmail", _, _) => "local",
        ("bounce", _, _) => "internal",
        (_, true, true) => "ESMTPSA",
        (_, false, true) => "ESMTPA",
        (_, true, false) => "ESMTPS",
        _ => "ESMTP",
    };
    let from = if origin.ip.is_empty() {
        "local".to_string()
    } else {
        format!("{} ([{}])", sanitize(&origin.helo), origin.ip)
    };
    let rcpt = match envelope.recipients.as_slice() {
        [one] => format!("\r\n\tfor <{}>", sanitize(&one.address)),
        _ => String::new(),
    };
    format!(
        "Received: from {from}\r\n\tby {hostname} (Serval) with {with} id {id}{rcpt};\r\n\t{}\r\n",
        rfc5322_date(now)
    )
}

/// Client-supplied text in a header: no line breaks, printable.
fn sanitize(text: &str) -> String {
    text.chars().filter(|c| !c.is_control()).take(200).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envelope::{Notify, Origin, Recipient, Ret};

    fn envelope() -> Envelope {
        Envelope {
            sender: "a@example.test".into(),
            recipients: vec![Recipient {
                address: "b@remote.test".into(),
                local_user: None,
                notify: Notify::default_notices(),
                orcpt: None,
            }],
            ret: Ret::Full,
            envid: None,
            smtputf8: false,
            origin: Origin {
                via: "submission".into(),
                ip: "127.0.0.1".into(),
                helo: "laptop\r\nX-Evil: 1".into(),
                auth_user: Some("alice".into()),
                tls: false,
            },
            received_at: 0,
        }
    }

    #[test]
    fn adds_missing_headers_and_drops_bcc() {
        let msg = b"From: a@example.test\r\nBcc: secret@x.test,\r\n other@x.test\r\nSubject: s\r\n\r\nbody\r\n";
        let out = prepare(msg, &envelope(), "ABC", "mail.example.test", 1_800_000_000);
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("Received: from laptopX-Evil: 1 ([127.0.0.1])\r\n\tby mail.example.test (Serval) with ESMTPA id ABC\r\n\tfor <b@remote.test>;"), "{text}");
        assert!(
            !text.contains("secret") && !text.contains("other@"),
            "{text}"
        );
        assert!(text.contains("\r\nMessage-ID: <ABC@mail.example.test>\r\n"));
        assert!(text.contains("\r\nDate: "));
        assert!(text.ends_with("Subject: s\r\nDate: Fri, 15 Jan 2027 08:00:00 +0000\r\nMessage-ID: <ABC@mail.example.test>\r\n\r\nbody\r\n"), "{text}");
    }

    #[test]
    fn keeps_existing_id_and_date() {
        let msg = b"Message-ID: <x@y>\r\nDate: Mon, 1 Jan 2024 00:00:00 +0000\r\n\r\nb\r\n";
        let out = prepare(msg, &envelope(), "ABC", "h.test", 0);
        let text = String::from_utf8(out).unwrap();
        assert_eq!(text.matches("Message-ID").count(), 1);
        assert_eq!(text.matches("Date:").count(), 1);
        assert_eq!(
            header_value(text.as_bytes(), "message-id").unwrap(),
            "<x@y>"
        );
    }
}
