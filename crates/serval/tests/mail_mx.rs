//! Direct delivery to each domain's MX with MTA-STS (RFC 8461) and DANE (RFC 7672), against
//! a fake Internet on loopback: Debian's nsd serving the domains' zones (for MTA-STS, straight
//! as the mail service's `nameservers`; for DANE, signed with ldnsutils under a fake root and
//! resolved by Serval's own validating `[dns]`), aiosmtpd MX hosts on port 25 of their own
//! addresses (with STARTTLS and certificates from rcgen, or without), and a python HTTPS
//! server for the policies. Needs root (ports 25, 53 and 443).

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::mail::*;
use common::TestDir;
use serval_dns::testing::Nsd;

/// A test CA and a certificate it issued for `names`: (ca.pem, cert.pem, key.pem) in `dir`.
fn issue(dir: &Path, stem: &str, ca: &(rcgen::Certificate, rcgen::KeyPair), names: &[&str]) {
    let key = rcgen::KeyPair::generate().unwrap();
    let params =
        rcgen::CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
            .unwrap();
    let cert = params.signed_by(&key, &ca.0, &ca.1).unwrap();
    std::fs::write(dir.join(format!("{stem}.crt")), cert.pem()).unwrap();
    std::fs::write(dir.join(format!("{stem}.key")), key.serialize_pem()).unwrap();
}

struct PolicyServer(Child);

impl PolicyServer {
    fn start(address: &str, dir: &Path) -> PolicyServer {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/mta_sts_server.py");
        let child = Command::new("python3")
            .arg(script)
            .args([address, "443"])
            .arg(dir.join("https.crt"))
            .arg(dir.join("https.key"))
            .arg(dir.join("policies"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        wait_until(
            "the policy server to listen",
            Duration::from_secs(10),
            || std::net::TcpStream::connect((address, 443)).is_ok(),
        );
        PolicyServer(child)
    }
}

impl Drop for PolicyServer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The last error of the queued message sent to `rcpt`, from `serval mail queue --json`.
fn queued_error(t: &TestDir, rcpt: &str) -> Option<String> {
    let out = t.run(&["mail", "queue", "--json"], "");
    let list: serde_json::Value = serde_json::from_str(&out.stdout).ok()?;
    list.as_array()?
        .iter()
        .find(|m| {
            m["pending"]
                .as_array()
                .is_some_and(|p| p.iter().any(|r| r == rcpt))
        })
        .and_then(|m| m["last_error"].as_str().map(str::to_owned))
}

fn send(smtp: u16, rcpt: &str) {
    python(&format!(
        "import smtplib\ns = smtplib.SMTP('127.0.0.1', {smtp})\n\
s.sendmail('alice@example.test', ['{rcpt}'], 'From: alice@example.test\\r\\nTo: {rcpt}\\r\\nSubject: to {rcpt}\\r\\n\\r\\nHello.\\r\\n')\ns.quit()\n"
    ));
}

#[test]
fn mta_sts_policies_are_enforced_explained_and_cached() {
    // SAFETY: geteuid has no preconditions.
    assert_eq!(
        unsafe { libc::geteuid() },
        0,
        "this test binds ports 25, 53 and 443 of loopback addresses: run it as root"
    );
    let net = common::loopback_network();
    let t = TestDir::new("");
    let dir = t.dir.path();
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = (ca_params.self_signed(&ca_key).unwrap(), ca_key);
    std::fs::write(dir.join("ca.pem"), ca.0.pem()).unwrap();
    // The TLS MX's certificate names only mx.sts.test; badcert.test also points its MX there.
    issue(dir, "mx", &ca, &["mx.sts.test"]);
    issue(
        dir,
        "https",
        &ca,
        &[
            "mta-sts.sts.test",
            "mta-sts.wrongmx.test",
            "mta-sts.plain.test",
            "mta-sts.badcert.test",
        ],
    );
    std::fs::create_dir_all(dir.join("policies")).unwrap();
    for (domain, mx) in [
        ("sts.test", "mx.sts.test"),
        ("wrongmx.test", "mail.wrongmx.test"),
        ("plain.test", "mx.plain.test"),
        ("badcert.test", "mx.badcert.test"),
    ] {
        std::fs::write(
            dir.join(format!("policies/mta-sts.{domain}.txt")),
            format!("version: STSv1\r\nmode: enforce\r\nmx: {mx}\r\nmax_age: 86400\r\n"),
        )
        .unwrap();
    }
    let soa = "SOA ns hostmaster 1 3600 600 86400 60";
    let zone = |origin: &str, body: &str| {
        format!("$ORIGIN {origin}.\n$TTL 60\n@ {soa}\n@ NS ns\nns A {net}.53\n{body}")
    };
    let sts_txt = "_mta-sts TXT \"v=STSv1; id=20261208\"\nmta-sts A";
    let _nsd = Nsd::start(
        dir,
        &format!("{net}.53"),
        &[
            (
                "sts.test.",
                zone(
                    "sts.test",
                    &format!("@ MX 10 mx\nmx A {net}.25\n{sts_txt} {net}.26\n"),
                ),
            ),
            (
                "wrongmx.test.",
                zone(
                    "wrongmx.test",
                    &format!("@ MX 10 mx.sts.test.\n{sts_txt} {net}.26\n"),
                ),
            ),
            (
                "plain.test.",
                zone(
                    "plain.test",
                    &format!("@ MX 10 mx\nmx A {net}.27\n{sts_txt} {net}.26\n"),
                ),
            ),
            (
                "badcert.test.",
                zone(
                    "badcert.test",
                    &format!("@ MX 10 mx\nmx A {net}.25\n{sts_txt} {net}.26\n"),
                ),
            ),
            ("none.test.", zone("none.test", "@ MX 10 mx.plain.test.\n")),
        ],
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let tls_mx = Smarthost::start_on(
        &format!("{net}.25"),
        25,
        &dir.join("tls-mx"),
        &[
            "--tls-cert",
            dir.join("mx.crt").to_str().unwrap(),
            "--tls-key",
            dir.join("mx.key").to_str().unwrap(),
        ],
    );
    let plain_mx = Smarthost::start_on(&format!("{net}.27"), 25, &dir.join("plain-mx"), &[]);
    let policies = PolicyServer::start(&format!("{net}.26"), dir);

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
                &format!(
                    "nameservers = [\"{net}.53:53\"]\nca_file = {:?}\n",
                    dir.join("ca.pem").display().to_string()
                ),
            )
        ),
    )
    .unwrap();
    let check = t.run(&["check"], "");
    assert_eq!(check.code, Some(0), "{check:?}");
    let mut server = t.serve();
    server.wait_for_log("service ready service=\"mail\"", Duration::from_secs(10));
    for rcpt in [
        "bob@sts.test",
        "bob@none.test",
        "bob@wrongmx.test",
        "bob@plain.test",
        "bob@badcert.test",
    ] {
        send(smtp, rcpt);
    }

    // sts.test: its listed MX, over verified TLS.
    wait_until("delivery to sts.test", Duration::from_secs(20), || {
        !tls_mx.messages().is_empty()
    });
    let got = tls_mx.messages();
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(
        got[0].contains("X-Envelope-To: <bob@sts.test>") && got[0].contains("X-TLS: yes"),
        "{}",
        got[0]
    );
    // none.test publishes no policy: its MX without STARTTLS gets the mail in plain text.
    wait_until("delivery to none.test", Duration::from_secs(20), || {
        !plain_mx.messages().is_empty()
    });
    let got = plain_mx.messages();
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(
        got[0].contains("X-Envelope-To: <bob@none.test>") && got[0].contains("X-TLS: no"),
        "{}",
        got[0]
    );

    // The three enforce-mode failures wait in the queue, each with its reason in plain words.
    let expect = [
        ("bob@wrongmx.test", "none of wrongmx.test's MX hosts (mx.sts.test) matches its MTA-STS policy (mode enforce, mx: mail.wrongmx.test)"),
        ("bob@plain.test", "does not offer STARTTLS, which plain.test's MTA-STS policy (mode enforce) requires"),
        ("bob@badcert.test", "badcert.test's MTA-STS policy requires a certificate valid for mx.badcert.test"),
    ];
    for (rcpt, reason) in expect {
        wait_until(
            &format!("the deferral of {rcpt}"),
            Duration::from_secs(20),
            || queued_error(&t, rcpt).is_some_and(|e| e.contains(reason)),
        );
        server.wait_for_log(reason, Duration::from_secs(5));
    }
    let err = queued_error(&t, "bob@badcert.test").unwrap();
    assert!(
        err.contains("certificate") && err.contains("mx.badcert.test"),
        "{err}"
    );
    assert_eq!(
        tls_mx.messages().len(),
        1,
        "nothing more reached the TLS MX"
    );
    assert_eq!(
        plain_mx.messages().len(),
        1,
        "plain.test's mail never went out in plain text"
    );

    // The policy host goes away and Serval restarts: the cached policies still hold (no
    // downgrade by blocking the HTTPS fetch).
    drop(policies);
    drop(server);
    assert!(t.data_dir().join("mail/mta-sts.json").exists());
    let mut server = t.serve();
    server.wait_for_log("queue loaded messages=3", Duration::from_secs(10));
    let out = t.run(&["mail", "flush"], "");
    assert_eq!(out.code, Some(0), "{out:?}");
    server.wait_for_log(
        "does not offer STARTTLS, which plain.test's MTA-STS policy",
        Duration::from_secs(20),
    );
    assert_eq!(
        plain_mx.messages().len(),
        1,
        "the cached policy kept plain.test's mail off the plain MX"
    );
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn free_udp_port() -> u16 {
    loop {
        let port = free_port();
        if std::net::UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

#[test]
fn dane_tlsa_records_are_enforced_through_serval_dns_and_mismatches_named() {
    use serval_dns::testing::{FakeInternet, LeafZone};
    use sha2::Digest as _;
    // SAFETY: geteuid has no preconditions.
    assert_eq!(
        unsafe { libc::geteuid() },
        0,
        "this test binds ports 25 and 53 of loopback addresses: run it as root"
    );
    let net = common::loopback_network();
    let t = TestDir::new("");
    let dir = t.dir.path();
    // The DANE-EE MX: a self-signed certificate, named by the SHA-256 of its public key.
    let ee_key = rcgen::KeyPair::generate().unwrap();
    let ee = rcgen::CertificateParams::new(vec!["mx.dane.test".to_string()])
        .unwrap()
        .self_signed(&ee_key)
        .unwrap();
    std::fs::write(dir.join("ee.crt"), ee.pem()).unwrap();
    std::fs::write(dir.join("ee.key"), ee_key.serialize_pem()).unwrap();
    let ee_spki = hex(&sha2::Sha256::digest(ee_key.public_key_der()));
    // The DANE-TA MX: a certificate for mx.ta.test from a private CA it sends along.
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "office CA");
    let ca = (ca_params.self_signed(&ca_key).unwrap(), ca_key);
    issue(dir, "ta", &ca, &["mx.ta.test"]);
    let chain = format!(
        "{}{}",
        std::fs::read_to_string(dir.join("ta.crt")).unwrap(),
        ca.0.pem()
    );
    std::fs::write(dir.join("ta-chain.crt"), chain).unwrap();
    let ca_digest = hex(&sha2::Sha256::digest(ca.0.der()));
    let zeros = "00".repeat(32);
    let leaf = |origin, records: String, signed| LeafZone {
        origin,
        records,
        signed,
    };
    let _internet = FakeInternet::start(
        dir,
        &net,
        &[
            leaf(
                "dane.test.",
                format!("@ MX 10 mx\nmx A {net}.25\n_25._tcp.mx TLSA 3 1 1 {ee_spki}\n"),
                true,
            ),
            leaf(
                "danebad.test.",
                format!("@ MX 10 mx\nmx A {net}.25\n_25._tcp.mx TLSA 3 1 1 {zeros}\n"),
                true,
            ),
            leaf(
                "ta.test.",
                format!("@ MX 10 mx\nmx A {net}.28\n_25._tcp.mx TLSA 2 0 1 {ca_digest}\n"),
                true,
            ),
            leaf(
                "notls.test.",
                format!("@ MX 10 mx\nmx A {net}.27\n_25._tcp.mx TLSA 3 1 1 {ee_spki}\n"),
                true,
            ),
            // Unsigned: its TLSA record cannot be trusted and is ignored.
            leaf(
                "unsigned.test.",
                format!("@ MX 10 mx\nmx A {net}.25\n_25._tcp.mx TLSA 3 1 1 {zeros}\n"),
                false,
            ),
        ],
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let tls = |cert: &str, key: &str| {
        vec![
            "--tls-cert".to_string(),
            dir.join(cert).display().to_string(),
            "--tls-key".to_string(),
            dir.join(key).display().to_string(),
        ]
    };
    let ee_args = tls("ee.crt", "ee.key");
    let ta_args = tls("ta-chain.crt", "ta.key");
    fn refs(v: &[String]) -> Vec<&str> {
        v.iter().map(String::as_str).collect()
    }
    let ee_mx = Smarthost::start_on(
        &format!("{net}.25"),
        25,
        &dir.join("ee-mx"),
        &refs(&ee_args),
    );
    let ta_mx = Smarthost::start_on(
        &format!("{net}.28"),
        25,
        &dir.join("ta-mx"),
        &refs(&ta_args),
    );
    let plain_mx = Smarthost::start_on(&format!("{net}.27"), 25, &dir.join("plain-mx"), &[]);

    std::fs::write(dir.join("hints"), &_internet.hints).unwrap();
    std::fs::write(dir.join("anchors"), &_internet.anchors).unwrap();
    let dns = free_udp_port();
    let (smtp, submission) = (free_port(), free_port());
    std::fs::write(
        t.config(),
        format!(
            "{}\n[dns]\nenabled = true\nlisten = \"127.0.0.1:{dns}\"\nroot_hints_file = \"hints\"\n\
             trust_anchors_file = \"anchors\"\nallow_loopback_upstreams = true\n{}",
            std::fs::read_to_string(t.config())
                .unwrap()
                .replace("[mail]\nenabled = false", ""),
            mail_config(smtp, submission, "1h", &format!("nameservers = [\"127.0.0.1:{dns}\"]\n"))
        ),
    )
    .unwrap();
    let check = t.run(&["check"], "");
    assert_eq!(check.code, Some(0), "{check:?}");
    let mut server = t.serve();
    server.wait_for_log("service ready service=\"mail\"", Duration::from_secs(10));
    server.wait_for_log("DNS listening", Duration::from_secs(10));
    for rcpt in [
        "bob@dane.test",
        "bob@ta.test",
        "bob@unsigned.test",
        "bob@danebad.test",
        "bob@notls.test",
    ] {
        send(smtp, rcpt);
    }

    // DANE-EE and DANE-TA matches go out over TLS; the unsigned zone's bogus-looking record
    // is not trusted, so its mail goes out opportunistically.
    wait_until(
        "two deliveries to the DANE-EE host",
        Duration::from_secs(30),
        || ee_mx.messages().len() == 2,
    );
    let got = ee_mx.messages().join("\n");
    assert!(
        got.contains("X-Envelope-To: <bob@dane.test>")
            && got.contains("X-Envelope-To: <bob@unsigned.test>"),
        "{got}"
    );
    assert!(!got.contains("X-TLS: no"), "{got}");
    wait_until(
        "the delivery to the DANE-TA host",
        Duration::from_secs(30),
        || ta_mx.messages().len() == 1,
    );
    assert!(
        ta_mx.messages()[0].contains("X-Envelope-To: <bob@ta.test>")
            && ta_mx.messages()[0].contains("X-TLS: yes")
    );

    // A certificate that matches no record, and a DANE host without STARTTLS: deferred,
    // with the records and the reason.
    let expect = [
        ("bob@danebad.test", "the certificate of mx.danebad.test matches none of its DANE TLSA records (3 1 1 0000000000000000…)"),
        ("bob@notls.test", "does not offer STARTTLS, which the DANE TLSA records of mx.notls.test requires"),
    ];
    for (rcpt, reason) in expect {
        wait_until(
            &format!("the deferral of {rcpt}"),
            Duration::from_secs(30),
            || queued_error(&t, rcpt).is_some_and(|e| e.contains(reason)),
        );
        server.wait_for_log(reason, Duration::from_secs(5));
    }
    assert!(
        plain_mx.messages().is_empty(),
        "nothing for a DANE host went out in plain text"
    );
    assert_eq!(
        ee_mx.messages().len(),
        2,
        "danebad.test's mail did not reach the mismatched host"
    );
}
