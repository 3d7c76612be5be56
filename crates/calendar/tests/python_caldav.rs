//! python `caldav` (PyPI) drives the real service over loopback through a calendar's life:
//! discovery, MKCALENDAR, events (simple, all-day, weekly with a moved instance, TZID
//! Europe/Berlin), time-range search with server-side expansion, multiget, ETag 412s,
//! sync-collection, delete and free-busy; data integrity and zones as an email-style user.

mod common;

#[test]
fn python_caldav_lifecycle() {
    let server = common::TestServer::start();
    let out = common::run_python("lifecycle.py", &server, "ann", "caldav");
    println!("{out}");
    assert!(out.trim_end().ends_with("OK"), "{out}");
}

/// python `caldav` as organizer (ann) and attendees (bob, carol) and a room: invite,
/// accept, decline, update, cancel, a recurring meeting with a moved instance, free-busy,
/// a room booked twice (tests/python/scheduling.py).
#[test]
fn python_caldav_scheduling() {
    let server = common::TestServer::start_with_rooms();
    let out = common::run_python("scheduling.py", &server, "ann", "caldav");
    println!("{out}");
    assert!(out.trim_end().ends_with("OK"), "{out}");
}

/// python `caldav` as an email-style user: broken bodies refused with their reason and no
/// change to the sync token; events in Berlin, New York, Lord Howe and a private-name zone
/// round trip and expand to the right UTC instants (tests/python/integrity.py).
#[test]
fn python_caldav_integrity_and_zones() {
    let server = common::TestServer::start();
    let out = common::run_python("integrity.py", &server, common::EMAIL_STYLE_USER, "caldav");
    println!("{out}");
    assert!(out.trim_end().ends_with("OK"), "{out}");
}
