//! Who is calling: HTTP Basic (RFC 7617) and Digest (RFC 7616, MD5 and SHA-256, qop=auth)
//! against Serval's directory, the challenges every 401 carries, and which schemes a
//! connection may use.
//!
//! The Digest machinery (parsing, stateless expiring nonces, verification against the stored
//! HA1) is serval-core's, shared with the streaming service; this module only decides what the
//! CalDAV service accepts. Failed logins of both schemes go through the directory's per-address
//! limiter, which logs the address and user name, never a password or a Digest response.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::http::{header, HeaderMap, Method};
use serval_core::auth::{
    basic_challenge, parse_basic, parse_digest, verify_digest, DigestCredentials, DigestFailure,
};
use serval_core::directory::{AuthError, DigestAlgorithm, User};

use super::{AppState, Caller, DavError};

/// How long a Digest nonce stays fresh. After it the client gets `stale=true` and answers the
/// new nonce without asking its user again; clients reuse a nonce across requests, so a short
/// lifetime costs one extra round trip every few minutes, while it bounds how long a captured
/// answer can be replayed (to the same method and URL).
pub const DIGEST_NONCE_LIFETIME: Duration = Duration::from_secs(300);

/// Whether a password sent in clear text (Basic) must be refused on this connection: plain
/// HTTP from another host, unless the operator allowed it.
///
/// Digest is allowed on such connections, as CalendarServer allowed it: the password never
/// crosses the network (the client proves it knows HA1 by hashing it with our nonce), which is
/// the whole point of Digest on an office LAN without TLS. What an eavesdropper gains is a
/// response bound to one method, URL and nonce for at most [`DIGEST_NONCE_LIFETIME`] (and
/// material for an offline guess of a weak password), plus the calendar data itself, which
/// plain HTTP exposes whatever the scheme.
pub(crate) fn clear_text_refused(secure: bool, peer: IpAddr, allow_insecure_auth: bool) -> bool {
    !secure && !peer.is_loopback() && !allow_insecure_auth
}

/// The `WWW-Authenticate` values of a 401: Digest MD5 first (the one every Digest client
/// implements, so clients that read only the first challenge still succeed), Digest SHA-256
/// for clients that choose among them, then Basic when this connection may use it. Offering
/// Basic where it would be refused would only invite a clear-text password.
///
/// Both Digest challenges carry the same nonce (minted for the same second) and realm, so a
/// client that merges the headers into one parameter list, as python `requests` does (it
/// ends up with the last `algorithm`, SHA-256), still answers consistently.
pub(crate) fn challenges(
    realm: &str,
    state: &AppState,
    offer_basic: bool,
    stale: bool,
    now_unix: u64,
) -> Vec<String> {
    let mut challenges = vec![
        state
            .nonces
            .challenge(realm, DigestAlgorithm::Md5, stale, now_unix),
        state
            .nonces
            .challenge(realm, DigestAlgorithm::Sha256, stale, now_unix),
    ];
    if offer_basic {
        challenges.push(basic_challenge(realm));
    }
    challenges
}

/// Whether a Digest `uri` (origin form `/a?b`, or absolute `http://host/a?b`) names the
/// request target `path_and_query`. An answer computed for another URL must not open this one.
/// Compared as sent, then percent-decoded, so a client that escapes a character differently in
/// the two places is still recognised.
pub(crate) fn uri_names_request(digest_uri: &str, path_and_query: &str) -> bool {
    let named = match digest_uri.split_once("://") {
        Some((_, rest)) => rest.find('/').and_then(|i| rest.get(i..)).unwrap_or("/"),
        None => digest_uri,
    };
    if named == path_and_query {
        return true;
    }
    let decode = |s: &str| {
        percent_encoding::percent_decode_str(s)
            .decode_utf8()
            .map(|d| d.into_owned())
    };
    matches!((decode(named), decode(path_and_query)), (Ok(a), Ok(b)) if a == b)
}

/// The request parts authentication looks at.
pub(crate) struct AuthRequest<'a> {
    pub peer: SocketAddr,
    /// Whether the connection is TLS.
    pub secure: bool,
    pub method: &'a Method,
    /// The request target as sent (path and query), which a Digest `uri` must name.
    pub path_and_query: &'a str,
    pub headers: &'a HeaderMap,
}

/// Authenticates the request's `Authorization` header, or says which 401/429 to answer.
pub(crate) async fn authenticate(
    state: &Arc<AppState>,
    request: AuthRequest<'_>,
) -> Result<Caller, DavError> {
    let now_unix = serval_core::now_unix();
    let realm = state.directory.realm().to_owned();
    let basic_allowed = !clear_text_refused(
        request.secure,
        request.peer.ip(),
        state.config.allow_insecure_auth,
    );
    let unauthorized = |stale: bool| DavError::Unauthorized {
        challenges: challenges(&realm, state, basic_allowed, stale, now_unix),
    };
    let Some(value) = request
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    else {
        return Err(unauthorized(false));
    };
    if let Some(credentials) = parse_digest(value) {
        let login = DigestLogin {
            uri_matches: uri_names_request(&credentials.uri, request.path_and_query),
            credentials,
            method: request.method.as_str().to_owned(),
            realm: realm.clone(),
            peer: request.peer.ip(),
            now_unix,
        };
        let state = state.clone();
        let result = tokio::task::spawn_blocking(move || login.verify(&state))
            .await
            .map_err(|e| DavError::Internal(e.to_string()))?;
        return match result {
            Ok((user, groups)) => Ok(caller(user, groups)),
            Err(DigestFailure::Stale) => Err(unauthorized(true)),
            Err(DigestFailure::Rejected(error)) => Err(refusal(error, unauthorized(false))),
        };
    }
    if !basic_allowed {
        return Err(DavError::InsecureAuth {
            challenges: challenges(&realm, state, false, false, now_unix),
        });
    }
    let Some(credentials) = parse_basic(value) else {
        return Err(unauthorized(false));
    };
    let directory = state.directory.clone();
    let peer = request.peer.ip();
    let result = tokio::task::spawn_blocking(move || {
        let user = directory.authenticate(&credentials.user, &credentials.password, peer)?;
        let groups = directory.groups_of(&user.name).unwrap_or_default();
        Ok::<_, AuthError>((user, groups))
    })
    .await
    .map_err(|e| DavError::Internal(e.to_string()))?;
    match result {
        Ok((user, groups)) => Ok(caller(user, groups)),
        Err(error) => Err(refusal(error, unauthorized(false))),
    }
}

/// One Digest answer to check on the blocking pool (the directory is SQLite).
struct DigestLogin {
    credentials: DigestCredentials,
    uri_matches: bool,
    method: String,
    realm: String,
    peer: IpAddr,
    now_unix: u64,
}

impl DigestLogin {
    fn verify(self, state: &AppState) -> Result<(User, Vec<String>), DigestFailure> {
        let directory = &state.directory;
        if !self.uri_matches {
            // Counted as a failed login like a wrong password: it is what a replayed answer
            // looks like.
            directory
                .check_rate_limit(self.peer)
                .map_err(DigestFailure::Rejected)?;
            directory.record_failed_login(&self.credentials.username, self.peer);
            return Err(DigestFailure::Rejected(AuthError::BadCredentials));
        }
        let user = verify_digest(
            directory,
            &state.nonces,
            &self.credentials,
            &self.method,
            &self.realm,
            self.peer,
            self.now_unix,
        )?;
        let groups = directory.groups_of(&user.name).unwrap_or_default();
        Ok((user, groups))
    }
}

fn caller(user: User, groups: Vec<String>) -> Caller {
    let mut identities = vec![user.name.clone()];
    identities.extend(groups.into_iter().map(|g| format!("group:{g}")));
    Caller { user, identities }
}

/// The answer to a refused login: the 401 for bad credentials, 429 while the address is
/// limited.
fn refusal(error: AuthError, unauthorized: DavError) -> DavError {
    match error {
        AuthError::BadCredentials => unauthorized,
        AuthError::RateLimited { retry_after } => DavError::RateLimited {
            retry_after_secs: retry_after.as_secs().max(1),
        },
        AuthError::Unavailable => DavError::Unavailable("the directory cannot be read".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serval_core::auth::digest_response;
    use serval_core::directory::{digest_ha1, NewUser};

    /// A service state over a temporary store with the user ann.
    fn state() -> (tempfile::TempDir, Arc<AppState>) {
        let dir = tempfile::tempdir().unwrap();
        let store = serval_core::Store::open(&dir.path().join("serval.db")).unwrap();
        let directory = serval_core::Directory::new(
            store.clone(),
            &serval_core::config::DirectoryConfig::default(),
        );
        directory
            .add_user(&NewUser {
                name: "ann",
                password: Some("pw"),
                ..NewUser::default()
            })
            .unwrap();
        let state = AppState {
            store: Arc::new(crate::store::SqliteCalendarStore::open(store).unwrap()),
            directory,
            config: crate::CalendarConfig::default(),
            metrics: super::super::Metrics::new(),
            nonces: serval_core::auth::DigestNonces::new(DIGEST_NONCE_LIFETIME),
        };
        (dir, Arc::new(state))
    }

    /// ann's MD5 Digest answer to `nonce` for PROPFIND `uri`.
    fn answer(state: &AppState, nonce: &str, uri: &str, password: &str) -> HeaderMap {
        let realm = state.directory.realm();
        let credentials = DigestCredentials {
            username: "ann".into(),
            realm: realm.into(),
            nonce: nonce.into(),
            uri: uri.into(),
            qop: Some("auth".into()),
            nc: Some("00000001".into()),
            cnonce: Some("c0ffee".into()),
            ..DigestCredentials::default()
        };
        let ha1 = digest_ha1(DigestAlgorithm::Md5, "ann", realm, password);
        let response = digest_response(DigestAlgorithm::Md5, &ha1, "PROPFIND", &credentials);
        let value = format!(
            "Digest username=\"ann\", realm=\"{realm}\", nonce=\"{nonce}\", uri=\"{uri}\", \
             algorithm=MD5, qop=auth, nc=00000001, cnonce=\"c0ffee\", response=\"{response}\""
        );
        let mut headers = HeaderMap::new();
        headers.insert(header::AUTHORIZATION, value.parse().unwrap());
        headers
    }

    async fn outcome(
        state: &Arc<AppState>,
        headers: &HeaderMap,
        peer: &str,
    ) -> Result<String, DavError> {
        let request = AuthRequest {
            peer: SocketAddr::new(peer.parse().unwrap(), 40000),
            secure: false,
            method: &Method::from_bytes(b"PROPFIND").unwrap(),
            path_and_query: "/calendars/users/ann/",
            headers,
        };
        authenticate(state, request).await.map(|c| c.user.name)
    }

    #[tokio::test]
    async fn expired_nonce_is_challenged_stale_and_fresh_one_logs_in() {
        let (_dir, state) = state();
        let now = serval_core::now_unix();
        let old = state
            .nonces
            .issue(now - DIGEST_NONCE_LIFETIME.as_secs() - 60);
        let stale = outcome(
            &state,
            &answer(&state, &old, "/calendars/users/ann/", "pw"),
            "127.0.0.1",
        )
        .await;
        let Err(DavError::Unauthorized { challenges }) = stale else {
            panic!("expected 401, got {stale:?}");
        };
        assert_eq!(challenges.len(), 3, "{challenges:?}");
        assert!(challenges[0].starts_with("Digest ") && challenges[0].contains("algorithm=MD5"));
        assert!(challenges[0].ends_with("stale=true"), "{challenges:?}");
        assert!(
            challenges[1].contains("algorithm=SHA-256") && challenges[1].ends_with("stale=true")
        );
        assert!(challenges[2].starts_with("Basic "));
        let fresh = state.nonces.issue(now);
        let headers = answer(&state, &fresh, "/calendars/users/ann/", "pw");
        assert_eq!(outcome(&state, &headers, "127.0.0.1").await.unwrap(), "ann");
        // Digest needs no TLS from another host; the 401s there offer no Basic.
        assert_eq!(outcome(&state, &headers, "192.0.2.7").await.unwrap(), "ann");
        let wrong = answer(&state, &fresh, "/calendars/users/ann/", "guess");
        let Err(DavError::Unauthorized { challenges }) = outcome(&state, &wrong, "192.0.2.7").await
        else {
            panic!("a wrong password must get 401");
        };
        assert!(
            challenges
                .iter()
                .all(|c| c.starts_with("Digest ") && !c.contains("stale")),
            "{challenges:?}"
        );
        let elsewhere = answer(&state, &fresh, "/calendars/users/bob/", "pw");
        assert!(matches!(
            outcome(&state, &elsewhere, "127.0.0.1").await,
            Err(DavError::Unauthorized { .. })
        ));
    }

    #[test]
    fn digest_uri_must_name_the_request_target() {
        assert!(uri_names_request(
            "/calendars/users/ann/",
            "/calendars/users/ann/"
        ));
        assert!(uri_names_request(
            "http://h:8008/calendars/users/ann/?x=1",
            "/calendars/users/ann/?x=1"
        ));
        assert!(uri_names_request("http://h:8008", "/"));
        assert!(uri_names_request("/a%40b/", "/a@b/"));
        assert!(!uri_names_request(
            "/calendars/users/bob/",
            "/calendars/users/ann/"
        ));
        assert!(!uri_names_request("/a/?x=1", "/a/?x=2"));
        assert!(!uri_names_request("/a/", "/a/?x=1"));
        assert!(!uri_names_request("http://h/a/", "/a/b"));
    }

    #[test]
    fn clear_text_is_refused_only_over_plain_http_from_other_hosts() {
        let lan: IpAddr = "192.0.2.7".parse().unwrap();
        let loopback: IpAddr = "127.0.0.1".parse().unwrap();
        assert!(clear_text_refused(false, lan, false));
        assert!(!clear_text_refused(true, lan, false));
        assert!(!clear_text_refused(false, lan, true));
        assert!(!clear_text_refused(false, loopback, false));
    }
}
