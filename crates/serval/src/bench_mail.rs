//! `serval bench mail`: Serval's mail service (shipped `[mail]` defaults, enabled, with a
//! smarthost) and Debian's Postfix (its own config and queue directories, relayhost set)
//! take the same load in one run: small messages over a few SMTP connections from
//! mynetworks, relayed to a sink. Then the queue is filled with messages the sink defers
//! (451 at RCPT), and the same load runs again over that queue.
//!
//! Figures: accepted msg/s and accept latency (MAIL FROM to the 250 after DATA, so the
//! fsync is in it), delivered msg/s (first MAIL to last message at the sink), CPU per 1000
//! messages and peak RSS of the whole process tree.
//!
//! The sink is written here (not Postfix's smtp-sink) because it must count deliveries and
//! defer chosen recipients, and smtp-sink does neither.

use std::io::{BufRead as _, BufReader, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};

use crate::bench::{free_port, wait_for_port};
use crate::bench_dns::Proc;

#[derive(clap::Args, Debug)]
pub struct MailBenchArgs {
    /// Messages of each relayed run.
    #[arg(long, default_value_t = 2000)]
    messages: usize,
    /// SMTP connections the messages are spread over.
    #[arg(long, default_value_t = 4)]
    connections: usize,
    /// Messages left deferred in the queue before the second run.
    #[arg(long, default_value_t = 10_000)]
    deferred: usize,
    /// Size of each message body in bytes.
    #[arg(long, default_value_t = 1024)]
    size: usize,
    /// A short run (200 messages, 1000 deferred) to check the benchmark works.
    #[arg(long)]
    quick: bool,
    /// Skip Postfix.
    #[arg(long)]
    no_postfix: bool,
}

/// The SMTP sink: counts messages taken and RCPTs deferred.
struct Sink {
    addr: SocketAddr,
    delivered: Arc<AtomicU64>,
    deferred: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
}

impl Sink {
    fn start() -> anyhow::Result<Sink> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let delivered = Arc::new(AtomicU64::new(0));
        let deferred = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (d, f, s) = (delivered.clone(), deferred.clone(), stop.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if s.load(Ordering::Relaxed) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let (d, f) = (d.clone(), f.clone());
                std::thread::spawn(move || {
                    let _ = sink_session(conn, &d, &f);
                });
            }
        });
        Ok(Sink {
            addr,
            delivered,
            deferred,
            stop,
        })
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = TcpStream::connect(self.addr);
    }
}

fn sink_session(
    conn: TcpStream,
    delivered: &AtomicU64,
    deferred: &AtomicU64,
) -> std::io::Result<()> {
    let _ = conn.set_nodelay(true);
    let mut out = conn.try_clone()?;
    let mut input = BufReader::new(conn);
    out.write_all(b"220 sink ESMTP\r\n")?;
    let mut line = Vec::new();
    let mut rcpts = 0;
    loop {
        line.clear();
        if input.read_until(b'\n', &mut line)? == 0 {
            return Ok(());
        }
        let upper = line.to_ascii_uppercase();
        let reply: &[u8] = if upper.starts_with(b"EHLO") {
            b"250-sink\r\n250-PIPELINING\r\n250-8BITMIME\r\n250 SIZE 0\r\n"
        } else if upper.starts_with(b"HELO") || upper.starts_with(b"NOOP") {
            b"250 ok\r\n"
        } else if upper.starts_with(b"MAIL") || upper.starts_with(b"RSET") {
            rcpts = 0;
            b"250 2.1.0 ok\r\n"
        } else if upper.starts_with(b"RCPT") {
            if upper.windows(7).any(|w| w == b"<DEFER@") {
                deferred.fetch_add(1, Ordering::Relaxed);
                b"451 4.3.0 try again later\r\n"
            } else {
                rcpts += 1;
                b"250 2.1.5 ok\r\n"
            }
        } else if upper.starts_with(b"DATA") {
            if rcpts == 0 {
                b"554 5.5.1 no valid recipients\r\n"
            } else {
                out.write_all(b"354 go ahead\r\n")?;
                loop {
                    line.clear();
                    if input.read_until(b'\n', &mut line)? == 0 {
                        return Ok(());
                    }
                    if line == b".\r\n" {
                        break;
                    }
                }
                delivered.fetch_add(1, Ordering::Relaxed);
                b"250 2.0.0 ok: queued\r\n"
            }
        } else if upper.starts_with(b"QUIT") {
            out.write_all(b"221 bye\r\n")?;
            return Ok(());
        } else {
            b"502 5.5.2 not here\r\n"
        };
        out.write_all(reply)?;
    }
}

struct Client {
    out: TcpStream,
    input: BufReader<TcpStream>,
}

impl Client {
    fn connect(addr: SocketAddr) -> anyhow::Result<Client> {
        let conn = TcpStream::connect(addr)?;
        conn.set_nodelay(true)?;
        conn.set_read_timeout(Some(Duration::from_secs(60)))?;
        let mut c = Client {
            out: conn.try_clone()?,
            input: BufReader::new(conn),
        };
        c.expect(220)?;
        c.command(b"EHLO bench.client.test\r\n", 250)?;
        Ok(c)
    }
    fn reply(&mut self) -> anyhow::Result<(u16, String)> {
        let mut text = String::new();
        loop {
            let mut line = String::new();
            if self.input.read_line(&mut line)? == 0 {
                bail!("the server closed the connection");
            }
            text.push_str(&line);
            if line.as_bytes().get(3) != Some(&b'-') {
                let code = line.get(..3).and_then(|c| c.parse().ok()).unwrap_or(0);
                return Ok((code, text));
            }
        }
    }
    fn expect(&mut self, code: u16) -> anyhow::Result<()> {
        let (got, text) = self.reply()?;
        if got != code {
            bail!("expected {code}, got {}", text.trim_end());
        }
        Ok(())
    }
    fn command(&mut self, line: &[u8], code: u16) -> anyhow::Result<()> {
        self.out.write_all(line)?;
        self.expect(code)
    }
    fn send(&mut self, to: &str, message: &[u8]) -> anyhow::Result<()> {
        self.command(b"MAIL FROM:<bench@example.test>\r\n", 250)?;
        self.command(format!("RCPT TO:<{to}>\r\n").as_bytes(), 250)?;
        self.command(b"DATA\r\n", 354)?;
        self.out.write_all(message)?;
        self.expect(250)
    }
}

fn message(n: usize, to: &str, size: usize) -> Vec<u8> {
    let mut m = format!(
        "From: bench@example.test\r\nTo: {to}\r\nSubject: bench {n}\r\nMessage-ID: <{n}.bench@example.test>\r\n\r\n"
    )
    .into_bytes();
    let line = [b'x'; 76];
    let mut body = 0;
    while body < size {
        let take = (size - body).min(76);
        m.extend_from_slice(&line[..take]);
        m.extend_from_slice(b"\r\n");
        body += take + 2;
    }
    m.extend_from_slice(b".\r\n");
    m
}

/// One load run: `count` messages to `to` over `connections`; accept latencies.
fn load(
    addr: SocketAddr,
    count: usize,
    connections: usize,
    to: &str,
    size: usize,
) -> anyhow::Result<(Duration, Vec<Duration>)> {
    let started = Instant::now();
    let threads: Vec<_> = (0..connections)
        .map(|c| {
            let to = to.to_string();
            std::thread::spawn(move || -> anyhow::Result<Vec<Duration>> {
                let mut client = Client::connect(addr)?;
                let mut latencies = Vec::new();
                for n in (c..count).step_by(connections) {
                    let body = message(n, &to, size);
                    let t = Instant::now();
                    client.send(&to, &body)?;
                    latencies.push(t.elapsed());
                }
                let _ = client.command(b"QUIT\r\n", 221);
                Ok(latencies)
            })
        })
        .collect();
    let mut all = Vec::with_capacity(count);
    for t in threads {
        all.extend(
            t.join()
                .map_err(|_| anyhow::anyhow!("a load thread panicked"))??,
        );
    }
    Ok((started.elapsed(), all))
}

/// Resident memory (KiB) of `root` and every process below it.
fn tree_rss_kib(root: u32) -> u64 {
    let mut parents = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        let Some(after) = stat.rfind(')').map(|i| &stat[i + 2..]) else {
            continue;
        };
        let ppid: u32 = after
            .split(' ')
            .nth(1)
            .and_then(|f| f.parse().ok())
            .unwrap_or(0);
        parents.push((pid, ppid));
    }
    let mut tree = vec![root];
    let mut i = 0;
    while i < tree.len() {
        let p = tree[i];
        tree.extend(parents.iter().filter(|(_, pp)| *pp == p).map(|(c, _)| *c));
        i += 1;
    }
    tree.iter()
        .filter_map(|pid| std::fs::read_to_string(format!("/proc/{pid}/status")).ok())
        .filter_map(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .sum()
}

/// CPU seconds (user + system) of `root`, its reaped children and its live descendants.
fn tree_cpu_secs(root: u32) -> f64 {
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    let mut total = 0u64;
    let mut parents = Vec::new();
    let mut times = std::collections::HashMap::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        let Some(after) = stat.rfind(')').map(|i| &stat[i + 2..]) else {
            continue;
        };
        let f: Vec<u64> = after.split(' ').map(|x| x.parse().unwrap_or(0)).collect();
        parents.push((pid, f.get(1).copied().unwrap_or(0) as u32));
        // utime, stime, cutime, cstime.
        times.insert(pid, f.get(11..15).map(|t| t.iter().sum()).unwrap_or(0));
    }
    let mut tree = vec![root];
    let mut i = 0;
    while i < tree.len() {
        let p = tree[i];
        tree.extend(parents.iter().filter(|(_, pp)| *pp == p).map(|(c, _)| *c));
        i += 1;
    }
    for pid in tree {
        total += times.get(&pid).copied().unwrap_or(0);
    }
    total as f64 / ticks
}

/// Samples the tree's RSS every 100 ms until dropped; keeps the peak.
struct RssSampler {
    peak: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
}

impl RssSampler {
    fn start(root: u32) -> RssSampler {
        let peak = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (p, s) = (peak.clone(), stop.clone());
        std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                p.fetch_max(tree_rss_kib(root), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(100));
            }
        });
        RssSampler { peak, stop }
    }
    fn peak_mib(&self) -> f64 {
        self.peak.load(Ordering::Relaxed) as f64 / 1024.0
    }
}

impl Drop for RssSampler {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

struct Server {
    name: &'static str,
    addr: SocketAddr,
    root_pid: u32,
    _process: Proc,
}

fn start_serval(dir: &Path, sink: SocketAddr) -> anyhow::Result<Server> {
    let (port, submission) = (free_port()?, free_port()?);
    let data = dir.join("serval-data");
    std::fs::create_dir_all(&data)?;
    let config = dir.join("serval.toml");
    // Shipped [mail] defaults (fsync'd queue, 16 deliveries at once, limits), enabled, with
    // the sink as its smarthost; the other services off so nothing else shares the cores.
    std::fs::write(
        &config,
        format!(
            "data_dir = {data:?}\n[admin]\nlisten = \"127.0.0.1:0\"\n[stream]\nenabled = false\n[calendar]\nenabled = false\n\
             [web]\nenabled = false\n[mail]\nenabled = true\nhostname = \"bench.example.test\"\n\
             listen = \"127.0.0.1:{port}\"\nsubmission_listen = \"127.0.0.1:{submission}\"\n\
             [mail.relay]\nhost = \"{sink}\"\ntls = \"none\"\n",
            data = data.display().to_string(),
        ),
    )?;
    let child = Command::new(std::env::current_exe()?)
        .args(["serve", "--config"])
        .arg(&config)
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("cannot start serval serve")?;
    let process = Proc(child);
    wait_for_port(port, "serval's SMTP listener")?;
    Ok(Server {
        name: "serval",
        addr: SocketAddr::from(([127, 0, 0, 1], port)),
        root_pid: process.0.id(),
        _process: process,
    })
}

/// Postfix 3.x as Debian ships it, in its own config and queue directories: relayhost is
/// the sink, mynetworks is loopback, no local delivery, no chroot (the queue is elsewhere).
fn start_postfix(dir: &Path, sink: SocketAddr) -> anyhow::Result<Server> {
    let master = Path::new("/usr/lib/postfix/sbin/master");
    if !master.exists() {
        bail!("Postfix is needed: install the Debian package postfix (or pass --no-postfix)");
    }
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        bail!("Postfix's master must start as root (or pass --no-postfix)");
    }
    let port = free_port()?;
    let (etc, spool, data) = (
        dir.join("pf-etc"),
        dir.join("pf-spool"),
        dir.join("pf-data"),
    );
    for d in [&etc, &spool, &data] {
        std::fs::create_dir_all(d)?;
    }
    std::fs::write(
        etc.join("main.cf"),
        format!(
            "compatibility_level = 3.6\nqueue_directory = {spool}\ndata_directory = {data}\n\
             mail_owner = postfix\nsetgid_group = postdrop\ninet_interfaces = 127.0.0.1\ninet_protocols = ipv4\n\
             myhostname = bench.example.test\nmydestination =\nrelayhost = [{ip}]:{sink_port}\n\
             mynetworks = 127.0.0.0/8\nsmtp_tls_security_level = none\nsmtpd_tls_security_level = none\n\
             maillog_file = {log}\nalias_maps =\nalias_database =\nlocal_recipient_maps =\n",
            spool = spool.display(),
            data = data.display(),
            ip = sink.ip(),
            sink_port = sink.port(),
            // postlogd writes to master's standard output, which goes to postfix.log.
            log = "/dev/stdout",
        ),
    )?;
    let shipped = std::fs::read_to_string("/etc/postfix/master.cf")
        .or_else(|_| std::fs::read_to_string("/usr/share/postfix/master.cf.dist"))
        .context("Postfix's master.cf")?;
    let mut master_cf = String::new();
    for line in shipped.lines() {
        if line.starts_with("maildrop") {
            break; // The pipe(8) transports below need programs that are not installed.
        }
        let fields: Vec<&str> = line.split_whitespace().collect();
        if !line.starts_with([' ', '\t', '#']) && fields.len() >= 8 {
            let service = if fields[0] == "smtp" && fields[1] == "inet" {
                format!("127.0.0.1:{port}")
            } else {
                fields[0].to_string()
            };
            // Column 5 (chroot) off: the queue is not under /var/spool/postfix.
            master_cf.push_str(&format!(
                "{service} {} {} {} n {} {} {}\n",
                fields[1],
                fields[2],
                fields[3],
                fields[5],
                fields[6],
                fields[7..].join(" ")
            ));
        } else {
            master_cf.push_str(line);
            master_cf.push('\n');
        }
    }
    std::fs::write(etc.join("master.cf"), master_cf)?;
    // The queue directories `postfix start` would make (it refuses a non-default config
    // directory that /etc/postfix/main.cf does not list).
    let chown = |path: &Path, owner: &str, mode: &str| -> anyhow::Result<()> {
        for (program, arg) in [("chown", owner), ("chmod", mode)] {
            let ok = Command::new(program).arg(arg).arg(path).status()?.success();
            if !ok {
                bail!("{program} {arg} {} failed", path.display());
            }
        }
        Ok(())
    };
    for d in [
        "active", "bounce", "corrupt", "defer", "deferred", "flush", "hold", "incoming", "private",
        "saved", "trace",
    ] {
        std::fs::create_dir_all(spool.join(d))?;
        chown(&spool.join(d), "postfix:root", "700")?;
    }
    for (d, mode) in [("maildrop", "730"), ("public", "710")] {
        std::fs::create_dir_all(spool.join(d))?;
        chown(&spool.join(d), "postfix:postdrop", mode)?;
    }
    std::fs::create_dir_all(spool.join("pid"))?;
    chown(&spool.join("pid"), "root:root", "755")?;
    chown(&data, "postfix:postfix", "700")?;
    let child = Command::new(master)
        .arg("-c")
        .arg(&etc)
        .arg("-d")
        .stdout(std::fs::File::create(dir.join("postfix.log"))?)
        .stderr(Stdio::null())
        .spawn()
        .context("cannot start Postfix's master")?;
    let process = Proc(child);
    wait_for_port(port, "Postfix's smtpd")?;
    Ok(Server {
        name: "postfix",
        addr: SocketAddr::from(([127, 0, 0, 1], port)),
        root_pid: process.0.id(),
        _process: process,
    })
}

#[derive(Default)]
struct Figures {
    accepted_per_s: f64,
    p50_ms: f64,
    p99_ms: f64,
    delivered_per_s: f64,
    cpu_ms_per_msg: f64,
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i].as_secs_f64() * 1000.0
}

fn relayed_run(server: &Server, sink: &Sink, args: &MailBenchArgs) -> anyhow::Result<Figures> {
    let before = sink.delivered.load(Ordering::Relaxed);
    let cpu_before = tree_cpu_secs(server.root_pid);
    let started = Instant::now();
    let (elapsed, mut latencies) = load(
        server.addr,
        args.messages,
        args.connections,
        "ok@remote.test",
        args.size,
    )?;
    let target = before + args.messages as u64;
    let deadline = Instant::now() + Duration::from_secs(300);
    while sink.delivered.load(Ordering::Relaxed) < target {
        if Instant::now() > deadline {
            bail!(
                "{}: only {} of {} messages reached the sink within 300 s",
                server.name,
                sink.delivered.load(Ordering::Relaxed) - before,
                args.messages
            );
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let delivered_after = started.elapsed();
    // Let the last deliveries' bookkeeping (queue file removal) finish before reading CPU.
    std::thread::sleep(Duration::from_millis(300));
    let cpu = tree_cpu_secs(server.root_pid) - cpu_before;
    latencies.sort();
    Ok(Figures {
        accepted_per_s: args.messages as f64 / elapsed.as_secs_f64(),
        p50_ms: percentile(&latencies, 0.50),
        p99_ms: percentile(&latencies, 0.99),
        delivered_per_s: args.messages as f64 / delivered_after.as_secs_f64(),
        cpu_ms_per_msg: cpu * 1000.0 / args.messages as f64,
    })
}

struct Report {
    name: &'static str,
    empty: Figures,
    fill_first: f64,
    fill_last: f64,
    full: Figures,
    rss_mib: f64,
}

fn bench_one(server: Server, sink: &Sink, args: &MailBenchArgs) -> anyhow::Result<Report> {
    let rss = RssSampler::start(server.root_pid);
    eprintln!("{}: {} relayed messages...", server.name, args.messages);
    let empty = relayed_run(&server, sink, args)?;
    eprintln!(
        "{}: filling the queue with {} deferred messages...",
        server.name, args.deferred
    );
    let chunk = (args.deferred / 10).max(1);
    let mut rates = Vec::new();
    let mut sent = 0;
    while sent < args.deferred {
        let n = chunk.min(args.deferred - sent);
        let (elapsed, _) = load(
            server.addr,
            n,
            args.connections,
            "defer@remote.test",
            args.size,
        )?;
        rates.push(n as f64 / elapsed.as_secs_f64());
        sent += n;
        eprintln!(
            "  {sent:>6} deferred: {:.0} msg/s accepted",
            rates.last().copied().unwrap_or_default()
        );
    }
    // Every deferred message tried once (so it sits in the deferred queue, not incoming).
    let deadline = Instant::now() + Duration::from_secs(300);
    while sink.deferred.load(Ordering::Relaxed) < args.deferred as u64 {
        if Instant::now() > deadline {
            bail!(
                "{}: the deferred messages were not all tried within 300 s",
                server.name
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    eprintln!(
        "{}: {} relayed messages over a queue of {} deferred...",
        server.name, args.messages, args.deferred
    );
    let full = relayed_run(&server, sink, args)?;
    eprintln!(
        "{}: the sink saw {} deferred RCPTs (retries included)",
        server.name,
        sink.deferred.load(Ordering::Relaxed)
    );
    Ok(Report {
        name: server.name,
        empty,
        fill_first: rates.first().copied().unwrap_or(f64::NAN),
        fill_last: rates.last().copied().unwrap_or(f64::NAN),
        full,
        rss_mib: rss.peak_mib(),
    })
}

pub fn mail(mut args: MailBenchArgs) -> anyhow::Result<ExitCode> {
    if args.quick {
        args.messages = 200;
        args.deferred = 1000;
    }
    let dir = tempfile::tempdir()?;
    // World-traversable, so Postfix's unprivileged processes reach their queue inside it.
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )?;
    let mut reports = Vec::new();
    {
        let sink = Sink::start()?;
        let server = start_serval(dir.path(), sink.addr)?;
        reports.push(bench_one(server, &sink, &args)?);
    }
    if !args.no_postfix {
        let sink = Sink::start()?;
        let server = start_postfix(dir.path(), sink.addr)?;
        match bench_one(server, &sink, &args) {
            Ok(report) => reports.push(report),
            Err(e) => {
                let log =
                    std::fs::read_to_string(dir.path().join("postfix.log")).unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(15).collect();
                let tail: Vec<&str> = tail.into_iter().rev().collect();
                bail!("postfix: {e:#}; the end of its log:\n{}", tail.join("\n"));
            }
        }
    }
    println!(
        "\nmail: {} messages of {} bytes over {} connections, relayed to a sink; then {} deferred in the queue and the same again",
        args.messages, args.size, args.connections, args.deferred
    );
    print!("{:<44}", "");
    for r in &reports {
        print!("{:>12}", r.name);
    }
    println!();
    type Row = (&'static str, fn(&Report) -> f64);
    let rows: [Row; 13] = [
        ("accepted msg/s (empty queue)", |r| r.empty.accepted_per_s),
        ("  accept latency p50 ms", |r| r.empty.p50_ms),
        ("  accept latency p99 ms", |r| r.empty.p99_ms),
        ("  delivered msg/s", |r| r.empty.delivered_per_s),
        ("  CPU ms per message", |r| r.empty.cpu_ms_per_msg),
        ("accepted msg/s filling: first tenth", |r| r.fill_first),
        ("accepted msg/s filling: last tenth", |r| r.fill_last),
        ("accepted msg/s (deferred queue)", |r| r.full.accepted_per_s),
        ("  accept latency p50 ms", |r| r.full.p50_ms),
        ("  accept latency p99 ms", |r| r.full.p99_ms),
        ("  delivered msg/s", |r| r.full.delivered_per_s),
        ("  CPU ms per message", |r| r.full.cpu_ms_per_msg),
        ("peak RSS MiB (whole process tree)", |r| r.rss_mib),
    ];
    for (label, value) in rows {
        print!("{label:<44}");
        for r in &reports {
            print!("{:>12.1}", value(r));
        }
        println!();
    }
    Ok(ExitCode::SUCCESS)
}
