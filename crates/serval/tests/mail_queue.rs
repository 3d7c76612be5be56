//! The mail queue and the mail CLI driven by real clients: python's smtplib and swaks
//! (Debian `swaks`) submitting, aiosmtpd (PyPI `aiosmtpd`, tests/python/smarthost.py) as a
//! smarthost that requires AUTH and rejects chosen recipients, dkimpy (PyPI `dkimpy`,
//! `pynacl`) checking DKIM signatures. Over loopback sockets, with `serval serve` killed
//! and restarted where the point is durability.

mod common;

use std::process::Command;
use std::time::Duration;

use common::mail::*;
use common::TestDir;

#[test]
fn relay_535_defers_test_relay_names_auth_and_flush_delivers_once() {
    let (smtp, submission, relay) = (free_port(), free_port(), free_port());
    let t = TestDir::new(&mail_config(
        smtp,
        submission,
        "1h",
        &format!(
            "[mail.relay]\nhost = \"127.0.0.1:{relay}\"\ntls = \"none\"\nuser = \"relayuser\"\npassword_file = \"relay.pw\"\n"
        ),
    ));
    std::fs::create_dir_all(t.data_dir()).unwrap();
    std::fs::write(t.data_dir().join("relay.pw"), "wrong\n").unwrap();
    let host = Smarthost::start(
        relay,
        &t.dir.path().join("relay-out"),
        &["--user", "relayuser", "--password", "right"],
    );
    let mut server = t.serve();

    // A post-commit hook: sendmail -t, handed to the running server, relayed (mynetworks).
    let out = t.run(
        &["sendmail", "-t", "-f", "svn@example.test", "-v"],
        "To: Carol <carol@remote.test>\nSubject: r1234 committed\n\nfix the build\n",
    );
    assert_eq!(out.code, Some(0), "{out:?}");
    let id = out
        .stderr
        .split("queued as ")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .unwrap_or_else(|| panic!("{out:?}"))
        .to_string();
    let line = server.wait_for_log(
        &format!("{id}: deferred to=<carol@remote.test> via 127.0.0.1:{relay}: AUTH failed: 535"),
        Duration::from_secs(15),
    );
    assert!(
        line.contains("WARN") && line.contains("attempt 1, next try in 60m"),
        "{line}"
    );
    assert!(!line.contains("wrong"), "the password was logged: {line}");

    let out = t.run(&["mail", "test-relay"], "");
    assert_eq!(out.code, Some(1), "{out:?}");
    assert!(out.stdout.contains("CONNECT   ok   127.0.0.1:"), "{out:?}");
    assert!(out.stdout.contains("AUTH      FAILED 535"), "{out:?}");
    assert!(
        out.stderr
            .contains(&format!("AUTH failed at 127.0.0.1:{relay}: 535")),
        "{out:?}"
    );

    let out = t.run(&["mail", "queue"], "");
    assert_eq!(out.code, Some(0), "{out:?}");
    assert!(out.stdout.contains(&id) && out.stdout.contains("svn@example.test"));
    assert!(out.stdout.contains("1 attempt, next try in "), "{out:?}");
    assert!(out.stdout.contains("AUTH failed: 535"), "{out:?}");
    assert!(out.stdout.contains("carol@remote.test"), "{out:?}");
    let out = t.run(&["mail", "queue", "--json"], "");
    let list: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(list.as_array().unwrap().len(), 1, "{list}");
    assert_eq!(list[0]["id"], id.as_str());
    assert_eq!(list[0]["pending"][0], "carol@remote.test");

    // The admin fixes the password and restarts; the message waits (next try in 1h) until
    // `serval mail flush`, then goes out once.
    std::fs::write(t.data_dir().join("relay.pw"), "right\n").unwrap();
    drop(server);
    let mut server = t.serve();
    server.wait_for_log("queue loaded messages=1", Duration::from_secs(10));
    let out = t.run(&["mail", "test-relay"], "");
    assert_eq!(out.code, Some(0), "{out:?}");
    assert!(
        out.stdout.contains("AUTH      ok   as relayuser"),
        "{out:?}"
    );
    assert!(out.stdout.contains("MAIL      ok   250"), "{out:?}");
    assert!(out.stdout.contains("RSET      ok   250"), "{out:?}");
    assert!(host.messages().is_empty(), "the probe must not send mail");

    let out = t.run(&["mail", "flush"], "");
    assert_eq!(out.code, Some(0), "{out:?}");
    assert!(
        out.stdout.contains("1 messages will be retried now"),
        "{out:?}"
    );
    server.wait_for_log(
        &format!("{id}: delivered to=<carol@remote.test> via 127.0.0.1:{relay}"),
        Duration::from_secs(15),
    );
    std::thread::sleep(Duration::from_millis(500));
    let got = host.messages();
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(got[0].contains("X-Auth-User: relayuser"), "{}", got[0]);
    assert!(got[0].contains("Subject: r1234 committed"), "{}", got[0]);
    assert!(got[0].contains("From: svn@example.test"), "{}", got[0]);
    let out = t.run(&["mail", "queue"], "");
    assert!(out.stdout.contains("Mail queue is empty"), "{out:?}");
}

#[test]
fn bounces_reach_the_sender_and_double_bounces_the_postmaster() {
    let (smtp, submission, relay) = (free_port(), free_port(), free_port());
    let t = TestDir::new(&mail_config(
        smtp,
        submission,
        "1s",
        &format!("[mail.relay]\nhost = \"127.0.0.1:{relay}\"\ntls = \"none\"\n"),
    ));
    t.add_user("alice", "correct horse", false);
    let _host = Smarthost::start(
        relay,
        &t.dir.path().join("relay-out"),
        &[
            "--reject",
            "nobody@remote.test",
            "--reject",
            "bob@remote.test",
        ],
    );
    let mut server = t.serve();

    // alice writes to an address the next hop refuses: she gets an RFC 3464 report.
    python(&format!(
        "import smtplib\ns = smtplib.SMTP('127.0.0.1', {submission})\ns.login('alice', 'correct horse')\n\
s.sendmail('alice@example.test', ['nobody@remote.test'], 'From: alice@example.test\\r\\nTo: nobody@remote.test\\r\\nSubject: quarterly figures\\r\\n\\r\\nhere\\r\\n')\ns.quit()\n"
    ));
    server.wait_for_log("bounced to=<nobody@remote.test>", Duration::from_secs(15));
    wait_until("alice's DSN", Duration::from_secs(10), || {
        !maildir(&t.data_dir(), "alice").is_empty()
    });
    let dsn = &maildir(&t.data_dir(), "alice")[0];
    assert!(
        dsn.contains("From: Mail Delivery System <MAILER-DAEMON@mail.example.test>"),
        "{dsn}"
    );
    assert!(
        dsn.contains("Content-Type: multipart/report; report-type=delivery-status;"),
        "{dsn}"
    );
    assert!(
        dsn.contains(
            "Final-Recipient: rfc822; nobody@remote.test\r\nAction: failed\r\nStatus: 5.1.1"
        ),
        "{dsn}"
    );
    assert!(
        dsn.contains("Diagnostic-Code: smtp; RCPT failed: 550 5.1.1"),
        "{dsn}"
    );
    assert!(
        dsn.contains("Subject: quarterly figures"),
        "the original is returned: {dsn}"
    );

    // bob@remote.test (from mynetworks) writes to nobody: his bounce is refused too, so the
    // bounce of the bounce lands in the postmaster's (admin's) mailbox, not in the void.
    python(&format!(
        "import smtplib\ns = smtplib.SMTP('127.0.0.1', {smtp})\ns.ehlo()\n\
s.sendmail('bob@remote.test', ['nobody@remote.test'], 'Subject: from bob\\r\\n\\r\\nx\\r\\n')\n\
s.sendmail('', ['nobody@remote.test'], 'Subject: a bounce itself\\r\\n\\r\\nx\\r\\n')\ns.quit()\n"
    ));
    server.wait_for_log(
        "undeliverable bounce kept for the postmaster",
        Duration::from_secs(20),
    );
    wait_until("two postmaster notices", Duration::from_secs(20), || {
        maildir(&t.data_dir(), "admin").len() >= 2
    });
    let notices = maildir(&t.data_dir(), "admin").join("\n----\n");
    assert!(notices.contains("bob@remote.test"), "{notices}");
    assert!(notices.contains("Subject: a bounce itself"), "{notices}");
    let out = t.run(&["mail", "queue"], "");
    assert!(out.stdout.contains("Mail queue is empty"), "{out:?}");
}

#[test]
fn kill_9_with_50_queued_then_each_delivered_exactly_once() {
    let (smtp, submission, relay) = (free_port(), free_port(), free_port());
    let t = TestDir::new(&mail_config(
        smtp,
        submission,
        "1s",
        &format!("[mail.relay]\nhost = \"127.0.0.1:{relay}\"\ntls = \"none\"\n"),
    ));
    let mut server = t.serve();
    server.wait_for_log("service ready service=\"mail\"", Duration::from_secs(10));
    // The smarthost is down; 50 messages from mynetworks are acknowledged, then kill -9.
    let out = python(&format!(
        "import smtplib\ns = smtplib.SMTP('127.0.0.1', {smtp})\ns.ehlo()\nids = []\n\
for n in range(50):\n    s.mail('cron@example.test')\n    s.rcpt('ops@remote.test')\n    code, text = s.data('Subject: job %d\\r\\n\\r\\nok\\r\\n' % n)\n    assert code == 250, (code, text)\n    ids.append(text.decode().split()[-1])\nprint(' '.join(ids))\ns.quit()\n"
    ));
    let ids: Vec<&str> = out.split_whitespace().collect();
    assert_eq!(ids.len(), 50);
    server.signal(libc::SIGKILL);
    server.wait_exit(Duration::from_secs(5));

    let host = Smarthost::start(relay, &t.dir.path().join("relay-out"), &[]);
    let mut server = t.serve();
    wait_until(
        "50 messages at the smarthost",
        Duration::from_secs(30),
        || host.messages().len() >= 50,
    );
    // Time for any duplicate to show up.
    std::thread::sleep(Duration::from_secs(3));
    let got = host.messages();
    assert_eq!(got.len(), 50, "duplicates delivered");
    for n in 0..50 {
        let subject = format!("Subject: job {n}\r\n");
        assert_eq!(
            got.iter().filter(|m| m.contains(&subject)).count(),
            1,
            "job {n}"
        );
    }
    for id in &ids {
        server.wait_for_log(
            &format!("{id}: delivered to=<ops@remote.test>"),
            Duration::from_secs(5),
        );
    }
    let out = t.run(&["mail", "queue", "--json"], "");
    assert_eq!(out.stdout.trim(), "[]", "{out:?}");
}

#[test]
fn oversized_long_lines_and_mid_data_disconnects_are_refused_and_lose_nothing() {
    let (smtp, submission) = (free_port(), free_port());
    let t = TestDir::new(&mail_config(smtp, submission, "1s", ""));
    t.add_user("alice", "pw", false);
    let mut server = t.serve();
    server.wait_for_log("service ready service=\"mail\"", Duration::from_secs(10));
    let out = python(&format!(
        "import smtplib, socket\n\
big = 'Subject: big\\r\\n\\r\\n' + ('x' * 998 + '\\r\\n') * 105000\n\
s = smtplib.SMTP('127.0.0.1', {smtp})\ns.ehlo()\n\
print('size-param', s.mail('a@remote.test', ['SIZE=%d' % len(big)])[0])\ns.rset()\n\
s.mail('a@remote.test'); s.rcpt('alice@example.test')\n\
print('real-size', s.data(big)[0])\n\
s.mail('a@remote.test'); s.rcpt('alice@example.test')\n\
code, text = s.data('Subject: long\\r\\n\\r\\n' + 'y' * 1500 + '\\r\\n')\nprint('long-line', code, text.decode())\n\
s.mail('a@remote.test'); s.rcpt('alice@example.test')\nprint('after', s.data('Subject: fine\\r\\n\\r\\nsmall\\r\\n')[0])\ns.quit()\n\
c = socket.create_connection(('127.0.0.1', {smtp})); f = c.makefile('rb')\nf.readline()\n\
c.sendall(b'EHLO x\\r\\n')\nwhile f.readline()[3:4] == b'-': pass\n\
c.sendall(b'MAIL FROM:<a@remote.test>\\r\\nRCPT TO:<alice@example.test>\\r\\nDATA\\r\\n')\n\
for _ in range(3): f.readline()\n\
c.sendall(b'Subject: cut\\r\\n\\r\\nhalf a mess'); c.close()\n"
    ));
    assert!(out.contains("size-param 552"), "{out}");
    assert!(out.contains("real-size 552"), "{out}");
    assert!(out.contains("long-line 554 5.6.0"), "{out}");
    assert!(
        out.contains("Line 3 is longer than 998"),
        "the reply names the line: {out}"
    );
    assert!(out.contains("after 250"), "{out}");
    let access = t.dir.path().join("data/logs/mail-access.log");
    wait_until(
        "the cut session in the access log",
        Duration::from_secs(5),
        || {
            std::fs::read_to_string(&access)
                .unwrap_or_default()
                .contains("lost connection during DATA (nothing queued)")
        },
    );
    wait_until("alice's one message", Duration::from_secs(5), || {
        maildir(&t.data_dir(), "alice").len() == 1
    });
    std::thread::sleep(Duration::from_millis(500));
    let mails = maildir(&t.data_dir(), "alice");
    assert_eq!(mails.len(), 1, "only the small message is delivered");
    assert!(mails[0].contains("Subject: fine"));
}

#[test]
fn dkim_signatures_verify_with_dkimpy() {
    python_has("dkim", "dkimpy pynacl");
    python_has("nacl", "pynacl");
    let (smtp, submission, relay) = (free_port(), free_port(), free_port());
    let t = TestDir::new(&mail_config(
        smtp,
        submission,
        "1s",
        &format!("[mail.relay]\nhost = \"127.0.0.1:{relay}\"\ntls = \"none\"\n[mail.dkim]\nenabled = true\n"),
    ));
    t.add_user("alice", "pw", false);
    let host = Smarthost::start(relay, &t.dir.path().join("relay-out"), &[]);
    let out = t.run(&["mail", "dkim-records"], "");
    assert_eq!(out.code, Some(0), "{out:?}");
    // Zone-file lines; the RSA value is split into quoted strings of at most 255 bytes.
    let records: Vec<(String, String)> = out
        .stdout
        .lines()
        .map(|line| {
            let name = line.split_whitespace().next().unwrap().to_string();
            let value: String = line.split('"').skip(1).step_by(2).collect();
            (name, value)
        })
        .collect();
    assert_eq!(records.len(), 2, "{}", out.stdout);
    assert_eq!(records[0].0, "serval._domainkey.example.test.");
    assert!(
        records[0].1.starts_with("v=DKIM1; k=ed25519; p="),
        "{records:?}"
    );
    assert_eq!(records[1].0, "serval-rsa._domainkey.example.test.");
    assert!(
        records[1].1.starts_with("v=DKIM1; k=rsa; p="),
        "{records:?}"
    );
    let mut server = t.serve();
    server.wait_for_log("service ready service=\"mail\"", Duration::from_secs(10));
    python(&format!(
        "import smtplib\ns = smtplib.SMTP('127.0.0.1', {submission})\ns.login('alice', 'pw')\n\
s.sendmail('alice@example.test', ['carol@remote.test'], 'From: Alice <alice@example.test>\\r\\nTo: carol@remote.test\\r\\nSubject: signed\\r\\n\\r\\nThe figures.\\r\\n')\ns.quit()\n"
    ));
    wait_until(
        "the signed message at the smarthost",
        Duration::from_secs(15),
        || !host.messages().is_empty(),
    );
    let path = t.dir.path().join("relay-out/1.eml");
    // dkimpy checks the signature at index `n` (0: Ed25519, 1: RSA) against `keys`.
    let verify = |n: usize, keys: &[(String, String)]| {
        let table: Vec<String> = keys
            .iter()
            .map(|(name, value)| format!("{name:?}: {value:?}"))
            .collect();
        python(&format!(
            "import dkim\nraw = open({path:?}, 'rb').read()\n\
raw = b''.join(l for l in raw.splitlines(True) if not l.startswith(b'X-Envelope-') and not l.startswith(b'X-Auth-User') and not l.startswith(b'X-TLS'))\n\
keys = {{{}}}\n\
def dns(name, timeout=5):\n    return keys[name.decode()].encode()\n\
d = dkim.DKIM(raw)\n\
print('verified' if d.verify(idx={n}, dnsfunc=dns) else 'FAILED', d.signature_fields.get(b'a').decode())\n",
            table.join(", ")
        ))
    };
    assert_eq!(verify(0, &records).trim(), "verified ed25519-sha256");
    assert_eq!(verify(1, &records).trim(), "verified rsa-sha256");
    // Different keys must not verify: the check is real.
    let mut wrong = records.clone();
    wrong[0].1 = "v=DKIM1; k=ed25519; p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=".into();
    // One character of the RSA modulus changed: still a well-formed key, not the signer's.
    let at = wrong[1].1.find("p=").unwrap() + 100;
    let flipped = if &wrong[1].1[at..at + 1] == "A" {
        "B"
    } else {
        "A"
    };
    wrong[1].1.replace_range(at..at + 1, flipped);
    assert!(verify(0, &wrong).trim().starts_with("FAILED"));
    assert!(verify(1, &wrong).trim().starts_with("FAILED"));
}

#[test]
fn sendmail_without_a_server_queues_for_it_and_import_postfix_round_trips() {
    let (smtp, submission) = (free_port(), free_port());
    let t = TestDir::new(&mail_config(smtp, submission, "1s", ""));
    t.add_user("alice", "pw", false);
    // No server runs: the message goes into the spool, unknown users are refused now.
    let out = t.run(
        &["sendmail", "-oi", "alice"],
        "Subject: nightly backup\n\nok\n.\nstill body\n",
    );
    assert_eq!(out.code, Some(0), "{out:?}");
    let out = t.run(&["sendmail", "nobody@example.test"], "Subject: x\n\ny\n");
    assert_eq!(out.code, Some(67), "EX_NOUSER: {out:?}");
    assert!(
        out.stderr.contains("<nobody@example.test>: no such user"),
        "{out:?}"
    );
    let out = t.run(&["mail", "queue"], "");
    assert!(out.stdout.contains("alice@mail.example.test"), "{out:?}");
    assert!(out.stdout.contains("1 Request."), "{out:?}");

    let mut server = t.serve();
    server.wait_for_log("queue loaded messages=1", Duration::from_secs(10));
    wait_until("alice's mail", Duration::from_secs(10), || {
        !maildir(&t.data_dir(), "alice").is_empty()
    });
    let mail = &maildir(&t.data_dir(), "alice")[0];
    assert!(mail.contains("with local id "), "{mail}");
    assert!(
        mail.contains("\r\n.\r\nstill body"),
        "-oi keeps the dot line: {mail}"
    );
    drop(server);

    // import-postfix: the table it prints is a config `serval check` accepts.
    let postfix = t.dir.path().join("postfix");
    std::fs::create_dir_all(&postfix).unwrap();
    std::fs::write(
        postfix.join("main.cf"),
        "myhostname = mx.office.test\nmydestination = $myhostname, office.test, localhost\n\
mynetworks = 127.0.0.0/8 [::1]/128 192.168.1.0/24\nrelayhost = [smtp.isp.test]:587\n\
smtp_tls_security_level = encrypt\nsmtp_sasl_auth_enable = yes\n\
smtp_sasl_password_maps = hash:/etc/postfix/sasl_passwd\nmessage_size_limit = 52428800\n\
alias_maps = hash:/etc/aliases\n",
    )
    .unwrap();
    std::fs::write(
        postfix.join("sasl_passwd"),
        "[smtp.isp.test]:587 office:hunter2\n",
    )
    .unwrap();
    let out = t.run(&["mail", "import-postfix", postfix.to_str().unwrap()], "");
    assert_eq!(out.code, Some(0), "{out:?}");
    assert!(!out.stdout.contains("hunter2") && !out.stderr.contains("hunter2"));
    assert!(
        out.stderr.contains("not imported: main.cf: alias_maps"),
        "{out:?}"
    );
    let pw = t.data_dir().join("mail-relay.password");
    assert_eq!(std::fs::read_to_string(&pw).unwrap(), "hunter2\n");
    use std::os::unix::fs::PermissionsExt as _;
    assert_eq!(
        std::fs::metadata(&pw).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let imported: toml::Value = toml::from_str(&out.stdout).unwrap();
    assert_eq!(
        imported["mail"]["hostname"].as_str(),
        Some("mx.office.test")
    );
    assert_eq!(
        imported["mail"]["relay"]["host"].as_str(),
        Some("smtp.isp.test:587")
    );
    assert_eq!(imported["mail"]["relay"]["user"].as_str(), Some("office"));
    assert_eq!(
        imported["mail"]["max_message_size"]
            .as_str()
            .map(|s| !s.is_empty()),
        Some(true)
    );
    let config = format!(
        "data_dir = \"data\"\n[stream]\nenabled = false\n[web]\nenabled = false\n[calendar]\nenabled = false\n{}",
        out.stdout
    );
    let imported_config = t.dir.path().join("imported.toml");
    std::fs::write(&imported_config, config).unwrap();
    let check = Command::new(common::serval_bin())
        .args(["check", "--config"])
        .arg(&imported_config)
        .current_dir(t.dir.path())
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{}{}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );
}
