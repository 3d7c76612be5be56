//! vdirsyncer (PyPI) syncs a Serval calendar with a local directory both ways: discovery,
//! server -> local, local -> server, server-side change, local deletion.

mod common;

use common::{TestServer, PASSWORD};
use std::path::Path;
use std::process::{Command, Stdio};

fn vdirsyncer(config: &Path, args: &[&str]) -> String {
    let mut child = Command::new("vdirsyncer")
        .arg("-c")
        .arg(config)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("vdirsyncer is required (pip install vdirsyncer): {e}"));
    // `discover` asks before creating a collection on the other side; the answer is yes.
    if let Some(mut stdin) = child.stdin.take() {
        use std::io::Write;
        let _ = stdin.write_all(b"y\ny\ny\ny\n");
    }
    let out = child.wait_with_output().expect("vdirsyncer ran");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "vdirsyncer {args:?} failed:\n{text}");
    text
}

fn event(uid: &str, summary: &str) -> String {
    format!("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//EN\r\nBEGIN:VEVENT\r\nUID:{uid}\r\nDTSTAMP:20260101T000000Z\r\nDTSTART:20260105T100000Z\r\nDTEND:20260105T110000Z\r\nSUMMARY:{summary}\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n")
}

fn local_files(dir: &Path) -> Vec<String> {
    let mut texts: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter_map(|e| std::fs::read_to_string(e.path()).ok())
                .collect()
        })
        .unwrap_or_default();
    texts.sort();
    texts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vdirsyncer_syncs_both_ways() {
    let server = TestServer::start();
    let http = reqwest::Client::new();
    let cal = server.url("/calendars/users/ann/work/");
    let mk = http
        .request(reqwest::Method::from_bytes(b"MKCALENDAR").unwrap(), &cal)
        .basic_auth("ann", Some(PASSWORD))
        .send()
        .await
        .unwrap();
    assert_eq!(mk.status(), 201);
    let put = http
        .put(format!("{cal}server.ics"))
        .basic_auth("ann", Some(PASSWORD))
        .header("Content-Type", "text/calendar")
        .body(event("server@test", "From the server"))
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 201);

    let dir = tempfile::tempdir().unwrap();
    let local = dir.path().join("local");
    std::fs::create_dir_all(&local).unwrap();
    let config = dir.path().join("config");
    std::fs::write(
        &config,
        format!(
            "[general]\nstatus_path = \"{status}\"\n\n[pair cal]\na = \"local\"\nb = \"remote\"\ncollections = [\"work\"]\n\n\
             [storage local]\ntype = \"filesystem\"\npath = \"{local}\"\nfileext = \".ics\"\n\n\
             [storage remote]\ntype = \"caldav\"\nurl = \"{url}\"\nusername = \"ann\"\npassword = \"{PASSWORD}\"\n",
            status = dir.path().join("status").display(),
            local = local.display(),
            url = server.url("/"),
        ),
    )
    .unwrap();
    let config_path = config.clone();
    let run = move |args: &'static [&'static str]| {
        let config = config_path.clone();
        tokio::task::spawn_blocking(move || vdirsyncer(&config, args))
    };

    run(&["discover"]).await.unwrap();
    run(&["sync"]).await.unwrap();
    let work = local.join("work");
    let files = local_files(&work);
    assert_eq!(files.len(), 1, "{files:?}");
    assert!(files[0].contains("From the server"));

    std::fs::write(
        work.join("local.ics"),
        event("local@test", "From the laptop"),
    )
    .unwrap();
    run(&["sync"]).await.unwrap();
    let listing = http
        .request(reqwest::Method::from_bytes(b"PROPFIND").unwrap(), &cal)
        .basic_auth("ann", Some(PASSWORD))
        .header("Depth", "1")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(listing.matches("<D:getetag>").count(), 2, "{listing}");

    let put = http
        .put(format!("{cal}server.ics"))
        .basic_auth("ann", Some(PASSWORD))
        .header("Content-Type", "text/calendar")
        .body(event("server@test", "Changed on the server"))
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 204);
    run(&["sync"]).await.unwrap();
    assert!(local_files(&work)
        .iter()
        .any(|f| f.contains("Changed on the server")));

    std::fs::remove_file(work.join("local.ics")).unwrap();
    run(&["sync"]).await.unwrap();
    let listing = http
        .request(reqwest::Method::from_bytes(b"PROPFIND").unwrap(), &cal)
        .basic_auth("ann", Some(PASSWORD))
        .header("Depth", "1")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(
        listing.matches("<D:getetag>").count(),
        1,
        "the local deletion reached the server: {listing}"
    );
}
