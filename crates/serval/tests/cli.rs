//! The command line, driven as a user would: config printing and checking, users and groups,
//! backup and restore, start-up errors, signals, and durability across `kill -9`.

mod common;

use std::time::Duration;

use common::{serval_bin, TestDir};

#[test]
fn config_default_prints_every_table_with_comments() {
    let out = std::process::Command::new(serval_bin())
        .args(["config", "default"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    for table in ["[admin]", "[log]", "[tls]", "[directory]", "[stream]"] {
        assert!(text.contains(table), "missing {table}:\n{text}");
    }
    assert!(text.contains("listen = \"127.0.0.1:1220\""), "{text}");
    // Every key line is preceded by a comment line.
    let lines: Vec<&str> = text.lines().collect();
    for (i, line) in lines.iter().enumerate() {
        let is_key = !line.starts_with('#') && !line.starts_with('[') && line.contains(" = ");
        if is_key {
            assert!(
                lines[..i].last().is_some_and(|l| l.starts_with('#')),
                "key without a comment: {line}"
            );
        }
    }
}

#[test]
fn check_names_every_bad_key_with_its_line() {
    let t = TestDir::new("");
    std::fs::write(
        t.config(),
        "data_dir = \"data\"\n[admin]\nlisten = \"127.0.0.1:99999\"\ncolour = \"blue\"\n[log]\nlevel = \"chatty\"\n[stream]\nenabled = false\n",
    )
    .unwrap();
    let out = t.run(&["check"], "");
    assert_eq!(out.code, Some(1), "{out:?}");
    let config = t.config().display().to_string();
    assert!(
        out.stdout
            .contains(&format!("{config}:3: error: admin.listen")),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .contains(&format!("{config}:4: error: admin.colour")),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("unknown field `colour`"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .contains(&format!("{config}:6: error: log.level")),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("3 error(s)"), "{}", out.stdout);
}

#[test]
fn check_warns_about_risky_settings() {
    let t = TestDir::new("");
    std::fs::write(
        t.config(),
        "data_dir = \"data\"\n[admin]\nlisten = \"0.0.0.0:0\"\n[log]\nlevel = \"error\"\n[tls]\ncert = \"missing.pem\"\nkey = \"missing.key\"\n[stream]\nenabled = false\n",
    )
    .unwrap();
    let out = t.run(&["check"], "");
    assert!(
        out.stdout
            .contains("warning: admin.listen: 0.0.0.0:0 is reachable from other hosts without TLS"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .contains("warning: log.level: `error` hides errors and warnings"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("error: tls.cert:")
            && out.stdout.contains("missing.pem does not exist"),
        "{}",
        out.stdout
    );
    assert_eq!(out.code, Some(1));
}

#[test]
fn check_names_tls_listeners_without_a_certificate() {
    let t = TestDir::new("");
    let config = std::fs::read_to_string(t.config()).unwrap();
    std::fs::write(
        t.config(),
        config.replace(
            "[stream]\nenabled = false",
            "[stream]\ntls_listen = \"127.0.0.1:0\"",
        ),
    )
    .unwrap();
    let out = t.run(&["check"], "");
    assert_eq!(out.code, Some(1), "{out:?}");
    assert!(
        out.stdout
            .contains("error: stream.tls_listen: needs a certificate"),
        "{}",
        out.stdout
    );
}

#[test]
fn check_passes_a_good_config() {
    let t = TestDir::new("");
    let out = t.run(&["check"], "");
    assert_eq!(out.code, Some(0), "{out:?}");
    assert!(out.stdout.contains("0 error(s)"), "{}", out.stdout);
}

#[test]
fn users_and_groups_from_the_command_line() {
    let t = TestDir::new("");
    t.add_user("alice", "correct horse", false);
    let out = t.run(&["user", "add", "alice", "--password-stdin"], "x\n");
    assert_eq!(out.code, Some(1));
    assert!(
        out.stderr.contains("user `alice` already exists"),
        "{}",
        out.stderr
    );
    let out = t.run(
        &[
            "user",
            "add",
            "bob",
            "--password-stdin",
            "--full-name",
            "Bob Builder",
            "--email",
            "bob@example.org",
        ],
        "pw\n",
    );
    assert_eq!(out.code, Some(0), "{out:?}");
    assert_eq!(t.run(&["group", "add", "staff"], "").code, Some(0));
    assert_eq!(
        t.run(&["group", "add-member", "staff", "bob"], "").code,
        Some(0)
    );
    let out = t.run(&["group", "add-member", "staff", "nobody"], "");
    assert_eq!(out.code, Some(1));
    assert!(
        out.stderr.contains("no user named `nobody`"),
        "{}",
        out.stderr
    );

    let out = t.run(&["user", "list"], "");
    assert!(
        out.stdout.contains("alice")
            && out.stdout.contains("Bob Builder")
            && out.stdout.contains("staff"),
        "{}",
        out.stdout
    );
    assert!(
        !out.stdout.contains("argon2"),
        "user list must never print hashes: {}",
        out.stdout
    );
    let out = t.run(&["user", "list", "--json"], "");
    assert!(
        !out.stdout.contains("argon2") && !out.stdout.contains("password_hash"),
        "{}",
        out.stdout
    );

    let out = t.run(&["group", "list"], "");
    assert!(
        out.stdout
            .lines()
            .any(|l| l.starts_with("staff") && l.contains("bob")),
        "{}",
        out.stdout
    );
    assert_eq!(
        t.run(&["group", "remove-member", "staff", "bob"], "").code,
        Some(0)
    );
    assert_eq!(
        t.run(&["user", "passwd", "bob", "--password-stdin"], "new\n")
            .code,
        Some(0)
    );
    assert_eq!(t.run(&["user", "del", "bob"], "").code, Some(0));
    let out = t.run(&["user", "list"], "");
    assert!(!out.stdout.contains("bob"), "{}", out.stdout);
    let out = t.run(&["user", "add", "../evil", "--password-stdin"], "x\n");
    assert_eq!(out.code, Some(1));
    assert!(out.stderr.contains("not a valid name"), "{}", out.stderr);
}

#[test]
fn user_add_without_terminal_or_stdin_flag_explains_itself() {
    let t = TestDir::new("");
    let out = t.run(&["user", "add", "carol"], "");
    assert_eq!(out.code, Some(1));
    assert!(out.stderr.contains("--password-stdin"), "{}", out.stderr);
}

#[test]
fn serve_refuses_a_bad_config_and_starts_nothing() {
    let t = TestDir::new("");
    std::fs::write(
        t.config(),
        "data_dir = \"data\"\n[admin]\nlisten = \"127.0.0.1:0\"\nbogus = 1\n",
    )
    .unwrap();
    let out = t.run(&["serve"], "");
    assert_eq!(out.code, Some(1));
    assert!(out.stderr.contains("admin.bogus"), "{}", out.stderr);
    assert!(
        !t.data_dir().join("serval.db").exists(),
        "nothing may be half-started"
    );
}

#[test]
fn serve_names_a_port_in_use() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let t = TestDir::new("");
    std::fs::write(
        t.config(),
        format!("data_dir = \"data\"\n[admin]\nlisten = \"127.0.0.1:{port}\"\n[stream]\nenabled = false\n[mail]\nenabled = false\n"),
    )
    .unwrap();
    let out = t.run(&["serve"], "");
    assert_eq!(out.code, Some(1));
    assert!(
        out.stderr.contains(&format!(
            "cannot listen on 127.0.0.1:{port} for the admin site: the address is already in use"
        )),
        "{}",
        out.stderr
    );
}

#[test]
fn serve_names_an_unwritable_data_dir() {
    let t = TestDir::new("");
    let file = t.dir.path().join("not-a-dir");
    std::fs::write(&file, "x").unwrap();
    std::fs::write(
        t.config(),
        "data_dir = \"not-a-dir\"\n[admin]\nlisten = \"127.0.0.1:0\"\n[stream]\nenabled = false\n",
    )
    .unwrap();
    let out = t.run(&["serve"], "");
    assert_eq!(out.code, Some(1));
    assert!(
        out.stderr.contains("data_dir") && out.stderr.contains("is not a directory"),
        "{}",
        out.stderr
    );
}

#[test]
fn second_server_on_the_same_data_dir_is_refused() {
    let t = TestDir::new("");
    let _first = t.serve();
    let out = t.run(&["serve"], "");
    assert_eq!(out.code, Some(1));
    assert!(
        out.stderr.contains("is running on the data directory"),
        "{}",
        out.stderr
    );
}

#[test]
fn sigterm_shuts_down_cleanly_and_sighup_applies_log_levels() {
    let t = TestDir::new("");
    let mut server = t.serve();
    let config = std::fs::read_to_string(t.config()).unwrap();
    std::fs::write(
        t.config(),
        format!("{config}\n[log.services]\nstream = \"debug\"\n"),
    )
    .unwrap();
    server.signal(libc::SIGHUP);
    let line = server.wait_for_log("SIGHUP: log levels applied", Duration::from_secs(10));
    assert!(line.contains("serval_stream=debug"), "{line}");
    std::fs::write(t.config(), config.replace("127.0.0.1:0", "127.0.0.1:1")).unwrap();
    server.signal(libc::SIGHUP);
    let line = server.wait_for_log("take effect after a restart", Duration::from_secs(10));
    assert!(line.contains("[admin]"), "{line}");
    server.signal(libc::SIGTERM);
    assert_eq!(server.wait_exit(Duration::from_secs(20)), Some(0));
    server.wait_for_log("stopped", Duration::from_secs(5));
}

#[test]
fn backup_and_restore_round_trip_and_restore_refuses_a_running_server() {
    let t = TestDir::new("");
    t.add_user("keeper", "pw", false);
    let backup = t.dir.path().join("backup.db");
    let server = t.serve();
    let out = t.run(&["backup", backup.to_str().unwrap()], "");
    assert_eq!(out.code, Some(0), "{out:?}");
    let out = t.run(&["restore", backup.to_str().unwrap()], "");
    assert_eq!(
        out.code,
        Some(1),
        "restore must refuse while the server runs"
    );
    assert!(
        out.stderr.contains("is running on the data directory"),
        "{}",
        out.stderr
    );
    drop(server);
    t.add_user("later", "pw", false);
    let out = t.run(&["restore", backup.to_str().unwrap()], "");
    assert_eq!(out.code, Some(0), "{out:?}");
    let out = t.run(&["user", "list"], "");
    assert!(out.stdout.contains("keeper"), "{}", out.stdout);
    assert!(
        !out.stdout.contains("later"),
        "restore brings back the snapshot: {}",
        out.stdout
    );
    let junk = t.dir.path().join("junk.db");
    std::fs::write(&junk, "not a database").unwrap();
    let out = t.run(&["restore", junk.to_str().unwrap()], "");
    assert_eq!(out.code, Some(1));
    assert!(out.stdout.is_empty());
}

/// Every user the API acknowledged (201) before `kill -9` is there after a restart.
#[test]
fn acknowledged_writes_survive_kill_9() {
    let t = TestDir::new("");
    let mut server = t.serve();
    let token = std::fs::read_to_string(t.data_dir().join("admin.token")).unwrap();
    let url = format!("{}/api/v1/users", server.admin_url);
    let acknowledged = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let writer = {
        let acknowledged = acknowledged.clone();
        std::thread::spawn(move || {
            let client = reqwest::blocking::Client::new();
            for i in 0..10_000 {
                let name = format!("u{i}");
                let r = client
                    .post(&url)
                    .bearer_auth(token.trim())
                    .json(&serde_json::json!({ "name": name }))
                    .send();
                match r {
                    Ok(r) if r.status() == 201 => acknowledged.lock().unwrap().push(name),
                    _ => break,
                }
            }
        })
    };
    while acknowledged.lock().unwrap().len() < 50 {
        std::thread::sleep(Duration::from_millis(5));
    }
    server.signal(libc::SIGKILL);
    server.wait_exit(Duration::from_secs(10));
    writer.join().unwrap();
    let acknowledged = acknowledged.lock().unwrap().clone();
    drop(server);
    let out = t.run(&["user", "list", "--json"], "");
    let users: Vec<serde_json::Value> = serde_json::from_str(&out.stdout).unwrap();
    let names: std::collections::HashSet<&str> =
        users.iter().filter_map(|u| u["name"].as_str()).collect();
    let lost: Vec<&String> = acknowledged
        .iter()
        .filter(|n| !names.contains(n.as_str()))
        .collect();
    assert!(
        lost.is_empty(),
        "{} acknowledged users lost after kill -9: {lost:?}",
        lost.len()
    );
    assert!(acknowledged.len() >= 50);
}

#[test]
fn bench_calendar_quick_runs_against_a_throwaway_server() {
    let out = std::process::Command::new(serval_bin())
        .args(["bench", "calendar", "--quick", "--no-radicale"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let row = stdout
        .lines()
        .find(|l| l.starts_with("serval"))
        .unwrap_or_else(|| panic!("{stdout}"));
    let cells: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(cells[1], "1000", "{row}");
    let put_rate: f64 = cells[4].parse().unwrap();
    assert!(put_rate > 0.0, "{row}");
}

#[test]
fn access_lines_go_to_their_own_file_whatever_the_log_level() {
    let t = TestDir::new("");
    let config = std::fs::read_to_string(t.config()).unwrap();
    let config = config.replace(
        "[calendar]\nenabled = false",
        "[calendar]\nlisten = \"127.0.0.1:0\"",
    );
    std::fs::write(
        t.config(),
        format!("{config}\n[log.services]\ncalendar = \"error\"\n"),
    )
    .unwrap();
    let mut server = t.serve();
    let ready = server.wait_for_log("service=\"calendar\"", Duration::from_secs(5));
    let addr = common::field(&ready, "listen=").unwrap().to_string();
    let r = reqwest::blocking::Client::new()
        .request(
            reqwest::Method::from_bytes(b"PROPFIND").unwrap(),
            format!("http://{addr}/"),
        )
        .send()
        .unwrap();
    assert_eq!(r.status(), 401);
    let path = t.data_dir().join("logs/calendar-access.log");
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let text = loop {
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        if text.contains("PROPFIND") || std::time::Instant::now() > deadline {
            break text;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(text.contains("\"PROPFIND / HTTP/1.1\" 401"), "{text}");
    assert!(
        !server.log.iter().any(|l| l.contains("PROPFIND")),
        "access lines stay out of the error log"
    );
}

#[test]
fn import_qtusers_keeps_old_accounts_and_groups() {
    let t = TestDir::new("");
    let ha1 = |user: &str, password: &str| {
        let out = std::process::Command::new("python3")
            .args(["-c", &format!("import hashlib;print(hashlib.md5(b'{user}:Streaming Server:{password}').hexdigest())")])
            .output()
            .expect("python3 runs");
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    };
    let users = t.dir.path().join("qtusers");
    std::fs::write(
        &users,
        format!(
            "realm Streaming Server\nalice:aXcRypt0:{}\nbob:bXcRypt0:{}\nnot a valid line\n",
            ha1("alice", "secret"),
            ha1("bob", "hunter2")
        ),
    )
    .unwrap();
    let groups = t.dir.path().join("qtgroups");
    std::fs::write(&groups, "broadcaster: alice bob nobody\n").unwrap();
    let out = t.run(
        &[
            "stream",
            "import-qtusers",
            users.to_str().unwrap(),
            "--groups",
            groups.to_str().unwrap(),
        ],
        "",
    );
    assert_eq!(out.code, Some(0), "{out:?}");
    assert!(
        out.stdout
            .contains("realm \"Streaming Server\": 2 user(s) imported"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("skipped"),
        "the bad line and the unknown member are reported: {}",
        out.stdout
    );
    let list = t.run(&["user", "list"], "");
    assert!(
        list.stdout.contains("alice") && list.stdout.contains("bob"),
        "{}",
        list.stdout
    );
    let groups = t.run(&["group", "list"], "");
    assert!(
        groups
            .stdout
            .lines()
            .any(|l| l.starts_with("broadcaster") && l.contains("alice")),
        "{}",
        groups.stdout
    );
}

#[test]
fn calendar_import_export_delegate_and_share_from_the_command_line() {
    let t = TestDir::new("");
    t.add_user("ann", "pw", false);
    t.add_user("bob", "pw", false);
    assert_eq!(t.run(&["group", "add", "staff"], "").code, Some(0));
    assert_eq!(
        t.run(&["group", "add-member", "staff", "bob"], "").code,
        Some(0)
    );
    let ics = t.dir.path().join("office.ics");
    std::fs::write(
        &ics,
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\n\
         BEGIN:VEVENT\r\nUID:one@test\r\nDTSTAMP:20260101T000000Z\r\nDTSTART:20261201T100000Z\r\nDTEND:20261201T110000Z\r\nSUMMARY:Budget\r\nEND:VEVENT\r\n\
         BEGIN:VEVENT\r\nUID:two@test\r\nDTSTAMP:20260101T000000Z\r\nDTSTART:20261202T090000Z\r\nDURATION:PT30M\r\nRRULE:FREQ=WEEKLY;COUNT=4\r\nSUMMARY:Standup\r\nEND:VEVENT\r\n\
         END:VCALENDAR\r\n",
    )
    .unwrap();
    let out = t.run(
        &[
            "calendar",
            "import",
            ics.to_str().unwrap(),
            "--user",
            "ann",
            "--calendar",
            "work",
        ],
        "",
    );
    assert_eq!(out.code, Some(0), "{out:?}");
    assert!(
        out.stdout.contains("2 created, 0 updated, 0 rejected"),
        "{}",
        out.stdout
    );
    let out = t.run(
        &["calendar", "export", "--user", "ann", "--calendar", "work"],
        "",
    );
    assert_eq!(out.code, Some(0), "{out:?}");
    assert!(
        out.stdout.contains("UID:one@test") && out.stdout.contains("UID:two@test"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.starts_with("BEGIN:VCALENDAR"), "{}", out.stdout);

    let out = t.run(&["calendar", "delegate", "ann", "bob", "--write"], "");
    assert_eq!(out.code, Some(0), "{out:?}");
    let out = t.run(&["calendar", "delegate", "ann", "nobody", "--read"], "");
    assert_eq!(out.code, Some(1));
    assert!(out.stderr.contains("nobody"), "{}", out.stderr);

    let out = t.run(
        &["calendar", "share", "ann", "work", "group:staff", "--read"],
        "",
    );
    assert_eq!(out.code, Some(0), "{out:?}");
    assert!(
        out.stdout.contains("now shared read-only with bob"),
        "{}",
        out.stdout
    );
    let out = t.run(&["calendar", "share", "ann", "nosuch", "bob", "--read"], "");
    assert_eq!(out.code, Some(1), "{out:?}");
}
