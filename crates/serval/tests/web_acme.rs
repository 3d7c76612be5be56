//! ACME end to end against Pebble (Debian's `pebble`, the ACME test CA from Let's Encrypt) and
//! its companion DNS server `pebble-challtestsrv`: Serval orders a certificate per site, Pebble
//! validates the names over HTTP-01 on Serval's web listener, curl gets the site over HTTPS
//! with Pebble's root; a restart reuses the stored certificate without the CA; a certificate
//! due is renewed by itself; a name the CA cannot validate is explained in the
//! log with the CA's reason.

mod common;

use common::TestDir;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// N distinct free ports (all held open while picking, so none is handed out twice).
fn free_ports<const N: usize>() -> [u16; N] {
    let held: Vec<std::net::TcpListener> = (0..N)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    std::array::from_fn(|i| held[i].local_addr().unwrap().port())
}

fn wait_for_port(port: u16, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "{what} did not listen on {port}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        // SAFETY: SIGTERM to a child we started.
        unsafe { libc::kill(self.0.id() as i32, libc::SIGTERM) };
        let _ = self.0.wait();
    }
}

/// Pebble with its DNS server answering 127.0.0.1 for every name, validating HTTP-01 on
/// `http_port` (Serval's web listener).
struct Pebble {
    _dns: Killed,
    _ca: Killed,
    directory: String,
    /// Serves Pebble's issuing root (new at every Pebble start) over HTTPS.
    management: u16,
    dns_management: u16,
    /// The root Pebble's own HTTPS is signed by: Serval's `ca_file`.
    tls_root: PathBuf,
}

impl Pebble {
    /// `validity_s`: lifetime of the certificates it issues; 0: Pebble's default (5 years).
    fn start(dir: &Path, http_port: u16, validity_s: u64) -> Pebble {
        std::fs::create_dir_all(dir).unwrap();
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "pebble test root");
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let leaf_key = rcgen::KeyPair::generate().unwrap();
        let leaf_params =
            rcgen::CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
                .unwrap();
        let leaf = leaf_params.signed_by(&leaf_key, &ca, &ca_key).unwrap();
        let tls_root = dir.join("pebble-tls-root.pem");
        std::fs::write(&tls_root, ca.pem()).unwrap();
        std::fs::write(dir.join("pebble.crt"), leaf.pem()).unwrap();
        std::fs::write(dir.join("pebble.key"), leaf_key.serialize_pem()).unwrap();

        let [dns_port, dns_management, acme_port, management, tls_port] = free_ports();
        let dns = Command::new("pebble-challtestsrv")
            .args(["-dns01", &format!("127.0.0.1:{dns_port}")])
            .args(["-management", &format!("127.0.0.1:{dns_management}")])
            .args([
                "-http01",
                "",
                "-https01",
                "",
                "-tlsalpn01",
                "",
                "-defaultIPv6",
                "",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("pebble-challtestsrv is needed (Debian package pebble)");
        let dns = Killed(dns);
        wait_for_port(dns_management, "pebble-challtestsrv");

        let config = serde_json::json!({"pebble": {
            "listenAddress": format!("127.0.0.1:{acme_port}"),
            "managementListenAddress": format!("127.0.0.1:{management}"),
            "certificate": dir.join("pebble.crt"),
            "privateKey": dir.join("pebble.key"),
            "httpPort": http_port,
            "tlsPort": tls_port,
            "ocspResponderURL": "",
            "externalAccountBindingRequired": false,
            "certificateValidityPeriod": validity_s,
        }});
        let config_path = dir.join("pebble.json");
        std::fs::write(&config_path, config.to_string()).unwrap();
        let ca = Command::new("pebble")
            .arg("-config")
            .arg(&config_path)
            .args(["-dnsserver", &format!("127.0.0.1:{dns_port}")])
            // No random waits before validation, and no nonces refused on purpose.
            .env("PEBBLE_VA_NOSLEEP", "1")
            .env("PEBBLE_WFE_NONCEREJECT", "0")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("pebble is needed (Debian package pebble)");
        let ca = Killed(ca);
        wait_for_port(acme_port, "pebble");
        Pebble {
            _dns: dns,
            _ca: ca,
            directory: format!("https://127.0.0.1:{acme_port}/dir"),
            management,
            dns_management,
            tls_root,
        }
    }

    /// Pebble's issuing root, to verify the certificates it gave Serval.
    fn issuing_root(&self, path: &Path) {
        let out = curl(&[
            "--cacert",
            self.tls_root.to_str().unwrap(),
            &format!("https://127.0.0.1:{}/roots/0", self.management),
            "-o",
            path.to_str().unwrap(),
        ]);
        assert!(out.status.success(), "cannot fetch Pebble's root: {out:?}");
    }

    /// Makes the DNS server answer `address` for `host`.
    fn point(&self, host: &str, address: &str) {
        let out = curl(&[
            "-X",
            "POST",
            "-d",
            &serde_json::json!({"host": host, "addresses": [address]}).to_string(),
            &format!("http://127.0.0.1:{}/add-a", self.dns_management),
        ]);
        assert!(out.status.success(), "{out:?}");
    }
}

fn curl(args: &[&str]) -> Output {
    Command::new("curl")
        .args(["-s", "-S", "--fail", "--max-time", "20"])
        .args(args)
        .output()
        .expect("curl is needed (Debian package curl)")
}

/// GETs https://NAME:PORT/ with Pebble's issuing root as the only trusted CA.
fn get_https(name: &str, port: u16, root: &Path) -> String {
    let out = curl(&[
        "--cacert",
        root.to_str().unwrap(),
        "--resolve",
        &format!("{name}:{port}:127.0.0.1"),
        &format!("https://{name}:{port}/"),
    ]);
    assert!(
        out.status.success(),
        "https://{name}:{port}/ failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn write_config(t: &TestDir, web: u16, tls: u16, pebble: &Pebble, aliases: &str, extra_site: &str) {
    let base = std::fs::read_to_string(t.dir.path().join("base.toml")).unwrap();
    let root = t.dir.path().join("site");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::write(root.join("index.html"), "<h1>Secure office</h1>").unwrap();
    let config = format!(
        "{base}\n[web]\nlisten = \"127.0.0.1:{web}\"\ntls_listen = \"127.0.0.1:{tls}\"\n\
         [web.acme]\nenabled = true\ndirectory = \"{dir}\"\nca_file = {ca:?}\ncontact = [\"mailto:admin@acme.test\"]\n\
         [[web.site]]\nhost = \"www.acme.test\"\naliases = [{aliases}]\ndefault = true\nroot = {root:?}\n{extra_site}",
        dir = pebble.directory,
        ca = pebble.tls_root.display().to_string(),
        root = root.display().to_string(),
    );
    std::fs::write(t.config(), config).unwrap();
}

#[test]
fn certificates_are_ordered_stored_reused_renewed_and_failures_explained() {
    let t = TestDir::new("");
    let base = std::fs::read_to_string(t.config())
        .unwrap()
        .replace("[web]\nenabled = false", "");
    std::fs::write(t.dir.path().join("base.toml"), base).unwrap();
    let [web, tls] = free_ports();
    let pebble = Pebble::start(&t.dir.path().join("pebble"), web, 0);
    let root = t.dir.path().join("issuing-root.pem");
    write_config(&t, web, tls, &pebble, "\"acme.test\", \"localhost\"", "");
    let check = t.run(&["check"], "");
    assert_eq!(check.code, Some(0), "{check:?}");

    // First start: ordered and validated over HTTP-01 on the web listener.
    let mut server = t.serve();
    let issued = server.wait_for_log("ACME certificate issued", Duration::from_secs(60));
    assert!(issued.contains("www.acme.test,acme.test"), "{issued}");
    pebble.issuing_root(&root);
    assert_eq!(
        get_https("www.acme.test", tls, &root),
        "<h1>Secure office</h1>"
    );
    assert_eq!(get_https("acme.test", tls, &root), "<h1>Secure office</h1>");
    let cert_path = t.data_dir().join("acme/www.acme.test.crt");
    let key_path = t.data_dir().join("acme/www.acme.test.key");
    let first_cert = std::fs::read(&cert_path).unwrap();
    use std::os::unix::fs::PermissionsExt as _;
    assert_eq!(
        std::fs::metadata(&key_path).unwrap().permissions().mode() & 0o777,
        0o600
    );
    // The expiry is on /metrics, in the future.
    let metrics = curl(&[&format!("{}/metrics", server.admin_url)]);
    let metrics = String::from_utf8_lossy(&metrics.stdout).into_owned();
    let line = metrics
        .lines()
        .find(|l| l.starts_with("web_certificate_expiry_timestamp_seconds{site=\"www.acme.test\"}"))
        .unwrap_or_else(|| panic!("no expiry metric:\n{metrics}"));
    let expires: u64 = line.rsplit(' ').next().unwrap().parse().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(expires > now + 30 * 86_400, "{line}");
    drop(server);

    // Restart without the CA: the stored certificate is served at once.
    drop(pebble);
    let mut server = t.serve();
    server.wait_for_log("ACME certificate loaded", Duration::from_secs(10));
    assert_eq!(
        get_https("www.acme.test", tls, &root),
        "<h1>Secure office</h1>"
    );
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        std::fs::read(&cert_path).unwrap(),
        first_cert,
        "renewed without need"
    );
    assert!(!server
        .log
        .iter()
        .any(|l| l.contains("ordering an ACME certificate")));
    drop(server);

    // A new CA run (a new root) issuing 30-second certificates, and a new alias the stored
    // certificate does not cover: a new order at start, then a renewal when a third of the
    // life is left (renew_before is the default 30 days, longer than the whole life). A
    // second site whose name points elsewhere fails validation, and the log says why in the
    // CA's words.
    let pebble = Pebble::start(&t.dir.path().join("pebble2"), web, 30);
    pebble.point("elsewhere.acme.test", "127.0.0.2");
    write_config(
        &t,
        web,
        tls,
        &pebble,
        "\"acme.test\", \"shop.acme.test\"",
        "[[web.site]]\nhost = \"elsewhere.acme.test\"\n",
    );
    let mut server = t.serve();
    server.wait_for_log("does not cover every name", Duration::from_secs(10));
    let reordered = server.wait_for_log("ACME certificate issued", Duration::from_secs(60));
    assert!(
        reordered.contains("www.acme.test,acme.test,shop.acme.test"),
        "{reordered}"
    );
    let second_cert = std::fs::read(&cert_path).unwrap();
    assert_ne!(second_cert, first_cert);
    let root2 = t.dir.path().join("issuing-root-2.pem");
    pebble.issuing_root(&root2);
    assert_eq!(
        get_https("shop.acme.test", tls, &root2),
        "<h1>Secure office</h1>"
    );
    let failed = server.wait_for_log("ACME certificate not issued", Duration::from_secs(60));
    assert!(failed.contains("elsewhere.acme.test"), "{failed}");
    assert!(
        failed.contains("127.0.0.2"),
        "the CA's reason is missing: {failed}"
    );
    assert!(
        failed.contains("port 80 reaches web.listen"),
        "no hint: {failed}"
    );
    assert!(failed.contains("retry_in_s=60"), "{failed}");
    // Renewed by itself about 20 s later, and the new one is served.
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::fs::read(&cert_path).unwrap() == second_cert {
        assert!(
            Instant::now() < deadline,
            "not renewed; log:\n{}",
            server.log.join("\n")
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(
        get_https("www.acme.test", tls, &root2),
        "<h1>Secure office</h1>"
    );
    let issued = |log: &[String]| {
        log.iter()
            .filter(|l| {
                l.contains("ACME certificate issued") && l.contains("site=\"www.acme.test\"")
            })
            .count()
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while issued(&server.log) < 2 && Instant::now() < deadline {
        if let Ok(line) = server.lines.recv_timeout(Duration::from_millis(200)) {
            server.log.push(line);
        }
    }
    assert_eq!(issued(&server.log), 2, "one order at start, one renewal");
}
