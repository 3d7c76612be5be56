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
    /// Serval's store engines to measure, comma separated: `sqlite`, `postgres` (a throwaway
    /// PostgreSQL from Debian's package, started for the run).
    #[arg(long, default_value = "sqlite", value_delimiter = ',')]
    store: Vec<String>,
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

pub(crate) fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

pub(crate) fn wait_for_port(port: u16, what: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() > deadline {
            bail!("{what} did not listen on port {port} within 30 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

/// Serval with its store on SQLite, or on the PostgreSQL at `postgres_url`; `add_user` is false
/// for a second node on a database that already has the benchmark user.
fn start_serval(postgres_url: Option<&str>, add_user: bool) -> anyhow::Result<(Peer, String)> {
    let dir = tempfile::tempdir()?;
    let port = free_port()?;
    let config = dir.path().join("serval.toml");
    let store = match postgres_url {
        Some(url) => format!("[store]\nengine = \"postgres\"\nurl = \"{url}\"\n"),
        None => String::new(),
    };
    std::fs::write(
        &config,
        format!(
            "data_dir = \"data\"\n{store}[admin]\nlisten = \"127.0.0.1:0\"\n[log]\nlevel = \"warn\"\n[stream]\nenabled = false\n[web]\nenabled = false\n[mail]\nenabled = false\n[calendar]\nlisten = \"127.0.0.1:{port}\"\n"
        ),
    )?;
    let exe = std::env::current_exe()?;
    if add_user {
        add_bench_user(&exe, &config)?;
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

fn add_bench_user(exe: &std::path::Path, config: &std::path::Path) -> anyhow::Result<()> {
    let add = Command::new(exe)
        .args(["user", "add", USER, "--password-stdin", "--config"])
        .arg(config)
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
    Ok(())
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
    let mut rows = Vec::new();
    let mut two_nodes = Vec::new();
    for engine in &args.store {
        match engine.as_str() {
            "sqlite" => rows.push(run_one(
                &runtime,
                start_serval(None, true),
                "serval/sqlite",
                args.events,
            )),
            "postgres" => {
                let server =
                    std::panic::catch_unwind(serval_core::store::pg_testing::TestPostgres::start);
                let started = match &server {
                    Ok(pg) => start_serval(Some(&pg.url()), true),
                    Err(_) => Err(anyhow::anyhow!(
                        "cannot start a PostgreSQL server: apt-get install postgresql"
                    )),
                };
                rows.push(run_one(&runtime, started, "serval/postgres", args.events));
                if let Ok(pg) = &server {
                    two_nodes.push(two_writers(&runtime, &pg.url(), args.events));
                }
            }
            other => bail!("unknown store engine `{other}`: use sqlite or postgres"),
        }
    }
    if !args.no_radicale {
        rows.push(run_one(
            &runtime,
            start_radicale(),
            "radicale",
            args.radicale_events,
        ));
    }
    print_table(&rows);
    for outcome in &two_nodes {
        match outcome {
            Ok(report) => println!("serval/postgres x2: {report}"),
            Err(e) => println!("serval/postgres x2: not measured: {e}"),
        }
    }
    let two_nodes_ok = two_nodes.iter().all(|o| {
        o.as_ref().is_ok_and(|r| {
            r.sync_tokens_agree && r.listed_per_node.iter().all(|&n| n == r.n_events)
        })
    });
    let serval_ok = two_nodes_ok
        && !rows.is_empty()
        && rows
            .iter()
            .filter(|r| r.name.starts_with("serval"))
            .all(|r| r.outcome.is_ok());
    Ok(if serval_ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Two fresh nodes on the PostgreSQL at `url` (a new database, so the first run's calendar does
/// not count), writing one calendar at once.
fn two_writers(
    runtime: &tokio::runtime::Runtime,
    url: &str,
    events: usize,
) -> Result<serval_calendar::bench::TwoWriterReport, String> {
    let url = fresh_database(url).map_err(|e| format!("{e:#}"))?;
    let (node_a, cal_a) = start_serval(Some(&url), true).map_err(|e| format!("{e:#}"))?;
    let (node_b, cal_b) = start_serval(Some(&url), false).map_err(|e| format!("{e:#}"))?;
    eprintln!("bench calendar: two nodes on postgres: {events} events ...");
    let report = runtime
        .block_on(serval_calendar::bench::bench_two_writers(
            [&cal_a, &cal_b],
            USER,
            PASSWORD,
            events,
        ))
        .map_err(|e| e.to_string());
    drop((node_a, node_b));
    report
}

/// Creates database `serval_two_nodes` beside the one in `url` and returns its URL.
fn fresh_database(url: &str) -> anyhow::Result<String> {
    let (base, _) = url.rsplit_once('/').context("no database in the URL")?;
    let status = Command::new("psql")
        .arg(url)
        .args(["-q", "-c", "CREATE DATABASE serval_two_nodes"])
        .stdout(Stdio::null())
        .status()
        .context("psql (apt-get install postgresql-client)")?;
    if !status.success() {
        bail!("psql could not create database serval_two_nodes");
    }
    Ok(format!("{base}/serval_two_nodes"))
}

fn print_table(rows: &[Row]) {
    println!(
        "{:<16} {:>7} {:>12} {:>12} {:>12} {:>14} {:>12} {:>12} {:>8}",
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
                    "{:<16} {:>7} {:>12.0} {:>12.0} {:>12.0} {:>11.1} ms {:>9.1} ms {:>9.1} ms {:>8.1}",
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
            Err(e) => println!("{:<16} not measured: {e}", row.name),
        }
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
