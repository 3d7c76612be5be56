//! `serval bench calendar`: starts a throw-away Serval (this binary) and, when installed, Radicale,
//! and runs the same CalDAV workload against each, printing the figures side by side.

use std::io::{BufRead as _, BufReader};
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use serval_calendar::bench::BenchReport;

#[derive(clap::Args, Debug)]
pub struct CalendarBenchArgs {
    /// Events PUT into Serval's calendar.
    #[arg(long, default_value_t = 10_000)]
    events: usize,
    /// Events PUT into Radicale's (it slows down as the calendar grows; 2,000 take minutes).
    #[arg(long, default_value_t = 1_000)]
    radicale_events: usize,
    /// Skip Radicale.
    #[arg(long)]
    no_radicale: bool,
    /// A short run (1,000 events, Radicale 200) to check the benchmark works.
    #[arg(long)]
    quick: bool,
}

const USER: &str = "bench";
const PASSWORD: &str = "bench-password";

/// A server process killed on drop.
struct Peer {
    child: Child,
    _dir: tempfile::TempDir,
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Peer {
    fn rss_mib(&self) -> f64 {
        std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("VmRSS:"))
                    .map(|v| v.trim().trim_end_matches("kB").trim().to_string())
            })
            .and_then(|kb| kb.parse::<f64>().ok())
            .map_or(0.0, |kb| kb / 1024.0)
    }
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

fn wait_for_port(port: u16, what: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() > deadline {
            bail!("{what} did not listen on port {port} within 30 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

fn start_serval() -> anyhow::Result<(Peer, String)> {
    let dir = tempfile::tempdir()?;
    let port = free_port()?;
    let config = dir.path().join("serval.toml");
    std::fs::write(
        &config,
        format!(
            "data_dir = \"data\"\n[admin]\nlisten = \"127.0.0.1:0\"\n[log]\nlevel = \"warn\"\n[stream]\nenabled = false\n[calendar]\nlisten = \"127.0.0.1:{port}\"\n"
        ),
    )?;
    let exe = std::env::current_exe()?;
    let add = Command::new(&exe)
        .args(["user", "add", USER, "--password-stdin", "--config"])
        .arg(&config)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write as _;
            c.stdin
                .take()
                .map(|mut s| s.write_all(format!("{PASSWORD}\n").as_bytes()));
            c.wait()
        })?;
    if !add.success() {
        bail!("could not create the benchmark user");
    }
    let child = Command::new(&exe)
        .args(["serve", "--config"])
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("cannot start serval serve")?;
    let peer = Peer { child, _dir: dir };
    wait_for_port(port, "serval")?;
    Ok((
        peer,
        format!("http://127.0.0.1:{port}/calendars/users/{USER}/bench/"),
    ))
}

fn start_radicale() -> anyhow::Result<(Peer, String)> {
    let probe = Command::new("python3")
        .args(["-c", "import radicale"])
        .output();
    if !probe.is_ok_and(|o| o.status.success()) {
        bail!("Radicale is not installed (pip install radicale)");
    }
    let dir = tempfile::tempdir()?;
    let port = free_port()?;
    let users = dir.path().join("users");
    std::fs::write(&users, format!("{USER}:{PASSWORD}\n"))?;
    let config = dir.path().join("radicale.conf");
    std::fs::write(
        &config,
        format!(
            "[server]\nhosts = 127.0.0.1:{port}\n[auth]\ntype = htpasswd\nhtpasswd_filename = {}\nhtpasswd_encryption = plain\n\
             [storage]\nfilesystem_folder = {}\n[rights]\ntype = owner_only\n[logging]\nlevel = warning\n",
            users.display(),
            dir.path().join("collections").display()
        ),
    )?;
    let child = Command::new("python3")
        .args(["-m", "radicale", "--config"])
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .context("cannot start Radicale")?;
    let mut peer = Peer { child, _dir: dir };
    if let Err(e) = wait_for_port(port, "Radicale") {
        if let Some(err) = peer.child.stderr.take() {
            let lines: Vec<String> = BufReader::new(err)
                .lines()
                .map_while(Result::ok)
                .take(5)
                .collect();
            bail!("{e}: {}", lines.join(" | "));
        }
        return Err(e);
    }
    Ok((peer, format!("http://127.0.0.1:{port}/{USER}/bench/")))
}

struct Row {
    name: String,
    outcome: Result<(BenchReport, f64), String>,
}

fn run_one(
    runtime: &tokio::runtime::Runtime,
    started: anyhow::Result<(Peer, String)>,
    name: &str,
    events: usize,
) -> Row {
    let outcome = started
        .map_err(|e| format!("{e:#}"))
        .and_then(|(peer, url)| {
            eprintln!("bench calendar: {name}: {events} events ...");
            let report = runtime
                .block_on(serval_calendar::bench::bench_collection(
                    &url, USER, PASSWORD, events,
                ))
                .map_err(|e| e.to_string())?;
            Ok((report, peer.rss_mib()))
        });
    Row {
        name: name.to_string(),
        outcome,
    }
}

pub fn calendar(mut args: CalendarBenchArgs) -> anyhow::Result<ExitCode> {
    if args.quick {
        args.events = args.events.min(1_000);
        args.radicale_events = args.radicale_events.min(200);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let mut rows = vec![run_one(&runtime, start_serval(), "serval", args.events)];
    if !args.no_radicale {
        rows.push(run_one(
            &runtime,
            start_radicale(),
            "radicale",
            args.radicale_events,
        ));
    }
    print_table(&rows);
    Ok(if rows[0].outcome.is_ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn print_table(rows: &[Row]) {
    println!(
        "{:<9} {:>7} {:>12} {:>12} {:>12} {:>14} {:>12} {:>12} {:>8}",
        "server",
        "events",
        "PUT/s first",
        "PUT/s last",
        "PUT/s all",
        "month REPORT",
        "multiget100",
        "sync@100",
        "RSS MiB"
    );
    for row in rows {
        match &row.outcome {
            Ok((r, rss)) => {
                let first = r.put_rates.first().copied().unwrap_or(0.0);
                let last = r.put_rates.last().copied().unwrap_or(0.0);
                let mean = if r.put_rates.is_empty() {
                    0.0
                } else {
                    r.put_rates.iter().sum::<f64>() / r.put_rates.len() as f64
                };
                println!(
                    "{:<9} {:>7} {:>12.0} {:>12.0} {:>12.0} {:>11.1} ms {:>9.1} ms {:>9.1} ms {:>8.1}",
                    row.name,
                    r.n_events,
                    first,
                    last,
                    mean,
                    ms(r.report_month),
                    ms(r.multiget_100),
                    ms(r.sync_after_100),
                    rss
                );
                println!(
                    "          PUT/s per block: {}",
                    r.put_rates
                        .iter()
                        .map(|v| format!("{v:.0}"))
                        .collect::<Vec<_>>()
                        .join(" ")
                );
                println!(
                    "          month REPORT returned {} events",
                    r.report_month_hits
                );
            }
            Err(e) => println!("{:<9} not measured: {e}", row.name),
        }
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
