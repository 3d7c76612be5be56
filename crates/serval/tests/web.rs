//! The web service end to end with real clients and servers: curl against static sites,
//! Debian's php-fpm behind Serval over FastCGI (server variables, a POSTed form, an upload,
//! a slow script hitting php_timeout, php-fpm down), an aiohttp app behind the reverse proxy
//! with a WebSocket, realms against the directory, and hostile requests.

mod common;

use common::TestDir;
use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A curl answer: status, lower-cased headers, body.
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

fn curl(args: &[&str]) -> Answer {
    let out = Command::new("curl")
        .args(["-s", "-i", "--max-time", "20"])
        .args(args)
        .output()
        .expect("curl is needed (Debian package curl)");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    // With redirects or 100-continue several heads may come; the last one is the answer.
    let mut rest = text.as_str();
    loop {
        let (head, body) = rest.split_once("\r\n\r\n").unwrap_or((rest, ""));
        let status: u16 = head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("no HTTP answer from curl {args:?}: {text:?}"));
        if status == 100 {
            rest = body;
            continue;
        }
        let headers = head
            .lines()
            .skip(1)
            .filter_map(|l| l.split_once(':'))
            .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
            .collect();
        return Answer {
            status,
            headers,
            body: body.to_owned(),
        };
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Debian's php-fpm on a Unix socket in `dir`.
struct PhpFpm {
    child: Child,
    socket: PathBuf,
}

impl PhpFpm {
    fn start(dir: &Path) -> PhpFpm {
        let binary = std::fs::read_dir("/usr/sbin")
            .unwrap()
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .find(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("php-fpm"))
            })
            .expect("php-fpm is needed for the web tests (Debian package php-fpm)");
        let socket = dir.join("php.sock");
        let conf = dir.join("fpm.conf");
        let is_root = unsafe { libc::geteuid() } == 0;
        std::fs::write(
            &conf,
            format!(
                "[global]\npid = {dir}/fpm.pid\nerror_log = {dir}/fpm.log\ndaemonize = no\n\
                 [www]\nlisten = {socket}\npm = static\npm.max_children = 4\ncatch_workers_output = yes\n",
                dir = dir.display(),
                socket = socket.display(),
            ),
        )
        .unwrap();
        let mut cmd = Command::new(binary);
        cmd.args(["-n", "-y"])
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if is_root {
            // Workers run as root here only because the test folders are private to root.
            cmd.arg("-R");
        }
        let child = cmd.spawn().unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while !socket.exists() {
            assert!(
                Instant::now() < deadline,
                "php-fpm did not create {}",
                socket.display()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        PhpFpm { child, socket }
    }
}

impl Drop for PhpFpm {
    /// SIGTERM: the master stops its workers (SIGKILL would orphan them).
    fn drop(&mut self) {
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The aiohttp app of python/web_app.py.
struct App {
    child: Child,
    port: u16,
}

impl App {
    fn start() -> App {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/web_app.py");
        let mut child = Command::new("python3")
            .arg(script)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut line = String::new();
        let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
        std::io::BufRead::read_line(&mut out, &mut line).unwrap();
        let port = line.trim().parse().unwrap_or_else(|_| {
            panic!("the proxied app did not start (pip package aiohttp is needed): {line:?}")
        });
        App { child, port }
    }
}

impl Drop for App {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A site folder with static files, PHP scripts and traps.
fn site_files(root: &Path, outside: &Path) {
    std::fs::create_dir_all(root.join("docs")).unwrap();
    std::fs::create_dir_all(root.join("staff")).unwrap();
    std::fs::write(root.join("index.html"), "<h1>Office</h1>").unwrap();
    std::fs::write(root.join("big.txt"), "line of text\n".repeat(2000)).unwrap();
    std::fs::write(root.join("404.html"), "<h1>Nothing here, sorry</h1>").unwrap();
    std::fs::write(root.join(".env"), "DB_PASSWORD=hunter2").unwrap();
    std::fs::write(root.join("staff/index.html"), "staff only").unwrap();
    std::fs::write(outside, "outside the root").unwrap();
    std::os::unix::fs::symlink(outside, root.join("escape.txt")).unwrap();
    // A folder whose index file is a link out of the root.
    std::fs::create_dir_all(root.join("linked")).unwrap();
    std::os::unix::fs::symlink(outside, root.join("linked/index.html")).unwrap();
    std::fs::write(
        root.join("info.php"),
        r#"<?php
header('X-App: php');
echo json_encode([
  'method' => $_SERVER['REQUEST_METHOD'],
  'script_filename' => $_SERVER['SCRIPT_FILENAME'],
  'script_name' => $_SERVER['SCRIPT_NAME'],
  'path_info' => $_SERVER['PATH_INFO'] ?? null,
  'request_uri' => $_SERVER['REQUEST_URI'],
  'query' => $_GET,
  'post' => $_POST,
  'files' => array_map(fn($f) => [$f['name'], $f['size'], md5_file($f['tmp_name'])], $_FILES),
  'remote_addr' => $_SERVER['REMOTE_ADDR'],
  'server_name' => $_SERVER['SERVER_NAME'],
  'https' => $_SERVER['HTTPS'] ?? null,
  'user_agent' => $_SERVER['HTTP_USER_AGENT'] ?? null,
  'php_auth_user' => $_SERVER['PHP_AUTH_USER'] ?? null,
]);
"#,
    )
    .unwrap();
    std::fs::write(
        root.join("status.php"),
        "<?php http_response_code(418); header('X-Thing: yes'); echo 'teapot';",
    )
    .unwrap();
    std::fs::write(root.join("slow.php"), "<?php sleep(5); echo 'late';").unwrap();
    // Output that comes in parts, the second long after Serval stops gathering the answer.
    std::fs::write(
        root.join("stream.php"),
        "<?php echo 'first;'; flush(); usleep(300000); echo str_repeat('b', 100000); echo ';end';",
    )
    .unwrap();
    std::fs::write(
        root.join("warn.php"),
        "<?php error_log('something odd in warn.php'); echo 'ok';",
    )
    .unwrap();
}

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

struct Web {
    t: TestDir,
    server: common::Server,
    base: String,
    _fpm: PhpFpm,
    _app: App,
}

fn start_web() -> Web {
    let t = TestDir::new("");
    let fpm = PhpFpm::start(t.dir.path());
    let app = App::start();
    let port = free_port();
    let root = t.dir.path().join("site");
    site_files(&root, &t.dir.path().join("outside.txt"));
    let config = std::fs::read_to_string(t.config())
        .unwrap()
        .replace("[web]\nenabled = false", "");
    let config = format!(
        "{config}\n[web]\nlisten = \"127.0.0.1:{port}\"\n\
         [[web.site]]\nhost = \"www.office.test\"\ndefault = true\nroot = {root:?}\nphp = \"unix:{sock}\"\nphp_timeout = \"2s\"\n\
         [web.site.error_pages]\n\"404\" = \"/404.html\"\n\
         [[web.site.redirect]]\nfrom = \"/old/\"\nto = \"/docs/\"\n\
         [[web.site.auth]]\npath = \"/staff/\"\nrealm = \"Staff\"\ngroups = [\"staff\"]\n\
         [[web.site.proxy]]\npath = \"/app/\"\nto = \"http://127.0.0.1:{app}\"\n\
         [[web.site.proxy]]\npath = \"/dead/\"\nto = \"http://127.0.0.1:{dead}\"\n\
         [[web.site]]\nhost = \"other.office.test\"\nroot = {other:?}\n\
         [[web.site]]\nhost = \"pool.office.test\"\nroot = {root:?}\nphp = \"unix:{sock}\"\nphp_keep_alive = 2\n",
        root = root.display().to_string(),
        sock = fpm.socket.display(),
        app = app.port,
        dead = free_port(),
        other = t.dir.path().join("other").display().to_string(),
    );
    std::fs::write(t.config(), config).unwrap();
    t.add_user("ann", "ann-pass", false);
    t.add_user("bob", "bob-pass", false);
    assert_eq!(t.run(&["group", "add", "staff"], "").code, Some(0));
    assert_eq!(
        t.run(&["group", "add-member", "staff", "ann"], "").code,
        Some(0)
    );
    let check = t.run(&["check"], "");
    assert_eq!(check.code, Some(0), "{check:?}");
    let server = t.serve();
    Web {
        t,
        server,
        base: format!("http://127.0.0.1:{port}"),
        _fpm: fpm,
        _app: app,
    }
}

#[test]
fn static_files_with_validators_ranges_and_safety() {
    let w = start_web();
    let b = &w.base;
    let index = curl(&[&format!("{b}/")]);
    assert_eq!(index.status, 200);
    assert_eq!(index.body, "<h1>Office</h1>");
    assert!(index
        .header("content-type")
        .unwrap()
        .starts_with("text/html"));
    let etag = index.header("etag").expect("an ETag").to_owned();
    let again = curl(&[
        "-H",
        &format!("If-None-Match: {etag}"),
        &format!("{b}/index.html"),
    ]);
    assert_eq!(again.status, 304);
    assert!(again.body.is_empty());
    let range = curl(&["-r", "5-10", &format!("{b}/big.txt")]);
    assert_eq!(range.status, 206);
    assert_eq!(range.body, "of tex");
    assert_eq!(range.header("content-range"), Some("bytes 5-10/26000"));
    let head = curl(&["-I", &format!("{b}/big.txt")]);
    assert_eq!(head.status, 200);
    assert_eq!(head.header("content-length"), Some("26000"));
    let gz = Command::new("curl")
        .args(["-s", "--compressed", "-D", "-", &format!("{b}/big.txt")])
        .output()
        .unwrap();
    let gz = String::from_utf8_lossy(&gz.stdout);
    assert!(
        gz.to_ascii_lowercase().contains("content-encoding: "),
        "{gz:.300}"
    );
    assert!(gz.ends_with(&"line of text\n".repeat(2000)));
    // The folder without its slash is redirected, the old path too.
    let folder = curl(&[&format!("{b}/docs")]);
    assert_eq!(
        (folder.status, folder.header("location")),
        (301, Some("/docs/"))
    );
    let old = curl(&[&format!("{b}/old/a.html?x=1")]);
    assert_eq!(
        (old.status, old.header("location")),
        (301, Some("/docs/a.html?x=1"))
    );
    // No listing by default.
    assert_eq!(curl(&[&format!("{b}/docs/")]).status, 403);
    // Nothing escapes the root: dotfiles, symlinks out, climbing; the site's 404 page shows.
    let env = curl(&[&format!("{b}/.env")]);
    assert_eq!(env.status, 404);
    assert!(env.body.contains("Nothing here, sorry"), "{}", env.body);
    assert!(!env.body.contains("hunter2"));
    assert_eq!(curl(&[&format!("{b}/escape.txt")]).status, 404);
    let linked = curl(&[&format!("{b}/linked/")]);
    assert_eq!(linked.status, 403, "{}", linked.body);
    assert!(!linked.body.contains("outside the root"));
    for path in [
        "/../outside.txt",
        "/%2e%2e/outside.txt",
        "/docs/..%2f..%2foutside.txt",
    ] {
        let a = curl(&["--path-as-is", &format!("{b}{path}")]);
        assert_eq!(a.status, 400, "{path}");
        assert!(!a.body.contains("outside the root"));
    }
    // Virtual hosts: another name gets the other site (empty: 404).
    assert_eq!(
        curl(&["-H", "Host: other.office.test", &format!("{b}/index.html")]).status,
        404
    );
    // Requests by site and status class on the admin site's /metrics (loopback may read it).
    let metrics = curl(&[&format!("{}/metrics", w.server.admin_url)]);
    let count = |class: &str| -> u64 {
        let key = format!("web_requests_total{{site=\"www.office.test\",status=\"{class}\"}} ");
        metrics
            .body
            .lines()
            .find_map(|l| l.strip_prefix(key.as_str()))
            .unwrap_or_else(|| panic!("no {key} in {}", metrics.body))
            .parse()
            .unwrap()
    };
    // 200 index, 206 range, 200 HEAD, 200 gzip; 304, and the two 301s.
    assert_eq!((count("2xx"), count("3xx")), (4, 3), "{}", metrics.body);
    // Apache's combined log format.
    let log =
        std::fs::read_to_string(w.t.data_dir().join("logs/web-access.log")).unwrap_or_default();
    let line = log
        .lines()
        .find(|l| l.contains("GET /big.txt HTTP/1.1\" 206"))
        .unwrap_or_else(|| panic!("{log}"));
    assert!(line.starts_with("127.0.0.1 - - ["), "{line}");
    assert!(
        line.ends_with(&format!("\"-\" \"curl/{}\"", curl_version())),
        "{line}"
    );
}

fn curl_version() -> String {
    let out = Command::new("curl").arg("--version").output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .nth(1)
        .unwrap()
        .to_owned()
}

#[test]
fn php_through_php_fpm() {
    let mut w = start_web();
    let b = w.base.clone();
    let info = curl(&[
        "-A",
        "serval-test",
        &format!("{b}/info.php/users/7?a=1&b=two"),
    ]);
    assert_eq!(info.status, 200, "{}", info.body);
    assert_eq!(info.header("x-app"), Some("php"));
    let v = json(&info.body);
    assert_eq!(v["method"], "GET");
    assert!(
        v["script_filename"]
            .as_str()
            .unwrap()
            .ends_with("/site/info.php"),
        "{v}"
    );
    assert_eq!(v["script_name"], "/info.php");
    assert_eq!(v["path_info"], "/users/7");
    assert_eq!(v["request_uri"], "/info.php/users/7?a=1&b=two");
    assert_eq!(v["query"]["b"], "two");
    assert_eq!(v["remote_addr"], "127.0.0.1");
    assert_eq!(v["server_name"], "127.0.0.1");
    assert_eq!(v["user_agent"], "serval-test");
    assert!(v["https"].is_null());
    // A POSTed form and an upload.
    let form = json(&curl(&["-d", "name=Ann&city=Z%C3%BCrich", &format!("{b}/info.php")]).body);
    assert_eq!(form["post"]["city"], "Zürich");
    let upload_path = w.t.dir.path().join("upload.bin");
    let upload: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(&upload_path, &upload).unwrap();
    let up = json(
        &curl(&[
            "-F",
            "note=hi",
            "-F",
            &format!("file=@{}", upload_path.display()),
            &format!("{b}/info.php"),
        ])
        .body,
    );
    assert_eq!(up["post"]["note"], "hi");
    assert_eq!(up["files"]["file"][1], 300_000);
    let md5 = Command::new("md5sum").arg(&upload_path).output().unwrap();
    assert_eq!(
        up["files"]["file"][2],
        String::from_utf8_lossy(&md5.stdout)
            .split_whitespace()
            .next()
            .unwrap()
    );
    // Status and headers from the script.
    let teapot = curl(&[&format!("{b}/status.php")]);
    assert_eq!(
        (
            teapot.status,
            teapot.header("x-thing"),
            teapot.body.as_str()
        ),
        (418, Some("yes"), "teapot")
    );
    // Index files may be PHP; many requests reuse the pool's connections.
    for _ in 0..20 {
        assert_eq!(curl(&[&format!("{b}/info.php")]).status, 200);
    }
    // An answer still being written after the gathering time is streamed (chunked), whole.
    let expected = format!("first;{};end", "b".repeat(100_000));
    let streamed = curl(&[&format!("{b}/stream.php")]);
    assert_eq!(streamed.status, 200);
    assert_eq!(streamed.header("content-length"), None);
    assert_eq!(streamed.header("transfer-encoding"), Some("chunked"));
    assert!(streamed.body == expected, "{} bytes", streamed.body.len());
    // With php_keep_alive, connections to php-fpm are reused, quick and streamed answers alike.
    for _ in 0..10 {
        let page = curl(&[
            "-H",
            "Host: pool.office.test",
            &format!("{b}/info.php?name=pool"),
        ]);
        assert_eq!(page.status, 200);
        let vars = json(&page.body);
        assert_eq!(
            (&vars["query"]["name"], &vars["server_name"]),
            (
                &serde_json::json!("pool"),
                &serde_json::json!("pool.office.test")
            )
        );
        let streamed = curl(&["-H", "Host: pool.office.test", &format!("{b}/stream.php")]);
        assert!(streamed.body == expected, "{} bytes", streamed.body.len());
    }
    // The PHP app's stderr is logged with the script.
    assert_eq!(curl(&[&format!("{b}/warn.php")]).body, "ok");
    w.server
        .wait_for_log("something odd in warn.php", Duration::from_secs(5));
    // Too slow: 504 within php_timeout, with a line naming the socket.
    let started = Instant::now();
    let slow = curl(&[&format!("{b}/slow.php")]);
    assert_eq!(slow.status, 504);
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    let line = w.server.wait_for_log("php_timeout", Duration::from_secs(5));
    assert!(line.contains("php.sock"), "{line}");
    // Other clients are served meanwhile and afterwards.
    assert_eq!(curl(&[&format!("{b}/index.html")]).status, 200);
    // php-fpm down: 502 and a log line naming the socket; static files still served.
    drop(std::mem::replace(
        &mut w._fpm,
        PhpFpm {
            child: Command::new("true").spawn().unwrap(),
            socket: PathBuf::new(),
        },
    ));
    let _ = std::fs::remove_file(w.t.dir.path().join("php.sock"));
    let down = curl(&[&format!("{b}/info.php")]);
    assert_eq!(down.status, 502, "{}", down.body);
    let line = w
        .server
        .wait_for_log("FastCGI request failed", Duration::from_secs(5));
    assert!(line.contains("php.sock"), "{line}");
    assert_eq!(curl(&[&format!("{b}/index.html")]).status, 200);
}

#[test]
fn reverse_proxy_with_websocket_and_realms() {
    let mut w = start_web();
    let b = w.base.clone();
    let echo = curl(&[
        "-H",
        "Host: www.office.test",
        "-d",
        "payload",
        &format!("{b}/app/echo?q=1"),
    ]);
    assert_eq!(echo.status, 200, "{}", echo.body);
    let v = json(&echo.body);
    assert_eq!(v["path"], "/app/echo?q=1");
    assert_eq!(v["body"], "payload");
    assert_eq!(v["x_forwarded_for"], "127.0.0.1");
    assert_eq!(v["x_forwarded_proto"], "http");
    assert_eq!(v["x_forwarded_host"], "www.office.test");
    assert!(v["host"].as_str().unwrap().starts_with("127.0.0.1:"), "{v}");
    // A WebSocket through the proxy, with a real client.
    let ws_url = format!("{}/app/ws", b.replace("http://", "ws://"));
    let out = Command::new("python3")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/python/ws_client.py"
        ))
        .arg(&ws_url)
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "echo:hello\ncba\n",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // An upstream that is not there: 502 naming it in the log.
    assert_eq!(curl(&[&format!("{b}/dead/x")]).status, 502);
    w.server
        .wait_for_log("upstream unreachable", Duration::from_secs(5));
    // Realms: no login 401 with a Basic challenge, a user outside the group 403, a member in.
    let anon = curl(&[&format!("{b}/staff/")]);
    assert_eq!(anon.status, 401);
    assert_eq!(
        anon.header("www-authenticate"),
        Some("Basic realm=\"Staff\", charset=\"UTF-8\"")
    );
    assert_eq!(
        curl(&["-u", "ann:wrong", &format!("{b}/staff/")]).status,
        401
    );
    assert_eq!(
        curl(&["-u", "bob:bob-pass", &format!("{b}/staff/")]).status,
        403
    );
    let ann = curl(&["-u", "ann:ann-pass", &format!("{b}/staff/")]);
    assert_eq!((ann.status, ann.body.as_str()), (200, "staff only"));
    let log = std::fs::read_to_string(w.t.data_dir().join("logs/web-access.log")).unwrap();
    assert!(log.lines().any(|l| l.starts_with("127.0.0.1 - ann [") && l.contains("GET /staff/ HTTP/1.1\" 200")), "{log}");
}

/// Sends raw bytes and returns the status line of the answer (empty if the server closed).
fn raw(addr: &str, bytes: &[u8]) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let _ = s.write_all(bytes);
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    while let Ok(n) = s.read(&mut chunk) {
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
        if buf.windows(4).any(|w| w == b"\r\n\r\n") {
            break;
        }
    }
    String::from_utf8_lossy(&buf)
        .lines()
        .next()
        .unwrap_or("")
        .to_owned()
}

#[test]
fn hostile_requests_are_refused_and_everyone_else_is_served() {
    let w = start_web();
    let addr = w.base.trim_start_matches("http://").to_owned();
    let big = format!(
        "GET / HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "a".repeat(40_000)
    );
    assert!(raw(&addr, big.as_bytes()).contains(" 431 "));
    assert!(raw(
        &addr,
        b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab"
    )
    .contains(" 400 "));
    assert!(raw(&addr, b"NOT HTTP AT ALL\r\n\r\n").contains(" 400 "));
    assert!(raw(&addr, b"GET /%ff%fe HTTP/1.1\r\nHost: x\r\n\r\n").contains(" 400 "));
    // A body over max_body_size is refused before PHP sees it.
    let huge = curl(&[
        "-H",
        "Content-Type: application/octet-stream",
        "--data-binary",
        &format!("@{}", {
            let p = w.t.dir.path().join("huge.bin");
            std::fs::write(&p, vec![b'x'; 9_000_000]).unwrap();
            p.display().to_string()
        }),
        &format!("{}/info.php", w.base),
    ]);
    assert_eq!(huge.status, 413);
    // Slowloris: a head sent a byte at a time is cut off after the header timeout (15 s),
    // while other clients are answered at once.
    let mut slow = TcpStream::connect(&addr).unwrap();
    slow.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n").unwrap();
    let started = Instant::now();
    let mut cut = false;
    while started.elapsed() < Duration::from_secs(25) {
        if slow.write_all(b"X-A: b\r\n").is_err() {
            cut = true;
            break;
        }
        assert_eq!(curl(&[&format!("{}/", w.base)]).status, 200);
        std::thread::sleep(Duration::from_secs(1));
        slow.set_read_timeout(Some(Duration::from_millis(10)))
            .unwrap();
        let mut b = [0u8; 512];
        match slow.read(&mut b) {
            Ok(0) => {
                cut = true;
                break;
            }
            Ok(_) => {
                cut = true; // the 408 answer
                break;
            }
            Err(_) => {}
        }
    }
    assert!(cut, "a slowloris connection was kept for 25 s");
    assert!(
        started.elapsed() >= Duration::from_secs(10),
        "cut too early: {:?}",
        started.elapsed()
    );
}

#[test]
fn import_apache_prints_sites_that_check_accepts() {
    let t = TestDir::new("");
    let apache = t.dir.path().join("apache2");
    std::fs::create_dir_all(apache.join("sites-enabled")).unwrap();
    std::fs::write(
        apache.join("apache2.conf"),
        "IncludeOptional sites-enabled/*.conf\n",
    )
    .unwrap();
    std::fs::write(
        apache.join("sites-enabled/intranet.conf"),
        "<VirtualHost *:80>\n ServerName intranet.office.test\n DocumentRoot /var/www/intranet\n ProxyPass /wiki/ http://127.0.0.1:8081/\n Alias /manual /usr/share/doc/manual\n</VirtualHost>\n",
    )
    .unwrap();
    let out = t.run(&["web", "import-apache", apache.to_str().unwrap()], "");
    assert_eq!(out.code, Some(0), "{out:?}");
    assert!(
        out.stdout.contains("host = \"intranet.office.test\""),
        "{}",
        out.stdout
    );
    assert!(
        out.stderr.contains("intranet.conf:5: Alias /manual"),
        "{}",
        out.stderr
    );
    // The printed tables go under [web] as they are.
    let config = std::fs::read_to_string(t.config())
        .unwrap()
        .replace("[web]\nenabled = false", "");
    let body: String = out
        .stdout
        .lines()
        .filter(|l| !l.starts_with('#'))
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(
        t.config(),
        format!("{config}\n[web]\nlisten = \"127.0.0.1:0\"\n{body}\n"),
    )
    .unwrap();
    let check = t.run(&["check"], "");
    assert_eq!(check.code, Some(0), "{check:?}");
    let missing = t.run(
        &[
            "web",
            "import-apache",
            t.dir.path().join("nope").to_str().unwrap(),
        ],
        "",
    );
    assert_eq!(missing.code, Some(1));
    assert!(
        missing.stderr.contains("no apache2.conf or httpd.conf"),
        "{missing:?}"
    );
}
