//! `caldav-server-tester` (PyPI) with two users, so its RFC 6638 checks run: invitations
//! from ann reach bob's inbox and calendar, free-busy through the outbox, Schedule-Tag.
//! Every `scheduling*` feature must be graded "full" (caldav-server-tester 1.7.0 grades
//! 104 of 108 features full for Serval this way).

mod common;

use std::process::Command;

#[test]
fn caldav_server_tester_scheduling_with_two_users() {
    let server = common::TestServer::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("calendar.json");
    let section = |user: &str| {
        serde_json::json!({
            "caldav_url": server.url("/"),
            "caldav_username": user,
            "caldav_password": common::PASSWORD,
        })
    };
    let sections = serde_json::json!({ "ann": section("ann"), "bob": section("bob") });
    std::fs::write(&config, sections.to_string()).expect("write config");
    let output = Command::new("caldav-server-tester")
        .args([
            "--config-section",
            "ann",
            "--config-section",
            "bob",
            "--format",
            "hints",
        ])
        .env("CALDAV_CONFIG_FILE", &config)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "caldav-server-tester is required (pip install caldav-server-tester vobject): {e}"
            )
        });
    let hints = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "caldav-server-tester failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    println!("{hints}");
    let scheduling: Vec<&str> = hints
        .lines()
        .filter(|l| l.trim_start().starts_with("'scheduling"))
        .collect();
    assert!(
        scheduling.len() >= 9,
        "the scheduling checks ran: {scheduling:#?}"
    );
    for line in &scheduling {
        assert!(line.contains("'support': 'full'"), "{line}");
    }
    let full = hints.matches("'support': 'full'").count();
    let graded = hints.matches("'support': ").count();
    println!("caldav-server-tester (two users): {full} of {graded} features full");
}
