//! The DNS service against real clients and servers: `dig` (bind9-dnsutils) asks Serval, and
//! Serval resolves through a fake Internet of `nsd` authoritative servers (a root, a TLD and
//! leaf zones) on loopback addresses of their own, port 53. Never the real roots.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{field, Server, TestDir};
use serval_dns::testing::{self, Nsd};

/// One nsd serving `zones` on `address`:53 (see `serval_dns::testing::Nsd`).
fn nsd(dir: &Path, address: &str, zones: &[(&str, String)]) -> Nsd {
    Nsd::start(dir, address, zones).unwrap_or_else(|e| panic!("{e}"))
}

fn dig(args: &[&str]) -> String {
    let out = Command::new("dig")
        .args(args)
        .output()
        .expect("dig is needed for the DNS tests (Debian package bind9-dnsutils)");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

const SOA: &str = "SOA ns hostmaster 1 3600 600 86400 60";

/// A zone signed with a new key (see `serval_dns::testing::sign`): signed text and DS line.
fn sign(dir: &Path, origin: &str, text: &str, algorithm: &str, nsec3: bool) -> (String, String) {
    testing::sign(dir, origin, text, algorithm, nsec3).unwrap_or_else(|e| panic!("{e}"))
}

/// The fake Internet: root on .1, test. on .2, example.test., other.test. and bogus.test. on
/// .3; dead.test. delegated to .9, where nothing listens. Signed: the root (ECDSA P-256, the
/// trust anchor), test. (RSA/SHA-256, NSEC), example.test. (Ed25519, NSEC3), and bogus.test.,
/// whose www record was changed after signing. other.test. is unsigned and delegated without
/// glue; dead.test. is unsigned.
struct Internet {
    net: String,
    /// The root's DS, for `trust_anchors_file`.
    anchor: String,
    _root: Nsd,
    _tld: Nsd,
    leaf: Nsd,
}

fn internet(dir: &Path) -> Internet {
    let net = common::loopback_network();
    let mut big = String::new();
    for i in 0..12 {
        big.push_str(&format!("big TXT \"{i:02}{}\"\n", "x".repeat(180)));
    }
    let (example, example_ds) = sign(
        dir,
        "example.test.",
        &format!(
            "$ORIGIN example.test.\n$TTL 3600\n@ {SOA}\n@ NS ns\nns A {net}.3\nns.elsewhere A {net}.3\n\
             www A 192.0.2.80\nshort 2 A 192.0.2.82\nalias CNAME www\nlegacy DNAME example.test.\n*.wild A 192.0.2.99\n@ MX 10 mail\nmail A 192.0.2.25\n{big}"
        ),
        "ED25519",
        true,
    );
    let (bogus, bogus_ds) = sign(
        dir,
        "bogus.test.",
        &format!(
            "$ORIGIN bogus.test.\n$TTL 3600\n@ {SOA}\n@ NS ns.example.test.\nwww A 192.0.2.90\n"
        ),
        "ED25519",
        false,
    );
    let bogus = bogus.replace("192.0.2.90", "192.0.2.91");
    let other = format!("$ORIGIN other.test.\n$TTL 3600\n@ {SOA}\n@ NS ns.elsewhere.example.test.\nwww A 192.0.2.81\n");
    let (tld, tld_ds) = sign(
        dir,
        "test.",
        &format!(
            "$ORIGIN test.\n$TTL 3600\n@ {SOA}\n@ NS ns\nns A {net}.2\n\
             example NS ns.example\nns.example A {net}.3\n{example_ds}\
             bogus NS ns.example\n{bogus_ds}\
             other NS ns.elsewhere.example.test.\n\
             dead NS ns.dead\nns.dead A {net}.9\n"
        ),
        "RSASHA256",
        false,
    );
    let (root, root_ds) = sign(
        dir,
        ".",
        &format!(
            "$TTL 3600\n. {SOA}\n. NS a.root.test.\na.root.test. A {net}.1\n\
             test. NS ns.test.\nns.test. A {net}.2\n{tld_ds}"
        )
        .replace(" ns hostmaster", " a.root.test. hostmaster.root.test."),
        "ECDSAP256SHA256",
        false,
    );
    Internet {
        _root: nsd(dir, &format!("{net}.1"), &[(".", root)]),
        _tld: nsd(dir, &format!("{net}.2"), &[("test.", tld)]),
        leaf: nsd(
            dir,
            &format!("{net}.3"),
            &[
                ("example.test.", example),
                ("other.test.", other),
                ("bogus.test.", bogus),
            ],
        ),
        anchor: root_ds,
        net,
    }
}

/// Serval with DNS on, its root hints pointing into the fake Internet.
fn serval(t: &TestDir, net: &Internet, hints_address: &str) -> (Server, String) {
    serval_with_hints(t, net, &[hints_address.to_owned()])
}

/// As [`serval`], with one hinted root server per address.
fn serval_with_hints(t: &TestDir, net: &Internet, hints: &[String]) -> (Server, String) {
    std::fs::write(
        t.dir.path().join("anchors"),
        format!("$TTL 3600\n{}", net.anchor),
    )
    .unwrap();
    let mut text = String::new();
    for (i, address) in hints.iter().enumerate() {
        text.push_str(&format!(
            ".  3600000  NS  h{i}.root.test.\nh{i}.root.test.  3600000  A  {address}\n"
        ));
    }
    std::fs::write(t.dir.path().join("hints"), text).unwrap();
    let config = std::fs::read_to_string(t.config()).unwrap();
    if !config.contains("[dns]") {
        std::fs::write(
            t.config(),
            format!(
                "{config}\n[dns]\nenabled = true\nlisten = \"127.0.0.1:0\"\nallow = [\"127.0.0.1/32\"]\n\
                 root_hints_file = \"hints\"\ntrust_anchors_file = \"anchors\"\nallow_loopback_upstreams = true\nquery_log = true\n\
                 [[dns.local_zone]]\nname = \"office.test\"\nrecords = [\"printer A 192.168.1.50\"]\n"
            ),
        )
        .unwrap();
    }
    let check = t.run(&["check"], "");
    assert_eq!(check.code, Some(0), "{check:?}");
    let mut server = t.serve();
    let line = server.wait_for_log("DNS listening", Duration::from_secs(10));
    let port = field(&line, "bound=")
        .and_then(|b| b.rsplit(':').next())
        .unwrap()
        .to_owned();
    (server, port)
}

fn ask(port: &str, args: &[&str]) -> String {
    let mut all = vec!["@127.0.0.1", "-p", port, "+time=12", "+tries=1"];
    all.extend_from_slice(args);
    dig(&all)
}

fn answers(out: &str) -> Vec<String> {
    dig_section(out, ";; ANSWER SECTION:")
}

fn dig_section(out: &str, header: &str) -> Vec<String> {
    out.split(header)
        .nth(1)
        .map(|rest| {
            rest.lines()
                .skip(1)
                .take_while(|l| !l.trim().is_empty())
                .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn resolves_from_the_root_with_referrals_aliases_and_truncation() {
    let t = TestDir::new("");
    let net = internet(t.dir.path());
    let (mut server, port) = serval(&t, &net, &format!("{}.1", net.net));
    server.wait_for_log("primed", Duration::from_secs(10));
    assert!(t.data_dir().join("dns/root-servers.json").exists());

    let www = ask(&port, &["www.example.test", "A"]);
    assert!(www.contains("status: NOERROR"), "{www}");
    assert!(www.contains(" ra"), "recursion available: {www}");
    assert!(
        !www.contains(" aa"),
        "a recursive answer is not authoritative: {www}"
    );
    assert_eq!(
        answers(&www),
        ["www.example.test. 3600 IN A 192.0.2.80"],
        "{www}"
    );

    let alias = ask(&port, &["alias.example.test", "A"]);
    let alias = answers(&alias);
    assert_eq!(alias.len(), 2, "{alias:?}");
    assert!(alias[0].contains("CNAME www.example.test."), "{alias:?}");
    assert!(alias[1].ends_with("A 192.0.2.80"), "{alias:?}");

    let glueless = ask(&port, &["www.other.test", "A"]);
    assert_eq!(
        answers(&glueless),
        ["www.other.test. 3600 IN A 192.0.2.81"],
        "{glueless}"
    );

    let mx = ask(&port, &["example.test", "MX"]);
    assert_eq!(
        answers(&mx),
        ["example.test. 3600 IN MX 10 mail.example.test."],
        "{mx}"
    );

    let missing = ask(&port, &["nope.example.test", "A"]);
    assert!(missing.contains("status: NXDOMAIN"), "{missing}");
    assert_eq!(
        dig_section(&missing, ";; AUTHORITY SECTION:").len(),
        1,
        "{missing}"
    );
    let nodata = ask(&port, &["www.example.test", "AAAA"]);
    assert!(
        nodata.contains("status: NOERROR") && answers(&nodata).is_empty(),
        "{nodata}"
    );

    // 12 TXT records of ~190 bytes: truncated by nsd over UDP, fetched by Serval over TCP,
    // truncated again to dig over UDP, whole to dig over TCP.
    let udp = ask(&port, &["big.example.test", "TXT", "+ignore"]);
    assert!(udp.contains(" tc"), "{udp}");
    let tcp = ask(&port, &["big.example.test", "TXT", "+tcp"]);
    assert_eq!(answers(&tcp).len(), 12, "{tcp}");

    let local = ask(&port, &["printer.office.test", "A"]);
    assert!(local.contains(" aa"), "{local}");
    assert_eq!(
        answers(&local),
        ["printer.office.test. 3600 IN A 192.168.1.50"]
    );

    // A delegation to a server that does not exist: SERVFAIL, a reason, well within 10 s.
    let started = Instant::now();
    let dead = ask(&port, &["www.dead.test", "A"]);
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    assert!(dead.contains("status: SERVFAIL"), "{dead}");
    assert!(
        dead.contains("EDE: 22") || dead.contains("EDE: 23"),
        "{dead}"
    );
    assert!(
        dead.contains("dead.test"),
        "the reason names the zone: {dead}"
    );

    // Outside `allow`: REFUSED with EDE 18, over UDP and TCP.
    for transport in ["+notcp", "+tcp"] {
        let refused = ask(&port, &["-b", "127.0.0.2", "www.example.test", transport]);
        assert!(
            refused.contains("status: REFUSED") && refused.contains("EDE: 18"),
            "{refused}"
        );
    }

    let log = std::fs::read_to_string(t.data_dir().join("logs/dns-access.log")).unwrap_or_default();
    assert!(log.contains("www.example.test. A NOERROR"), "{log}");

    // Restarted with hints that are all dead: the root set priming kept is used.
    drop(server);
    let (_server, port) = serval(&t, &net, &format!("{}.77", net.net));
    let again = ask(&port, &["www.other.test", "A"]);
    assert_eq!(
        answers(&again),
        ["www.other.test. 3600 IN A 192.0.2.81"],
        "{again}"
    );
}

#[test]
fn a_dead_authority_gets_stale_answers_and_recovery_needs_no_restart() {
    let t = TestDir::new("");
    let mut net = internet(t.dir.path());
    let (_server, port) = serval(&t, &net, &format!("{}.1", net.net));
    let fresh = ask(&port, &["short.example.test", "A"]);
    assert_eq!(
        answers(&fresh),
        ["short.example.test. 2 IN A 192.0.2.82"],
        "{fresh}"
    );
    // A silent outage of 20 s: the authority's address takes UDP queries and never answers.
    net.leaf.stop();
    let silent = silent_server(&format!("{}.3", net.net));
    let outage = Instant::now();
    std::thread::sleep(Duration::from_millis(2500));
    while outage.elapsed() < Duration::from_secs(20) {
        let started = Instant::now();
        let stale = ask(&port, &["short.example.test", "A"]);
        assert!(
            started.elapsed() < Duration::from_millis(2500),
            "{:?}",
            started.elapsed()
        );
        assert!(stale.contains("status: NOERROR"), "{stale}");
        assert_eq!(
            answers(&stale),
            ["short.example.test. 30 IN A 192.0.2.82"],
            "{stale}"
        );
        assert!(stale.contains("EDE: 3"), "{stale}");
        std::thread::sleep(Duration::from_secs(2));
    }
    // The authority comes back: fresh answers again within seconds, no restart.
    drop(silent);
    net.leaf.restart().unwrap_or_else(|e| panic!("{e}"));
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let out = ask(&port, &["short.example.test", "A"]);
        if !out.contains("EDE: 3") && out.contains("status: NOERROR") {
            let ttl: u32 = answers(&out)[0].split(' ').nth(1).unwrap().parse().unwrap();
            assert!(ttl <= 2, "{out}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "still stale 30 s after recovery: {out}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

fn flags(out: &str) -> String {
    out.lines()
        .find_map(|l| l.strip_prefix(";; flags: "))
        .map(|f| f.split(';').next().unwrap_or_default().to_owned())
        .unwrap_or_default()
}

#[test]
fn validates_signed_zones_proves_denials_and_refuses_bogus_data() {
    let t = TestDir::new("");
    let net = internet(t.dir.path());
    let (_server, port) = serval(&t, &net, &format!("{}.1", net.net));

    // Ed25519 zone under an RSA TLD under an ECDSA root: secure, AD, RRSIGs with DO.
    let secure = ask(&port, &["www.example.test", "A", "+dnssec"]);
    assert!(flags(&secure).contains("ad"), "{secure}");
    assert!(
        answers(&secure).iter().any(|l| l.contains("RRSIG A 15")),
        "{secure}"
    );
    let plain = ask(&port, &["www.example.test", "A", "+noadflag"]);
    assert!(
        !flags(&plain).contains("ad") && !plain.contains("RRSIG"),
        "{plain}"
    );
    let ad_only = ask(&port, &["www.example.test", "A", "+adflag"]);
    assert!(flags(&ad_only).contains("ad"), "{ad_only}");
    let chain = ask(&port, &["alias.example.test", "A", "+dnssec"]);
    assert!(flags(&chain).contains("ad"), "{chain}");
    // A wildcard answer, with the NSEC3 proof that the name itself does not exist.
    let wild = ask(&port, &["any.wild.example.test", "A", "+dnssec"]);
    assert!(flags(&wild).contains("ad"), "{wild}");
    assert!(
        answers(&wild)
            .iter()
            .any(|l| l.ends_with("IN A 192.0.2.99")),
        "{wild}"
    );
    // A DNAME: the server's synthesized (unsigned) CNAME is vouched for by the signed DNAME.
    let dname = ask(&port, &["www.legacy.example.test", "A", "+dnssec"]);
    assert!(flags(&dname).contains("ad"), "{dname}");
    assert!(
        answers(&dname)
            .iter()
            .any(|l| l.contains("DNAME example.test.")),
        "{dname}"
    );
    assert!(
        answers(&dname)
            .iter()
            .any(|l| l.ends_with("IN A 192.0.2.80")),
        "{dname}"
    );

    // Denials: NSEC3 in example.test., NSEC in test.
    let nx3 = ask(&port, &["nope.example.test", "A", "+dnssec"]);
    assert!(
        nx3.contains("status: NXDOMAIN") && flags(&nx3).contains("ad"),
        "{nx3}"
    );
    let nodata3 = ask(&port, &["www.example.test", "AAAA", "+dnssec"]);
    assert!(
        nodata3.contains("status: NOERROR") && flags(&nodata3).contains("ad"),
        "{nodata3}"
    );
    let nx = ask(&port, &["nope.test", "A", "+dnssec"]);
    assert!(
        nx.contains("status: NXDOMAIN") && flags(&nx).contains("ad"),
        "{nx}"
    );

    // RFC 5011 tracking keeps the root's KSK state in data_dir (the anchors file untouched).
    let state = std::fs::read_to_string(t.data_dir().join("dns/trust-anchors.json")).unwrap();
    assert!(state.contains("\"valid\""), "{state}");
    assert!(std::fs::read_to_string(t.dir.path().join("anchors"))
        .unwrap()
        .contains("DS"));

    // An unsigned delegation (no DS, proven by test.'s NSEC): answered, not AD.
    let insecure = ask(&port, &["www.other.test", "A", "+dnssec"]);
    assert!(
        insecure.contains("status: NOERROR") && !flags(&insecure).contains("ad"),
        "{insecure}"
    );
    assert_eq!(answers(&insecure), ["www.other.test. 3600 IN A 192.0.2.81"]);

    // `serval dns query` says which.
    let server = format!("127.0.0.1:{port}");
    for (name, verdict) in [
        ("www.example.test", "secure"),
        ("www.other.test", "insecure"),
        ("www.bogus.test", "bogus"),
    ] {
        let out = t.run(&["dns", "query", name, "A", "--server", &server], "");
        let first = out.stdout.lines().next().unwrap_or_default().to_owned();
        assert!(first.ends_with(verdict), "{name}: {out:?}");
        if verdict == "bogus" {
            assert!(out.stdout.contains("EDE 6 (DNSSEC Bogus)"), "{out:?}");
            assert_eq!(out.code, Some(2));
        } else {
            assert!(out.stdout.contains(" IN A 192.0.2."), "{out:?}");
        }
    }
    // The admin page's DNS panel and `serval dns flush`.
    let flushed = t.run(&["dns", "flush", "www.example.test"], "");
    assert!(
        flushed
            .stdout
            .contains("entries of www.example.test. dropped"),
        "{flushed:?}"
    );
    let all = t.run(&["dns", "flush"], "");
    assert!(all.stdout.contains("Cache flushed"), "{all:?}");

    // A record changed after signing: SERVFAIL with EDE 6, unless the client checks itself.
    let bogus = ask(&port, &["www.bogus.test", "A", "+dnssec"]);
    assert!(
        bogus.contains("status: SERVFAIL") && bogus.contains("EDE: 6"),
        "{bogus}"
    );
    let unchecked = ask(&port, &["www.bogus.test", "A", "+cd"]);
    assert!(
        unchecked.contains("status: NOERROR") && !flags(&unchecked).contains("ad"),
        "{unchecked}"
    );
    // Kept a minute at most, being bogus.
    let record = answers(&unchecked);
    assert!(
        record.len() == 1 && record[0].ends_with("IN A 192.0.2.91"),
        "{unchecked}"
    );
    let ttl: u32 = record[0].split(' ').nth(1).unwrap().parse().unwrap();
    assert!(ttl <= 60, "{unchecked}");
}

#[test]
fn an_outdated_trust_anchor_is_named_in_every_failure() {
    let t = TestDir::new("");
    let mut net = internet(t.dir.path());
    // The anchor of another root key: nothing signed validates.
    let (_, other_root) = sign(
        t.dir.path(),
        ".",
        "$TTL 3600\n. SOA a.root.test. h.root.test. 1 1 1 1 1\n. NS a.root.test.\n",
        "ECDSAP256SHA256",
        false,
    );
    net.anchor = other_root;
    let (_server, port) = serval(&t, &net, &format!("{}.1", net.net));
    let out = ask(&port, &["www.example.test", "A"]);
    assert!(
        out.contains("status: SERVFAIL") && out.contains("EDE: 9"),
        "{out}"
    );
    assert!(out.contains("trust anchor"), "{out}");
}

/// A UDP socket on ADDRESS:53 that reads nothing: a name server that died silently.
fn silent_server(address: &str) -> std::net::UdpSocket {
    // An nsd just stopped may hold the port for a moment (its server child exits after).
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match std::net::UdpSocket::bind(format!("{address}:53")) {
            Ok(socket) => return socket,
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(e) => panic!("cannot bind {address}:53: {e}"),
        }
    }
}

/// A query for NAME A, built by hand.
fn raw_query(id: u16, name: &str) -> Vec<u8> {
    testing::query_bytes(id, name, 1)
}

#[test]
fn priming_gets_past_twelve_silent_hints_and_storms_and_garbage_do_not_stop_it() {
    let t = TestDir::new("");
    let net = internet(t.dir.path());
    // 12 hinted root servers that never answer, and the live one last.
    let silent: Vec<_> = (20..32)
        .map(|i| silent_server(&format!("{}.{i}", net.net)))
        .collect();
    let mut hints: Vec<String> = (20..32).map(|i| format!("{}.{i}", net.net)).collect();
    hints.push(format!("{}.1", net.net));
    let started = Instant::now();
    let (mut server, port) = serval_with_hints(&t, &net, &hints);
    let first = ask(&port, &["www.example.test", "A"]);
    assert!(
        started.elapsed() < Duration::from_secs(5) + server.ready_after,
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        answers(&first),
        ["www.example.test. 3600 IN A 192.0.2.80"],
        "{first}"
    );
    server.wait_for_log("primed", Duration::from_secs(10));
    drop(silent);

    // Garbage, a response, a truncated header, two questions: FORMERR or nothing, and the
    // server goes on answering.
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    let target = format!("127.0.0.1:{port}");
    let mut two_questions = raw_query(7, "www.example.test");
    two_questions[5] = 2;
    two_questions.extend_from_slice(&raw_query(7, "www.example.test")[12..]);
    for packet in [
        vec![0xde, 0xad, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, 0xff, 0xff],
        two_questions,
    ] {
        socket.send_to(&packet, &target).unwrap();
        let mut buf = [0u8; 512];
        let (n, _) = socket
            .recv_from(&mut buf)
            .expect("an answer to a malformed query");
        assert!(
            n >= 12 && buf[2] & 0x80 != 0 && buf[3] & 0x0f == 1,
            "FORMERR expected: {:?}",
            &buf[..n]
        );
    }
    for packet in [vec![1, 2, 3], {
        let mut r = raw_query(9, "www.example.test");
        r[2] |= 0x80;
        r
    }] {
        socket.send_to(&packet, &target).unwrap();
        let mut buf = [0u8; 512];
        assert!(
            socket.recv_from(&mut buf).is_err(),
            "no answer to {packet:?}"
        );
    }

    // An NXDOMAIN storm: 2000 random names at once; at least 98% answered within 10 s. A
    // reader thread takes the answers as they come, so the test's own socket buffer never
    // drops them.
    let storm = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    storm
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let reader = storm.try_clone().unwrap();
    let started = Instant::now();
    let collect = std::thread::spawn(move || {
        let mut answered = std::collections::HashSet::new();
        let mut codes = std::collections::BTreeMap::new();
        let mut buf = [0u8; 1500];
        while started.elapsed() < Duration::from_secs(10) && answered.len() < 2000 {
            if let Ok((n, _)) = reader.recv_from(&mut buf) {
                if n >= 12 {
                    *codes.entry(buf[3] & 0x0f).or_insert(0) += 1;
                    if buf[3] & 0x0f == 3 {
                        answered.insert(u16::from_be_bytes([buf[0], buf[1]]));
                    }
                }
            }
        }
        (answered.len(), codes)
    });
    for id in 0..2000u16 {
        let name = format!("r{}x{id}.example.test", rand::random::<u32>());
        storm.send_to(&raw_query(id, &name), &target).unwrap();
        if id % 100 == 99 {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    let (answered, codes) = collect.join().unwrap();
    assert!(
        answered >= 1960,
        "{answered} of 2000 NXDOMAIN within 10 s; answers by rcode: {codes:?}; {}",
        reqwest::blocking::get(format!("{}/metrics", server.admin_url))
            .unwrap()
            .text()
            .unwrap()
            .lines()
            .filter(|l| l.starts_with("dns_"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    let healthy = ask(&port, &["www.other.test", "A"]);
    assert_eq!(
        answers(&healthy),
        ["www.other.test. 3600 IN A 192.0.2.81"],
        "{healthy}"
    );

    // dnspython, over UDP and TCP, with DO: the answer validates (AD).
    let script = format!(
        "import dns.message, dns.query, dns.flags\n\
         q = dns.message.make_query('www.example.test', 'A', want_dnssec=True)\n\
         for send in (dns.query.udp, dns.query.tcp):\n\
         \x20   r = send(q, '127.0.0.1', port={port}, timeout=10)\n\
         \x20   assert r.rcode() == 0 and r.flags & dns.flags.AD, r\n\
         \x20   print(r.answer[0].to_text())\n"
    );
    let out = Command::new("python3")
        .arg("-c")
        .arg(&script)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "dnspython (pip package dnspython): {}{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(stdout.matches("IN A 192.0.2.80").count(), 2, "{stdout}");

    // The metrics count what happened.
    let metrics = reqwest::blocking::get(format!("{}/metrics", server.admin_url))
        .unwrap()
        .text()
        .unwrap();
    let value = |name: &str| -> f64 {
        metrics
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0)
    };
    assert!(value("dns_cache_hits_total") >= 1.0, "{metrics}");
    assert!(
        value("dns_queries_total{outcome=\"NXDOMAIN\"}") >= 1960.0,
        "{metrics}"
    );
    assert!(
        value("dns_root_primed_timestamp_seconds") > 0.0,
        "{metrics}"
    );
    // The admin API gives the DNS panel's figures.
    let token = std::fs::read_to_string(t.data_dir().join("admin.token")).unwrap();
    let doc: serde_json::Value = reqwest::blocking::Client::new()
        .get(format!("{}/api/v1/services/dns", server.admin_url))
        .bearer_auth(token.trim())
        .send()
        .unwrap()
        .json()
        .unwrap();
    let detail = &doc["detail"];
    assert_eq!(detail["mode"], "recursion", "{doc}");
    assert!(
        detail["cache"]["entries"].as_u64().unwrap_or(0) > 1000,
        "{doc}"
    );
    assert!(
        detail["priming"]["succeeded_at"].as_u64().is_some(),
        "{doc}"
    );
    assert!(
        detail["dnssec"]["root"]
            .as_str()
            .unwrap_or("")
            .starts_with("secure"),
        "{doc}"
    );
}

#[test]
fn import_named_prints_a_dns_table_that_check_accepts() {
    let t = TestDir::new("");
    let bind = t.dir.path().join("bind");
    std::fs::create_dir_all(&bind).unwrap();
    std::fs::write(
        bind.join("named.conf"),
        "options {\n forwarders { 192.0.2.53; };\n allow-query { localhost; 192.168.1.0/24; };\n querylog yes;\n};\n\
         zone \"office.test\" { type master; file \"db.office\"; };\n",
    )
    .unwrap();
    std::fs::write(
        bind.join("db.office"),
        "$TTL 600\n@ SOA ns hostmaster 1 1 1 1 1\n@ NS ns\nns A 192.168.1.2\nprinter A 192.168.1.50\n",
    )
    .unwrap();
    let out = t.run(
        &[
            "dns",
            "import-named",
            bind.join("named.conf").to_str().unwrap(),
        ],
        "",
    );
    assert_eq!(out.code, Some(0), "{out:?}");
    assert!(
        out.stdout.contains("printer 600 A 192.168.1.50"),
        "{}",
        out.stdout
    );
    assert!(
        out.stderr.contains("named.conf:4: option `querylog`"),
        "{}",
        out.stderr
    );
    let config = std::fs::read_to_string(t.config()).unwrap();
    std::fs::write(t.config(), format!("{config}\n{}", out.stdout)).unwrap();
    let check = t.run(&["check"], "");
    assert_eq!(check.code, Some(0), "{check:?}");
}
