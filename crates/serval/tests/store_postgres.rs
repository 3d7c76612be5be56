//! Serval on PostgreSQL as an office with two nodes runs it: two `serval serve` processes on
//! one database (a throwaway `postgres` from Debian's package), python `caldav` writing
//! through both at once, a user added on one node logging in on the other at once, kill -9
//! of a node losing nothing acknowledged, PostgreSQL restarted under load answered with 503
//! and recovered without restarting Serval, `serval check` naming an unreachable database,
//! and `serval store migrate` copying a SQLite store that a PostgreSQL node then serves.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::{field, Server, TestDir};
use serval_core::store::pg_testing::TestPostgres;

const PASSWORD: &str = "two nodes";

/// A node's folder: its own data_dir (lock, logs) and config on the shared database.
fn node(pg_url: &str) -> TestDir {
    let dir = TestDir::new("");
    let config = format!(
        "data_dir = \"data\"\n[store]\nengine = \"postgres\"\nurl = \"{pg_url}\"\n\
         [admin]\nlisten = \"127.0.0.1:0\"\n[stream]\nenabled = false\n\
         [calendar]\nlisten = \"127.0.0.1:0\"\n[web]\nenabled = false\n[mail]\nenabled = false\n"
    );
    std::fs::write(dir.config(), config).unwrap();
    dir
}

/// The calendar base URL the node logged at start.
fn calendar_url(server: &Server) -> String {
    let line = server
        .log
        .iter()
        .find(|l| l.contains("service ready") && l.contains("calendar"))
        .unwrap_or_else(|| panic!("no calendar listener in {:#?}", server.log));
    format!("http://{}/", field(line, "listen=").expect("listen="))
}

fn propfind(url: &str, user: &str) -> u16 {
    let out = Command::new("curl")
        .args([
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "-X",
            "PROPFIND",
            "-H",
            "Depth: 0",
        ])
        .args(["-u", &format!("{user}:{PASSWORD}"), url])
        .output()
        .expect("curl (Debian package curl)");
    String::from_utf8_lossy(&out.stdout).parse().unwrap_or(0)
}

fn python(script: &str, env: &[(&str, &str)]) -> String {
    let path = format!("{}/tests/python/{script}", env!("CARGO_MANIFEST_DIR"));
    let out = Command::new("python3")
        .arg(&path)
        .envs(env.iter().copied())
        .output()
        .expect("python3 with caldav (pip install caldav)");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{script}: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[test]
fn two_nodes_share_one_postgres() {
    let mut pg = TestPostgres::start();
    let (a_dir, b_dir) = (node(&pg.url()), node(&pg.url()));
    let check = a_dir.run(&["check"], "");
    assert_eq!(check.code, Some(0), "{check:?}");
    assert!(check.stdout.contains("PostgreSQL at"), "{}", check.stdout);
    a_dir.add_user("ann", PASSWORD, false);
    let a = a_dir.serve();
    let b = b_dir.serve();
    let (url_a, url_b) = (calendar_url(&a), calendar_url(&b));

    // Added on A (through the CLI on A's config), at once able to log in on B.
    a_dir.add_user("bob", PASSWORD, false);
    assert_eq!(
        propfind(&format!("{url_b}principals/users/bob/"), "bob"),
        207
    );

    let out = python(
        "two_nodes.py",
        &[
            ("NODE_A", &url_a),
            ("NODE_B", &url_b),
            ("CALDAV_USER", "ann"),
            ("CALDAV_PASSWORD", PASSWORD),
        ],
    );
    assert!(out.trim_end().ends_with("OK"), "{out}");

    // kill -9 of node A right after an acknowledged PUT: node B serves it.
    let event = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//EN\r\nBEGIN:VEVENT\r\nUID:acked@test\r\nDTSTAMP:20260101T000000Z\r\nDTSTART:20261201T100000Z\r\nDTEND:20261201T110000Z\r\nSUMMARY:acked\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n";
    let put = Command::new("curl")
        .args([
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "-X",
            "PUT",
            "-H",
            "Content-Type: text/calendar",
        ])
        .args(["-u", &format!("ann:{PASSWORD}"), "--data-binary", event])
        .arg(format!("{url_a}calendars/users/ann/shared/acked.ics"))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&put.stdout), "201");
    a.signal(libc::SIGKILL);
    assert_eq!(
        propfind(
            &format!("{url_b}calendars/users/ann/shared/acked.ics"),
            "ann"
        ),
        207
    );

    // PostgreSQL restarted under load: 503 while it is down, then back without a restart.
    let shared = format!("{url_b}calendars/users/ann/shared/");
    pg.stop();
    assert_eq!(propfind(&shared, "ann"), 503);
    pg.start_again();
    let deadline = Instant::now() + Duration::from_secs(20);
    while propfind(&shared, "ann") != 207 {
        assert!(
            Instant::now() < deadline,
            "node B did not recover after PostgreSQL came back"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    drop(b);

    // An unreachable database is named by `serval check`.
    let gone = node("postgres://serval@127.0.0.1:1/serval");
    let check = gone.run(&["check"], "");
    assert_eq!(check.code, Some(1), "{check:?}");
    assert!(
        check
            .stdout
            .contains("cannot connect to postgres://serval@127.0.0.1:1/serval"),
        "{}",
        check.stdout
    );
}

#[test]
fn a_sqlite_store_migrates_into_postgres_and_is_served_from_it() {
    // Data written on the embedded engine by a real server and client...
    let sqlite = TestDir::new("");
    std::fs::write(
        sqlite.config(),
        "data_dir = \"data\"\n[admin]\nlisten = \"127.0.0.1:0\"\n[stream]\nenabled = false\n[calendar]\nlisten = \"127.0.0.1:0\"\n[web]\nenabled = false\n[mail]\nenabled = false\n",
    )
    .unwrap();
    sqlite.add_user("ann", PASSWORD, true);
    let server = sqlite.serve();
    let url = calendar_url(&server);
    let mkcalendar = Command::new("curl")
        .args([
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "-X",
            "MKCALENDAR",
        ])
        .args(["-u", &format!("ann:{PASSWORD}")])
        .arg(format!("{url}calendars/users/ann/work/"))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&mkcalendar.stdout), "201");
    let event = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//EN\r\nBEGIN:VEVENT\r\nUID:moved@test\r\nDTSTAMP:20260101T000000Z\r\nDTSTART:20261201T100000Z\r\nDTEND:20261201T110000Z\r\nSUMMARY:moved\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n";
    let put = Command::new("curl")
        .args([
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "-X",
            "PUT",
            "-H",
            "Content-Type: text/calendar",
        ])
        .args(["-u", &format!("ann:{PASSWORD}"), "--data-binary", event])
        .arg(format!("{url}calendars/users/ann/work/moved.ics"))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&put.stdout), "201");

    // ...copied while that server runs, then verified.
    let pg = TestPostgres::start();
    let migrated = sqlite.run(&["store", "migrate", "--to", &pg.url()], "");
    assert_eq!(migrated.code, Some(0), "{migrated:?}");
    assert!(
        migrated.stdout.contains("checksum match"),
        "{}",
        migrated.stdout
    );
    assert!(
        migrated
            .stdout
            .lines()
            .any(|l| l.starts_with("cal_object") && l.contains(" 1 ")),
        "{}",
        migrated.stdout
    );
    let again = sqlite.run(&["store", "migrate", "--to", &pg.url()], "");
    assert_eq!(
        again.code,
        Some(1),
        "a second copy into a full database is refused: {again:?}"
    );
    drop(server);

    // A node on PostgreSQL serves the same user, password and event.
    let on_pg = node(&pg.url());
    let server = on_pg.serve();
    let url = calendar_url(&server);
    assert_eq!(
        propfind(&format!("{url}calendars/users/ann/work/moved.ics"), "ann"),
        207
    );
    let users = on_pg.run(&["user", "list"], "");
    assert!(
        users.stdout.contains("ann") && users.stdout.contains("admin"),
        "{}",
        users.stdout
    );
}
