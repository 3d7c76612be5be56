//! Per-sharee view properties of shared calendars over real sockets: a sharee's name and
//! colour for a calendar shared with them are theirs alone (read-only sharees included),
//! everything else still goes to the owner's calendar and needs write access.

mod common;

use common::client::{Client, Reply};
use common::TestServer;
use reqwest::StatusCode;

const MKCAL_WORK: &str = r#"<?xml version="1.0"?><C:mkcalendar xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav" xmlns:A="http://apple.com/ns/ical/"><D:set><D:prop><D:displayname>Work</D:displayname><A:calendar-color>#0000FFFF</A:calendar-color><C:supported-calendar-component-set><C:comp name="VEVENT"/></C:supported-calendar-component-set></D:prop></D:set></C:mkcalendar>"#;

const PROPFIND_VIEW: &str = r#"<?xml version="1.0"?><D:propfind xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav" xmlns:A="http://apple.com/ns/ical/" xmlns:CS="http://calendarserver.org/ns/"><D:prop><D:displayname/><A:calendar-color/><A:calendar-order/><C:calendar-description/><CS:getctag/></D:prop></D:propfind>"#;

fn proppatch(set: &str, remove: &str) -> String {
    let mut body = String::from(
        r#"<?xml version="1.0"?><D:propertyupdate xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav" xmlns:A="http://apple.com/ns/ical/">"#,
    );
    if !set.is_empty() {
        body.push_str(&format!("<D:set><D:prop>{set}</D:prop></D:set>"));
    }
    if !remove.is_empty() {
        body.push_str(&format!("<D:remove><D:prop>{remove}</D:prop></D:remove>"));
    }
    body.push_str("</D:propertyupdate>");
    body
}

fn share_body(href: &str, write: bool, remove: bool) -> String {
    let access = if write {
        "<CS:read-write/>"
    } else {
        "<CS:read/>"
    };
    let inner = if remove {
        format!("<CS:remove><D:href>{href}</D:href></CS:remove>")
    } else {
        format!("<CS:set><D:href>{href}</D:href><CS:summary>Work</CS:summary>{access}</CS:set>")
    };
    format!(
        r#"<?xml version="1.0" encoding="utf-8"?><CS:share xmlns:D="DAV:" xmlns:CS="http://calendarserver.org/ns/">{inner}</CS:share>"#
    )
}

async fn share(ann: &Client, sharee: &str, write: bool, remove: bool) {
    let r = ann
        .send(
            "POST",
            "/calendars/users/ann/work/",
            &[("Content-Type", "application/xml")],
            &share_body(&format!("/principals/users/{sharee}/"), write, remove),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
}

/// Accepts the newest invitation in `client`'s notifications; returns the mount's href.
async fn accept(client: &Client) -> String {
    let home = format!("/calendars/users/{}/", client.user);
    let listing = client
        .send(
            "PROPFIND",
            &format!("{home}notification/"),
            &[("Depth", "1")],
            "",
        )
        .await;
    assert_eq!(listing.status, StatusCode::MULTI_STATUS);
    let start = listing
        .body
        .rfind("/notification/")
        .map(|i| i + "/notification/".len())
        .expect("a notification");
    let rest = listing.body.get(start..).unwrap();
    let uid = rest.get(..rest.find(".xml").expect("name")).unwrap();
    let body = format!(
        r#"<?xml version="1.0" encoding="utf-8"?><CS:invite-reply xmlns:D="DAV:" xmlns:CS="http://calendarserver.org/ns/"><D:href>mailto:x@example.com</D:href><CS:invite-accepted/><CS:hosturl><D:href>/calendars/users/ann/work/</D:href></CS:hosturl><CS:in-reply-to>{uid}</CS:in-reply-to></CS:invite-reply>"#
    );
    let r = client
        .send("POST", &home, &[("Content-Type", "application/xml")], &body)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let mount = r
        .body
        .split("<D:href>")
        .nth(1)
        .and_then(|s| s.split("</D:href>").next())
        .unwrap()
        .to_owned();
    assert!(mount.starts_with(&home), "{mount}");
    mount
}

async fn view(client: &Client, href: &str) -> Reply {
    let r = client
        .send("PROPFIND", href, &[("Depth", "0")], PROPFIND_VIEW)
        .await;
    assert_eq!(r.status, StatusCode::MULTI_STATUS, "{}", r.body);
    r
}

/// The text of the first element named `local` (any prefix) in `xml`.
fn value<'a>(xml: &'a str, local: &str) -> Option<&'a str> {
    let open = xml.find(&format!(":{local}>"))? + local.len() + 2;
    let rest = xml.get(open..)?;
    rest.get(..rest.find("</")?)
}

async fn owner_with_work(server: &TestServer) -> Client {
    let ann = Client::new(server, "ann");
    let r = ann
        .send("MKCALENDAR", "/calendars/users/ann/work/", &[], MKCAL_WORK)
        .await;
    assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
    ann
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_only_sharee_keeps_own_name_and_colour() {
    let server = TestServer::start();
    let ann = owner_with_work(&server).await;
    let bob = Client::new(&server, "bob");
    let carol = Client::new(&server, "carol");
    share(&ann, "bob", false, false).await;
    share(&ann, "carol", false, false).await;
    let bob_mount = accept(&bob).await;
    let carol_mount = accept(&carol).await;
    let ctag_before = value(
        &view(&ann, "/calendars/users/ann/work/").await.body,
        "getctag",
    )
    .map(str::to_owned);

    // Apple Calendar's first PROPPATCH after accepting: name and colour, read access only.
    let r = bob
        .send(
            "PROPPATCH",
            &bob_mount,
            &[],
            &proppatch(
                "<D:displayname>Ann at work</D:displayname><A:calendar-color>#FF0000FF</A:calendar-color>",
                "",
            ),
        )
        .await;
    assert_eq!(r.status, StatusCode::MULTI_STATUS, "{}", r.body);
    assert!(
        r.body.contains("200 OK") && !r.body.contains("403") && !r.body.contains("424"),
        "{}",
        r.body
    );

    let mine = view(&bob, &bob_mount).await.body;
    assert_eq!(value(&mine, "displayname"), Some("Ann at work"), "{mine}");
    assert_eq!(value(&mine, "calendar-color"), Some("#FF0000FF"), "{mine}");
    let home = bob
        .send("PROPFIND", "/calendars/users/bob/", &[("Depth", "1")], "")
        .await;
    assert!(home.body.contains("Ann at work"), "{}", home.body);

    let owners = view(&ann, "/calendars/users/ann/work/").await.body;
    assert_eq!(value(&owners, "displayname"), Some("Work"), "{owners}");
    assert_eq!(
        value(&owners, "calendar-color"),
        Some("#0000FFFF"),
        "{owners}"
    );
    assert_eq!(
        value(&owners, "getctag").map(str::to_owned),
        ctag_before,
        "a sharee's view does not bump the calendar's ctag"
    );
    let carols = view(&carol, &carol_mount).await.body;
    assert_eq!(value(&carols, "displayname"), Some("Work"), "{carols}");
    assert_eq!(
        value(&carols, "calendar-color"),
        Some("#0000FFFF"),
        "{carols}"
    );

    // Anything else is the owner's calendar: refused to a read-only sharee, atomically.
    let r = bob
        .send(
            "PROPPATCH",
            &bob_mount,
            &[],
            &proppatch(
                "<C:calendar-description>mine</C:calendar-description><D:displayname>Other</D:displayname>",
                "",
            ),
        )
        .await;
    assert_eq!(r.status, StatusCode::MULTI_STATUS, "{}", r.body);
    let forbidden = r.body.find("403 Forbidden").expect("403");
    let failed = r.body.find("424 Failed Dependency").expect("424");
    let description = r.body.find("calendar-description").expect("named");
    let displayname = r.body.find("displayname").expect("named");
    assert!(description < forbidden && forbidden < displayname && displayname < failed);
    let mine = view(&bob, &bob_mount).await.body;
    assert_eq!(
        value(&mine, "displayname"),
        Some("Ann at work"),
        "unchanged"
    );
    assert!(!view(&ann, "/calendars/users/ann/work/")
        .await
        .body
        .contains("mine"));

    // Removing his value shows the owner's again.
    let r = bob
        .send(
            "PROPPATCH",
            &bob_mount,
            &[],
            &proppatch("", "<D:displayname/>"),
        )
        .await;
    assert!(r.body.contains("200 OK"), "{}", r.body);
    let mine = view(&bob, &bob_mount).await.body;
    assert_eq!(value(&mine, "displayname"), Some("Work"), "{mine}");
    assert_eq!(value(&mine, "calendar-color"), Some("#FF0000FF"), "{mine}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_write_sharee_view_is_own_and_a_new_share_starts_clean() {
    let server = TestServer::start();
    let ann = owner_with_work(&server).await;
    let carol = Client::new(&server, "carol");
    share(&ann, "carol", true, false).await;
    let mount = accept(&carol).await;

    let r = carol
        .send(
            "PROPPATCH",
            &mount,
            &[],
            &proppatch(
                "<D:displayname>Team</D:displayname><A:calendar-order>3</A:calendar-order><C:calendar-description>Shared notes</C:calendar-description>",
                "",
            ),
        )
        .await;
    assert_eq!(r.status, StatusCode::MULTI_STATUS, "{}", r.body);
    assert!(!r.body.contains("403"), "{}", r.body);

    let carols = view(&carol, &mount).await.body;
    assert_eq!(value(&carols, "displayname"), Some("Team"), "{carols}");
    assert_eq!(value(&carols, "calendar-order"), Some("3"), "{carols}");
    assert_eq!(value(&carols, "calendar-description"), Some("Shared notes"));
    let owners = view(&ann, "/calendars/users/ann/work/").await.body;
    assert_eq!(value(&owners, "displayname"), Some("Work"), "{owners}");
    assert!(
        !owners.contains("<A:calendar-order>3") && value(&owners, "calendar-order") != Some("3")
    );
    // The description is the calendar's, written with carol's write access.
    assert_eq!(value(&owners, "calendar-description"), Some("Shared notes"));

    // Withdrawn and shared again: carol's view properties went with the old share.
    share(&ann, "carol", false, true).await;
    share(&ann, "carol", true, false).await;
    let mount = accept(&carol).await;
    let carols = view(&carol, &mount).await.body;
    assert_eq!(value(&carols, "displayname"), Some("Work"), "{carols}");
    assert_ne!(value(&carols, "calendar-order"), Some("3"), "{carols}");
}
