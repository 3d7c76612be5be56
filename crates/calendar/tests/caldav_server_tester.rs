//! `caldav-server-tester` (PyPI, the python-caldav project's conformance prober) against the
//! real service, with two users so its RFC 6638 scheduling checks run, one of them with an
//! email-style name (`dana@example.test`, for the `url.encode-at.*` principal checks), on
//! 127.0.0.2 so the tester does not skip `/.well-known/caldav` as "localhost". Every feature
//! must be graded "full" except those listed with a reason in
//! `caldav_server_tester_allowed.txt` (caldav-server-tester 1.7.0: 106 of 108 full).

mod common;

use std::collections::BTreeMap;
use std::process::Command;

/// `'feature': {'support': 'level', ...}` lines of the tester's `hints` output.
fn grades(hints: &str) -> BTreeMap<String, String> {
    hints
        .lines()
        .filter_map(|line| {
            let line = line.trim_start().strip_prefix('\'')?;
            let (feature, rest) = line.split_once("': {")?;
            let support = rest.split("'support': '").nth(1)?.split('\'').next()?;
            Some((feature.to_owned(), support.to_owned()))
        })
        .collect()
}

/// The allowed non-full grades: feature -> support level.
fn allowed() -> BTreeMap<String, String> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/caldav_server_tester_allowed.txt");
    let text = std::fs::read_to_string(&path).expect("allow-list");
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|line| {
            let mut words = line.split_whitespace();
            let feature = words.next().expect("feature");
            let support = words.next().expect("support level");
            assert!(words.next().is_some(), "{feature}: a reason is required");
            (feature.to_owned(), support.to_owned())
        })
        .collect()
}

#[test]
fn caldav_server_tester_grades_everything_full_but_the_listed_exceptions() {
    let server = common::TestServer::start_on([127, 0, 0, 2].into());
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("calendar.json");
    let section = |user: &str| {
        serde_json::json!({
            "caldav_url": server.url("/"),
            "caldav_username": user,
            "caldav_password": common::PASSWORD,
        })
    };
    let sections = serde_json::json!({
        "dana": section(common::EMAIL_STYLE_USER),
        "bob": section("bob"),
    });
    std::fs::write(&config, sections.to_string()).expect("write config");
    let output = Command::new("caldav-server-tester")
        .args([
            "--config-section",
            "dana",
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
    let grades = grades(&hints);
    let full = grades.values().filter(|s| *s == "full").count();
    println!(
        "caldav-server-tester: {full} of {} features full",
        grades.len()
    );
    assert!(
        grades.len() >= 100,
        "the tester graded too little: {grades:#?}"
    );
    let scheduling = grades
        .keys()
        .filter(|f| f.starts_with("scheduling"))
        .count();
    assert!(scheduling >= 9, "the scheduling checks ran: {grades:#?}");
    let allowed = allowed();
    let unexpected: Vec<String> = grades
        .iter()
        .filter(|(feature, support)| *support != "full" && allowed.get(*feature) != Some(*support))
        .map(|(feature, support)| format!("{feature}: {support}"))
        .collect();
    assert!(
        unexpected.is_empty(),
        "not full and not in caldav_server_tester_allowed.txt: {unexpected:#?}"
    );
    let stale: Vec<&String> = allowed
        .keys()
        .filter(|feature| grades.get(*feature).is_none_or(|s| s == "full"))
        .collect();
    assert!(
        stale.is_empty(),
        "listed in caldav_server_tester_allowed.txt but now full or not graded: {stale:#?}"
    );
}
