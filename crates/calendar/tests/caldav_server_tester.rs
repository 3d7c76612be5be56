//! `caldav-server-tester` (PyPI, the python-caldav project's conformance prober) against the
//! real service. Asserts the score we reached (94 of 100 feature flags "full" with
//! caldav-server-tester 1.7.0; Radicale 3.9.0 scores 88) and that nothing is graded
//! broken, fragile or ungraceful. The gaps, all "unsupported": scheduling (RFC 6638),
//! comp-type-less text search, create-on-PUT, '@' URL identity (plus two "unknown").

mod common;

use std::process::Command;

/// "full" flags with caldav-server-tester 1.7.0; lower means a regression.
const EXPECTED_FULL: usize = 94;

#[test]
fn caldav_server_tester_scores() {
    let server = common::TestServer::start();
    let output = Command::new("caldav-server-tester")
        .args([
            "--caldav-url",
            &server.url("/"),
            "--caldav-username",
            "ann",
            "--caldav-password",
            common::PASSWORD,
            "--format",
            "hints",
        ])
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
    let full = hints.matches("'support': 'full'").count();
    let graded = hints.matches("'support': ").count();
    println!("caldav-server-tester: {full} of {graded} features full");
    for bad in ["'broken'", "'fragile'", "'ungraceful'"] {
        let lines: Vec<&str> = hints.lines().filter(|l| l.contains(bad)).collect();
        assert!(lines.is_empty(), "{bad}: {lines:#?}");
    }
    assert!(
        full >= EXPECTED_FULL,
        "{full} of {graded} full, expected at least {EXPECTED_FULL}"
    );
}
