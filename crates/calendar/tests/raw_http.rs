//! Raw HTTP against the real service: every CalDAV precondition, privacy between users,
//! and calendar-proxy delegation as CalendarServer defines it.

mod common;

use common::client::{Client, Reply};
use common::{TestServer, PASSWORD};
use reqwest::{Method, StatusCode};

impl Client {
    async fn put(&self, path: &str, ics: &str, headers: &[(&str, &str)]) -> Reply {
        let mut all = vec![("Content-Type", "text/calendar")];
        all.extend_from_slice(headers);
        self.send("PUT", path, &all, ics).await
    }
}

fn event(uid: &str, summary: &str) -> String {
    format!(
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//EN\r\nBEGIN:VEVENT\r\nUID:{uid}\r\nDTSTAMP:20260101T000000Z\r\nDTSTART:20260105T100000Z\r\nDTEND:20260105T110000Z\r\nSUMMARY:{summary}\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    )
}

const MKCAL_EVENTS_ONLY: &str = r#"<?xml version="1.0"?><C:mkcalendar xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"><D:set><D:prop><D:displayname>Work</D:displayname><C:supported-calendar-component-set><C:comp name="VEVENT"/></C:supported-calendar-component-set></D:prop></D:set></C:mkcalendar>"#;

async fn setup(server: &TestServer) -> Client {
    let ann = Client::new(server, "ann");
    let r = ann
        .send(
            "MKCALENDAR",
            "/calendars/users/ann/work/",
            &[],
            MKCAL_EVENTS_ONLY,
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let r = ann
        .put(
            "/calendars/users/ann/work/a.ics",
            &event("a@test", "Secret meeting"),
            &[],
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    ann
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_basics() {
    let server = TestServer::start();
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let r = http
        .get(server.url("/.well-known/caldav"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::MOVED_PERMANENTLY);
    assert_eq!(r.headers()["location"], "/");
    let r = http
        .request(Method::OPTIONS, server.url("/"))
        .send()
        .await
        .unwrap();
    let dav = r.headers()["dav"].to_str().unwrap().to_owned();
    assert!(
        dav.contains("calendar-access") && dav.contains("calendar-proxy"),
        "{dav}"
    );
    assert!(
        dav.contains("calendarserver-sharing"),
        "CS sharing works (calendarserver_sharing test), so Apple clients must be told: {dav}"
    );
    assert!(
        dav.contains("calendar-auto-schedule"),
        "RFC 6638 scheduling is advertised (tests/scheduling_http.rs checks it works): {dav}"
    );
    let r = http
        .request(Method::from_bytes(b"PROPFIND").unwrap(), server.url("/"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let schemes: Vec<&str> = r
        .headers()
        .get_all("www-authenticate")
        .iter()
        .filter_map(|v| v.to_str().ok()?.split(' ').next())
        .collect();
    assert_eq!(
        schemes,
        ["Digest", "Digest", "Basic"],
        "Digest (MD5, SHA-256) first, then Basic; tests/digest_http.rs checks each"
    );
    let wrong = http
        .request(Method::from_bytes(b"PROPFIND").unwrap(), server.url("/"))
        .basic_auth("ann", Some("wrong"))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    let ann = Client::new(&server, "ann");
    let r = ann
        .send("PROPFIND", "/", &[("Depth", "0")], r#"<d:propfind xmlns:d="DAV:"><d:prop><d:current-user-principal/></d:prop></d:propfind>"#)
        .await;
    assert_eq!(r.status, StatusCode::MULTI_STATUS);
    assert!(
        r.body.contains("<D:href>/principals/users/ann/</D:href>"),
        "{}",
        r.body
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preconditions() {
    let server = TestServer::start();
    let ann = setup(&server).await;
    let cal = "/calendars/users/ann/work";

    let r = ann
        .put(&format!("{cal}/bad.ics"), "this is not iCalendar", &[])
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(r.body.contains("valid-calendar-data"), "{}", r.body);

    let no_uid = event("x", "y").replace("UID:x\r\n", "");
    let r = ann.put(&format!("{cal}/nouid.ics"), &no_uid, &[]).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(
        r.body.contains("valid-calendar-object-resource"),
        "{}",
        r.body
    );

    let r = ann
        .put(&format!("{cal}/dup.ics"), &event("a@test", "again"), &[])
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(
        r.body.contains("no-uid-conflict") && r.body.contains("/calendars/users/ann/work/a.ics"),
        "{}",
        r.body
    );

    let todo = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:x\r\nBEGIN:VTODO\r\nUID:t@test\r\nSUMMARY:x\r\nEND:VTODO\r\nEND:VCALENDAR\r\n";
    let r = ann.put(&format!("{cal}/todo.ics"), todo, &[]).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(
        r.body.contains("supported-calendar-component"),
        "{}",
        r.body
    );

    let huge = event("big@test", &"x".repeat(2 * 1024 * 1024));
    let r = ann.put(&format!("{cal}/big.ics"), &huge, &[]).await;
    assert!(
        r.status == StatusCode::FORBIDDEN || r.status == StatusCode::PAYLOAD_TOO_LARGE,
        "{}",
        r.status
    );
    assert!(r.body.contains("max-resource-size"), "{}", r.body);

    let r = ann
        .put(
            &format!("{cal}/a.ics"),
            &event("a@test", "x"),
            &[("If-None-Match", "*")],
        )
        .await;
    assert_eq!(r.status, StatusCode::PRECONDITION_FAILED);
    let r = ann
        .put(
            &format!("{cal}/a.ics"),
            &event("a@test", "x"),
            &[("If-Match", "\"stale\"")],
        )
        .await;
    assert_eq!(r.status, StatusCode::PRECONDITION_FAILED);
    let r = ann
        .send(
            "DELETE",
            &format!("{cal}/a.ics"),
            &[("If-Match", "\"stale\"")],
            "",
        )
        .await;
    assert_eq!(r.status, StatusCode::PRECONDITION_FAILED);
    let r = ann
        .send(
            "PUT",
            &format!("{cal}/a.ics"),
            &[("Content-Type", "text/plain")],
            &event("a@test", "x"),
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(r.body.contains("supported-calendar-data"), "{}", r.body);

    let r = ann.send("GET", &format!("{cal}/a.ics"), &[], "").await;
    let etag = r.headers["etag"].to_str().unwrap().to_owned();
    assert!(
        r.body.contains("Secret meeting"),
        "rejected PUTs stored nothing"
    );
    let r = ann
        .put(
            &format!("{cal}/a.ics"),
            &event("a@test", "Updated"),
            &[("If-Match", &etag)],
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_ne!(r.headers["etag"].to_str().unwrap(), etag);

    let r = ann.send("MKCALENDAR", &format!("{cal}/"), &[], "").await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);

    let sync = r#"<d:sync-collection xmlns:d="DAV:"><d:sync-token>http://serval.invalid/ns/sync/1-999</d:sync-token><d:sync-level>1</d:sync-level><d:prop><d:getetag/></d:prop></d:sync-collection>"#;
    let r = ann.send("REPORT", &format!("{cal}/"), &[], sync).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(r.body.contains("valid-sync-token"), "{}", r.body);

    let r = ann
        .send(
            "PROPFIND",
            &format!("{cal}/"),
            &[],
            "<d:propfind xmlns:d='DAV:'><d:prop>",
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.body.contains("malformed XML"), "{}", r.body);

    let bad_collation = r#"<C:calendar-query xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"><D:prop><D:getetag/></D:prop><C:filter><C:comp-filter name="VCALENDAR"><C:comp-filter name="VEVENT"><C:prop-filter name="SUMMARY"><C:text-match collation="i;nope">x</C:text-match></C:prop-filter></C:comp-filter></C:comp-filter></C:filter></C:calendar-query>"#;
    let r = ann
        .send("REPORT", &format!("{cal}/"), &[], bad_collation)
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert!(r.body.contains("supported-collation"), "{}", r.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn privacy_without_a_grant() {
    let server = TestServer::start();
    let _ann = setup(&server).await;
    let bob = Client::new(&server, "bob");
    let query = r#"<C:calendar-query xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"><D:prop><D:getetag/></D:prop><C:filter><C:comp-filter name="VCALENDAR"/></C:filter></C:calendar-query>"#;
    for (method, path, body) in [
        ("PROPFIND", "/calendars/users/ann/", ""),
        ("PROPFIND", "/calendars/users/ann/work/", ""),
        ("GET", "/calendars/users/ann/work/a.ics", ""),
        ("REPORT", "/calendars/users/ann/work/", query),
        ("DELETE", "/calendars/users/ann/work/a.ics", ""),
        (
            "PROPFIND",
            "/principals/users/ann/calendar-proxy-write/",
            "",
        ),
        ("MKCALENDAR", "/calendars/users/ann/other/", ""),
    ] {
        let r = bob.send(method, path, &[("Depth", "1")], body).await;
        assert_eq!(
            r.status,
            StatusCode::NOT_FOUND,
            "{method} {path}: {}",
            r.body
        );
        assert!(!r.body.contains("Secret"), "{method} {path} leaked data");
    }
    let r = bob
        .put(
            "/calendars/users/ann/work/b.ics",
            &event("b@test", "x"),
            &[],
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    // Bob's view of Ann's principal says nothing about her delegates.
    let r = bob
        .send("PROPFIND", "/principals/users/ann/", &[("Depth", "0")], "")
        .await;
    assert_eq!(r.status, StatusCode::MULTI_STATUS);
    assert!(!r.body.contains("calendar-proxy"), "{}", r.body);
}

fn member_set(hrefs: &[&str]) -> String {
    let hrefs: String = hrefs
        .iter()
        .map(|h| format!("<D:href>{h}</D:href>"))
        .collect();
    format!(
        r#"<D:propertyupdate xmlns:D="DAV:"><D:set><D:prop><D:group-member-set>{hrefs}</D:group-member-set></D:prop></D:set></D:propertyupdate>"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calendar_proxy_delegation() {
    let server = TestServer::start();
    let ann = setup(&server).await;
    let bob = Client::new(&server, "bob");
    let carol = Client::new(&server, "carol");

    // Read proxy: Bob.
    let r = ann
        .send(
            "PROPPATCH",
            "/principals/users/ann/calendar-proxy-read/",
            &[],
            &member_set(&["/principals/users/bob/"]),
        )
        .await;
    assert_eq!(r.status, StatusCode::MULTI_STATUS, "{}", r.body);
    assert!(r.body.contains("200 OK"), "{}", r.body);
    let r = ann
        .send(
            "PROPFIND",
            "/principals/users/ann/calendar-proxy-read/",
            &[("Depth", "0")],
            "",
        )
        .await;
    assert!(
        r.body.contains("<D:href>/principals/users/bob/</D:href>"),
        "{}",
        r.body
    );
    let r = bob.send("PROPFIND", "/principals/users/bob/", &[("Depth", "0")], r#"<D:propfind xmlns:D="DAV:" xmlns:CS="http://calendarserver.org/ns/"><D:prop><CS:calendar-proxy-read-for/><CS:calendar-proxy-write-for/></D:prop></D:propfind>"#).await;
    assert!(r.body.contains("<CS:calendar-proxy-read-for><D:href>/principals/users/ann/</D:href></CS:calendar-proxy-read-for>"), "{}", r.body);
    let r = bob
        .send("GET", "/calendars/users/ann/work/a.ics", &[], "")
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.body.contains("Secret meeting"));
    // What Apple Calendar asks to list the delegations: expand-property.
    let expand = r#"<A:expand-property xmlns:A="DAV:"><A:property name="calendar-proxy-read-for" namespace="http://calendarserver.org/ns/"><A:property name="displayname"/><A:property name="calendar-user-address-set" namespace="urn:ietf:params:xml:ns:caldav"/></A:property></A:expand-property>"#;
    let r = bob
        .send(
            "REPORT",
            "/principals/users/bob/",
            &[("Depth", "0")],
            expand,
        )
        .await;
    assert_eq!(r.status, StatusCode::MULTI_STATUS, "{}", r.body);
    assert!(
        r.body.contains(
            "<CS:calendar-proxy-read-for><D:response><D:href>/principals/users/ann/</D:href>"
        ) && r.body.contains("<D:displayname>ann</D:displayname>")
            && r.body.contains("mailto:ann@example.com"),
        "{}",
        r.body
    );
    let members = r#"<A:expand-property xmlns:A="DAV:"><A:property name="group-member-set"><A:property name="displayname"/></A:property></A:expand-property>"#;
    let r = ann
        .send(
            "REPORT",
            "/principals/users/ann/calendar-proxy-read/",
            &[("Depth", "0")],
            members,
        )
        .await;
    assert!(
        r.body.contains("<D:href>/principals/users/bob/</D:href>")
            && r.body.contains("<D:displayname>bob</D:displayname>"),
        "{}",
        r.body
    );
    let r = bob
        .put(
            "/calendars/users/ann/work/b.ics",
            &event("b@test", "x"),
            &[],
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "read proxies cannot write");
    let r = bob
        .send("DELETE", "/calendars/users/ann/work/a.ics", &[], "")
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = carol
        .send("GET", "/calendars/users/ann/work/a.ics", &[], "")
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "Carol has no grant yet");

    // Write proxy: the group staff (Bob and Carol).
    let r = ann
        .send(
            "PROPPATCH",
            "/principals/users/ann/calendar-proxy-write/",
            &[],
            &member_set(&["/principals/groups/staff/"]),
        )
        .await;
    assert_eq!(r.status, StatusCode::MULTI_STATUS, "{}", r.body);
    let r = carol
        .put(
            "/calendars/users/ann/work/c.ics",
            &event("c@test", "Booked by Carol"),
            &[],
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let r = bob
        .put(
            "/calendars/users/ann/work/b.ics",
            &event("b@test", "x"),
            &[],
        )
        .await;
    assert_eq!(
        r.status,
        StatusCode::CREATED,
        "write via the group beats read"
    );

    // Only the owner manages delegates.
    let r = bob
        .send(
            "PROPPATCH",
            "/principals/users/ann/calendar-proxy-write/",
            &[],
            &member_set(&["/principals/users/bob/"]),
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    // Removing the grants removes access.
    ann.send(
        "PROPPATCH",
        "/principals/users/ann/calendar-proxy-write/",
        &[],
        &member_set(&[]),
    )
    .await;
    ann.send(
        "PROPPATCH",
        "/principals/users/ann/calendar-proxy-read/",
        &[],
        &member_set(&[]),
    )
    .await;
    let r = carol
        .send("GET", "/calendars/users/ann/work/c.ics", &[], "")
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn caldav_over_tls() {
    let server = TestServer::start_with_tls();
    let tls_addr = server.tls_addr.expect("TLS listener");
    let http = reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .build()
        .unwrap();
    let r = http
        .request(
            Method::from_bytes(b"PROPFIND").unwrap(),
            format!("https://{tls_addr}/principals/users/ann/"),
        )
        .basic_auth("ann", Some(PASSWORD))
        .header("Depth", "0")
        .send()
        .await
        .expect("HTTPS request");
    assert_eq!(r.status(), StatusCode::MULTI_STATUS);
    assert!(r.text().await.unwrap().contains("calendar-home-set"));
}

fn share_body(entries: &[(&str, bool)], remove: &[&str]) -> String {
    let mut body = String::from(
        r#"<?xml version="1.0" encoding="utf-8"?><CS:share xmlns:D="DAV:" xmlns:CS="http://calendarserver.org/ns/">"#,
    );
    for (href, write) in entries {
        let access = if *write {
            "<CS:read-write/>"
        } else {
            "<CS:read/>"
        };
        body.push_str(&format!(
            "<CS:set><D:href>{href}</D:href><CS:summary>Work</CS:summary>{access}</CS:set>"
        ));
    }
    for href in remove {
        body.push_str(&format!("<CS:remove><D:href>{href}</D:href></CS:remove>"));
    }
    body.push_str("</CS:share>");
    body
}

/// The invitation uid from a notification collection listing.
fn invitation_uid(listing: &str) -> String {
    let start = listing
        .rfind("/notification/")
        .map(|i| i + "/notification/".len())
        .expect("a notification");
    let rest = listing.get(start..).unwrap();
    let end = rest.find(".xml").expect("notification name");
    rest.get(..end).unwrap().to_owned()
}

async fn accept(client: &Client, home: &str, uid: &str) -> Reply {
    let body = format!(
        r#"<?xml version="1.0" encoding="utf-8"?><CS:invite-reply xmlns:D="DAV:" xmlns:CS="http://calendarserver.org/ns/"><D:href>mailto:x@example.com</D:href><CS:invite-accepted/><CS:hosturl><D:href>/calendars/users/ann/work/</D:href></CS:hosturl><CS:in-reply-to>{uid}</CS:in-reply-to></CS:invite-reply>"#
    );
    client
        .send("POST", home, &[("Content-Type", "application/xml")], &body)
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calendarserver_sharing() {
    let server = TestServer::start();
    let ann = setup(&server).await;
    let bob = Client::new(&server, "bob");
    let carol = Client::new(&server, "carol");

    let r = ann
        .send(
            "POST",
            "/calendars/users/ann/work/",
            &[("Content-Type", "application/xml")],
            &share_body(
                &[
                    ("mailto:bob@example.com", false),
                    ("/principals/users/carol/", true),
                ],
                &[],
            ),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let r = ann
        .send(
            "PROPFIND",
            "/calendars/users/ann/work/",
            &[("Depth", "0")],
            "",
        )
        .await;
    assert!(
        r.body.contains("<CS:shared-owner/>") && r.body.contains("<CS:invite-noresponse/>"),
        "{}",
        r.body
    );

    // Not accepted yet: nothing of Ann's is visible to Bob.
    let r = bob
        .send("GET", "/calendars/users/ann/work/a.ics", &[], "")
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = bob
        .send("PROPFIND", "/principals/users/bob/", &[("Depth", "0")], "")
        .await;
    assert!(
        r.body.contains("/calendars/users/bob/notification/"),
        "{}",
        r.body
    );
    let listing = bob
        .send(
            "PROPFIND",
            "/calendars/users/bob/notification/",
            &[("Depth", "1")],
            "",
        )
        .await;
    assert_eq!(listing.status, StatusCode::MULTI_STATUS);
    let uid = invitation_uid(&listing.body);
    let r = bob
        .send(
            "GET",
            &format!("/calendars/users/bob/notification/{uid}.xml"),
            &[],
            "",
        )
        .await;
    assert!(
        r.body.contains("<CS:invite-notification")
            && r.body.contains("/calendars/users/ann/work/")
            && r.body.contains("<CS:read/>"),
        "{}",
        r.body
    );
    let r = carol
        .send(
            "GET",
            &format!("/calendars/users/bob/notification/{uid}.xml"),
            &[],
            "",
        )
        .await;
    assert_eq!(
        r.status,
        StatusCode::NOT_FOUND,
        "Carol cannot read Bob's notifications"
    );

    let r = accept(&bob, "/calendars/users/bob/", &uid).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let mount = r
        .body
        .split("<D:href>")
        .nth(1)
        .and_then(|s| s.split("</D:href>").next())
        .unwrap()
        .to_owned();
    assert!(mount.starts_with("/calendars/users/bob/"), "{mount}");
    let r = bob
        .send("PROPFIND", "/calendars/users/bob/", &[("Depth", "1")], "")
        .await;
    assert!(
        r.body.contains(&mount) && r.body.contains("<CS:shared/>"),
        "{}",
        r.body
    );
    let r = bob.send("GET", &format!("{mount}a.ics"), &[], "").await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.body.contains("Secret meeting"));
    let r = bob
        .put(&format!("{mount}b.ics"), &event("b@test", "x"), &[])
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "read-only share");

    // Carol accepts her read-write invitation and writes into Ann's calendar.
    let listing = carol
        .send(
            "PROPFIND",
            "/calendars/users/carol/notification/",
            &[("Depth", "1")],
            "",
        )
        .await;
    let r = accept(
        &carol,
        "/calendars/users/carol/",
        &invitation_uid(&listing.body),
    )
    .await;
    let carol_mount = r
        .body
        .split("<D:href>")
        .nth(1)
        .and_then(|s| s.split("</D:href>").next())
        .unwrap()
        .to_owned();
    let r = carol
        .put(
            &format!("{carol_mount}c.ics"),
            &event("c@test", "Carol was here"),
            &[],
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let r = ann
        .send("GET", "/calendars/users/ann/work/c.ics", &[], "")
        .await;
    assert!(r.body.contains("Carol was here"));

    // Carol unsubscribes: her mount goes, Ann's calendar stays.
    let r = carol.send("DELETE", &carol_mount, &[], "").await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(
        carol
            .send("GET", &format!("{carol_mount}c.ics"), &[], "")
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        ann.send("GET", "/calendars/users/ann/work/c.ics", &[], "")
            .await
            .status,
        StatusCode::OK
    );

    // Ann withdraws Bob's share: his mount is gone.
    let r = ann
        .send(
            "POST",
            "/calendars/users/ann/work/",
            &[("Content-Type", "application/xml")],
            &share_body(&[], &["mailto:bob@example.com"]),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        bob.send("GET", &format!("{mount}a.ics"), &[], "")
            .await
            .status,
        StatusCode::NOT_FOUND
    );

    // Only the owner shares.
    let r = bob
        .send(
            "POST",
            "/calendars/users/ann/work/",
            &[("Content-Type", "application/xml")],
            &share_body(&[("mailto:bob@example.com", true)], &[]),
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_calendars_belong_to_members() {
    let server = TestServer::start();
    let ann = Client::new(&server, "ann");
    let bob = Client::new(&server, "bob");
    let carol = Client::new(&server, "carol");
    let r = bob
        .send(
            "PROPFIND",
            "/principals/groups/staff/",
            &[("Depth", "0")],
            "",
        )
        .await;
    assert!(
        r.body
            .contains("<C:calendar-home-set><D:href>/calendars/groups/staff/</D:href>"),
        "{}",
        r.body
    );
    let r = bob
        .send("MKCALENDAR", "/calendars/groups/staff/rota/", &[], "")
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let r = carol
        .put(
            "/calendars/groups/staff/rota/shift.ics",
            &event("shift@test", "Night shift"),
            &[],
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    let r = bob
        .send("GET", "/calendars/groups/staff/rota/shift.ics", &[], "")
        .await;
    assert!(r.body.contains("Night shift"));
    let r = bob
        .send(
            "PROPFIND",
            "/calendars/groups/staff/",
            &[("Depth", "1")],
            "",
        )
        .await;
    assert!(
        r.body.contains("/calendars/groups/staff/rota/"),
        "{}",
        r.body
    );
    for (method, path) in [
        ("GET", "/calendars/groups/staff/rota/shift.ics"),
        ("PROPFIND", "/calendars/groups/staff/"),
        ("PROPFIND", "/principals/groups/staff/"),
    ] {
        let r = ann.send(method, path, &[("Depth", "0")], "").await;
        assert_eq!(
            r.status,
            StatusCode::NOT_FOUND,
            "Ann is not in staff: {method} {path}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn floating_events_follow_calendar_timezone() {
    let server = TestServer::start();
    let ann = Client::new(&server, "ann");
    let tz = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:x\r\nBEGIN:VTIMEZONE\r\nTZID:Europe/Berlin\r\nBEGIN:STANDARD\r\nDTSTART:19701025T030000\r\nTZOFFSETFROM:+0200\r\nTZOFFSETTO:+0100\r\nRRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU\r\nEND:STANDARD\r\nBEGIN:DAYLIGHT\r\nDTSTART:19700329T020000\r\nTZOFFSETFROM:+0100\r\nTZOFFSETTO:+0200\r\nRRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU\r\nEND:DAYLIGHT\r\nEND:VTIMEZONE\r\nEND:VCALENDAR\r\n";
    let all_day = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:x\r\nBEGIN:VEVENT\r\nUID:day@test\r\nDTSTART;VALUE=DATE:20260301\r\nDTEND;VALUE=DATE:20260302\r\nSUMMARY:Holiday\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n";
    let query = |start: &str, end: &str| {
        format!(
            r#"<C:calendar-query xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"><D:prop><D:getetag/></D:prop><C:filter><C:comp-filter name="VCALENDAR"><C:comp-filter name="VEVENT"><C:time-range start="{start}" end="{end}"/></C:comp-filter></C:comp-filter></C:filter></C:calendar-query>"#
        )
    };
    ann.send("MKCALENDAR", "/calendars/users/ann/home/", &[], "")
        .await;
    ann.put("/calendars/users/ann/home/day.ics", all_day, &[])
        .await;
    // Without a calendar-timezone, the day is a UTC day.
    let r = ann
        .send(
            "REPORT",
            "/calendars/users/ann/home/",
            &[("Depth", "1")],
            &query("20260228T230000Z", "20260228T235900Z"),
        )
        .await;
    assert!(!r.body.contains("day.ics"), "{}", r.body);
    // Setting Europe/Berlin moves the day one hour earlier in UTC; the index follows.
    let patch = format!(
        r#"<D:propertyupdate xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"><D:set><D:prop><C:calendar-timezone>{}</C:calendar-timezone></D:prop></D:set></D:propertyupdate>"#,
        tz.replace('\r', "&#13;")
    );
    let r = ann
        .send("PROPPATCH", "/calendars/users/ann/home/", &[], &patch)
        .await;
    assert!(r.body.contains("200 OK"), "{}", r.body);
    let r = ann
        .send(
            "REPORT",
            "/calendars/users/ann/home/",
            &[("Depth", "1")],
            &query("20260228T230000Z", "20260228T235900Z"),
        )
        .await;
    assert!(r.body.contains("day.ics"), "{}", r.body);
    let r = ann
        .send(
            "REPORT",
            "/calendars/users/ann/home/",
            &[("Depth", "1")],
            &query("20260301T230000Z", "20260301T235900Z"),
        )
        .await;
    assert!(
        !r.body.contains("day.ics"),
        "the Berlin day ends at 23:00 UTC: {}",
        r.body
    );
}
