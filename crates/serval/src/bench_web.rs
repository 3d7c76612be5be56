//! `serval bench web`: Serval's web service (this binary, shipped defaults plus one site) and
//! Debian's nginx serve the same folder and the same php-fpm pool; the same load runs against
//! each: a small static file, then a PHP page.

use std::process::{Child, Command, ExitCode, Stdio};
use std::time::Duration;

use crate::bench::{free_port, wait_for_port};
use anyhow::{bail, Context as _};
use serval_web::bench::{load, LoadReport};

#[derive(clap::Args, Debug)]
pub struct WebBenchArgs {
    /// Concurrent keep-alive connections of the load client.
    #[arg(long, default_value_t = 50)]
    connections: usize,
    /// Seconds per measurement.
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    /// A short run (2 s each) to check the benchmark works.
    #[arg(long)]
    quick: bool,
    /// Skip nginx.
    #[arg(long)]
    no_nginx: bool,
    /// Measure only this cell: "static" or "php" (e.g. to profile one path).
    #[arg(long, value_parser = ["static", "php"])]
    only: Option<String>,
    /// Another `serval` executable measured alongside as "baseline" (same defaults and site),
    /// to compare two builds in one run on a noisy machine.
    #[arg(long, value_name = "SERVAL_BIN")]
    baseline: Option<std::path::PathBuf>,
    /// Rounds of alternating measurements; medians are reported.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
}

/// A process killed on drop.
struct Proc(Child);

impl Drop for Proc {
    /// SIGTERM first: nginx's and php-fpm's masters stop their workers on it, while a SIGKILL
    /// would leave the workers running (and holding the port) after the benchmark.
    fn drop(&mut self) {
        // SAFETY: kill with the pid of a child we own.
        unsafe { libc::kill(self.0.id() as i32, libc::SIGTERM) };
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while std::time::Instant::now() < deadline {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Waits until `ready` holds (php-fpm's socket exists), 15 s at most.
fn wait_for(ready: impl Fn() -> bool, what: &str) -> anyhow::Result<()> {
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while !ready() {
        if std::time::Instant::now() > deadline {
            bail!("{what} did not start");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

fn find_php_fpm() -> anyhow::Result<std::path::PathBuf> {
    std::fs::read_dir("/usr/sbin")?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("php-fpm"))
        })
        .context("php-fpm is needed (Debian: apt-get install php-fpm)")
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// The site both servers serve: a 1 KiB page and a small PHP page.
fn site(dir: &std::path::Path) -> anyhow::Result<std::path::PathBuf> {
    let root = dir.join("site");
    std::fs::create_dir_all(&root)?;
    let mut page = String::from("<!DOCTYPE html><html><head><title>Office</title></head><body>\n");
    while page.len() < 1000 {
        page.push_str("<p>The office intranet: calendars, files, the printer.</p>\n");
    }
    page.push_str("</body></html>\n");
    std::fs::write(root.join("index.html"), &page)?;
    std::fs::write(
        root.join("hello.php"),
        "<?php $n = $_GET['n'] ?? 'world'; echo '<p>Hello, ', htmlspecialchars($n), '</p>', str_repeat('.', 200);",
    )?;
    Ok(root)
}

pub fn web(args: WebBenchArgs) -> anyhow::Result<ExitCode> {
    let seconds = if args.quick { 2 } else { args.seconds };
    let dir = tempfile::tempdir()?;
    let root = site(dir.path())?;
    // One php-fpm pool for Serval's default and nginx (both open a connection per request),
    // an identical one for the keep-alive variant, whose open connections hold its workers.
    let (_fpm, socket) = start_fpm(dir.path(), "php")?;
    let (_fpm_ka, socket_ka) = start_fpm(dir.path(), "php-ka")?;

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let duration = Duration::from_secs(seconds);
    let rounds = if args.quick { 1 } else { args.rounds.max(1) };

    // Every server is started up front and idles while another is measured; the cells then
    // alternate between them, round after round, so a slow spell of the machine (this is
    // often a VM with neighbours) lands on all of them alike. Medians are reported.
    let mut servers: Vec<Server> = Vec::new();
    let this = std::env::current_exe()?;
    let (proc_, port) = start_serval(&this, dir.path(), &root, &socket, "serval.toml", "")?;
    servers.push(Server::new("serval", port, proc_, true));
    if let Some(baseline) = &args.baseline {
        let (proc_, port) =
            start_serval(baseline, dir.path(), &root, &socket, "baseline.toml", "")?;
        servers.push(Server::new("baseline", port, proc_, true));
    }
    // The same with connections to php-fpm kept open (php_keep_alive = the pool's 5 workers).
    let (proc_, port) = start_serval(
        &this,
        dir.path(),
        &root,
        &socket_ka,
        "serval-keepalive.toml",
        "php_keep_alive = 5\n",
    )?;
    servers.push(Server::new("serval ka5", port, proc_, false));
    if !args.no_nginx {
        match start_nginx(dir.path(), &root, &socket) {
            Ok((nginx, port)) => servers.push(Server::new("nginx", port, nginx, true)),
            Err(e) => eprintln!("bench web: nginx skipped: {e:#}"),
        }
    }
    for round in 1..=rounds {
        eprintln!(
            "bench web: round {round}/{rounds}: static, then PHP, {seconds} s per server, {} connections ...",
            args.connections
        );
        let static_cells = args.only.as_deref() != Some("php");
        let php_cells = args.only.as_deref() != Some("static");
        for s in servers.iter_mut().filter(|s| s.static_cell && static_cells) {
            let cpu_before = process_tree_cpu(s.pid);
            let r = runtime.block_on(load(
                s.addr,
                "bench.test",
                "/index.html",
                args.connections,
                duration,
            ));
            let cpu = process_tree_cpu(s.pid).saturating_sub(cpu_before);
            s.static_cpu_us
                .push(cpu.as_secs_f64() * 1e6 / r.requests.max(1) as f64);
            s.static_runs.push(r);
        }
        for s in servers.iter_mut().filter(|_| php_cells) {
            let cpu_before = process_tree_cpu(s.pid);
            let r = runtime.block_on(load(
                s.addr,
                "bench.test",
                "/hello.php?n=ann",
                args.connections,
                duration,
            ));
            let cpu = process_tree_cpu(s.pid).saturating_sub(cpu_before);
            s.php_cpu_us
                .push(cpu.as_secs_f64() * 1e6 / r.requests.max(1) as f64);
            s.php_runs.push(r);
        }
    }

    println!(
        "{:<11} {:>12} {:>8} {:>8} {:>7} {:>7}   {:>10} {:>8} {:>8} {:>7} {:>7}",
        "server",
        "static req/s",
        "p50 ms",
        "p99 ms",
        "µs/req",
        "errors",
        "PHP req/s",
        "p50 ms",
        "p99 ms",
        "µs/req",
        "errors"
    );
    let cells = |runs: &[LoadReport], cpu: &[f64], width: usize| -> String {
        if runs.is_empty() {
            return format!(
                "{:>width$} {:>8} {:>8} {:>7} {:>7}",
                "-", "-", "-", "-", "-"
            );
        }
        format!(
            "{:>width$.0} {:>8.2} {:>8.2} {:>7.1} {:>7}",
            median(runs.iter().map(|r| r.rate())),
            median(runs.iter().map(|r| r.p50_ms)),
            median(runs.iter().map(|r| r.p99_ms)),
            median(cpu.iter().copied()),
            runs.iter().map(|r| r.errors).sum::<u64>()
        )
    };
    for s in &servers {
        println!(
            "{:<11} {}   {}",
            s.name,
            cells(&s.static_runs, &s.static_cpu_us, 12),
            cells(&s.php_runs, &s.php_cpu_us, 10)
        );
    }
    let rate = |runs: &[LoadReport]| median(runs.iter().map(|r| r.rate()));
    let p99 = |runs: &[LoadReport]| median(runs.iter().map(|r| r.p99_ms));
    let cpu = |per_run: &[f64]| median(per_run.iter().copied());
    if let Some(nginx) = servers.iter().find(|s| s.name == "nginx") {
        for ours in servers.iter().filter(|s| s.name != "nginx") {
            let static_part = if ours.static_runs.is_empty() {
                String::new()
            } else {
                format!(
                    "static {:.2}x the req/s, p99 {:.2}x, CPU/req {:.2}x; ",
                    rate(&ours.static_runs) / rate(&nginx.static_runs),
                    p99(&ours.static_runs) / p99(&nginx.static_runs),
                    cpu(&ours.static_cpu_us) / cpu(&nginx.static_cpu_us)
                )
            };
            let php_part = if ours.php_runs.is_empty() {
                String::new()
            } else {
                format!(
                    "PHP {:.2}x the req/s, p99 {:.2}x, CPU/req {:.2}x",
                    rate(&ours.php_runs) / rate(&nginx.php_runs),
                    p99(&ours.php_runs) / p99(&nginx.php_runs),
                    cpu(&ours.php_cpu_us) / cpu(&nginx.php_cpu_us)
                )
            };
            if !static_part.is_empty() || !php_part.is_empty() {
                println!(
                    "{}/nginx: {}",
                    ours.name,
                    format!("{static_part}{php_part}").trim_end_matches("; ")
                );
            }
        }
    }
    println!(
        "(medians of {rounds} round(s); µs/req = CPU time of the server's processes per request, php-fpm's not counted; {} connections, {seconds} s per cell, 1 KiB static page, small PHP page, each server with a php-fpm pool of 5 workers; \
         serval = shipped [web] defaults plus one site (a connection to php-fpm per request, as nginx's default); serval ka5 = the same with php_keep_alive = 5)",
        args.connections
    );
    let ok = servers.iter().all(|s| {
        s.static_runs
            .iter()
            .chain(&s.php_runs)
            .all(|r| r.first_status == 200 && r.requests > 0)
    });
    drop(servers);
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// One server under test and its measurements.
struct Server {
    name: &'static str,
    addr: std::net::SocketAddr,
    _process: Proc,
    /// Whether it takes the static cell too (the keep-alive variant differs only for PHP).
    static_cell: bool,
    static_runs: Vec<LoadReport>,
    php_runs: Vec<LoadReport>,
    /// CPU time of the server's processes (not php-fpm's) per answered request, per run.
    static_cpu_us: Vec<f64>,
    php_cpu_us: Vec<f64>,
    pid: u32,
}

impl Server {
    fn new(name: &'static str, port: u16, process: Proc, static_cell: bool) -> Self {
        Self {
            name,
            addr: std::net::SocketAddr::from(([127, 0, 0, 1], port)),
            pid: process.0.id(),
            _process: process,
            static_cell,
            static_runs: Vec::new(),
            php_runs: Vec::new(),
            static_cpu_us: Vec::new(),
            php_cpu_us: Vec::new(),
        }
    }
}

/// User plus system CPU time of process `pid` and its direct children (nginx's workers), from
/// /proc; zero where /proc is missing.
fn process_tree_cpu(pid: u32) -> Duration {
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    let mut total = 0u64;
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Duration::ZERO;
    };
    for entry in entries.flatten() {
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // Fields after the command name (which may hold spaces) in parentheses.
        let Some(after) = stat.rfind(')').map(|i| &stat[i + 2..]) else {
            continue;
        };
        let fields: Vec<&str> = after.split(' ').collect();
        let this: u32 = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        let parent: u32 = fields.get(1).and_then(|f| f.parse().ok()).unwrap_or(0);
        if this == pid || parent == pid {
            let user: u64 = fields.get(11).and_then(|f| f.parse().ok()).unwrap_or(0);
            let system: u64 = fields.get(12).and_then(|f| f.parse().ok()).unwrap_or(0);
            total += user + system;
        }
    }
    Duration::from_secs_f64(total as f64 / ticks)
}

fn median(values: impl Iterator<Item = f64>) -> f64 {
    let mut v: Vec<f64> = values.collect();
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// A php-fpm pool of 5 static workers listening on `DIR/NAME.sock`.
fn start_fpm(dir: &std::path::Path, name: &str) -> anyhow::Result<(Proc, std::path::PathBuf)> {
    let socket = dir.join(format!("{name}.sock"));
    let conf = dir.join(format!("{name}-fpm.conf"));
    std::fs::write(
        &conf,
        format!(
            "[global]\npid = {d}/{name}-fpm.pid\nerror_log = {d}/{name}-fpm.log\ndaemonize = no\n[www]\nlisten = {s}\npm = static\npm.max_children = 5\n",
            d = dir.display(),
            s = socket.display()
        ),
    )?;
    let mut fpm = Command::new(find_php_fpm()?);
    fpm.args(["-n", "-y"])
        .arg(&conf)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    if is_root() {
        fpm.arg("-R");
    }
    let fpm = Proc(fpm.spawn().context("cannot start php-fpm")?);
    wait_for(|| socket.exists(), "php-fpm")?;
    Ok((fpm, socket))
}

/// Serval on the shipped [web] defaults with one site on the bench folder (plus `site_extra`
/// keys for that site), in its own data folder.
fn start_serval(
    exe: &std::path::Path,
    dir: &std::path::Path,
    root: &std::path::Path,
    socket: &std::path::Path,
    config_name: &str,
    site_extra: &str,
) -> anyhow::Result<(Proc, u16)> {
    let port = free_port()?;
    let data = dir.join(config_name.trim_end_matches(".toml"));
    std::fs::create_dir_all(&data)?;
    let config = dir.join(config_name);
    std::fs::write(
        &config,
        format!(
            "data_dir = {data:?}\n[admin]\nlisten = \"127.0.0.1:0\"\n[stream]\nenabled = false\n[calendar]\nenabled = false\n[mail]\nenabled = false\n\
             [web]\nlisten = \"127.0.0.1:{port}\"\n[[web.site]]\nhost = \"bench.test\"\nroot = {root:?}\nphp = \"unix:{sock}\"\n{site_extra}",
            data = data.display().to_string(),
            root = root.display().to_string(),
            sock = socket.display()
        ),
    )?;
    let serval = Proc(
        Command::new(exe)
            .args(["serve", "--config"])
            .arg(&config)
            .current_dir(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("cannot start serval serve")?,
    );
    wait_for_port(port, "serval")?;
    Ok((serval, port))
}

/// nginx as Debian ships it where it matters (sendfile, keep-alive to clients, a FastCGI
/// connection per request: nginx's keep-alive to php-fpm stalls once its connections outnumber
/// the workers), with the combined access log like Serval's.
fn start_nginx(
    dir: &std::path::Path,
    root: &std::path::Path,
    socket: &std::path::Path,
) -> anyhow::Result<(Proc, u16)> {
    let binary = ["/usr/sbin/nginx", "/usr/local/sbin/nginx"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
        .context("nginx is not installed (Debian: apt-get install nginx-light)")?;
    let port = free_port()?;
    let conf = dir.join("nginx.conf");
    let d = dir.display();
    std::fs::write(
        &conf,
        format!(
            "{user}worker_processes auto;\npid {d}/nginx.pid;\nerror_log {d}/nginx-error.log;\ndaemon off;\n\
             events {{ worker_connections 1024; }}\n\
             http {{\n  include /etc/nginx/mime.types;\n  sendfile on;\n  tcp_nopush on;\n  keepalive_requests 100000;\n\
               access_log {d}/nginx-access.log combined;\n\
               client_body_temp_path {d}/body; proxy_temp_path {d}/proxy; fastcgi_temp_path {d}/fastcgi; uwsgi_temp_path {d}/uwsgi; scgi_temp_path {d}/scgi;\n\
\
               server {{\n    listen 127.0.0.1:{port};\n    server_name bench.test;\n    root {root};\n    index index.html index.php;\n\
                 location ~ \\.php$ {{\n      include /etc/nginx/fastcgi_params;\n      fastcgi_param SCRIPT_FILENAME $document_root$fastcgi_script_name;\n      fastcgi_pass unix:{sock};\n    }}\n  }}\n}}\n",
            user = if is_root() { "user root;\n" } else { "" },
            sock = socket.display(),
            root = root.display(),
        ),
    )?;
    let child = Command::new(binary)
        .args(["-e", &format!("{d}/nginx-error.log"), "-c"])
        .arg(&conf)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .context("cannot start nginx")?;
    let nginx = Proc(child);
    wait_for_port(port, "nginx")?;
    Ok((nginx, port))
}
