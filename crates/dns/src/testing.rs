//! A fake Internet for the DNS tests and `serval bench dns`: Debian's nsd serving zones on
//! loopback addresses of their own (port 53, so root is needed), zones signed with ldnsutils,
//! and hand-built queries. Never used by the service itself.

use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A query for `name` and type number `qtype`, recursion desired, built by hand so load
/// generators and hostile-packet tests need no DNS library.
pub fn query_bytes(id: u16, name: &str, qtype: u16) -> Vec<u8> {
    let mut q = id.to_be_bytes().to_vec();
    q.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    for label in name
        .trim_end_matches('.')
        .split('.')
        .filter(|l| !l.is_empty())
    {
        q.push(label.len() as u8);
        q.extend_from_slice(label.as_bytes());
    }
    q.push(0);
    q.extend_from_slice(&qtype.to_be_bytes());
    q.extend_from_slice(&[0, 1]);
    q
}

/// One question over UDP; the answer's rcode, or None when none came within `timeout`.
pub fn ask_rcode(server: SocketAddr, name: &str, qtype: u16, timeout: Duration) -> Option<u8> {
    let socket = UdpSocket::bind("127.0.0.1:0").ok()?;
    socket.set_read_timeout(Some(timeout)).ok()?;
    let id: u16 = rand::random();
    socket.send_to(&query_bytes(id, name, qtype), server).ok()?;
    let mut buf = [0u8; 4096];
    loop {
        let (n, _) = socket.recv_from(&mut buf).ok()?;
        if n >= 12 && u16::from_be_bytes([buf[0], buf[1]]) == id {
            return Some(buf[3] & 0x0f);
        }
    }
}

/// Signs `text` (zone `origin`) with a new key of `algorithm` in a folder under `dir`, with
/// NSEC3 when asked; the signed zone and the DS line for its parent.
pub fn sign(
    dir: &Path,
    origin: &str,
    text: &str,
    algorithm: &str,
    nsec3: bool,
) -> Result<(String, String), String> {
    let dir = dir.join(format!("keys-{origin}"));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let keygen = Command::new("ldns-keygen")
        .args(["-a", algorithm, "-k", origin])
        .current_dir(&dir)
        .output()
        .map_err(|e| format!("ldns-keygen is needed (Debian package ldnsutils): {e}"))?;
    if !keygen.status.success() {
        return Err(format!(
            "ldns-keygen failed: {}",
            String::from_utf8_lossy(&keygen.stderr)
        ));
    }
    let key = String::from_utf8_lossy(&keygen.stdout).trim().to_owned();
    std::fs::write(dir.join("zone"), text).map_err(|e| e.to_string())?;
    let mut args = vec!["-o", origin];
    if nsec3 {
        args.extend(["-n", "-t", "0"]);
    }
    args.extend(["zone", key.as_str()]);
    let signed = Command::new("ldns-signzone")
        .args(&args)
        .current_dir(&dir)
        .output()
        .map_err(|e| format!("ldns-signzone is needed (Debian package ldnsutils): {e}"))?;
    if !signed.status.success() {
        return Err(format!(
            "ldns-signzone failed: {}",
            String::from_utf8_lossy(&signed.stderr)
        ));
    }
    let read =
        |p: PathBuf| std::fs::read_to_string(&p).map_err(|e| format!("{}: {e}", p.display()));
    Ok((
        read(dir.join("zone.signed"))?,
        read(dir.join(format!("{key}.ds")))?,
    ))
}

/// One nsd serving `zones` (name, zone-file text) on `address`:53, stopped on drop. Response
/// rate limiting is off: every query comes from one address, which nsd's default of 200
/// answers/s per /24 would throttle (a storm or a benchmark measures Serval, not nsd's RRL).
pub struct Nsd {
    child: Child,
    dir: PathBuf,
    address: String,
    first_zone: String,
}

impl Nsd {
    pub fn start(dir: &Path, address: &str, zones: &[(&str, String)]) -> Result<Nsd, String> {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            return Err("nsd listens on port 53 of loopback addresses: run as root".into());
        }
        let dir = dir.join(format!("nsd-{address}"));
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        let mut conf = format!(
            "server:\n  ip-address: {address}\n  port: 53\n  username: \"\"\n  chroot: \"\"\n  \
             zonesdir: \"{d}\"\n  zonelistfile: \"{d}/zone.list\"\n  database: \"\"\n  \
             pidfile: \"{d}/nsd.pid\"\n  xfrdfile: \"{d}/xfrd.state\"\n  xfrdir: \"{d}\"\n  \
             server-count: 1\n  rrl-ratelimit: 0\n  logfile: \"{d}/nsd.log\"\n  verbosity: 1\n\
             remote-control:\n  control-enable: no\n",
            d = dir.display()
        );
        for (i, (name, text)) in zones.iter().enumerate() {
            std::fs::write(dir.join(format!("z{i}.zone")), text).map_err(|e| e.to_string())?;
            conf.push_str(&format!(
                "zone:\n  name: \"{name}\"\n  zonefile: \"z{i}.zone\"\n"
            ));
        }
        std::fs::write(dir.join("nsd.conf"), conf).map_err(|e| e.to_string())?;
        let mut nsd = Nsd {
            child: spawn(&dir)?,
            dir,
            address: address.to_owned(),
            first_zone: zones
                .first()
                .map(|z| z.0.to_owned())
                .unwrap_or_else(|| ".".into()),
        };
        nsd.wait_answering()?;
        Ok(nsd)
    }

    /// Waits (60 s at most: a big signed zone takes a while to load) until the first zone's
    /// SOA is served.
    fn wait_answering(&mut self) -> Result<(), String> {
        let server: SocketAddr = format!("{}:53", self.address)
            .parse()
            .map_err(|e| format!("{e}"))?;
        let deadline = Instant::now() + Duration::from_secs(60);
        while ask_rcode(server, &self.first_zone, 6, Duration::from_millis(300)) != Some(0) {
            if Instant::now() > deadline {
                let log = std::fs::read_to_string(self.dir.join("nsd.log")).unwrap_or_default();
                return Err(format!(
                    "nsd on {} did not answer within 60 s:\n{log}",
                    self.address
                ));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(())
    }

    /// Kills it (its server child exits a moment later and frees the port).
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn restart(&mut self) -> Result<(), String> {
        self.stop();
        self.child = spawn(&self.dir)?;
        self.wait_answering()
    }
}

fn spawn(dir: &Path) -> Result<Child, String> {
    Command::new("nsd")
        .arg("-d")
        .arg("-c")
        .arg(dir.join("nsd.conf"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("nsd is needed (Debian package nsd): {e}"))
}

impl Drop for Nsd {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A DNSSEC-signed fake Internet on 127.A.B (`net`): the root on .1 (ECDSA P-256, the trust
/// anchor), `test.` on .2 (RSA/SHA-256) and every leaf zone on .3, signed (Ed25519) or not
/// as asked. For tests of what resolves through Serval's `[dns]` (DANE for mail, say).
pub struct FakeInternet {
    /// The root's DS, as a `trust_anchors_file` for `[dns]`.
    pub anchors: String,
    /// A `root_hints_file` for `[dns]`.
    pub hints: String,
    _servers: Vec<Nsd>,
}

/// One leaf zone of a [`FakeInternet`]: its origin under `test.` ("dane.test."), its records
/// besides SOA and NS (zone-file lines, relative to the origin), whether it is signed.
pub struct LeafZone<'a> {
    pub origin: &'a str,
    pub records: String,
    pub signed: bool,
}

impl FakeInternet {
    pub fn start(dir: &Path, net: &str, leaves: &[LeafZone]) -> Result<FakeInternet, String> {
        const SOA: &str = "SOA ns hostmaster 1 3600 600 86400 60";
        let mut tld = format!("$ORIGIN test.\n$TTL 3600\n@ {SOA}\n@ NS ns\nns A {net}.2\n");
        let mut leaf_zones = Vec::new();
        for leaf in leaves {
            let label = leaf
                .origin
                .strip_suffix(".test.")
                .ok_or_else(|| format!("{}: leaf zones are under test.", leaf.origin))?;
            let text = format!(
                "$ORIGIN {o}\n$TTL 60\n@ {SOA}\n@ NS ns\nns A {net}.3\n{}",
                leaf.records,
                o = leaf.origin
            );
            let text = if leaf.signed {
                let (signed, ds) = sign(dir, leaf.origin, &text, "ED25519", false)?;
                tld.push_str(&ds);
                signed
            } else {
                text
            };
            tld.push_str(&format!("{label} NS ns.{label}\nns.{label} A {net}.3\n"));
            leaf_zones.push((leaf.origin, text));
        }
        let (tld, tld_ds) = sign(dir, "test.", &tld, "RSASHA256", false)?;
        let (root, root_ds) = sign(
            dir,
            ".",
            &format!(
                "$TTL 3600\n. SOA a.root.test. hostmaster.root.test. 1 3600 600 86400 60\n\
                 . NS a.root.test.\na.root.test. A {net}.1\ntest. NS ns.test.\nns.test. A {net}.2\n{tld_ds}"
            ),
            "ECDSAP256SHA256",
            false,
        )?;
        let servers = vec![
            Nsd::start(dir, &format!("{net}.1"), &[(".", root)])?,
            Nsd::start(dir, &format!("{net}.2"), &[("test.", tld)])?,
            Nsd::start(dir, &format!("{net}.3"), &leaf_zones)?,
        ];
        Ok(FakeInternet {
            anchors: format!("$TTL 3600\n{root_ds}"),
            hints: format!(".  3600000  NS  a.root.test.\na.root.test.  3600000  A  {net}.1\n"),
            _servers: servers,
        })
    }
}
