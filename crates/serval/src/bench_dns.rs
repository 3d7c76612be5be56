//! `serval bench dns`: Serval's resolver (this binary, shipped `[dns]` defaults plus the test
//! switches that point it at a fake Internet) and Debian's Unbound resolve the same signed
//! fake tree: a root and a `bench.` zone of 100,000 names, each served by nsd on a loopback
//! address of its own, port 53 (so it runs as root). Both validate with the fake root's key.
//!
//! Figures: cold resolution time, cached q/s with dnsperf (and server CPU per query, so q/s
//! per core), latency percentiles at a fixed rate, and RSS with 100k names cached.

use std::io::Write as _;
use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};

use crate::bench::free_port;
use serval_dns::testing::{ask_rcode, query_bytes, sign, Nsd};

#[derive(clap::Args, Debug)]
pub struct DnsBenchArgs {
    /// Seconds of each dnsperf run.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Queries per second of the fixed-rate latency run.
    #[arg(long, default_value_t = 10_000)]
    rate: u32,
    /// Names in the fake zone (and cached for the RSS figure).
    #[arg(long, default_value_t = 100_000)]
    names: u32,
    /// A short run (small zone, 2 s runs) to check the benchmark works.
    #[arg(long)]
    quick: bool,
    /// Skip Unbound.
    #[arg(long)]
    no_unbound: bool,
}

/// A process stopped on drop (SIGTERM, then SIGKILL).
pub(crate) struct Proc(pub(crate) Child);

impl Drop for Proc {
    fn drop(&mut self) {
        // SAFETY: kill with the pid of a child we own.
        unsafe { libc::kill(self.0.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn need(program: &str, package: &str) -> anyhow::Result<()> {
    let found = Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {program}"))
        .stdout(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !found && !Path::new(&format!("/usr/sbin/{program}")).exists() {
        bail!("{program} is needed: install the Debian package {package}");
    }
    Ok(())
}

struct Resolver {
    name: &'static str,
    addr: SocketAddr,
    process: Proc,
}

fn start_serval(dir: &Path, hints: &Path, anchor: &Path) -> anyhow::Result<Resolver> {
    let port = free_port()?;
    let data = dir.join("serval-data");
    std::fs::create_dir_all(&data)?;
    let config = dir.join("serval.toml");
    std::fs::write(
        &config,
        format!(
            "data_dir = {data:?}\n[admin]\nlisten = \"127.0.0.1:0\"\n[stream]\nenabled = false\n[calendar]\nenabled = false\n\
             [web]\nenabled = false\n[mail]\nenabled = false\n[dns]\nenabled = true\nlisten = \"127.0.0.1:{port}\"\n\
             root_hints_file = {hints:?}\ntrust_anchors_file = {anchor:?}\nallow_loopback_upstreams = true\n",
            data = data.display().to_string(),
            hints = hints.display().to_string(),
            anchor = anchor.display().to_string(),
        ),
    )?;
    let exe = std::env::current_exe()?;
    let child = Command::new(exe)
        .args(["serve", "--config"])
        .arg(&config)
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("cannot start serval serve")?;
    let resolver = Resolver {
        name: "serval",
        addr: SocketAddr::from(([127, 0, 0, 1], port)),
        process: Proc(child),
    };
    wait_answering(&resolver)?;
    Ok(resolver)
}

/// Unbound as Debian ships it, plus what the fake tree needs (its hints and anchor, asking
/// loopback servers) and one thread per core (Unbound's default is one thread).
fn start_unbound(dir: &Path, hints: &Path, anchor: &Path) -> anyhow::Result<Resolver> {
    let port = free_port()?;
    let config = dir.join("unbound.conf");
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    std::fs::write(
        &config,
        format!(
            "server:\n  interface: 127.0.0.1@{port}\n  do-daemonize: no\n  username: \"\"\n  chroot: \"\"\n  \
             directory: \"{d}\"\n  pidfile: \"\"\n  use-syslog: no\n  logfile: \"\"\n  num-threads: {cores}\n  \
             access-control: 127.0.0.0/8 allow\n  do-not-query-localhost: no\n  root-hints: \"{hints}\"\n  \
             trust-anchor-file: \"{anchor}\"\n  do-ip6: no\nremote-control:\n  control-enable: no\n",
            d = dir.display(),
            hints = hints.display(),
            anchor = anchor.display(),
        ),
    )?;
    let child = Command::new("unbound")
        .arg("-d")
        .arg("-c")
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("cannot start unbound")?;
    let resolver = Resolver {
        name: "unbound",
        addr: SocketAddr::from(([127, 0, 0, 1], port)),
        process: Proc(child),
    };
    wait_answering(&resolver)?;
    Ok(resolver)
}

fn wait_answering(r: &Resolver) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    while ask_rcode(r.addr, "www.bench.", 1, Duration::from_secs(2)) != Some(0) {
        if Instant::now() > deadline {
            bail!("{} did not answer www.bench. within 30 s", r.name);
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    Ok(())
}

/// User plus system CPU seconds and RSS (MiB) of process `pid`.
fn cpu_and_rss(pid: u32) -> (f64, f64) {
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat
        .rfind(')')
        .map(|i| stat[i + 2..].split(' ').collect())
        .unwrap_or_default();
    let cpu = fields
        .get(11)
        .and_then(|f| f.parse::<f64>().ok())
        .unwrap_or(0.0)
        + fields
            .get(12)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0);
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let rss = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|kb| kb.parse::<f64>().ok())
        .unwrap_or(0.0)
        / 1024.0;
    (cpu / ticks, rss)
}

/// dnsperf's queries per second and average latency (ms) over `file`.
fn dnsperf(
    r: &Resolver,
    file: &Path,
    seconds: u64,
    extra: &[&str],
) -> anyhow::Result<(f64, f64, u64)> {
    let out = Command::new("dnsperf")
        .args(["-s", "127.0.0.1", "-p", &r.addr.port().to_string(), "-d"])
        .arg(file)
        .args([
            "-l",
            &seconds.to_string(),
            "-c",
            "20",
            "-q",
            "500",
            "-t",
            "5",
        ])
        .args(extra)
        .output()
        .context("cannot run dnsperf")?;
    let text = String::from_utf8_lossy(&out.stdout);
    let number = |key: &str| -> f64 {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(key))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0)
    };
    let completed = number("Queries completed:") as u64;
    Ok((
        number("Queries per second:"),
        number("Average Latency (s):") * 1000.0,
        completed,
    ))
}

/// Latency percentiles (ms) at `rate` queries/s for `seconds`, over `names` (all cached).
fn fixed_rate(
    r: &Resolver,
    names: &[String],
    rate: u32,
    seconds: u64,
) -> anyhow::Result<(f64, f64, f64)> {
    let socket = UdpSocket::bind("127.0.0.1:0")?;
    socket.connect(r.addr)?;
    let _ = socket2::SockRef::from(&socket).set_recv_buffer_size(4 << 20);
    socket.set_read_timeout(Some(Duration::from_millis(200)))?;
    let total = (u64::from(rate) * seconds).min(65_536) as usize;
    let sent: std::sync::Arc<Vec<std::sync::atomic::AtomicU64>> = std::sync::Arc::new(
        (0..total)
            .map(|_| std::sync::atomic::AtomicU64::new(0))
            .collect(),
    );
    let start = Instant::now();
    let reader = socket.try_clone()?;
    let sent_r = sent.clone();
    let collect = std::thread::spawn(move || {
        let mut rtts = Vec::with_capacity(total);
        let mut buf = [0u8; 4096];
        let mut idle = 0;
        while rtts.len() < total && idle < 10 {
            match reader.recv(&mut buf) {
                Ok(n) if n >= 12 => {
                    idle = 0;
                    let id = usize::from(u16::from_be_bytes([buf[0], buf[1]]));
                    let at = sent_r[id % total].load(std::sync::atomic::Ordering::Relaxed);
                    let now = start.elapsed().as_micros() as u64;
                    rtts.push(now.saturating_sub(at));
                }
                Ok(_) => {}
                Err(_) => idle += 1,
            }
        }
        rtts
    });
    let interval = Duration::from_secs_f64(1.0 / f64::from(rate));
    for i in 0..total {
        let due = interval * i as u32;
        while start.elapsed() < due {
            std::hint::spin_loop();
        }
        sent[i].store(
            start.elapsed().as_micros() as u64,
            std::sync::atomic::Ordering::Relaxed,
        );
        let _ = socket.send(&query_bytes(i as u16, &names[i % names.len()], 1));
    }
    let mut rtts = collect
        .join()
        .map_err(|_| anyhow::anyhow!("reader thread failed"))?;
    let answered = rtts.len() as f64 / total as f64;
    rtts.sort_unstable();
    let pick = |q: f64| {
        rtts.get(((rtts.len() as f64 * q) as usize).min(rtts.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0) as f64
            / 1000.0
    };
    Ok((pick(0.5), pick(0.99), answered))
}

fn write_names(path: &Path, names: impl Iterator<Item = String>) -> anyhow::Result<()> {
    let mut file = std::io::BufWriter::new(std::fs::File::create(path)?);
    for name in names {
        writeln!(file, "{name} A")?;
    }
    Ok(())
}

struct Figures {
    cold_median_ms: f64,
    cold_p90_ms: f64,
    qps: f64,
    cpu_us_per_query: f64,
    avg_latency_ms: f64,
    p50_ms: f64,
    p99_ms: f64,
    answered: f64,
    rss_before: f64,
    rss_after: f64,
}

fn measure(
    r: &Resolver,
    dir: &Path,
    args: &DnsBenchArgs,
    names: u32,
    seconds: u64,
) -> anyhow::Result<Figures> {
    let pid = r.process.0.id();
    // Cold: 200 names never asked, one after another (each needs the bench. servers).
    let mut cold = Vec::new();
    for i in 0..200 {
        let started = Instant::now();
        let code = ask_rcode(r.addr, &format!("c{i}.bench."), 1, Duration::from_secs(10));
        if code.is_some() {
            cold.push(started.elapsed().as_secs_f64() * 1000.0);
        }
    }
    cold.sort_by(f64::total_cmp);
    let at = |q: f64| {
        cold.get((cold.len() as f64 * q) as usize)
            .copied()
            .unwrap_or(f64::NAN)
    };
    // Cached: 1000 names, asked once, then over and over.
    let hot: Vec<String> = (0..1000).map(|i| format!("n{i}.bench.")).collect();
    for name in &hot {
        ask_rcode(r.addr, name, 1, Duration::from_secs(5));
    }
    let hot_file = dir.join("hot.txt");
    write_names(&hot_file, hot.iter().cloned())?;
    let (cpu0, _) = cpu_and_rss(pid);
    let (qps, avg, completed) = dnsperf(r, &hot_file, seconds, &[])?;
    let (cpu1, _) = cpu_and_rss(pid);
    let cpu_us = (cpu1 - cpu0) * 1e6 / completed.max(1) as f64;
    let (p50, p99, answered) = fixed_rate(r, &hot, args.rate, 3)?;
    // Memory with every name of the zone cached.
    let (_, rss_before) = cpu_and_rss(pid);
    let all = dir.join("all.txt");
    write_names(&all, (0..names).map(|i| format!("n{i}.bench.")))?;
    Command::new("dnsperf")
        .args(["-s", "127.0.0.1", "-p", &r.addr.port().to_string(), "-d"])
        .arg(&all)
        .args(["-n", "1", "-c", "10", "-q", "200", "-Q", "20000", "-t", "5"])
        .output()
        .context("cannot run dnsperf")?;
    let (_, rss_after) = cpu_and_rss(pid);
    Ok(Figures {
        cold_median_ms: at(0.5),
        cold_p90_ms: at(0.9),
        qps,
        cpu_us_per_query: cpu_us,
        avg_latency_ms: avg,
        p50_ms: p50,
        p99_ms: p99,
        answered,
        rss_before,
        rss_after,
    })
}

pub fn dns(args: DnsBenchArgs) -> anyhow::Result<ExitCode> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        bail!("the fake name servers listen on port 53 of loopback addresses: run as root");
    }
    need("nsd", "nsd")?;
    need("ldns-signzone", "ldnsutils")?;
    need("dnsperf", "dnsperf")?;
    if !args.no_unbound {
        need("unbound", "unbound")?;
    }
    let names = if args.quick { 5_000 } else { args.names };
    let seconds = if args.quick { 2 } else { args.seconds };
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path();
    let net = format!(
        "127.{}.{}",
        100 + rand::random::<u8>() % 100,
        rand::random::<u8>()
    );
    eprintln!("signing a zone of {names} names and starting nsd...");
    let mut zone = format!(
        "$ORIGIN bench.\n$TTL 86400\n@ SOA ns hostmaster 1 3600 600 86400 300\n@ NS ns\nns A {net}.2\nwww A 192.0.2.1\n"
    );
    for i in 0..names.max(1000) {
        zone.push_str(&format!(
            "n{i} A 10.{}.{}.{}\n",
            (i >> 16) & 255,
            (i >> 8) & 255,
            i & 255
        ));
    }
    for i in 0..200 {
        zone.push_str(&format!("c{i} A 192.0.2.2\n"));
    }
    let (zone, zone_ds) =
        sign(dir, "bench.", &zone, "ED25519", false).map_err(anyhow::Error::msg)?;
    let root = format!(
        "$TTL 86400\n. SOA a.root.bench. h.root.bench. 1 3600 600 86400 300\n. NS a.root-servers.bench.\n\
         a.root-servers.bench. A {net}.1\nbench. NS ns.bench.\nns.bench. A {net}.2\n{zone_ds}"
    );
    let (root, root_ds) =
        sign(dir, ".", &root, "ECDSAP256SHA256", false).map_err(anyhow::Error::msg)?;
    let _root_server =
        Nsd::start(dir, &format!("{net}.1"), &[(".", root)]).map_err(anyhow::Error::msg)?;
    let _bench_server =
        Nsd::start(dir, &format!("{net}.2"), &[("bench.", zone)]).map_err(anyhow::Error::msg)?;
    let hints: PathBuf = dir.join("root.hints");
    std::fs::write(
        &hints,
        format!(
            ".  3600000  NS  a.root-servers.bench.\na.root-servers.bench.  3600000  A  {net}.1\n"
        ),
    )?;
    let anchor: PathBuf = dir.join("root.ds");
    std::fs::write(&anchor, format!("$TTL 86400\n{root_ds}"))?;

    let mut rows = Vec::new();
    {
        eprintln!("measuring serval...");
        let serval = start_serval(dir, &hints, &anchor)?;
        rows.push(("serval", measure(&serval, dir, &args, names, seconds)?));
    }
    if !args.no_unbound {
        eprintln!("measuring unbound...");
        let unbound = start_unbound(dir, &hints, &anchor)?;
        rows.push(("unbound", measure(&unbound, dir, &args, names, seconds)?));
    }
    println!(
        "DNS, validating, fake signed tree on loopback ({names} names); dnsperf -c 20 -q 500 -l {seconds} over 1000 cached names"
    );
    println!(
        "{:<8} {:>10} {:>10} {:>12} {:>14} {:>12} {:>10} {:>10} {:>9} {:>12}",
        "",
        "cold p50",
        "cold p90",
        "cached q/s",
        "CPU µs/query",
        "q/s per core",
        "p50",
        "p99",
        "answered",
        "RSS (MiB)"
    );
    for (name, f) in &rows {
        println!(
            "{:<8} {:>8.2}ms {:>8.2}ms {:>12.0} {:>14.1} {:>12.0} {:>8.3}ms {:>8.3}ms {:>8.1}% {:>5.1}→{:>5.1}",
            name,
            f.cold_median_ms,
            f.cold_p90_ms,
            f.qps,
            f.cpu_us_per_query,
            1e6 / f.cpu_us_per_query.max(0.001),
            f.p50_ms,
            f.p99_ms,
            f.answered * 100.0,
            f.rss_before,
            f.rss_after,
        );
        let _ = f.avg_latency_ms;
    }
    println!(
        "(p50/p99 at {} q/s for 3 s; RSS before and after caching all {names} names)",
        args.rate
    );
    Ok(ExitCode::SUCCESS)
}
