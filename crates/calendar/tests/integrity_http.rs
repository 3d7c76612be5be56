//! Raw HTTP: every way an iCalendar body can be broken is refused with
//! `CALDAV:valid-calendar-data` and a description naming the fault, storing nothing and
//! moving neither the ctag nor the sync token; the files that Apple Calendar, Thunderbird,
//! DAVx5, Evolution and Outlook write are stored byte for byte; events in several zones come
//! back intact and their instances sit at the right UTC instants across DST changes.

mod common;

use common::{TestServer, PASSWORD};
use reqwest::{Method, StatusCode};

const CALENDAR: &str = "/calendars/users/ann/integrity/";

async fn send(
    server: &TestServer,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> (StatusCode, String) {
    let mut req = reqwest::Client::new()
        .request(
            Method::from_bytes(method.as_bytes()).unwrap(),
            server.url(path),
        )
        .basic_auth("ann", Some(PASSWORD))
        .body(body);
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    let response = req.send().await.expect("request");
    (response.status(), response.text().await.unwrap_or_default())
}

async fn put(server: &TestServer, name: &str, body: &[u8]) -> (StatusCode, String) {
    send(
        server,
        "PUT",
        &format!("{CALENDAR}{name}"),
        &[("Content-Type", "text/calendar; charset=utf-8")],
        body.to_vec(),
    )
    .await
}

/// The calendar's ctag and sync token, and how many members it lists.
async fn state(server: &TestServer) -> (String, String, usize) {
    let propfind = r#"<?xml version="1.0"?><D:propfind xmlns:D="DAV:" xmlns:CS="http://calendarserver.org/ns/"><D:prop><CS:getctag/><D:sync-token/><D:getetag/></D:prop></D:propfind>"#;
    let (status, body) = send(
        server,
        "PROPFIND",
        CALENDAR,
        &[("Depth", "1")],
        propfind.into(),
    )
    .await;
    assert_eq!(status, StatusCode::MULTI_STATUS, "{body}");
    let value = |tag: &str| {
        let open = body.find(&format!("{tag}>")).map(|i| i + tag.len() + 1);
        let open = open.unwrap_or_else(|| panic!("{tag} in {body}"));
        body[open..open + body[open..].find('<').unwrap()].to_owned()
    };
    let members = body.matches(".ics</D:href>").count();
    (value("getctag"), value("sync-token"), members)
}

async fn setup() -> TestServer {
    let server = TestServer::start();
    let (status, body) = send(&server, "MKCALENDAR", CALENDAR, &[], Vec::new()).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    server
}

const GOOD: &str = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//EN\r\nBEGIN:VEVENT\r\nUID:good@test\r\nDTSTAMP:20260101T000000Z\r\nDTSTART:20260105T100000Z\r\nDTEND:20260105T110000Z\r\nSUMMARY:Fine\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n";

const BERLIN: &str = "BEGIN:VTIMEZONE\r\nTZID:Europe/Berlin\r\nBEGIN:STANDARD\r\nDTSTART:19701025T030000\r\nTZOFFSETFROM:+0200\r\nTZOFFSETTO:+0100\r\nRRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU\r\nEND:STANDARD\r\nBEGIN:DAYLIGHT\r\nDTSTART:19700329T020000\r\nTZOFFSETFROM:+0100\r\nTZOFFSETTO:+0200\r\nRRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU\r\nEND:DAYLIGHT\r\nEND:VTIMEZONE\r\n";

/// Each broken body, and words its refusal must contain.
fn broken_bodies() -> Vec<(&'static str, Vec<u8>, &'static str)> {
    let cut_at = GOOD.find("END:VEVENT").unwrap();
    let with_zone = |tzid: &str, zones: &str| {
        GOOD.replace(
            "PRODID:-//t//EN\r\n",
            &format!("PRODID:-//t//EN\r\n{zones}"),
        )
        .replace(
            "DTSTART:20260105T100000Z",
            &format!("DTSTART;TZID={tzid}:20260105T100000"),
        )
        .replace(
            "DTEND:20260105T110000Z",
            &format!("DTEND;TZID={tzid}:20260105T110000"),
        )
    };
    let mut invalid_utf8 = GOOD.replace("SUMMARY:Fine", "SUMMARY:Fi?ne").into_bytes();
    let question = invalid_utf8.iter().position(|&b| b == b'?').unwrap();
    invalid_utf8[question] = 0xC3; // a lead byte followed by 'n': not UTF-8
    vec![
        (
            "truncated in the event",
            GOOD.as_bytes()[..cut_at].to_vec(),
            "unclosed component VEVENT: BEGIN:VEVENT at line 4",
        ),
        (
            "truncated after the event",
            GOOD.replace("END:VCALENDAR\r\n", "").into_bytes(),
            "unclosed component VCALENDAR",
        ),
        (
            "misnested",
            GOOD.replace("END:VEVENT\r\nEND:VCALENDAR", "END:VCALENDAR\r\nEND:VEVENT")
                .into_bytes(),
            "line 10: END:VCALENDAR while VEVENT (BEGIN at line 4) is still open",
        ),
        (
            "unbalanced END",
            GOOD.replace("END:VEVENT", "END:VALARM\r\nEND:VEVENT")
                .into_bytes(),
            "END:VALARM while VEVENT",
        ),
        (
            "no colon",
            GOOD.replace("SUMMARY:Fine", "SUMMARY Fine").into_bytes(),
            "line 9: `SUMMARY Fine` has no ':'",
        ),
        (
            "fold without its leading space",
            GOOD.replace(
                "SUMMARY:Fine",
                "SUMMARY:A long summary\r\nthat lost its fold space",
            )
            .into_bytes(),
            "line 10: `that lost its fold space` has no ':'",
        ),
        (
            "continuation before any line",
            format!(" {GOOD}").into_bytes(),
            "line 1: continuation line",
        ),
        (
            "invalid UTF-8",
            invalid_utf8,
            "invalid UTF-8 byte 0xC3 at line 9, column 11",
        ),
        (
            "no DTSTART",
            GOOD.replace("DTSTART:20260105T100000Z\r\n", "")
                .into_bytes(),
            "good@test",
        ),
        (
            "DTEND before DTSTART",
            GOOD.replace("DTEND:20260105T110000Z", "DTEND:20260105T090000Z")
                .into_bytes(),
            "DTEND is 3600 s before DTSTART",
        ),
        (
            "unknown TZID",
            with_zone("Office/Nowhere", "").into_bytes(),
            "TZID `Office/Nowhere` on DTSTART of VEVENT is neither defined by a VTIMEZONE",
        ),
        (
            "disagreeing VTIMEZONEs",
            with_zone(
                "Europe/Berlin",
                &format!(
                    "{BERLIN}{}",
                    BERLIN.replace("TZOFFSETTO:+0200", "TZOFFSETTO:+0300")
                ),
            )
            .into_bytes(),
            "two VTIMEZONE definitions of `Europe/Berlin` disagree",
        ),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_broken_body_is_refused_with_its_reason_and_changes_nothing() {
    let server = setup().await;
    let (status, body) = put(&server, "good.ics", GOOD.as_bytes()).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let before = state(&server).await;
    assert_eq!(before.2, 1);
    for (index, (case, body, reason)) in broken_bodies().into_iter().enumerate() {
        let name = format!("broken-{index}.ics");
        let (status, reply) = put(&server, &name, &body).await;
        let reply = reply
            .replace("&apos;", "'")
            .replace("&quot;", "\"")
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&amp;", "&");
        assert_eq!(status, StatusCode::FORBIDDEN, "{case}: {reply}");
        assert!(reply.contains("valid-calendar-data"), "{case}: {reply}");
        assert!(
            reply.contains(reason),
            "{case}: the refusal should say `{reason}`: {reply}"
        );
        let (status, _) = send(
            &server,
            "GET",
            &format!("{CALENDAR}{name}"),
            &[],
            Vec::new(),
        )
        .await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{case}: nothing stored");
        // Over an existing member: the old version stays.
        let (status, _) = put(&server, "good.ics", &body).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{case} over good.ics");
        let (_, stored) = send(
            &server,
            "GET",
            &format!("{CALENDAR}good.ics"),
            &[],
            Vec::new(),
        )
        .await;
        assert_eq!(stored, GOOD, "{case}: good.ics unchanged");
    }
    assert_eq!(
        state(&server).await,
        before,
        "ctag, sync token and members unchanged"
    );
    // And the server goes on accepting good data.
    let (status, body) = put(
        &server,
        "after.ics",
        GOOD.replace("good@test", "after@test").as_bytes(),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_ne!(state(&server).await.0, before.0);
}

fn fixture(name: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/clients")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// calendar-query with `expand` over [start, end): the UTC DTSTART of each instance.
async fn expanded_starts(server: &TestServer, uid: &str, start: &str, end: &str) -> Vec<String> {
    let query = format!(
        r#"<?xml version="1.0"?><C:calendar-query xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"><D:prop><C:calendar-data><C:expand start="{start}" end="{end}"/></C:calendar-data></D:prop><C:filter><C:comp-filter name="VCALENDAR"><C:comp-filter name="VEVENT"><C:prop-filter name="UID"><C:text-match collation="i;octet">{uid}</C:text-match></C:prop-filter><C:time-range start="{start}" end="{end}"/></C:comp-filter></C:comp-filter></C:filter></C:calendar-query>"#
    );
    let (status, body) = send(server, "REPORT", CALENDAR, &[("Depth", "1")], query.into()).await;
    assert_eq!(status, StatusCode::MULTI_STATUS, "{body}");
    let mut starts: Vec<String> = body
        .split("DTSTART")
        .skip(1)
        .filter_map(|rest| {
            let value = rest.split(':').nth(1)?;
            Some(value.chars().take(16).collect())
        })
        .collect();
    starts.sort();
    starts
}

/// Does a time-range query over [start, end) find the object?
async fn found_in_range(server: &TestServer, uid: &str, start: &str, end: &str) -> bool {
    !expanded_starts(server, uid, start, end).await.is_empty()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_exports_are_stored_byte_for_byte_and_placed_in_their_zones() {
    let server = setup().await;
    // (file, UID, first instance in UTC)
    let exports = [
        ("apple-calendar.ics", "5E8A4C61-1B7E-4C1B-9C9B-2F1C0D6A7E11", "20261208T090000Z"),
        ("thunderbird.ics", "9b1f6c2e-3d4a-4f5b-8c7d-6e5f4a3b2c1d", "20261215T203000Z"),
        ("davx5.ics", "3c7d9e2f-0a1b-4c5d-9e8f-7a6b5c4d3e2f", "20261210T110000Z"),
        ("evolution.ics", "20261204T101500Z-1234-1000-1-7@workstation", "20261211T080000Z"),
        // Outlook's .ics export also carries METHOD:PUBLISH, which RFC 4791 §4.1 forbids in
        // a stored resource; CalDAV sync add-ins for Outlook send this without it.
        ("outlook.ics", "040000008200E00074C5B7101A82E00800000000D0C4A2F8F2E4DA010000000000000000100000005B0A6E5C3F9D2A4B8E7F1C2D3A4B5C6D", "20261217T130000Z"),
    ];
    for (file, uid, first) in exports {
        let text = fixture(file);
        let (status, body) = put(&server, file, text.as_bytes()).await;
        assert_eq!(status, StatusCode::CREATED, "{file}: {body}");
        let (status, stored) = send(
            &server,
            "GET",
            &format!("{CALENDAR}{file}"),
            &[],
            Vec::new(),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(stored, text, "{file} comes back as it was sent");
        let starts = expanded_starts(&server, uid, "20261201T000000Z", "20270101T000000Z").await;
        assert_eq!(
            starts.first().map(String::as_str),
            Some(first),
            "{file}: {starts:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zones_round_trip_and_instances_follow_dst() {
    let server = setup().await;
    let lord_howe = "BEGIN:VTIMEZONE\r\nTZID:Australia/Lord_Howe\r\nBEGIN:STANDARD\r\nDTSTART:20080406T020000\r\nTZOFFSETFROM:+1100\r\nTZOFFSETTO:+1030\r\nRRULE:FREQ=YEARLY;BYMONTH=4;BYDAY=1SU\r\nEND:STANDARD\r\nBEGIN:DAYLIGHT\r\nDTSTART:20081005T020000\r\nTZOFFSETFROM:+1030\r\nTZOFFSETTO:+1100\r\nRRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=1SU\r\nEND:DAYLIGHT\r\nEND:VTIMEZONE\r\n";
    let new_york = "BEGIN:VTIMEZONE\r\nTZID:America/New_York\r\nBEGIN:DAYLIGHT\r\nDTSTART:20070311T020000\r\nTZOFFSETFROM:-0500\r\nTZOFFSETTO:-0400\r\nRRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=2SU\r\nEND:DAYLIGHT\r\nBEGIN:STANDARD\r\nDTSTART:20071104T020000\r\nTZOFFSETFROM:-0400\r\nTZOFFSETTO:-0500\r\nRRULE:FREQ=YEARLY;BYMONTH=11;BYDAY=1SU\r\nEND:STANDARD\r\nEND:VTIMEZONE\r\n";
    // A private name no zone database knows, with the EU rules.
    let custom = BERLIN.replace("TZID:Europe/Berlin", "TZID:Serval HQ Time");
    // (uid, zone definition, TZID, local start, [expected UTC starts of three weekly instances])
    let cases = [
        (
            "berlin",
            BERLIN.to_owned(),
            "Europe/Berlin",
            "20260320T100000",
            // DST starts 29 March 2026: 10:00 is 09:00Z, then 08:00Z.
            ["20260320T090000Z", "20260327T090000Z", "20260403T080000Z"],
        ),
        (
            "new-york",
            new_york.to_owned(),
            "America/New_York",
            "20261023T090000",
            // DST ends 1 November 2026: 13:00Z, then 14:00Z.
            ["20261023T130000Z", "20261030T130000Z", "20261106T140000Z"],
        ),
        (
            "lord-howe",
            lord_howe.to_owned(),
            "Australia/Lord_Howe",
            "20260325T120000",
            // Half-hour DST ends 5 April 2026: +11:00 then +10:30.
            ["20260325T010000Z", "20260401T010000Z", "20260408T013000Z"],
        ),
        (
            "custom",
            custom,
            "\"Serval HQ Time\"",
            "20261013T100000",
            // EU DST ends 25 October 2026: 08:00Z, then 09:00Z.
            ["20261013T080000Z", "20261020T080000Z", "20261027T090000Z"],
        ),
    ];
    for (uid, zone, tzid, local, expected) in &cases {
        let text = format!(
            "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//serval test//EN\r\n{zone}BEGIN:VEVENT\r\nUID:{uid}\r\nDTSTAMP:20260101T000000Z\r\nDTSTART;TZID={tzid}:{local}\r\nDURATION:PT1H\r\nRRULE:FREQ=WEEKLY;COUNT=3\r\nSUMMARY:{uid}\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
        );
        let name = format!("{uid}.ics");
        let (status, body) = put(&server, &name, text.as_bytes()).await;
        assert_eq!(status, StatusCode::CREATED, "{uid}: {body}");
        let (_, stored) = send(
            &server,
            "GET",
            &format!("{CALENDAR}{name}"),
            &[],
            Vec::new(),
        )
        .await;
        assert_eq!(stored, text, "{uid}: TZID and VTIMEZONE come back intact");
        let starts = expanded_starts(&server, uid, "20260101T000000Z", "20270101T000000Z").await;
        assert_eq!(starts, expected.to_vec(), "{uid}");
        // A time-range around the last instance finds it at its UTC instant, and not an
        // hour off (where it would be if the DST change were ignored).
        let last = &expected[2];
        let at = |shift_minutes: i64| {
            let t = chrono::NaiveDateTime::parse_from_str(last, "%Y%m%dT%H%M%SZ").unwrap()
                + chrono::TimeDelta::minutes(shift_minutes);
            t.format("%Y%m%dT%H%M%SZ").to_string()
        };
        assert!(
            found_in_range(&server, uid, &at(-1), &at(1)).await,
            "{uid} at {last}"
        );
        // Nothing in the 90 minutes before it or after its hour: a DST change applied
        // wrongly would put it there.
        for (from, to) in [(at(-90), at(0)), (at(60), at(150))] {
            assert!(
                !found_in_range(&server, uid, &from, &to).await,
                "{uid} has nothing in [{from}, {to})"
            );
        }
    }
}
