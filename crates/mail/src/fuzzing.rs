//! Entry points for `cargo fuzz` (`fuzz/fuzz_targets/smtp_session.rs`, `smtp_data.rs`,
//! `mta_sts_policy.rs`, `mail_headers.rs`): bytes from anyone through the SMTP session
//! (command parser, AUTH, DATA) and through the DATA reader, an MTA-STS policy file and TXT
//! record from any web server and DNS zone, and the header filter of inbound mail. None may
//! panic, replies must stay well-formed, and what is queued must be a message the next hop
//! reads back identically.

use crate::smtp::data::{dot_stuff, DataOutcome, DataReader};
use crate::smtp::session::{
    AuthOutcome, Listener, RecipientClass, Recipients, Session, SessionConfig, Step,
};

struct AnyDomain;

impl Recipients for AnyDomain {
    fn classify(&self, address: &str) -> RecipientClass {
        match address
            .split_once('@')
            .map(|(l, d)| (l, d.to_ascii_lowercase()))
        {
            Some((_, d)) if d != "example.test" => RecipientClass::Remote,
            Some((l, _)) if l.eq_ignore_ascii_case("alice") => RecipientClass::Local {
                user: "alice".into(),
            },
            Some((l, _)) if l.eq_ignore_ascii_case("down") => RecipientClass::Unavailable,
            _ => RecipientClass::UnknownLocal,
        }
    }
}

const MAX_SIZE: u64 = 4096;

/// The first byte picks the listener, trust and how the input is split into reads; the
/// rest is what the client sends.
pub fn smtp_session(data: &[u8]) {
    let Some((&knobs, input)) = data.split_first() else {
        return;
    };
    let mut session = Session::new(SessionConfig {
        hostname: "mail.example.test".into(),
        listener: if knobs & 1 == 0 {
            Listener::Smtp
        } else {
            Listener::Submission
        },
        max_message_size: MAX_SIZE,
        max_recipients: 5,
        tls_available: knobs & 2 != 0,
        trusted_network: knobs & 4 != 0,
        loopback: knobs & 8 != 0,
        peer_ip: "192.0.2.7".into(),
    });
    session.greet();
    let chunk = usize::from(knobs >> 4) + 1;
    let mut output = session.take_output();
    for piece in input.chunks(chunk) {
        session.input(piece);
        loop {
            match session.poll(&AnyDomain) {
                Step::NeedInput => break,
                Step::Authenticate { user, .. } => session.auth_done(if user == "alice" {
                    AuthOutcome::Ok
                } else {
                    AuthOutcome::BadCredentials
                }),
                Step::Enqueue { envelope, message } => {
                    assert!(!envelope.recipients.is_empty(), "queued without recipients");
                    assert!(message.len() as u64 <= MAX_SIZE, "over the size limit");
                    check_next_hop_reads_it_back(&message);
                    session.enqueued(Ok("Q1".into()));
                }
                Step::StartTls => session.tls_started(),
                Step::Close => break,
            }
            output.extend(session.take_output());
        }
        output.extend(session.take_output());
        if session.is_closed() {
            break;
        }
    }
    check_replies(&output);
}

/// Every reply line is `NNN[ -]text` ending in CRLF.
fn check_replies(output: &[u8]) {
    for line in output.split_inclusive(|&b| b == b'\n') {
        assert!(line.ends_with(b"\r\n"), "reply line without CRLF: {line:?}");
        assert!(
            line.len() >= 5
                && line[..3].iter().all(u8::is_ascii_digit)
                && matches!(line[3], b' ' | b'-'),
            "malformed reply line: {line:?}"
        );
        assert!(
            !line[..line.len() - 2].contains(&b'\r') && !line[..line.len() - 2].contains(&b'\n'),
            "a reply line carries a line break: {line:?}"
        );
    }
}

/// A queued message is CRLF-only, and after dot-stuffing the next hop's reader ends it at
/// exactly its end and gets it back byte for byte (no smuggled second message).
fn check_next_hop_reads_it_back(message: &[u8]) {
    for (i, &b) in message.iter().enumerate() {
        if b == b'\n' {
            assert!(i > 0 && message[i - 1] == b'\r', "bare LF queued");
        }
        if b == b'\r' {
            assert_eq!(message.get(i + 1), Some(&b'\n'), "bare CR queued");
        }
    }
    let wire = dot_stuff(message);
    let mut reader = DataReader::new(u64::MAX);
    assert_eq!(
        reader.feed(&wire),
        DataOutcome::Done {
            consumed: wire.len()
        },
        "the message ends early or late on the wire"
    );
    assert_eq!(
        reader.finish().as_deref(),
        Ok(message),
        "not read back the same"
    );
}

/// DATA bytes from anyone, split into reads by the first byte: the reader never panics,
/// never keeps more than its limit, and a message it accepts survives the trip to the next
/// hop unchanged.
pub fn smtp_data(data: &[u8]) {
    let Some((&knobs, input)) = data.split_first() else {
        return;
    };
    let chunk = usize::from(knobs) + 1;
    let mut reader = DataReader::new(MAX_SIZE);
    let mut consumed = 0;
    let mut done = false;
    for piece in input.chunks(chunk) {
        match reader.feed(piece) {
            DataOutcome::More => consumed += piece.len(),
            DataOutcome::Done { consumed: n } => {
                assert!(n <= piece.len());
                consumed += n;
                done = true;
                break;
            }
        }
    }
    assert!(consumed <= input.len());
    if !done {
        return;
    }
    if let Ok(message) = reader.finish() {
        assert!(message.len() as u64 <= MAX_SIZE);
        check_next_hop_reads_it_back(&message);
    }
}

/// An MTA-STS policy file and `_mta-sts` TXT record from anyone: parsing never panics, and
/// an accepted policy keeps its invariants (a capped max_age, MX patterns unless mode none,
/// each plain pattern matching its own host name).
pub fn mta_sts_policy(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let _ = crate::mta_sts::parse_txt(&text.split('\n').map(str::to_owned).collect::<Vec<_>>());
    let Ok(policy) = crate::mta_sts::parse_policy(&text) else {
        return;
    };
    assert!(policy.max_age <= 31_557_600);
    assert!(policy.mode == crate::mta_sts::Mode::None || !policy.mx.is_empty());
    for pattern in &policy.mx {
        match pattern.strip_prefix("*.") {
            Some(parent) if !parent.is_empty() => {
                assert!(policy.allows(&format!("mx.{parent}")), "{pattern}")
            }
            Some(_) => {}
            None if !pattern.is_empty() => assert!(policy.allows(pattern), "{pattern}"),
            None => {}
        }
    }
}

/// Headers of inbound mail from anyone through the filter that removes forged
/// Authentication-Results: it never panics, never adds bytes, leaves the body alone and
/// leaves no header claiming to be ours.
pub fn mail_headers(data: &[u8]) {
    const US: &str = "mail.example.test";
    let out = crate::inbound::strip_our_results(data, US);
    assert!(out.len() <= data.len());
    // The body is everything after the first blank line, kept byte for byte.
    let body_from = data
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(data.len(), |p| p + 2);
    assert!(out.ends_with(&data[body_from..]), "the body changed");
    let head = &out[..out.len() - (data.len() - body_from)];
    let mut prev_ends_line = true;
    for line in head.split_inclusive(|&b| b == b'\n') {
        let starts_field = prev_ends_line && !line.starts_with(b" ") && !line.starts_with(b"\t");
        if starts_field {
            let text = String::from_utf8_lossy(line).to_ascii_lowercase();
            let claims_us = text
                .strip_prefix("authentication-results:")
                .map(|v| v.trim_start())
                .is_some_and(|v| {
                    v.split(|c: char| c == ';' || c.is_whitespace()).next() == Some(US)
                });
            assert!(!claims_us, "a forged header survived: {text:?}");
        }
        prev_ends_line = line.ends_with(b"\n");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The targets run over hand-made inputs in `cargo test`, so they keep compiling and
    /// their checks hold on the cases the fuzzer starts from.
    #[test]
    fn fuzz_entry_points_accept_their_seeds() {
        let session: &[&[u8]] = &[
            b"\x00EHLO x\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<alice@example.test>\r\nDATA\r\nSubject: s\r\n\r\nhi\n.\n\r\n..x\r\n.\r\nQUIT\r\n",
            b"\x31EHLO x\r\nAUTH PLAIN AGFsaWNlAHB3\r\nMAIL FROM:<a@example.test> SIZE=10\r\nRCPT TO:<bob@remote.test> NOTIFY=SUCCESS\r\nDATA\r\nx\r\n.\r\n",
            b"\xffHELO\r\nMAIL FROM:<>\r\nRCPT TO:<down@example.test>\r\nBDAT 3 LAST\r\nabc",
            b"\x0aEHLO x\r\nSTARTTLS\r\nEHLO y\r\nAUTH LOGIN\r\nYWxpY2U=\r\ncHc=\r\n",
            b"\x04EHLO x\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<alice@example.test>\r\nDATA\r\n\r\n.\r\n",
        ];
        for seed in session {
            smtp_session(seed);
        }
        let data: &[&[u8]] = &[
            b"\x02line\r\n.\r\n",
            b"\x00a\n.\nb\r\n.\n\r\n.\r\n",
            b"\x07\r\n..\r\n...\r\n.\r\n",
            &[0x01; 70],
        ];
        for seed in data {
            smtp_data(seed);
        }
        let policies: &[&[u8]] = &[
            b"version: STSv1\r\nmode: enforce\r\nmx: mail.example.com\r\nmx: *.example.net\r\nmax_age: 604800\r\n",
            b"version: STSv1\nmode: none\nmax_age: 0\n",
            b"v=STSv1; id=20261208T01;",
        ];
        let headers: &[&[u8]] = &[
            b"Authentication-Results: mail.example.test; spf=pass\r\n\tdkim=pass\r\nSubject: x\r\n\r\nbody\r\n",
            b"authentication-results:mail.example.test;x\r\nAuthentication-Results: other; y\r\n\r\n",
        ];
        // A short deterministic mutation run over the seeds (bytes flipped, inserted,
        // dropped, CR/LF/dot spliced in), for machines without cargo-fuzz.
        use rand::{Rng as _, SeedableRng as _};
        let mut rng = rand::rngs::StdRng::seed_from_u64(14);
        let specials = [b'\r', b'\n', b'.', b' ', b':', b'<', b'>', 0];
        for round in 0..20_000 {
            let seeds: &[&[u8]] = match round % 4 {
                0 => session,
                1 => data,
                2 => policies,
                _ => headers,
            };
            let mut input = seeds[rng.gen_range(0..seeds.len())].to_vec();
            for _ in 0..rng.gen_range(1..8) {
                let at = rng.gen_range(0..=input.len());
                match rng.gen_range(0..4) {
                    0 if at < input.len() => input[at] = rng.gen(),
                    1 => input.insert(at, specials[rng.gen_range(0..specials.len())]),
                    2 if at < input.len() => {
                        input.remove(at);
                    }
                    _ => input.insert(at, rng.gen()),
                }
            }
            match round % 4 {
                0 => smtp_session(&input),
                1 => smtp_data(&input),
                2 => mta_sts_policy(&input),
                _ => mail_headers(&input),
            }
        }
    }
}
