//! Sharing from the command line (`admin::share`, what `serval calendar share` calls)
//! against the real service: the calendar appears in the sharee's home at once, with the
//! granted access enforced over HTTP; groups share with each member; removal takes it away.

mod common;

use common::{TestServer, PASSWORD};
use reqwest::{Method, StatusCode};
use serval_calendar::admin::{share, ShareLevel};
use serval_core::config::DirectoryConfig;
use serval_core::{Directory, Store};

async fn send(
    server: &TestServer,
    user: &str,
    method: &str,
    path: &str,
    body: &str,
) -> (StatusCode, String) {
    let mut req = reqwest::Client::new()
        .request(
            Method::from_bytes(method.as_bytes()).unwrap(),
            server.url(path),
        )
        .basic_auth(user, Some(PASSWORD))
        .body(body.to_owned());
    if method == "PUT" {
        req = req.header("Content-Type", "text/calendar");
    }
    if method == "PROPFIND" {
        req = req.header("Depth", "1");
    }
    let response = req.send().await.expect("request");
    (response.status(), response.text().await.unwrap_or_default())
}

fn event(uid: &str) -> String {
    format!("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//EN\r\nBEGIN:VEVENT\r\nUID:{uid}\r\nDTSTAMP:20260101T000000Z\r\nDTSTART:20260105T100000Z\r\nDTEND:20260105T110000Z\r\nSUMMARY:Planning\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n")
}

/// The shared calendar's path in `user`'s home, if one is listed there.
async fn mounted(server: &TestServer, user: &str) -> Option<String> {
    let (status, body) = send(
        server,
        user,
        "PROPFIND",
        &format!("/calendars/users/{user}/"),
        "",
    )
    .await;
    assert_eq!(status, StatusCode::MULTI_STATUS, "{body}");
    let prefix = format!("/calendars/users/{user}/shared-");
    let start = body.find(&prefix)?;
    let end = start + body[start..].find('<')?;
    Some(body[start..end].to_owned())
}

fn tools(server: &TestServer) -> (serval_calendar::store::SqliteCalendarStore, Directory) {
    let core = Store::open(&server.data_dir().join("serval.db")).expect("store");
    let directory = Directory::new(core.clone(), &DirectoryConfig::default());
    let store = serval_calendar::store::SqliteCalendarStore::open(core).expect("calendar store");
    (store, directory)
}

#[tokio::test(flavor = "multi_thread")]
async fn shares_made_by_the_operator_appear_and_are_enforced() {
    let server = TestServer::start();
    let (status, body) = send(
        &server,
        "ann",
        "MKCALENDAR",
        "/calendars/users/ann/work/",
        "",
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, _) = send(
        &server,
        "ann",
        "PUT",
        "/calendars/users/ann/work/plan.ics",
        &event("plan"),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let (store, directory) = tools(&server);
    assert!(mounted(&server, "bob").await.is_none());

    // Read-only for the group staff = {bob, carol}: both see it, neither may write.
    let users = share(
        &store,
        &directory,
        "ann",
        "work",
        "group:staff",
        ShareLevel::Read,
    )
    .expect("share");
    assert_eq!(users, ["bob", "carol"]);
    let bob_copy = mounted(&server, "bob")
        .await
        .expect("shared calendar in bob's home");
    let carol_copy = mounted(&server, "carol")
        .await
        .expect("shared calendar in carol's home");
    let (status, body) = send(
        &server,
        "carol",
        "GET",
        &format!("{carol_copy}plan.ics"),
        "",
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("SUMMARY:Planning"), "{body}");
    let (status, _) = send(
        &server,
        "bob",
        "PUT",
        &format!("{bob_copy}new.ics"),
        &event("new"),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // Read-write for bob alone: same place in his home, and now he may write.
    assert_eq!(
        share(&store, &directory, "ann", "work", "bob", ShareLevel::Write).expect("share"),
        ["bob"]
    );
    assert_eq!(
        mounted(&server, "bob").await.as_deref(),
        Some(bob_copy.as_str())
    );
    let (status, body) = send(
        &server,
        "bob",
        "PUT",
        &format!("{bob_copy}new.ics"),
        &event("new"),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, _) = send(
        &server,
        "ann",
        "GET",
        "/calendars/users/ann/work/new.ics",
        "",
    )
    .await;
    assert_eq!(status, StatusCode::OK);

    // Removing the group's share takes the calendar away from every member.
    share(
        &store,
        &directory,
        "ann",
        "work",
        "group:staff",
        ShareLevel::Remove,
    )
    .expect("unshare");
    assert!(mounted(&server, "bob").await.is_none());
    assert!(mounted(&server, "carol").await.is_none());
    let (status, _) = send(
        &server,
        "carol",
        "GET",
        &format!("{carol_copy}plan.ics"),
        "",
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[test]
fn sharing_refuses_unknown_names() {
    let server = TestServer::start();
    let (store, directory) = tools(&server);
    let err = share(&store, &directory, "ann", "nope", "bob", ShareLevel::Read).unwrap_err();
    assert_eq!(err.to_string(), "`ann` has no calendar `nope`");
    let err = share(&store, &directory, "zed", "work", "bob", ShareLevel::Read).unwrap_err();
    assert_eq!(err.to_string(), "no user `zed` in the directory");
}
