//! The mail service driven by real clients: swaks (Debian package `swaks`) submitting, and
//! python's aiosmtpd (PyPI `aiosmtpd`) as the smarthost, over loopback sockets.

mod common;

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::mail::{free_port, wait_until};
use common::TestDir;

fn mail_config(smtp: u16, submission: u16, relay: Option<u16>) -> String {
    let mut c = format!(
        "[mail]\nenabled = true\nhostname = \"mail.example.test\"\nlocal_domains = [\"example.test\"]\n\
listen = \"127.0.0.1:{smtp}\"\nsubmission_listen = \"127.0.0.1:{submission}\"\n\
[mail.queue]\nretry_initial = \"1s\"\nretry_max = \"1s\"\n"
    );
    if let Some(port) = relay {
        c.push_str(&format!(
            "[mail.relay]\nhost = \"127.0.0.1:{port}\"\ntls = \"none\"\n"
        ));
    }
    c
}

/// Runs swaks; returns (exit code, transcript).
fn swaks(args: &[&str]) -> (i32, String) {
    let out = Command::new("swaks")
        .args(args)
        .output()
        .expect("swaks is missing: install the Debian package `swaks` (scripts/install-test-deps)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

fn maildir_files(data: &Path, user: &str) -> Vec<String> {
    let dir = data.join("mail").join(user).join("new");
    let mut out: Vec<String> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| std::fs::read_to_string(e.path()).unwrap())
        .collect();
    out.sort();
    out
}

#[test]
fn local_delivery_unknown_user_and_no_open_relay() {
    let (smtp, submission) = (free_port(), free_port());
    let t = TestDir::new(&mail_config(smtp, submission, None));
    t.add_user("alice", "correct horse", false);
    let mut server = t.serve();
    server.wait_for_log("service ready service=\"mail\"", Duration::from_secs(10));
    let server_addr = format!("127.0.0.1:{smtp}");

    let (code, out) = swaks(&[
        "--server",
        &server_addr,
        "--from",
        "bob@remote.test",
        "--to",
        "alice@example.test",
        "--header",
        "Subject: lunch",
        "--body",
        "at noon",
    ]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("250 2.0.0 Ok: queued as "), "{out}");
    wait_until("the Maildir file", Duration::from_secs(10), || {
        !maildir_files(&t.data_dir(), "alice").is_empty()
    });
    let mail = &maildir_files(&t.data_dir(), "alice")[0];
    assert!(
        mail.starts_with(
            "Return-Path: <bob@remote.test>\r\nDelivered-To: alice@example.test\r\nReceived: from "
        ),
        "{mail}"
    );
    assert!(mail.contains("by mail.example.test (Serval) with ESMTP id "));
    assert!(mail.contains("Subject: lunch") && mail.contains("at noon"));

    // Unknown local user: 550 at RCPT, nothing queued.
    let (code, out) = swaks(&[
        "--server",
        &server_addr,
        "--from",
        "bob@remote.test",
        "--to",
        "nobody@example.test",
    ]);
    assert_ne!(code, 0);
    assert!(out.contains("550 5.1.1 <nobody@example.test>"), "{out}");

    // postmaster@ reaches the postmaster user's mailbox (`admin`, who need not exist yet).
    let (code, out) = swaks(&[
        "--server",
        &server_addr,
        "--from",
        "bob@remote.test",
        "--to",
        "postmaster@example.test",
    ]);
    assert_eq!(code, 0, "{out}");
    wait_until("the postmaster's mail", Duration::from_secs(10), || {
        !maildir_files(&t.data_dir(), "admin").is_empty()
    });

    // No open relay: 127.0.0.2 is not in mynetworks, even with a local sender.
    let (code, out) = swaks(&[
        "--server",
        &server_addr,
        "--local-interface",
        "127.0.0.2",
        "--from",
        "alice@example.test",
        "--to",
        "victim@elsewhere.test",
    ]);
    assert_ne!(code, 0);
    assert!(
        out.contains("554 5.7.1 <victim@elsewhere.test>: Relay access denied"),
        "{out}"
    );

    // Submission from outside mynetworks: AUTH first; a wrong password is 535.
    let sub_addr = format!("127.0.0.1:{submission}");
    let (_, out) = swaks(&[
        "--server",
        &sub_addr,
        "--local-interface",
        "127.0.0.2",
        "--from",
        "alice@example.test",
        "--to",
        "x@elsewhere.test",
    ]);
    assert!(out.contains("530 5.7.0 Authentication required"), "{out}");
    let (code, out) = swaks(&[
        "--server",
        &sub_addr,
        "--local-interface",
        "127.0.0.2",
        "--auth",
        "PLAIN",
        "--auth-user",
        "alice",
        "--auth-password",
        "wrong",
        "--from",
        "alice@example.test",
        "--to",
        "x@elsewhere.test",
    ]);
    assert_ne!(code, 0);
    assert!(out.contains("535 5.7.8"), "{out}");

    // The access log has one line per session, Postfix-style command counts.
    let access = std::fs::read_to_string(t.data_dir().join("logs/mail-access.log")).unwrap();
    assert!(
        access.contains("smtp [127.0.0.1]")
            && access.contains("ehlo=1 mail=1 rcpt=1 data=1 quit=1 commands=5"),
        "{access}"
    );
}

#[test]
fn bare_lf_never_ends_a_message_and_pipelining_is_answered_in_order() {
    let (smtp, submission) = (free_port(), free_port());
    let t = TestDir::new(&mail_config(smtp, submission, None));
    t.add_user("alice", "correct horse", false);
    let mut server = t.serve();
    server.wait_for_log("service ready service=\"mail\"", Duration::from_secs(10));
    let mut conn = TcpStream::connect(("127.0.0.1", smtp)).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    // One pipelined burst with a smuggling attempt inside the data.
    conn.write_all(
        b"EHLO attacker\r\nMAIL FROM:<a@remote.test>\r\nRCPT TO:<alice@example.test>\r\nDATA\r\n\
Subject: one\r\n\r\nfirst\n.\nMAIL FROM:<evil@remote.test>\nRCPT TO:<alice@example.test>\nDATA\nSubject: smuggled\n\n\
hidden\r\n.\r\nQUIT\r\n",
    )
    .unwrap();
    let mut replies = String::new();
    let _ = conn.read_to_string(&mut replies);
    let codes: Vec<&str> = replies
        .lines()
        .filter(|l| l.as_bytes().get(3) == Some(&b' '))
        .map(|l| &l[..3])
        .collect();
    assert_eq!(
        codes,
        ["220", "250", "250", "250", "354", "250", "221"],
        "{replies}"
    );
    wait_until("the Maildir file", Duration::from_secs(10), || {
        !maildir_files(&t.data_dir(), "alice").is_empty()
    });
    std::thread::sleep(Duration::from_millis(300));
    let mails = maildir_files(&t.data_dir(), "alice");
    assert_eq!(
        mails.len(),
        1,
        "the smuggled message became a second one: {mails:?}"
    );
    assert!(
        mails[0].contains("\r\n.\r\nMAIL FROM:<evil@remote.test>\r\n"),
        "{}",
        mails[0]
    );
}

struct Smarthost(Child, std::path::PathBuf);

impl Smarthost {
    fn start(port: u16, out: &Path) -> Smarthost {
        let file = std::fs::File::create(out).unwrap();
        let child = Command::new("python3")
            .args([
                "-u",
                "-m",
                "aiosmtpd",
                "-n",
                "-l",
                &format!("127.0.0.1:{port}"),
            ])
            .stdout(file)
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        wait_until("aiosmtpd to listen", Duration::from_secs(10), || {
            TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        Smarthost(child, out.to_path_buf())
    }
    fn received(&self) -> String {
        std::fs::read_to_string(&self.1).unwrap_or_default()
    }
}

impl Drop for Smarthost {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn submission_relays_through_the_smarthost_and_waits_while_it_is_down() {
    let probe = Command::new("python3")
        .args(["-c", "import aiosmtpd"])
        .status()
        .unwrap();
    assert!(
        probe.success(),
        "python aiosmtpd is missing: pip install aiosmtpd (scripts/install-test-deps)"
    );
    let (smtp, submission, relay) = (free_port(), free_port(), free_port());
    let t = TestDir::new(&mail_config(smtp, submission, Some(relay)));
    t.add_user("alice", "correct horse", false);
    let mut server = t.serve();
    server.wait_for_log("service ready service=\"mail\"", Duration::from_secs(10));

    // The smarthost is down: the message is accepted, deferred with a WARN naming the hop.
    let (code, out) = swaks(&[
        "--server",
        &format!("127.0.0.1:{submission}"),
        "--auth",
        "PLAIN",
        "--auth-user",
        "alice",
        "--auth-password",
        "correct horse",
        "--from",
        "alice@example.test",
        "--to",
        "carol@remote.test",
        "--header",
        "Bcc: secret@remote.test",
        "--header",
        "Subject: report",
    ]);
    assert_eq!(code, 0, "{out}");
    let id = out
        .split("queued as ")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .unwrap()
        .to_string();
    let line = server.wait_for_log(
        &format!("{id}: deferred to=<carol@remote.test> via 127.0.0.1:{relay}"),
        Duration::from_secs(15),
    );
    assert!(
        line.contains("WARN") && line.contains("CONNECT failed"),
        "{line}"
    );

    // Back up: the retry delivers it, once, without the Bcc header.
    let host = Smarthost::start(relay, &t.dir.path().join("smarthost.out"));
    server.wait_for_log(
        &format!("{id}: delivered to=<carol@remote.test>"),
        Duration::from_secs(20),
    );
    std::thread::sleep(Duration::from_millis(500));
    let got = host.received();
    assert_eq!(got.matches("MESSAGE FOLLOWS").count(), 1, "{got}");
    assert!(
        got.contains("Subject: report") && got.contains("with ESMTPA id"),
        "{got}"
    );
    assert!(!got.contains("secret@remote.test"), "Bcc leaked: {got}");
    assert!(
        got.contains("Message-Id: <") || got.contains("Message-ID: <"),
        "{got}"
    );
}
