//! Every accepted PUT survives `kill -9`: the example server is started on a data directory,
//! answers a PUT, is killed with SIGKILL, restarted on the same directory, and serves the
//! event with the same ETag.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

const PASSWORD: &str = "correct horse";

/// target/debug/examples/caldav_serve (not `serve`: the stream crate has an example of that name
/// and the workspace shares one target directory), built by `cargo test` next to this test binary.
fn serve_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let target = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target dir");
    target.join("examples").join("caldav_serve")
}

fn start(data_dir: &std::path::Path) -> (Child, String) {
    let mut child = Command::new(serve_binary())
        .arg("127.0.0.1:0")
        .arg(data_dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("examples/caldav_serve is missing: run `cargo test -p serval-calendar`, which builds it");
    let stdout = child.stdout.take().expect("stdout");
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("listening line");
    let url = line
        .trim()
        .strip_prefix("listening on ")
        .expect("listening on URL")
        .to_owned();
    (child, url)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accepted_put_survives_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let http = reqwest::Client::new();
    let (mut first, url) = start(dir.path());
    let cal = format!("{url}/calendars/users/ann/work/");
    let r = http
        .request(reqwest::Method::from_bytes(b"MKCALENDAR").unwrap(), &cal)
        .basic_auth("ann", Some(PASSWORD))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let body = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:x\r\nBEGIN:VEVENT\r\nUID:durable@test\r\nDTSTART:20260105T100000Z\r\nSUMMARY:Still here\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n";
    let r = http
        .put(format!("{cal}durable.ics"))
        .basic_auth("ann", Some(PASSWORD))
        .header("Content-Type", "text/calendar")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let etag = r.headers()["etag"].to_str().unwrap().to_owned();
    first.kill().expect("SIGKILL"); // std's kill() is SIGKILL on Unix: no shutdown, no checkpoint.
    first.wait().unwrap();

    let (mut second, url) = start(dir.path());
    let r = http
        .get(format!("{url}/calendars/users/ann/work/durable.ics"))
        .basic_auth("ann", Some(PASSWORD))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["etag"].to_str().unwrap(), etag);
    assert!(r.text().await.unwrap().contains("Still here"));
    second.kill().unwrap();
    second.wait().unwrap();
}
