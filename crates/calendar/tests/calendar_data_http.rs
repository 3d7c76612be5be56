//! Raw HTTP for RFC 4791 §9.6 calendar-data options in REPORTs: partial retrieval
//! (`comp`/`prop`/`allprop`/`allcomp`), `limit-recurrence-set` and `limit-freebusy-set`,
//! each checked against calendar text worked out by hand.

mod common;

use common::{TestServer, PASSWORD};
use reqwest::{Method, StatusCode};

async fn send(
    server: &TestServer,
    method: &str,
    path: &str,
    depth: Option<&str>,
    body: &str,
) -> (StatusCode, String) {
    let mut req = reqwest::Client::new()
        .request(
            Method::from_bytes(method.as_bytes()).unwrap(),
            server.url(path),
        )
        .basic_auth("ann", Some(PASSWORD))
        .body(body.to_owned());
    if method == "PUT" {
        req = req.header("Content-Type", "text/calendar");
    }
    if let Some(depth) = depth {
        req = req.header("Depth", depth);
    }
    let response = req.send().await.expect("request");
    (response.status(), response.text().await.unwrap_or_default())
}

/// Weekly on Mondays 10:00Z from 5 January 2026, four times; the 12 January instance
/// moved to Tuesday, the 26 January one renamed.
const WEEKLY: &str = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//EN\r\nBEGIN:VEVENT\r\nUID:weekly\r\nDTSTAMP:20260101T000000Z\r\nDTSTART:20260105T100000Z\r\nDTEND:20260105T110000Z\r\nRRULE:FREQ=WEEKLY;COUNT=4\r\nSUMMARY:Standup\r\nEND:VEVENT\r\nBEGIN:VEVENT\r\nUID:weekly\r\nDTSTAMP:20260101T000000Z\r\nRECURRENCE-ID:20260112T100000Z\r\nDTSTART:20260113T100000Z\r\nDTEND:20260113T110000Z\r\nSUMMARY:Standup (Tuesday)\r\nEND:VEVENT\r\nBEGIN:VEVENT\r\nUID:weekly\r\nDTSTAMP:20260101T000000Z\r\nRECURRENCE-ID:20260126T100000Z\r\nDTSTART:20260126T100000Z\r\nDTEND:20260126T110000Z\r\nSUMMARY:Standup (last)\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n";

const BUSY: &str = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//EN\r\nBEGIN:VFREEBUSY\r\nUID:fb\r\nDTSTAMP:20260101T000000Z\r\nDTSTART:20260101T000000Z\r\nDTEND:20260201T000000Z\r\nFREEBUSY:20260105T100000Z/PT1H,20260114T090000Z/20260114T100000Z\r\nFREEBUSY;FBTYPE=BUSY-TENTATIVE:20260120T100000Z/PT2H\r\nEND:VFREEBUSY\r\nEND:VCALENDAR\r\n";

const MKCAL_FREEBUSY: &str = r#"<?xml version="1.0"?><C:mkcalendar xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"><D:set><D:prop><C:supported-calendar-component-set><C:comp name="VFREEBUSY"/></C:supported-calendar-component-set></D:prop></D:set></C:mkcalendar>"#;

async fn setup() -> TestServer {
    let server = TestServer::start();
    let (status, body) = send(
        &server,
        "MKCALENDAR",
        "/calendars/users/ann/work/",
        None,
        "",
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, body) = send(
        &server,
        "PUT",
        "/calendars/users/ann/work/weekly.ics",
        None,
        WEEKLY,
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    // Default calendars take events and tasks; free-busy objects need a calendar of their own.
    let (status, body) = send(
        &server,
        "MKCALENDAR",
        "/calendars/users/ann/busy/",
        None,
        MKCAL_FREEBUSY,
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, body) = send(
        &server,
        "PUT",
        "/calendars/users/ann/busy/busy.ics",
        None,
        BUSY,
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    server
}

/// The text of the one `calendar-data` element in a multistatus.
fn calendar_data(body: &str) -> String {
    let start = body
        .find("calendar-data>")
        .expect("calendar-data in the answer")
        + "calendar-data>".len();
    let end = start + body[start..].find("</").expect("end of calendar-data");
    body[start..end]
        .replace("&#13;", "\r")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

fn multiget(href: &str, data: &str) -> String {
    format!(
        r#"<?xml version="1.0"?><C:calendar-multiget xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"><D:prop><C:calendar-data>{data}</C:calendar-data></D:prop><D:href>{href}</D:href></C:calendar-multiget>"#
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn limit_recurrence_set_keeps_master_and_overrides_in_range() {
    let server = setup().await;
    // 10-15 January holds the moved 12 January instance only; the 26 January override
    // lies outside and goes, the master stays.
    let query = r#"<?xml version="1.0"?><C:calendar-query xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"><D:prop><C:calendar-data><C:limit-recurrence-set start="20260110T000000Z" end="20260115T000000Z"/></C:calendar-data></D:prop><C:filter><C:comp-filter name="VCALENDAR"><C:comp-filter name="VEVENT"><C:time-range start="20260110T000000Z" end="20260115T000000Z"/></C:comp-filter></C:comp-filter></C:filter></C:calendar-query>"#;
    let (status, body) = send(
        &server,
        "REPORT",
        "/calendars/users/ann/work/",
        Some("1"),
        query,
    )
    .await;
    assert_eq!(status, StatusCode::MULTI_STATUS, "{body}");
    assert_eq!(
        calendar_data(&body),
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//EN\r\nBEGIN:VEVENT\r\nUID:weekly\r\nDTSTAMP:20260101T000000Z\r\nDTSTART:20260105T100000Z\r\nDTEND:20260105T110000Z\r\nRRULE:FREQ=WEEKLY;COUNT=4\r\nSUMMARY:Standup\r\nEND:VEVENT\r\nBEGIN:VEVENT\r\nUID:weekly\r\nDTSTAMP:20260101T000000Z\r\nRECURRENCE-ID:20260112T100000Z\r\nDTSTART:20260113T100000Z\r\nDTEND:20260113T110000Z\r\nSUMMARY:Standup (Tuesday)\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    );
    // A range holding no override leaves the master alone.
    let data = r#"<C:limit-recurrence-set start="20260119T000000Z" end="20260120T000000Z"/>"#;
    let (status, body) = send(
        &server,
        "REPORT",
        "/calendars/users/ann/work/",
        None,
        &multiget("/calendars/users/ann/work/weekly.ics", data),
    )
    .await;
    assert_eq!(status, StatusCode::MULTI_STATUS, "{body}");
    assert_eq!(
        calendar_data(&body),
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//EN\r\nBEGIN:VEVENT\r\nUID:weekly\r\nDTSTAMP:20260101T000000Z\r\nDTSTART:20260105T100000Z\r\nDTEND:20260105T110000Z\r\nRRULE:FREQ=WEEKLY;COUNT=4\r\nSUMMARY:Standup\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn limit_freebusy_set_keeps_periods_in_range() {
    let server = setup().await;
    let data = r#"<C:limit-freebusy-set start="20260110T000000Z" end="20260115T000000Z"/>"#;
    let (status, body) = send(
        &server,
        "REPORT",
        "/calendars/users/ann/busy/",
        None,
        &multiget("/calendars/users/ann/busy/busy.ics", data),
    )
    .await;
    assert_eq!(status, StatusCode::MULTI_STATUS, "{body}");
    assert_eq!(
        calendar_data(&body),
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//EN\r\nBEGIN:VFREEBUSY\r\nUID:fb\r\nDTSTAMP:20260101T000000Z\r\nDTSTART:20260101T000000Z\r\nDTEND:20260201T000000Z\r\nFREEBUSY:20260114T090000Z/20260114T100000Z\r\nEND:VFREEBUSY\r\nEND:VCALENDAR\r\n"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn partial_retrieval_returns_only_named_components_and_properties() {
    let server = setup().await;
    // RFC 4791 §7.8.1's shape: VERSION of the calendar; UID, SUMMARY and RECURRENCE-ID
    // of each event (the override's RECURRENCE-ID, not the master's missing one).
    let data = r#"<C:comp name="VCALENDAR"><C:prop name="VERSION"/><C:comp name="VEVENT"><C:prop name="UID"/><C:prop name="summary"/><C:prop name="RECURRENCE-ID"/><C:prop name="DTSTART" novalue="yes"/></C:comp></C:comp>"#;
    let (status, body) = send(
        &server,
        "REPORT",
        "/calendars/users/ann/work/",
        None,
        &multiget("/calendars/users/ann/work/weekly.ics", data),
    )
    .await;
    assert_eq!(status, StatusCode::MULTI_STATUS, "{body}");
    assert_eq!(
        calendar_data(&body),
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nBEGIN:VEVENT\r\nUID:weekly\r\nDTSTART:\r\nSUMMARY:Standup\r\nEND:VEVENT\r\nBEGIN:VEVENT\r\nUID:weekly\r\nRECURRENCE-ID:20260112T100000Z\r\nDTSTART:\r\nSUMMARY:Standup (Tuesday)\r\nEND:VEVENT\r\nBEGIN:VEVENT\r\nUID:weekly\r\nRECURRENCE-ID:20260126T100000Z\r\nDTSTART:\r\nSUMMARY:Standup (last)\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    );
    // allprop on the calendar, allcomp beneath: the whole object.
    let data = r#"<C:comp name="VCALENDAR"><C:allprop/><C:allcomp/></C:comp>"#;
    let (_, body) = send(
        &server,
        "REPORT",
        "/calendars/users/ann/work/",
        None,
        &multiget("/calendars/users/ann/work/weekly.ics", data),
    )
    .await;
    assert_eq!(calendar_data(&body), WEEKLY);
    // No VFREEBUSY asked for: only the calendar's own lines remain.
    let data = r#"<C:comp name="VCALENDAR"><C:allprop/><C:comp name="VEVENT"/></C:comp>"#;
    let (_, body) = send(
        &server,
        "REPORT",
        "/calendars/users/ann/busy/",
        None,
        &multiget("/calendars/users/ann/busy/busy.ics", data),
    )
    .await;
    assert_eq!(
        calendar_data(&body),
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//EN\r\nEND:VCALENDAR\r\n"
    );
    // The outer comp must be VCALENDAR.
    let data = r#"<C:comp name="VEVENT"/>"#;
    let (status, _) = send(
        &server,
        "REPORT",
        "/calendars/users/ann/work/",
        None,
        &multiget("/calendars/users/ann/work/weekly.ics", data),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}
