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
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// A short run (2 s each) to check the benchmark works.
    #[arg(long)]
    quick: bool,
    /// Skip nginx.
    #[arg(long)]
    no_nginx: bool,
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
    let socket = dir.path().join("php.sock");
    std::fs::write(
        dir.path().join("fpm.conf"),
        format!(
            "[global]\npid = {d}/fpm.pid\nerror_log = {d}/fpm.log\ndaemonize = no\n[www]\nlisten = {s}\npm = static\npm.max_children = 5\n",
            d = dir.path().display(),
            s = socket.display()
        ),
    )?;
    let mut fpm = Command::new(find_php_fpm()?);
    fpm.args(["-n", "-y"])
        .arg(dir.path().join("fpm.conf"))
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    if is_root() {
        fpm.arg("-R");
    }
    let _fpm = Proc(fpm.spawn().context("cannot start php-fpm")?);
    wait_for(|| socket.exists(), "php-fpm")?;

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let duration = Duration::from_secs(seconds);
    let mut rows: Vec<(String, LoadReport, LoadReport)> = Vec::new();

    // Serval: the shipped [web] defaults, one site on the bench folder.
    let port = free_port()?;
    let config = dir.path().join("serval.toml");
    std::fs::write(
        &config,
        format!(
            "data_dir = \"data\"\n[admin]\nlisten = \"127.0.0.1:0\"\n[stream]\nenabled = false\n[calendar]\nenabled = false\n\
             [web]\nlisten = \"127.0.0.1:{port}\"\n[[web.site]]\nhost = \"bench.test\"\nroot = {root:?}\nphp = \"unix:{sock}\"\n",
            root = root.display().to_string(),
            sock = socket.display()
        ),
    )?;
    let serval = Proc(
        Command::new(std::env::current_exe()?)
            .args(["serve", "--config"])
            .arg(&config)
            .current_dir(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("cannot start serval serve")?,
    );
    wait_for_port(port, "serval")?;
    eprintln!(
        "bench web: serval: static, then PHP, {seconds} s each, {} connections ...",
        args.connections
    );
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse()?;
    let stat = runtime.block_on(load(
        addr,
        "bench.test",
        "/index.html",
        args.connections,
        duration,
    ));
    let php = runtime.block_on(load(
        addr,
        "bench.test",
        "/hello.php?n=ann",
        args.connections,
        duration,
    ));
    rows.push(("serval".into(), stat, php));
    drop(serval);

    if !args.no_nginx {
        match start_nginx(dir.path(), &root, &socket) {
            Ok((nginx, port)) => {
                eprintln!("bench web: nginx: static, then PHP ...");
                let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse()?;
                let stat = runtime.block_on(load(
                    addr,
                    "bench.test",
                    "/index.html",
                    args.connections,
                    duration,
                ));
                let php = runtime.block_on(load(
                    addr,
                    "bench.test",
                    "/hello.php?n=ann",
                    args.connections,
                    duration,
                ));
                rows.push(("nginx".into(), stat, php));
                drop(nginx);
            }
            Err(e) => eprintln!("bench web: nginx skipped: {e:#}"),
        }
    }

    println!(
        "{:<8} {:>12} {:>9} {:>9} {:>8}   {:>12} {:>9} {:>9} {:>8}",
        "server",
        "static req/s",
        "p50 ms",
        "p99 ms",
        "errors",
        "PHP req/s",
        "p50 ms",
        "p99 ms",
        "errors"
    );
    for (name, s, p) in &rows {
        println!(
            "{name:<8} {:>12.0} {:>9.2} {:>9.2} {:>8}   {:>12.0} {:>9.2} {:>9.2} {:>8}",
            s.rate(),
            s.p50_ms,
            s.p99_ms,
            s.errors,
            p.rate(),
            p.p50_ms,
            p.p99_ms,
            p.errors
        );
    }
    if let (Some(ours), Some(theirs)) = (
        rows.iter().find(|r| r.0 == "serval"),
        rows.iter().find(|r| r.0 == "nginx"),
    ) {
        println!(
            "serval/nginx: static {:.2}x the req/s, p99 {:.2}x; PHP {:.2}x the req/s, p99 {:.2}x",
            ours.1.rate() / theirs.1.rate(),
            ours.1.p99_ms / theirs.1.p99_ms,
            ours.2.rate() / theirs.2.rate(),
            ours.2.p99_ms / theirs.2.p99_ms
        );
    }
    println!("({} connections, {seconds} s per cell, 1 KiB static page, small PHP page via one php-fpm pool of 5 workers)", args.connections);
    let ok = rows.iter().all(|(_, s, p)| {
        s.first_status == 200 && p.first_status == 200 && s.requests > 0 && p.requests > 0
    });
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
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
