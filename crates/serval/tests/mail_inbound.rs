//! Checks of mail from outside: SPF, DKIM and DMARC (mail-auth) against the senders' zones
//! served by Debian's nsd as the mail service's `nameservers`, messages sent by python's
//! smtplib from a loopback address outside `mynetworks`, one of them DKIM-signed by dkimpy
//! (Ed25519, pynacl). Needs root (nsd on port 53).

mod common;

use std::time::Duration;

use common::mail::*;
use common::TestDir;
use serval_dns::testing::Nsd;

/// Sends `message` from `source` (an address on loopback); returns "sent" or the refusal.
fn send_from(source: &str, smtp: u16, sender: &str, message: &str) -> String {
    python(&format!(
        "import smtplib\ns = smtplib.SMTP('127.0.0.1', {smtp}, source_address=('{source}', 0))\n\
try:\n    s.sendmail('{sender}', ['alice@example.test'], {message:?}.encode())\n    print('sent')\n\
except smtplib.SMTPDataError as e:\n    print(e.smtp_code, e.smtp_error.decode())\ns.quit()\n"
    ))
    .trim()
    .to_string()
}

fn message(from: &str, subject: &str) -> String {
    format!("From: {from}\r\nTo: alice@example.test\r\nSubject: {subject}\r\nMessage-ID: <{subject}@x>\r\n\r\nHello.\r\n")
}

#[test]
fn spf_dkim_and_dmarc_are_checked_recorded_and_p_reject_refused() {
    // SAFETY: geteuid has no preconditions.
    assert_eq!(
        unsafe { libc::geteuid() },
        0,
        "this test runs nsd on port 53 of a loopback address: run it as root"
    );
    python_has("dkim", "dkimpy pynacl");
    python_has("nacl", "pynacl");
    let net = common::loopback_network();
    let client = format!("{net}.100");
    // An Ed25519 DKIM key for dkim.test: the seed for dkimpy, the public half for the zone.
    let keys = python(
        "import nacl.signing, base64\nk = nacl.signing.SigningKey.generate()\n\
print(base64.b64encode(bytes(k)).decode(), base64.b64encode(bytes(k.verify_key)).decode())\n",
    );
    let (seed, public) = keys.trim().split_once(' ').unwrap();
    let t = TestDir::new("");
    t.add_user("alice", "pw", false);
    let soa = "SOA ns hostmaster 1 3600 600 86400 60";
    let zone = |origin: &str, body: String| {
        (
            format!("{origin}."),
            format!("$ORIGIN {origin}.\n$TTL 60\n@ {soa}\n@ NS ns\nns A {net}.53\n{body}"),
        )
    };
    // test. itself, empty: DMARC's tree walk (RFC 9989) also asks for _dmarc.test, which
    // must be a clean NXDOMAIN as _dmarc.com is, not a refusal.
    let zones = [
        zone("test", String::new()),
        zone("good.test", format!("@ TXT \"v=spf1 ip4:{client} -all\"\n_dmarc TXT \"v=DMARC1; p=reject\"\n")),
        zone("strict.test", "@ TXT \"v=spf1 ip4:192.0.2.1 -all\"\n_dmarc TXT \"v=DMARC1; p=reject\"\n".into()),
        zone("quar.test", "@ TXT \"v=spf1 ip4:192.0.2.1 -all\"\n_dmarc TXT \"v=DMARC1; p=quarantine\"\n".into()),
        zone(
            "dkim.test",
            format!("@ TXT \"v=spf1 ip4:192.0.2.1 -all\"\n_dmarc TXT \"v=DMARC1; p=reject\"\nsel._domainkey TXT \"v=DKIM1; k=ed25519; p={public}\"\n"),
        ),
    ];
    let zone_refs: Vec<(&str, String)> =
        zones.iter().map(|(o, z)| (o.as_str(), z.clone())).collect();
    let _nsd = Nsd::start(t.dir.path(), &format!("{net}.53"), &zone_refs)
        .unwrap_or_else(|e| panic!("{e}"));
    let (smtp, submission) = (free_port(), free_port());
    std::fs::write(
        t.config(),
        format!(
            "{}\n{}",
            std::fs::read_to_string(t.config())
                .unwrap()
                .replace("[mail]\nenabled = false", ""),
            mail_config(
                smtp,
                submission,
                "1h",
                &format!("nameservers = [\"{net}.53:53\"]\n")
            )
        ),
    )
    .unwrap();
    let mut server = t.serve();
    server.wait_for_log("service ready service=\"mail\"", Duration::from_secs(10));

    // SPF pass, aligned: DMARC pass. A forged Authentication-Results naming us is removed.
    let forged = format!(
        "Authentication-Results: mail.example.test; dmarc=pass header.from=good.test\r\n{}",
        message("bob@good.test", "good")
    );
    assert_eq!(send_from(&client, smtp, "bob@good.test", &forged), "sent");
    // SPF fails and the domain says p=reject: refused at the end of DATA, nothing queued.
    let refused = send_from(
        &client,
        smtp,
        "ceo@strict.test",
        &message("ceo@strict.test", "forged"),
    );
    assert!(
        refused.starts_with(
            "550 5.7.1 Rejected: the message fails the DMARC policy (p=reject) of strict.test"
        ),
        "{refused}"
    );
    // p=quarantine: delivered, marked.
    assert_eq!(
        send_from(
            &client,
            smtp,
            "x@quar.test",
            &message("x@quar.test", "quar")
        ),
        "sent"
    );
    // SPF fails, but a valid DKIM signature of the From: domain makes DMARC pass.
    let signed = python(&format!(
        "import dkim, sys\nmsg = {:?}.encode()\n\
sig = dkim.sign(msg, b'sel', b'dkim.test', b'{seed}', signature_algorithm=b'ed25519-sha256', include_headers=[b'from', b'to', b'subject'])\n\
sys.stdout.write((sig + msg).decode())\n",
        message("news@dkim.test", "signed")
    ));
    assert_eq!(send_from(&client, smtp, "news@dkim.test", &signed), "sent");
    // From mynetworks (127.0.0.1) nothing is checked: scripts relay as before.
    assert_eq!(
        send_from(
            "127.0.0.1",
            smtp,
            "ceo@strict.test",
            &message("ceo@strict.test", "local")
        ),
        "sent"
    );

    wait_until(
        "four messages in alice's Maildir",
        Duration::from_secs(15),
        || maildir(&t.data_dir(), "alice").len() == 4,
    );
    let mails = maildir(&t.data_dir(), "alice");
    let find = |subject: &str| {
        mails
            .iter()
            .find(|m| m.contains(&format!("Subject: {subject}\r\n")))
            .unwrap_or_else(|| panic!("no message {subject} in {mails:?}"))
            .clone()
    };
    let good = find("good");
    assert_eq!(
        good.matches("Authentication-Results: mail.example.test;")
            .count(),
        1,
        "{good}"
    );
    assert!(
        good.contains("spf=pass")
            && good.contains("dmarc=pass header.from=good.test policy.dmarc=reject"),
        "{good}"
    );
    let quar = find("quar");
    assert!(
        quar.contains("spf=fail") && quar.contains("dmarc=fail"),
        "{quar}"
    );
    assert!(
        quar.contains("X-Serval-Quarantine: fails the DMARC policy (p=quarantine) of quar.test"),
        "{quar}"
    );
    let signed = find("signed");
    assert!(
        signed.contains("dkim=pass header.i=@dkim.test header.s=sel"),
        "{signed}"
    );
    assert!(
        signed.contains("spf=fail") && signed.contains("dmarc=pass"),
        "{signed}"
    );
    let local = find("local");
    assert!(!local.contains("Authentication-Results"), "{local}");
    assert!(!mails.iter().any(|m| m.contains("Subject: forged")));
    server.wait_for_log(
        "refused: Rejected: the message fails the DMARC policy",
        Duration::from_secs(5),
    );
}
