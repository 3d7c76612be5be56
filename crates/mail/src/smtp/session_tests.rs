use super::*;

struct Dir;

impl Recipients for Dir {
    fn classify(&self, address: &str) -> RecipientClass {
        let (local, domain) = crate::envelope::split_address(address).unwrap();
        if domain != "example.test" && domain != "mail.example.test" {
            return RecipientClass::Remote;
        }
        match local.to_ascii_lowercase().as_str() {
            "alice" => RecipientClass::Local {
                user: "alice".into(),
            },
            "postmaster" => RecipientClass::Local {
                user: "admin".into(),
            },
            _ => RecipientClass::UnknownLocal,
        }
    }
}

fn config(listener: Listener, trusted: bool, loopback: bool) -> SessionConfig {
    SessionConfig {
        hostname: "mail.example.test".into(),
        listener,
        max_message_size: 10_000,
        max_recipients: 3,
        tls_available: true,
        trusted_network: trusted,
        loopback,
        peer_ip: "192.0.2.7".into(),
    }
}

/// Feeds `input`, resolving steps the way a happy driver would, and returns the replies.
fn run(session: &mut Session, input: &[u8]) -> (String, Vec<Step>) {
    session.input(input);
    let mut steps = Vec::new();
    loop {
        match session.poll(&Dir) {
            Step::NeedInput => break,
            Step::Authenticate { user, password } => {
                let ok = user == "alice" && password == "secret";
                steps.push(Step::Authenticate { user, password });
                session.auth_done(if ok {
                    AuthOutcome::Ok
                } else {
                    AuthOutcome::BadCredentials
                });
            }
            Step::Enqueue { envelope, message } => {
                steps.push(Step::Enqueue { envelope, message });
                session.enqueued(Ok("Q1".into()));
            }
            Step::StartTls => {
                steps.push(Step::StartTls);
                break;
            }
            Step::Close => {
                steps.push(Step::Close);
                break;
            }
        }
    }
    (String::from_utf8(session.take_output()).unwrap(), steps)
}

fn codes(replies: &str) -> Vec<&str> {
    replies
        .lines()
        .filter(|l| l.as_bytes().get(3) == Some(&b' '))
        .map(|l| &l[..3])
        .collect()
}

#[test]
fn pipelined_transaction_is_answered_in_order_and_queued() {
    let mut s = Session::new(config(Listener::Smtp, false, false));
    let (out, steps) = run(
        &mut s,
        b"EHLO client\r\nMAIL FROM:<bob@elsewhere.test> SIZE=100\r\nRCPT TO:<alice@example.test>\r\n\
RCPT TO:<nobody@example.test>\r\nDATA\r\nSubject: hi\r\n\r\nbody\r\n.\r\nQUIT\r\n",
    );
    assert_eq!(
        codes(&out),
        ["250", "250", "250", "550", "354", "250", "221"],
        "{out}"
    );
    assert!(out.contains("queued as Q1"));
    assert!(out.contains("PIPELINING") && out.contains("DSN") && out.contains("SIZE 10000"));
    let Step::Enqueue { envelope, message } = &steps[0] else {
        panic!("{steps:?}")
    };
    assert_eq!(envelope.sender, "bob@elsewhere.test");
    assert_eq!(envelope.recipients.len(), 1);
    assert_eq!(envelope.recipients[0].local_user.as_deref(), Some("alice"));
    assert_eq!(message, b"Subject: hi\r\n\r\nbody\r\n");
    assert_eq!(steps[1], Step::Close);
    assert_eq!(
        s.counts.summary(),
        "ehlo=1 mail=1 rcpt=1/2 data=1 quit=1 commands=5/6"
    );
}

#[test]
fn no_open_relay_without_auth_or_mynetworks() {
    let mut s = Session::new(config(Listener::Smtp, false, true));
    let (out, _) = run(
        &mut s,
        b"EHLO x\r\nMAIL FROM:<alice@example.test>\r\nRCPT TO:<victim@gmail.test>\r\nDATA\r\n",
    );
    assert_eq!(codes(&out), ["250", "250", "554", "554"], "{out}");
    assert!(out.contains("Relay access denied"));

    let mut trusted = Session::new(config(Listener::Smtp, true, false));
    let (out, _) = run(
        &mut trusted,
        b"EHLO x\r\nMAIL FROM:<hook@example.test>\r\nRCPT TO:<ext@gmail.test>\r\n",
    );
    assert_eq!(codes(&out), ["250", "250", "250"], "{out}");
}

#[test]
fn submission_needs_auth_and_auth_needs_tls_off_loopback() {
    let mut s = Session::new(config(Listener::Submission, false, false));
    let (out, _) = run(
        &mut s,
        b"EHLO x\r\nMAIL FROM:<alice@example.test>\r\nAUTH PLAIN AGFsaWNlAHNlY3JldA==\r\n",
    );
    assert!(
        !out.contains("AUTH PLAIN"),
        "AUTH offered in the clear: {out}"
    );
    assert_eq!(codes(&out), ["250", "530", "538"], "{out}");

    // STARTTLS drops what was pipelined behind it.
    let (out, steps) = run(&mut s, b"STARTTLS\r\nMAIL FROM:<evil@x.test>\r\n");
    assert_eq!(codes(&out), ["220"]);
    assert_eq!(steps, [Step::StartTls]);
    s.tls_started();
    let (out, _) = run(&mut s, b"MAIL FROM:<a@example.test>\r\nEHLO x\r\n");
    assert_eq!(
        codes(&out),
        ["503", "250"],
        "EHLO must be sent again after TLS: {out}"
    );
    assert!(out.contains("AUTH PLAIN LOGIN") && !out.contains("STARTTLS"));

    let (out, _) = run(&mut s, b"AUTH PLAIN AGFsaWNlAHdyb25n\r\n");
    assert_eq!(codes(&out), ["535"]);
    let (out, steps) = run(
        &mut s,
        b"AUTH PLAIN AGFsaWNlAHNlY3JldA==\r\nMAIL FROM:<alice@example.test>\r\nRCPT TO:<x@gmail.test>\r\n",
    );
    assert_eq!(codes(&out), ["235", "250", "250"], "{out}");
    assert!(matches!(&steps[0], Step::Authenticate { user, .. } if user == "alice"));
    assert_eq!(s.auth_user(), Some("alice"));
}

#[test]
fn auth_login_exchange() {
    let mut s = Session::new(config(Listener::Submission, false, true));
    let (out, _) = run(&mut s, b"EHLO x\r\nAUTH LOGIN\r\nYWxpY2U=\r\nc2VjcmV0\r\n");
    assert_eq!(codes(&out), ["250", "334", "334", "235"], "{out}");
    let mut s = Session::new(config(Listener::Submission, false, true));
    let (out, _) = run(
        &mut s,
        b"EHLO x\r\nAUTH LOGIN\r\n*\r\nAUTH CRAM-MD5\r\nAUTH PLAIN\r\n!!!\r\n",
    );
    assert_eq!(
        codes(&out),
        ["250", "334", "501", "504", "334", "501"],
        "{out}"
    );
}

#[test]
fn size_and_line_limits() {
    let mut s = Session::new(config(Listener::Smtp, true, false));
    let (out, _) = run(
        &mut s,
        b"EHLO x\r\nMAIL FROM:<a@example.test> SIZE=100000000\r\n",
    );
    assert_eq!(codes(&out), ["250", "552"]);

    let mut big =
        b"MAIL FROM:<a@example.test>\r\nRCPT TO:<alice@example.test>\r\nDATA\r\n".to_vec();
    for _ in 0..200 {
        big.extend_from_slice(&[b'x'; 100]);
        big.extend_from_slice(b"\r\n");
    }
    big.extend_from_slice(b".\r\nNOOP\r\n");
    let (out, steps) = run(&mut s, &big);
    assert_eq!(codes(&out), ["250", "250", "354", "552", "250"], "{out}");
    assert!(steps.is_empty(), "an oversized message was queued");

    let mut long =
        b"MAIL FROM:<a@example.test>\r\nRCPT TO:<alice@example.test>\r\nDATA\r\n".to_vec();
    long.extend_from_slice(&[b'y'; 1500]);
    long.extend_from_slice(b"\r\n.\r\n");
    let (out, steps) = run(&mut s, &long);
    assert_eq!(codes(&out), ["250", "250", "354", "554"], "{out}");
    assert!(out.contains("Line 1 is longer than 998"));
    assert!(steps.is_empty());

    let mut cmd = b"NOOP ".to_vec();
    cmd.extend_from_slice(&[b'z'; 5000]);
    cmd.extend_from_slice(b"\r\nNOOP\r\n");
    let (out, _) = run(&mut s, &cmd);
    assert_eq!(codes(&out), ["500", "250"], "{out}");
}

#[test]
fn recipient_limit_and_sequence_errors() {
    let mut s = Session::new(config(Listener::Smtp, true, false));
    let (out, _) = run(
        &mut s,
        b"MAIL FROM:<a@b.test>\r\nEHLO x\r\nRCPT TO:<alice@example.test>\r\nDATA\r\n",
    );
    assert_eq!(codes(&out), ["503", "250", "503", "503"], "{out}");
    let (out, _) = run(
        &mut s,
        b"MAIL FROM:<>\r\nRCPT TO:<a@x.test>\r\nRCPT TO:<b@x.test>\r\nRCPT TO:<c@x.test>\r\nRCPT TO:<d@x.test>\r\nRCPT TO:<postmaster>\r\n",
    );
    assert_eq!(
        codes(&out),
        ["250", "250", "250", "250", "452", "452"],
        "{out}"
    );
}

#[test]
fn too_many_errors_close_the_session() {
    let mut s = Session::new(config(Listener::Smtp, false, false));
    let (out, steps) = run(&mut s, &b"BOGUS\r\n".repeat(25));
    assert_eq!(codes(&out).len(), MAX_ERRORS as usize + 1);
    assert!(out.ends_with("421 4.7.0 Too many errors, closing the connection\r\n"));
    assert_eq!(steps, [Step::Close]);
}

#[test]
fn dsn_parameters_are_kept() {
    let mut s = Session::new(config(Listener::Smtp, true, false));
    let (out, steps) = run(
        &mut s,
        b"EHLO x\r\nMAIL FROM:<a@example.test> RET=HDRS ENVID=abc123\r\n\
RCPT TO:<x@remote.test> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;x@remote.test\r\nDATA\r\nhi\r\n.\r\n",
    );
    assert_eq!(codes(&out), ["250", "250", "250", "354", "250"], "{out}");
    let Step::Enqueue { envelope, .. } = &steps[0] else {
        panic!()
    };
    assert_eq!(envelope.ret, Ret::Headers);
    assert_eq!(envelope.envid.as_deref(), Some("abc123"));
    let r = &envelope.recipients[0];
    assert!(r.notify.success && r.notify.failure && !r.notify.delay);
    assert_eq!(r.orcpt.as_deref(), Some("x@remote.test"));
}
