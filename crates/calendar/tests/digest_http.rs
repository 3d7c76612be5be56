//! HTTP Digest (RFC 7616) against the real service over loopback and the host's LAN address:
//! the challenges of a 401, answers computed with serval-core's Digest functions (MD5 and
//! SHA-256), answers for another URL or with a wrong password, the failed-login limiter, Digest
//! from another host over plain HTTP, and python `requests` and `caldav` logging in with Digest.

mod common;

use common::{TestServer, PASSWORD};
use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};
use serval_core::auth::{digest_response, DigestCredentials};
use serval_core::directory::{digest_ha1, DigestAlgorithm};

const CURRENT_USER_PRINCIPAL: &str =
    r#"<d:propfind xmlns:d="DAV:"><d:prop><d:current-user-principal/></d:prop></d:propfind>"#;
const ANN_HOME: &str = "/calendars/users/ann/";

struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: String,
}

impl Reply {
    /// The `WWW-Authenticate` values, in order.
    fn challenges(&self) -> Vec<String> {
        self.headers
            .get_all("www-authenticate")
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect()
    }
}

async fn request(
    server: &TestServer,
    method: &str,
    target: &str,
    authorization: Option<&str>,
) -> Reply {
    let mut request = reqwest::Client::new()
        .request(
            Method::from_bytes(method.as_bytes()).unwrap(),
            server.url(target),
        )
        .header("Depth", "0")
        .body(CURRENT_USER_PRINCIPAL);
    if let Some(value) = authorization {
        request = request.header("Authorization", value);
    }
    let response = request.send().await.expect("request");
    Reply {
        status: response.status(),
        headers: response.headers().clone(),
        body: response.text().await.unwrap_or_default(),
    }
}

/// A quoted parameter of a challenge (`nonce`, `realm`).
fn param(challenge: &str, name: &str) -> String {
    let start = format!("{name}=\"");
    let rest = challenge
        .split_once(&start)
        .unwrap_or_else(|| panic!("no {name} in {challenge}"))
        .1;
    rest.split('"').next().unwrap().to_owned()
}

/// What a Digest client answers to `challenge` for `method uri` (qop=auth).
fn answer(
    challenge: &str,
    algorithm: DigestAlgorithm,
    user: &str,
    password: &str,
    method: &str,
    uri: &str,
) -> String {
    let realm = param(challenge, "realm");
    let nonce = param(challenge, "nonce");
    let credentials = DigestCredentials {
        username: user.into(),
        realm: realm.clone(),
        nonce: nonce.clone(),
        uri: uri.into(),
        qop: Some("auth".into()),
        nc: Some("00000001".into()),
        cnonce: Some("0a4f113b".into()),
        ..DigestCredentials::default()
    };
    let ha1 = digest_ha1(algorithm, user, &realm, password);
    let response = digest_response(algorithm, &ha1, method, &credentials);
    format!(
        "Digest username=\"{user}\", realm=\"{realm}\", nonce=\"{nonce}\", uri=\"{uri}\", \
         algorithm={}, qop=auth, nc=00000001, cnonce=\"0a4f113b\", response=\"{response}\"",
        algorithm.as_str()
    )
}

/// The first (MD5) Digest challenge of an unauthenticated PROPFIND.
async fn md5_challenge(server: &TestServer) -> String {
    let reply = request(server, "PROPFIND", ANN_HOME, None).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    reply.challenges().remove(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unauthenticated_propfind_is_challenged_for_digest_then_basic() {
    let server = TestServer::start();
    let reply = request(&server, "PROPFIND", "/", None).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    let challenges = reply.challenges();
    assert_eq!(challenges.len(), 3, "{challenges:?}");
    let [md5, sha256, basic] = &challenges[..] else {
        unreachable!()
    };
    for (digest, algorithm) in [(md5, "MD5"), (sha256, "SHA-256")] {
        assert!(digest.starts_with("Digest realm=\"Serval\""), "{digest}");
        assert!(
            digest.contains(&format!("algorithm={algorithm}")),
            "{digest}"
        );
        assert!(digest.contains("qop=\"auth\""), "{digest}");
        assert!(!digest.contains("stale"), "{digest}");
        assert!(!param(digest, "nonce").is_empty());
    }
    assert_eq!(basic, "Basic realm=\"Serval\", charset=\"UTF-8\"");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn digest_answers_open_exactly_the_url_and_method_they_name() {
    let server = TestServer::start();
    let challenge = md5_challenge(&server).await;
    for algorithm in [DigestAlgorithm::Md5, DigestAlgorithm::Sha256] {
        let ok = answer(&challenge, algorithm, "ann", PASSWORD, "PROPFIND", ANN_HOME);
        let reply = request(&server, "PROPFIND", ANN_HOME, Some(&ok)).await;
        assert_eq!(
            reply.status,
            StatusCode::MULTI_STATUS,
            "{algorithm:?}: {}",
            reply.body
        );
        assert!(
            reply
                .body
                .contains("<D:href>/principals/users/ann/</D:href>"),
            "{}",
            reply.body
        );
    }
    // The query is part of what the answer covers.
    let with_query = format!("{ANN_HOME}?view=all");
    let ok = answer(
        &challenge,
        DigestAlgorithm::Md5,
        "ann",
        PASSWORD,
        "PROPFIND",
        &with_query,
    );
    let reply = request(&server, "PROPFIND", &with_query, Some(&ok)).await;
    assert_eq!(reply.status, StatusCode::MULTI_STATUS, "{}", reply.body);
    let reply = request(&server, "PROPFIND", ANN_HOME, Some(&ok)).await;
    assert_eq!(
        reply.status,
        StatusCode::UNAUTHORIZED,
        "answer for {with_query} opened {ANN_HOME}"
    );

    let for_home = answer(
        &challenge,
        DigestAlgorithm::Md5,
        "ann",
        PASSWORD,
        "PROPFIND",
        ANN_HOME,
    );
    let reply = request(
        &server,
        "PROPFIND",
        "/calendars/users/bob/",
        Some(&for_home),
    )
    .await;
    assert_eq!(
        reply.status,
        StatusCode::UNAUTHORIZED,
        "an answer for another URL must not open this one"
    );
    assert_eq!(reply.challenges().len(), 3);
    let reply = request(&server, "REPORT", ANN_HOME, Some(&for_home)).await;
    assert_eq!(
        reply.status,
        StatusCode::UNAUTHORIZED,
        "an answer for PROPFIND must not do a REPORT"
    );

    let wrong = answer(
        &challenge,
        DigestAlgorithm::Md5,
        "ann",
        "guess",
        "PROPFIND",
        ANN_HOME,
    );
    let reply = request(&server, "PROPFIND", ANN_HOME, Some(&wrong)).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    let again = reply.challenges();
    assert!(
        again[0].starts_with("Digest ") && !again[0].contains("stale"),
        "{again:?}"
    );
    let stranger = answer(
        &challenge,
        DigestAlgorithm::Md5,
        "mallory",
        PASSWORD,
        "PROPFIND",
        ANN_HOME,
    );
    let reply = request(&server, "PROPFIND", ANN_HOME, Some(&stranger)).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);

    // A nonce we never issued is refused, not treated as stale.
    let forged = challenge.replace(
        &param(&challenge, "nonce"),
        "1.00000000000000000000000000000000",
    );
    let forged = answer(
        &forged,
        DigestAlgorithm::Md5,
        "ann",
        PASSWORD,
        "PROPFIND",
        ANN_HOME,
    );
    let reply = request(&server, "PROPFIND", ANN_HOME, Some(&forged)).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert!(!reply.challenges()[0].contains("stale"));

    // Basic keeps working on loopback.
    let reply = reqwest::Client::new()
        .request(
            Method::from_bytes(b"PROPFIND").unwrap(),
            server.url(ANN_HOME),
        )
        .basic_auth("ann", Some(PASSWORD))
        .header("Depth", "0")
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status(), StatusCode::MULTI_STATUS);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_digest_logins_are_rate_limited_like_basic() {
    let server = TestServer::start();
    let challenge = md5_challenge(&server).await;
    let wrong = answer(
        &challenge,
        DigestAlgorithm::Md5,
        "ann",
        "guess",
        "PROPFIND",
        ANN_HOME,
    );
    let mut statuses = Vec::new();
    let mut limited = None;
    for _ in 0..20 {
        let reply = request(&server, "PROPFIND", ANN_HOME, Some(&wrong)).await;
        statuses.push(reply.status.as_u16());
        if reply.status == StatusCode::TOO_MANY_REQUESTS {
            limited = Some(reply);
            break;
        }
    }
    let limited = limited.unwrap_or_else(|| panic!("never limited: {statuses:?}"));
    let retry_after: u64 = limited.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry_after >= 1, "{retry_after}");
    assert!(statuses.len() > 5, "limited too early: {statuses:?}");
    // While limited, even the right answer (and Basic) waits.
    let right = answer(
        &challenge,
        DigestAlgorithm::Md5,
        "ann",
        PASSWORD,
        "PROPFIND",
        ANN_HOME,
    );
    let reply = request(&server, "PROPFIND", ANN_HOME, Some(&right)).await;
    assert_eq!(reply.status, StatusCode::TOO_MANY_REQUESTS);
}

/// Plain HTTP from another host: Basic would put the password on the LAN, so it is refused and
/// not offered; Digest never sends it, so it is accepted (as CalendarServer did).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_hosts_over_plain_http_log_in_with_digest_only() {
    let server = TestServer::start_on(common::lan_address());
    assert!(!server.addr.ip().is_loopback());
    let reply = request(&server, "PROPFIND", ANN_HOME, None).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    let challenges = reply.challenges();
    assert_eq!(challenges.len(), 2, "{challenges:?}");
    assert!(
        challenges.iter().all(|c| c.starts_with("Digest ")),
        "{challenges:?}"
    );

    let basic = reqwest::Client::new()
        .request(
            Method::from_bytes(b"PROPFIND").unwrap(),
            server.url(ANN_HOME),
        )
        .basic_auth("ann", Some(PASSWORD))
        .header("Depth", "0")
        .send()
        .await
        .unwrap();
    assert_eq!(basic.status(), StatusCode::UNAUTHORIZED);
    let offered: Vec<_> = basic
        .headers()
        .get_all("www-authenticate")
        .iter()
        .cloned()
        .collect();
    assert_eq!(offered.len(), 2);
    assert!(offered
        .iter()
        .all(|c| c.to_str().unwrap().starts_with("Digest ")));
    assert!(basic.text().await.unwrap().contains("HTTPS"));

    for algorithm in [DigestAlgorithm::Md5, DigestAlgorithm::Sha256] {
        let ok = answer(
            &challenges[0],
            algorithm,
            "ann",
            PASSWORD,
            "PROPFIND",
            ANN_HOME,
        );
        let reply = request(&server, "PROPFIND", ANN_HOME, Some(&ok)).await;
        assert_eq!(
            reply.status,
            StatusCode::MULTI_STATUS,
            "{algorithm:?}: {}",
            reply.body
        );
    }
}

/// python `requests` (HTTPDigestAuth) and python `caldav` (choosing from the challenges) log
/// in with Digest; tests/python/digest.py records every Authorization header they send and
/// fails if any is Basic.
#[test]
fn python_requests_and_caldav_log_in_with_digest() {
    let server = TestServer::start();
    let out = common::run_python("digest.py", &server, "ann", "caldav");
    println!("{out}");
    assert!(out.trim_end().ends_with("OK"), "{out}");
    assert!(out.contains("requests: 3 requests, 2 with Digest"), "{out}");
}
