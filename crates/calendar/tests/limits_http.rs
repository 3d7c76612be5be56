//! Raw HTTP for the server's bounds: calendar-query answers truncated with a 507
//! `number-of-matches-within-limits` past the client's `DAV:nresults` or the server's
//! `MAX_QUERY_WITH_DATA_RESULTS`; sync tokens older than the pruned change log answer
//! 403 `valid-sync-token`.

mod common;

use common::{TestServer, PASSWORD};
use reqwest::{Method, StatusCode};
use serval_calendar::http::MAX_QUERY_WITH_DATA_RESULTS;

async fn send(
    http: &reqwest::Client,
    server: &TestServer,
    method: &str,
    path: &str,
    body: String,
) -> (StatusCode, String) {
    let mut req = http
        .request(
            Method::from_bytes(method.as_bytes()).unwrap(),
            server.url(path),
        )
        .basic_auth("ann", Some(PASSWORD))
        .body(body);
    if method == "PUT" {
        req = req.header("Content-Type", "text/calendar");
    }
    if method == "REPORT" {
        req = req.header("Depth", "1");
    }
    let response = req.send().await.expect("request");
    (response.status(), response.text().await.unwrap_or_default())
}

fn event(n: usize) -> String {
    format!("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//EN\r\nBEGIN:VEVENT\r\nUID:e{n}\r\nDTSTAMP:20260101T000000Z\r\nDTSTART:20260105T100000Z\r\nDTEND:20260105T110000Z\r\nSUMMARY:Event {n}\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n")
}

async fn calendar_with(server: &TestServer, http: &reqwest::Client, n_events: usize) {
    let (status, body) = send(
        http,
        server,
        "MKCALENDAR",
        "/calendars/users/ann/work/",
        String::new(),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    for n in 0..n_events {
        let (status, body) = send(
            http,
            server,
            "PUT",
            &format!("/calendars/users/ann/work/e{n}.ics"),
            event(n),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
}

fn query(prop: &str, limit: &str) -> String {
    format!(
        r#"<?xml version="1.0"?><C:calendar-query xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"><D:prop>{prop}</D:prop><C:filter><C:comp-filter name="VCALENDAR"><C:comp-filter name="VEVENT"/></C:comp-filter></C:filter>{limit}</C:calendar-query>"#
    )
}

const TRUNCATED: &str = "<D:response><D:href>/calendars/users/ann/work/</D:href><D:status>HTTP/1.1 507 Insufficient Storage</D:status><D:error><D:number-of-matches-within-limits/></D:error></D:response>";

#[tokio::test(flavor = "multi_thread")]
async fn nresults_truncates_a_calendar_query_with_507() {
    let server = TestServer::start();
    let http = reqwest::Client::new();
    calendar_with(&server, &http, 3).await;
    let limit = "<D:limit><D:nresults>2</D:nresults></D:limit>";
    let (status, body) = send(
        &http,
        &server,
        "REPORT",
        "/calendars/users/ann/work/",
        query("<D:getetag/>", limit),
    )
    .await;
    assert_eq!(status, StatusCode::MULTI_STATUS, "{body}");
    assert_eq!(body.matches(".ics</D:href>").count(), 2, "{body}");
    assert!(body.contains(TRUNCATED), "{body}");
    // Exactly as many matches as asked for is a complete answer.
    let limit = "<D:limit><D:nresults>3</D:nresults></D:limit>";
    let (_, body) = send(
        &http,
        &server,
        "REPORT",
        "/calendars/users/ann/work/",
        query("<D:getetag/>", limit),
    )
    .await;
    assert_eq!(body.matches(".ics</D:href>").count(), 3, "{body}");
    assert!(!body.contains("number-of-matches-within-limits"), "{body}");
}

#[tokio::test(flavor = "multi_thread")]
async fn queries_with_data_stop_at_the_server_cap() {
    let server = TestServer::start();
    let http = reqwest::Client::new();
    calendar_with(&server, &http, MAX_QUERY_WITH_DATA_RESULTS + 1).await;
    let (status, body) = send(
        &http,
        &server,
        "REPORT",
        "/calendars/users/ann/work/",
        query("<D:getetag/><C:calendar-data/>", ""),
    )
    .await;
    assert_eq!(status, StatusCode::MULTI_STATUS);
    assert_eq!(
        body.matches(".ics</D:href>").count(),
        MAX_QUERY_WITH_DATA_RESULTS
    );
    assert!(body.contains(TRUNCATED));
    // Hrefs and ETags alone are how clients list a calendar: never capped by the server.
    let (_, body) = send(
        &http,
        &server,
        "REPORT",
        "/calendars/users/ann/work/",
        query("<D:getetag/>", ""),
    )
    .await;
    assert_eq!(
        body.matches(".ics</D:href>").count(),
        MAX_QUERY_WITH_DATA_RESULTS + 1
    );
    assert!(!body.contains("number-of-matches-within-limits"));
}

fn sync(token: &str) -> String {
    format!(
        r#"<?xml version="1.0"?><D:sync-collection xmlns:D="DAV:"><D:sync-token>{token}</D:sync-token><D:sync-level>1</D:sync-level><D:prop><D:getetag/></D:prop></D:sync-collection>"#
    )
}

fn token_of(body: &str) -> String {
    let start = body.find("<D:sync-token>").expect("sync-token") + "<D:sync-token>".len();
    let end = start + body[start..].find('<').expect("end of sync-token");
    body[start..end].to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn tokens_older_than_the_pruned_log_must_resync() {
    let server = TestServer::start();
    let http = reqwest::Client::new();
    calendar_with(&server, &http, 2).await;
    let cal = "/calendars/users/ann/work/";
    let (status, body) = send(&http, &server, "REPORT", cal, sync("")).await;
    assert_eq!(status, StatusCode::MULTI_STATUS, "{body}");
    let before_delete = token_of(&body);
    let (status, _) = send(
        &http,
        &server,
        "DELETE",
        "/calendars/users/ann/work/e0.ics",
        String::new(),
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (_, body) = send(&http, &server, "REPORT", cal, sync("")).await;
    let after_delete = token_of(&body);

    // Nothing is old enough yet: both tokens work, the older one learns of the deletion.
    let store = serval_calendar::store::SqliteCalendarStore::open(
        serval_core::Store::open(&server.data_dir().join("serval.db")).expect("store"),
    )
    .expect("calendar store");
    use serval_calendar::store::CalendarStore;
    assert_eq!(store.prune_changes(0).expect("prune"), 0);
    let (status, body) = send(&http, &server, "REPORT", cal, sync(&before_delete)).await;
    assert_eq!(status, StatusCode::MULTI_STATUS, "{body}");
    assert!(
        body.contains("e0.ics</D:href><D:status>HTTP/1.1 404"),
        "{body}"
    );

    // A cut-off after everything: e0's creation and its deletion's tombstone go (e1's only
    // change stays), and with them the token that needed the tombstone; the newer token
    // and a fresh sync are unaffected.
    assert_eq!(store.prune_changes(i64::MAX).expect("prune"), 2);
    let (status, body) = send(&http, &server, "REPORT", cal, sync(&before_delete)).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert!(body.contains("valid-sync-token"), "{body}");
    let (status, body) = send(&http, &server, "REPORT", cal, sync(&after_delete)).await;
    assert_eq!(status, StatusCode::MULTI_STATUS, "{body}");
    assert!(!body.contains(".ics"), "{body}");
    let (status, body) = send(&http, &server, "REPORT", cal, sync("")).await;
    assert_eq!(status, StatusCode::MULTI_STATUS, "{body}");
    assert!(body.contains("/calendars/users/ann/work/e1.ics"), "{body}");
    assert!(!body.contains("e0.ics"), "{body}");
}
