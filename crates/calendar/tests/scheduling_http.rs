//! Raw HTTP against the real service for RFC 6638 scheduling: each SCHEDULE-STATUS outcome
//! (1.2 delivered, 1.0 queued for iMIP, 3.7 invalid user, 5.3 no calendar takes it,
//! SCHEDULE-AGENT=CLIENT left alone), replies, cancellations, rooms deciding by themselves,
//! free-busy through the outbox with nothing but busy time, and the discovery properties.

mod common;

use common::client::{Client, Reply};
use common::TestServer;
use reqwest::StatusCode;

impl Client {
    async fn put(&self, path: &str, ics: &str) -> Reply {
        self.send("PUT", path, &[("Content-Type", "text/calendar")], ics)
            .await
    }

    async fn get(&self, path: &str) -> Reply {
        self.send("GET", path, &[], "").await
    }

    /// Unfolded text of a GET that must succeed.
    async fn get_ok(&self, path: &str) -> String {
        let r = self.get(path).await;
        assert_eq!(r.status, StatusCode::OK, "GET {path}: {}", r.body);
        r.body.replace("\r\n ", "")
    }

    /// A first look at the home, as clients do, which creates the default calendar.
    async fn discover(&self) -> &Self {
        let r = self
            .send(
                "PROPFIND",
                &format!("/calendars/users/{}/", self.user),
                &[("Depth", "1")],
                r#"<?xml version="1.0"?><D:propfind xmlns:D="DAV:"><D:prop><D:resourcetype/></D:prop></D:propfind>"#,
            )
            .await;
        assert_eq!(r.status, StatusCode::MULTI_STATUS, "{}", r.body);
        self
    }

    async fn inbox(&self) -> String {
        let r = self
            .send(
                "PROPFIND",
                &format!("/calendars/users/{}/inbox/", self.user),
                &[("Depth", "1")],
                r#"<?xml version="1.0"?><D:propfind xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"><D:prop><D:resourcetype/><C:calendar-data/></D:prop></D:propfind>"#,
            )
            .await;
        assert_eq!(r.status, StatusCode::MULTI_STATUS, "{}", r.body);
        r.body.replace("\r\n ", "")
    }
}

fn meeting(uid: &str, start: &str, end: &str, attendees: &[&str]) -> String {
    let mut lines = String::new();
    for attendee in attendees {
        lines.push_str(&format!("ATTENDEE;{attendee}\r\n"));
    }
    format!(
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//EN\r\nBEGIN:VEVENT\r\nUID:{uid}\r\nDTSTAMP:20260101T000000Z\r\nDTSTART:{start}\r\nDTEND:{end}\r\nSUMMARY:Budget review\r\nORGANIZER;CN=Ann:mailto:ann@example.com\r\nATTENDEE;PARTSTAT=ACCEPTED:mailto:ann@example.com\r\n{lines}END:VEVENT\r\nEND:VCALENDAR\r\n"
    )
}

/// The ATTENDEE line of `address` in unfolded iCalendar text.
fn attendee_line<'a>(text: &'a str, address: &str) -> &'a str {
    text.lines()
        .find(|l| l.starts_with("ATTENDEE") && l.ends_with(address))
        .unwrap_or_else(|| panic!("no ATTENDEE {address} in\n{text}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_schedule_status_outcome() {
    let server = TestServer::start();
    let (ann, bob, carol) = (
        Client::new(&server, "ann"),
        Client::new(&server, "bob"),
        Client::new(&server, "carol"),
    );
    // Carol's only calendar takes events, so a task cannot reach her (5.3).
    let r = carol
        .send("MKCALENDAR", "/calendars/users/carol/events/", &[], r#"<?xml version="1.0"?><C:mkcalendar xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"><D:set><D:prop><C:supported-calendar-component-set><C:comp name="VEVENT"/></C:supported-calendar-component-set></D:prop></D:set></C:mkcalendar>"#)
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    ann.discover().await;
    let ics = meeting(
        "m1",
        "20260302T100000Z",
        "20260302T110000Z",
        &[
            "PARTSTAT=NEEDS-ACTION:mailto:bob@example.com",
            "PARTSTAT=NEEDS-ACTION:mailto:zed@elsewhere.org",
            "PARTSTAT=NEEDS-ACTION:mailto:nobody",
            "PARTSTAT=NEEDS-ACTION:/principals/users/ghost/",
            "SCHEDULE-AGENT=CLIENT:mailto:dave@elsewhere.org",
        ],
    );
    let r = ann.put("/calendars/users/ann/calendar/m1.ics", &ics).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    assert!(
        r.headers.get("ETag").is_none(),
        "the server rewrote the object, so no ETag"
    );
    let organizer_copy = ann.get_ok("/calendars/users/ann/calendar/m1.ics").await;
    for (address, status) in [
        ("mailto:bob@example.com", "SCHEDULE-STATUS=1.2"),
        ("mailto:zed@elsewhere.org", "SCHEDULE-STATUS=1.0"),
        ("mailto:nobody", "SCHEDULE-STATUS=3.7"),
        ("/principals/users/ghost/", "SCHEDULE-STATUS=3.7"),
    ] {
        assert!(
            attendee_line(&organizer_copy, address).contains(status),
            "{address}: {status} in\n{organizer_copy}"
        );
    }
    assert!(
        !attendee_line(&organizer_copy, "mailto:dave@elsewhere.org").contains("SCHEDULE-STATUS")
    );
    // Bob has it in his calendar (created for him) and his inbox; no server parameters.
    let copy = bob.get_ok("/calendars/users/bob/calendar/m1.ics").await;
    assert!(copy.contains("SUMMARY:Budget review"), "{copy}");
    assert!(
        !copy.contains("SCHEDULE-STATUS") && !copy.contains("METHOD"),
        "{copy}"
    );
    let inbox = bob.inbox().await;
    assert!(inbox.contains("schedule-inbox"), "{inbox}");
    assert!(inbox.contains("METHOD:REQUEST"), "{inbox}");

    // A task for carol: no calendar of hers takes VTODO.
    let todo = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//EN\r\nBEGIN:VTODO\r\nUID:t1\r\nDTSTAMP:20260101T000000Z\r\nSUMMARY:Write minutes\r\nORGANIZER:mailto:ann@example.com\r\nATTENDEE:mailto:carol@example.com\r\nEND:VTODO\r\nEND:VCALENDAR\r\n";
    let r = ann.put("/calendars/users/ann/calendar/t1.ics", todo).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let organizer_copy = ann.get_ok("/calendars/users/ann/calendar/t1.ics").await;
    assert!(
        attendee_line(&organizer_copy, "mailto:carol@example.com").contains("SCHEDULE-STATUS=5.3"),
        "{organizer_copy}"
    );

    // Bob answers an invitation from outside (his client stored it): the REPLY is queued.
    bob.discover().await;
    let outside = meeting(
        "ext1",
        "20260302T120000Z",
        "20260302T130000Z",
        &["PARTSTAT=NEEDS-ACTION:mailto:bob@example.com"],
    )
    .replace(
        "ORGANIZER;CN=Ann:mailto:ann@example.com",
        "ORGANIZER:mailto:zed@elsewhere.org",
    )
    .replace("ATTENDEE;PARTSTAT=ACCEPTED:mailto:ann@example.com\r\n", "");
    let path = "/calendars/users/bob/calendar/ext1.ics";
    assert_eq!(bob.put(path, &outside).await.status, StatusCode::CREATED);
    let accepted = outside.replace("PARTSTAT=NEEDS-ACTION", "PARTSTAT=ACCEPTED");
    assert_eq!(
        bob.put(path, &accepted).await.status,
        StatusCode::NO_CONTENT
    );

    // The external attendee's REQUEST waits in the queue, on the admin page too.
    use serval_calendar::store::ScheduleStore;
    let store = serval_core::Store::open(&server.data_dir().join("serval.db")).expect("store");
    let queue = serval_calendar::store::SqliteCalendarStore::open(store)
        .expect("calendar store")
        .itip_queue(10)
        .expect("queue");
    assert!(
        queue
            .iter()
            .any(|q| q.recipient == "mailto:zed@elsewhere.org"
                && q.method == "REQUEST"
                && q.sender == "ann"
                && q.message.contains("METHOD:REQUEST")),
        "{queue:?}"
    );
    assert!(
        queue.iter().all(|q| q.recipient != "mailto:nobody"),
        "{queue:?}"
    );
    assert!(
        queue.iter().any(|q| q.sender == "bob"
            && q.method == "REPLY"
            && q.recipient == "mailto:zed@elsewhere.org"
            && q.message.contains("PARTSTAT=ACCEPTED")),
        "{queue:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reply_update_and_cancel_flow_between_users() {
    let server = TestServer::start();
    let (ann, bob, carol) = (
        Client::new(&server, "ann"),
        Client::new(&server, "bob"),
        Client::new(&server, "carol"),
    );
    let attendees = [
        "PARTSTAT=NEEDS-ACTION;RSVP=TRUE:mailto:bob@example.com",
        "PARTSTAT=NEEDS-ACTION;RSVP=TRUE:mailto:carol@example.com",
    ];
    ann.discover().await;
    let ics = meeting("m2", "20260303T090000Z", "20260303T100000Z", &attendees);
    let r = ann.put("/calendars/users/ann/calendar/m2.ics", &ics).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);

    // Bob accepts: his PUT changes his PARTSTAT; ann's copy follows, her inbox has the REPLY.
    let copy = bob.get_ok("/calendars/users/bob/calendar/m2.ics").await;
    let accepted = copy.replace(
        "PARTSTAT=NEEDS-ACTION;RSVP=TRUE:mailto:bob@example.com",
        "PARTSTAT=ACCEPTED;RSVP=TRUE:mailto:bob@example.com",
    );
    assert_ne!(accepted, copy);
    let r = bob
        .put("/calendars/users/bob/calendar/m2.ics", &accepted)
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
    let organizer_copy = ann.get_ok("/calendars/users/ann/calendar/m2.ics").await;
    assert!(
        attendee_line(&organizer_copy, "mailto:bob@example.com").contains("PARTSTAT=ACCEPTED"),
        "{organizer_copy}"
    );
    assert!(ann.inbox().await.contains("METHOD:REPLY"));

    // Carol declines by deleting the invitation.
    let r = carol
        .send("DELETE", "/calendars/users/carol/calendar/m2.ics", &[], "")
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let organizer_copy = ann.get_ok("/calendars/users/ann/calendar/m2.ics").await;
    assert!(
        attendee_line(&organizer_copy, "mailto:carol@example.com").contains("PARTSTAT=DECLINED"),
        "{organizer_copy}"
    );

    // Ann moves the meeting: bob's copy moves too.
    let moved = organizer_copy
        .replace("DTSTART:20260303T090000Z", "DTSTART:20260303T140000Z")
        .replace("DTEND:20260303T100000Z", "DTEND:20260303T150000Z");
    let r = ann
        .put("/calendars/users/ann/calendar/m2.ics", &moved)
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
    let copy = bob.get_ok("/calendars/users/bob/calendar/m2.ics").await;
    assert!(copy.contains("DTSTART:20260303T140000Z"), "{copy}");

    // Ann cancels: bob's copy goes, his inbox holds the CANCEL.
    let r = ann
        .send("DELETE", "/calendars/users/ann/calendar/m2.ics", &[], "")
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(
        bob.get("/calendars/users/bob/calendar/m2.ics").await.status,
        StatusCode::NOT_FOUND
    );
    assert!(bob.inbox().await.contains("METHOD:CANCEL"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rooms_accept_when_free_and_decline_on_conflict() {
    let server = TestServer::start_with_rooms();
    let (ann, bob) = (Client::new(&server, "ann"), Client::new(&server, "bob"));
    let room = "PARTSTAT=NEEDS-ACTION;CUTYPE=ROOM:mailto:boardroom@example.com";
    ann.discover().await;
    bob.discover().await;
    let ics = meeting("r1", "20260304T100000Z", "20260304T110000Z", &[room]);
    assert_eq!(
        ann.put("/calendars/users/ann/calendar/r1.ics", &ics)
            .await
            .status,
        StatusCode::CREATED
    );
    let organizer_copy = ann.get_ok("/calendars/users/ann/calendar/r1.ics").await;
    let line = attendee_line(&organizer_copy, "mailto:boardroom@example.com");
    assert!(
        line.contains("PARTSTAT=ACCEPTED") && line.contains("SCHEDULE-STATUS=1.2"),
        "{line}"
    );

    // Bob wants the room for an overlapping half hour: declined.
    let clash = meeting("r2", "20260304T103000Z", "20260304T113000Z", &[room])
        .replace(
            "ORGANIZER;CN=Ann:mailto:ann@example.com",
            "ORGANIZER:mailto:bob@example.com",
        )
        .replace(
            "ATTENDEE;PARTSTAT=ACCEPTED:mailto:ann@example.com",
            "ATTENDEE;PARTSTAT=ACCEPTED:mailto:bob@example.com",
        );
    assert_eq!(
        bob.put("/calendars/users/bob/calendar/r2.ics", &clash)
            .await
            .status,
        StatusCode::CREATED
    );
    let bobs = bob.get_ok("/calendars/users/bob/calendar/r2.ics").await;
    assert!(
        attendee_line(&bobs, "mailto:boardroom@example.com").contains("PARTSTAT=DECLINED"),
        "{bobs}"
    );

    // Ann's own meeting, edited, does not clash with itself.
    let retitled = organizer_copy.replace("SUMMARY:Budget review", "SUMMARY:Budget review (v2)");
    assert_eq!(
        ann.put("/calendars/users/ann/calendar/r1.ics", &retitled)
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    let organizer_copy = ann.get_ok("/calendars/users/ann/calendar/r1.ics").await;
    assert!(
        attendee_line(&organizer_copy, "mailto:boardroom@example.com")
            .contains("PARTSTAT=ACCEPTED"),
        "{organizer_copy}"
    );

    // Principals of rooms say so.
    let r = ann
        .send("PROPFIND", "/principals/users/boardroom/", &[("Depth", "0")], r#"<?xml version="1.0"?><D:propfind xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"><D:prop><C:calendar-user-type/><C:schedule-inbox-URL/></D:prop></D:propfind>"#)
        .await;
    assert!(r.body.contains("ROOM"), "{}", r.body);
}

const FREEBUSY: &str = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//EN\r\nMETHOD:REQUEST\r\nBEGIN:VFREEBUSY\r\nUID:fb1\r\nDTSTAMP:20260101T000000Z\r\nDTSTART:20260305T000000Z\r\nDTEND:20260306T000000Z\r\nORGANIZER:mailto:ann@example.com\r\nATTENDEE:mailto:bob@example.com\r\nATTENDEE:mailto:stranger@elsewhere.org\r\nEND:VFREEBUSY\r\nEND:VCALENDAR\r\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn freebusy_through_the_outbox_shows_busy_time_only() {
    let server = TestServer::start();
    let (ann, bob) = (Client::new(&server, "ann"), Client::new(&server, "bob"));
    let private = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//EN\r\nBEGIN:VEVENT\r\nUID:p1\r\nDTSTAMP:20260101T000000Z\r\nDTSTART:20260305T140000Z\r\nDTEND:20260305T150000Z\r\nSUMMARY:Secret surgery\r\nLOCATION:Clinic\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n";
    let free = private
        .replace("UID:p1", "UID:p2")
        .replace("T14", "T16")
        .replace("T15", "T17")
        .replace("SUMMARY", "TRANSP:TRANSPARENT\r\nSUMMARY");
    let cancelled = private
        .replace("UID:p1", "UID:p3")
        .replace("T14", "T18")
        .replace("T15", "T19")
        .replace("SUMMARY", "STATUS:CANCELLED\r\nSUMMARY");
    bob.discover().await;
    for (href, body) in [("p1", private.to_owned()), ("p2", free), ("p3", cancelled)] {
        let r = bob
            .put(&format!("/calendars/users/bob/calendar/{href}.ics"), &body)
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    }
    // An invitation bob declined does not make him busy.
    ann.discover().await;
    let invite = meeting(
        "fbm",
        "20260305T100000Z",
        "20260305T110000Z",
        &["PARTSTAT=NEEDS-ACTION:mailto:bob@example.com"],
    );
    assert_eq!(
        ann.put("/calendars/users/ann/calendar/fbm.ics", &invite)
            .await
            .status,
        StatusCode::CREATED
    );
    let copy = bob.get_ok("/calendars/users/bob/calendar/fbm.ics").await;
    let declined = copy.replace(
        "PARTSTAT=NEEDS-ACTION:mailto:bob",
        "PARTSTAT=DECLINED:mailto:bob",
    );
    assert_eq!(
        bob.put("/calendars/users/bob/calendar/fbm.ics", &declined)
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    let r = ann
        .send(
            "POST",
            "/calendars/users/ann/outbox/",
            &[("Content-Type", "text/calendar")],
            FREEBUSY,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(
        !r.body.contains("T100000Z/"),
        "declined is free: {}",
        r.body
    );
    let body = r.body.replace("\r\n ", "");
    assert!(body.contains("schedule-response"), "{body}");
    assert!(body.contains("2.0;Success"), "{body}");
    assert!(
        body.contains("FREEBUSY;FBTYPE=BUSY:20260305T140000Z/20260305T150000Z"),
        "{body}"
    );
    assert!(
        !body.contains("T160000Z/") && !body.contains("T180000Z/"),
        "transparent and cancelled are free: {body}"
    );
    assert!(
        !body.contains("Secret") && !body.contains("Clinic"),
        "{body}"
    );
    assert!(body.contains("3.7;Invalid calendar user"), "{body}");

    // Only the outbox's owner may send from it; the ORGANIZER must be theirs.
    let r = bob
        .send(
            "POST",
            "/calendars/users/ann/outbox/",
            &[("Content-Type", "text/calendar")],
            FREEBUSY,
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = bob
        .send(
            "POST",
            "/calendars/users/bob/outbox/",
            &[("Content-Type", "text/calendar")],
            FREEBUSY,
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(r.body.contains("organizer-allowed"), "{}", r.body);
    let r = ann
        .send(
            "POST",
            "/calendars/users/ann/outbox/",
            &[("Content-Type", "text/calendar")],
            "garbage",
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(r.body.contains("valid-scheduling-message"), "{}", r.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_advertises_scheduling() {
    let server = TestServer::start();
    let ann = Client::new(&server, "ann");
    let r = ann.send("OPTIONS", "/", &[], "").await;
    let dav = r
        .headers
        .get("DAV")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    assert!(dav.contains("calendar-auto-schedule"), "{dav}");
    let r = ann
        .send("PROPFIND", "/principals/users/ann/", &[("Depth", "0")], r#"<?xml version="1.0"?><D:propfind xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"><D:prop><C:schedule-inbox-URL/><C:schedule-outbox-URL/><C:calendar-user-address-set/></D:prop></D:propfind>"#)
        .await;
    assert!(r.body.contains("/calendars/users/ann/inbox/"), "{}", r.body);
    assert!(
        r.body.contains("/calendars/users/ann/outbox/"),
        "{}",
        r.body
    );
    assert!(r.body.contains("mailto:ann@example.com"), "{}", r.body);
    let r = ann
        .send("PROPFIND", "/calendars/users/ann/outbox/", &[("Depth", "0")], r#"<?xml version="1.0"?><D:propfind xmlns:D="DAV:"><D:prop><D:resourcetype/></D:prop></D:propfind>"#)
        .await;
    assert_eq!(r.status, StatusCode::MULTI_STATUS, "{}", r.body);
    assert!(r.body.contains("schedule-outbox"), "{}", r.body);
    let r = ann
        .send("PROPFIND", "/calendars/users/ann/inbox/", &[("Depth", "0")], r#"<?xml version="1.0"?><D:propfind xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"><D:prop><D:resourcetype/><C:schedule-default-calendar-URL/></D:prop></D:propfind>"#)
        .await;
    assert_eq!(r.status, StatusCode::MULTI_STATUS, "{}", r.body);
    assert!(
        r.body.contains("schedule-inbox") && r.body.contains("/calendars/users/ann/calendar/"),
        "{}",
        r.body
    );
    // The home lists calendars, the inbox and the outbox; neither box is a calendar.
    let r = ann
        .send("PROPFIND", "/calendars/users/ann/", &[("Depth", "1")], r#"<?xml version="1.0"?><D:propfind xmlns:D="DAV:"><D:prop><D:resourcetype/></D:prop></D:propfind>"#)
        .await;
    assert!(
        r.body.contains("/calendars/users/ann/outbox/")
            && r.body.contains("/calendars/users/ann/inbox/"),
        "{}",
        r.body
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schedule_tag_guards_attendee_writes() {
    let server = TestServer::start();
    let (ann, bob) = (Client::new(&server, "ann"), Client::new(&server, "bob"));
    ann.discover().await;
    let ics = meeting(
        "st1",
        "20260306T090000Z",
        "20260306T100000Z",
        &["PARTSTAT=NEEDS-ACTION:mailto:bob@example.com"],
    );
    assert_eq!(
        ann.put("/calendars/users/ann/calendar/st1.ics", &ics)
            .await
            .status,
        StatusCode::CREATED
    );
    let path = "/calendars/users/bob/calendar/st1.ics";
    let r = bob.get(path).await;
    let tag = r.headers["schedule-tag"].to_str().unwrap().to_owned();
    let organizer_tag = ann
        .get("/calendars/users/ann/calendar/st1.ics")
        .await
        .headers["schedule-tag"]
        .to_str()
        .unwrap()
        .to_owned();
    let accepted = r.body.replace(
        "PARTSTAT=NEEDS-ACTION:mailto:bob",
        "PARTSTAT=ACCEPTED:mailto:bob",
    );
    let stale = [
        ("Content-Type", "text/calendar"),
        ("If-Schedule-Tag-Match", "\"stale\""),
    ];
    assert_eq!(
        bob.send("PUT", path, &stale, &accepted).await.status,
        StatusCode::PRECONDITION_FAILED
    );
    let current = [
        ("Content-Type", "text/calendar"),
        ("If-Schedule-Tag-Match", tag.as_str()),
    ];
    let r = bob.send("PUT", path, &current, &accepted).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
    // The reply changed ann's copy (PARTSTAT) but not its Schedule-Tag.
    let r = ann.get("/calendars/users/ann/calendar/st1.ics").await;
    assert!(r.body.contains("PARTSTAT=ACCEPTED"), "{}", r.body);
    assert_eq!(r.headers["schedule-tag"].to_str().unwrap(), organizer_tag);
}

/// Weekly on Mondays 09:00Z from 2 March 2026, four times, organized by ann with bob.
fn weekly_meeting(extra_master: &str, overrides: &str) -> String {
    format!(
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//EN\r\nBEGIN:VEVENT\r\nUID:weekly\r\nDTSTAMP:20260101T000000Z\r\nDTSTART:20260302T090000Z\r\nDTEND:20260302T100000Z\r\nRRULE:FREQ=WEEKLY;COUNT=4\r\nSUMMARY:Team sync\r\nORGANIZER:mailto:ann@example.com\r\nATTENDEE;PARTSTAT=ACCEPTED:mailto:ann@example.com\r\nATTENDEE;PARTSTAT=NEEDS-ACTION:mailto:bob@example.com\r\n{extra_master}END:VEVENT\r\n{overrides}END:VCALENDAR\r\n"
    )
}

/// The 16 March instance moved to 11:00Z, with `extra` lines.
fn moved_override(extra: &str) -> String {
    format!("BEGIN:VEVENT\r\nUID:weekly\r\nDTSTAMP:20260101T000000Z\r\nRECURRENCE-ID:20260316T090000Z\r\nDTSTART:20260316T110000Z\r\nDTEND:20260316T120000Z\r\nSUMMARY:Team sync (late)\r\nORGANIZER:mailto:ann@example.com\r\nATTENDEE;PARTSTAT=ACCEPTED:mailto:ann@example.com\r\nATTENDEE;PARTSTAT=NEEDS-ACTION:mailto:bob@example.com\r\n{extra}END:VEVENT\r\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelled_instances_reach_attendees_as_cancel_with_recurrence_id() {
    let server = TestServer::start();
    let (ann, bob) = (Client::new(&server, "ann"), Client::new(&server, "bob"));
    ann.discover().await;
    bob.discover().await;
    let path = "/calendars/users/ann/calendar/weekly.ics";
    let r = ann.put(path, &weekly_meeting("", "")).await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let bob_path = "/calendars/users/bob/calendar/weekly.ics";
    assert!(bob.inbox().await.contains("METHOD:REQUEST"));

    // An EXDATE: bob is told with a CANCEL for that instance alone, and keeps the rest.
    let r = ann
        .put(path, &weekly_meeting("EXDATE:20260309T090000Z\r\n", ""))
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
    let inbox = bob.inbox().await;
    assert!(inbox.contains("METHOD:CANCEL"), "{inbox}");
    assert!(inbox.contains("RECURRENCE-ID:20260309T090000Z"), "{inbox}");
    assert!(inbox.contains("STATUS:CANCELLED"), "{inbox}");
    assert!(!inbox.contains("METHOD:REQUEST"), "{inbox}");
    let copy = bob.get_ok(bob_path).await;
    assert!(copy.contains("RRULE:FREQ=WEEKLY;COUNT=4"), "{copy}");
    assert!(copy.contains("EXDATE:20260309T090000Z"), "{copy}");

    // One instance moved (a REQUEST), then cancelled through its override: a CANCEL
    // naming it, and bob's copy loses the override and excludes the instance.
    let moved = weekly_meeting("EXDATE:20260309T090000Z\r\n", &moved_override(""));
    let r = ann.put(path, &moved).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
    assert!(bob.inbox().await.contains("METHOD:REQUEST"));
    assert!(bob
        .get_ok(bob_path)
        .await
        .contains("RECURRENCE-ID:20260316T090000Z"));
    let cancelled = weekly_meeting(
        "EXDATE:20260309T090000Z\r\n",
        &moved_override("STATUS:CANCELLED\r\n"),
    );
    let r = ann.put(path, &cancelled).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
    let inbox = bob.inbox().await;
    assert!(inbox.contains("METHOD:CANCEL"), "{inbox}");
    assert!(inbox.contains("RECURRENCE-ID:20260316T090000Z"), "{inbox}");
    let copy = bob.get_ok(bob_path).await;
    assert!(!copy.contains("RECURRENCE-ID:20260316T090000Z"), "{copy}");
    assert!(copy.contains("EXDATE:20260316T090000Z"), "{copy}");
    assert!(copy.contains("EXDATE:20260309T090000Z"), "{copy}");
}

const MARCH_FREEBUSY: &str = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//EN\r\nMETHOD:REQUEST\r\nBEGIN:VFREEBUSY\r\nUID:fb-march\r\nDTSTAMP:20260101T000000Z\r\nDTSTART:20260301T000000Z\r\nDTEND:20260401T000000Z\r\nORGANIZER:mailto:ann@example.com\r\nATTENDEE:mailto:bob@example.com\r\nEND:VFREEBUSY\r\nEND:VCALENDAR\r\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn declining_some_instances_frees_only_those() {
    let server = TestServer::start();
    let (ann, bob) = (Client::new(&server, "ann"), Client::new(&server, "bob"));
    ann.discover().await;
    bob.discover().await;
    let r = ann
        .put(
            "/calendars/users/ann/calendar/weekly.ics",
            &weekly_meeting("", ""),
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    // Bob accepts the series but declines 9 March, as clients write it: an override of
    // that instance with his PARTSTAT.
    let mine = weekly_meeting("", "")
        .replace(
            "PARTSTAT=NEEDS-ACTION:mailto:bob",
            "PARTSTAT=ACCEPTED:mailto:bob",
        )
        .replace(
            "END:VCALENDAR",
            "BEGIN:VEVENT\r\nUID:weekly\r\nDTSTAMP:20260101T000000Z\r\nRECURRENCE-ID:20260309T090000Z\r\nDTSTART:20260309T090000Z\r\nDTEND:20260309T100000Z\r\nSUMMARY:Team sync\r\nORGANIZER:mailto:ann@example.com\r\nATTENDEE;PARTSTAT=ACCEPTED:mailto:ann@example.com\r\nATTENDEE;PARTSTAT=DECLINED:mailto:bob@example.com\r\nEND:VEVENT\r\nEND:VCALENDAR",
        );
    let r = bob
        .put("/calendars/users/bob/calendar/weekly.ics", &mine)
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT, "{}", r.body);
    let r = ann
        .send(
            "POST",
            "/calendars/users/ann/outbox/",
            &[("Content-Type", "text/calendar")],
            MARCH_FREEBUSY,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let body = r.body.replace("\r\n ", "");
    for busy in ["20260302T090000Z", "20260316T090000Z", "20260323T090000Z"] {
        assert!(body.contains(&format!("{busy}/")), "{busy} busy: {body}");
    }
    assert!(!body.contains("20260309T090000Z/"), "9 March free: {body}");
}
