//! The access check run on every RTSP request: IP lists, then the governing rule's
//! requirements, then Basic or Digest credentials checked against Serval's directory.
//!
//! Synchronous (the directory is a local database) and clock-free: the caller passes the Unix
//! time used for Digest nonces. Failed logins go through the directory's per-address limiter,
//! which logs the address and user name, never the password.

use std::net::IpAddr;
use std::time::Duration;

use serval_core::auth::{
    basic_challenge, parse_basic, parse_digest, verify_digest, DigestFailure, DigestNonces,
};
use serval_core::directory::{AuthError, DigestAlgorithm};
use serval_core::Directory;

use super::ip::{ip_permitted, Cidr};
use super::policy::{AccessPolicy, Governing};
use super::{Action, AuthScheme, Requirement};

/// How long a Digest nonce stays fresh; after it the client gets `stale=true` and retries
/// without asking its user again. Long sessions send a new Authorization on every keep-alive.
pub const DIGEST_NONCE_LIFETIME: Duration = Duration::from_secs(300);

/// One request as the gate sees it.
#[derive(Debug, Clone, Copy)]
pub struct AccessRequest<'a> {
    pub peer: IpAddr,
    /// The RTSP method name (`DESCRIBE`), part of the Digest response.
    pub method: &'a str,
    pub action: Action,
    /// The request URL's path, percent-encoded (`/private/a.mp4/trackID=1`).
    pub url_path: &'a str,
    /// The path of the movie the URL names (`/private/a.mp4`).
    pub movie_path: &'a str,
    pub authorization: Option<&'a str>,
    pub now_unix: u64,
}

/// What the gate decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccessOutcome {
    /// Serve it; `user` is set when the client authenticated.
    Allowed { user: Option<String> },
    /// 401 with this `WWW-Authenticate` value.
    Challenge { www_authenticate: String },
    /// 403: the address is refused, the user lacks rights, or too many failed logins.
    Forbidden { reason: &'static str },
}

/// IP lists, rules and the directory, shared by every connection.
pub struct AccessGate {
    policy: AccessPolicy,
    directory: Directory,
    nonces: DigestNonces,
    allow: Vec<Cidr>,
    deny: Vec<Cidr>,
}

impl AccessGate {
    pub fn new(
        policy: AccessPolicy,
        directory: Directory,
        allow: Vec<Cidr>,
        deny: Vec<Cidr>,
    ) -> AccessGate {
        AccessGate {
            policy,
            directory,
            nonces: DigestNonces::new(DIGEST_NONCE_LIFETIME),
            allow,
            deny,
        }
    }

    /// Whether a connection from `peer` may be accepted at all (`[stream] allow/deny`).
    pub fn admits_address(&self, peer: IpAddr) -> bool {
        ip_permitted(peer, &self.allow, &self.deny)
    }

    /// Decides one request.
    pub fn check(&self, request: &AccessRequest<'_>) -> AccessOutcome {
        if !self.admits_address(request.peer) {
            return AccessOutcome::Forbidden {
                reason: "address refused by [stream] allow/deny",
            };
        }
        let governing = self.policy.governing(request.movie_path, request.action);
        if !ip_permitted(request.peer, &governing.allow, &governing.deny) {
            return AccessOutcome::Forbidden {
                reason: "address refused by the folder's rule",
            };
        }
        let Some(requirements) = &governing.requirements else {
            return AccessOutcome::Allowed { user: None };
        };
        if requirements.contains(&Requirement::AnyUser) {
            return AccessOutcome::Allowed { user: None };
        }
        if requirements.is_empty() {
            return AccessOutcome::Forbidden {
                reason: "the folder's rule admits nobody",
            };
        }
        let realm = governing
            .realm
            .clone()
            .unwrap_or_else(|| self.directory.realm().to_owned());
        let user = match self.authenticate(request, &governing, &realm) {
            Ok(user) => user,
            Err(outcome) => return outcome,
        };
        if self.meets(&user, requirements) {
            AccessOutcome::Allowed { user: Some(user) }
        } else {
            tracing::info!(target: "serval_stream::access", peer = %request.peer, user,
                           path = request.movie_path, rule = %governing.source, "user lacks rights");
            AccessOutcome::Forbidden {
                reason: "the user is not allowed by the folder's rule",
            }
        }
    }

    /// The authenticated user name, or the 401/403 to answer.
    fn authenticate(
        &self,
        request: &AccessRequest<'_>,
        governing: &Governing,
        realm: &str,
    ) -> Result<String, AccessOutcome> {
        let challenge = |stale: bool| match governing.scheme {
            AuthScheme::Basic => AccessOutcome::Challenge {
                www_authenticate: basic_challenge(realm),
            },
            AuthScheme::Digest => AccessOutcome::Challenge {
                www_authenticate: self.nonces.challenge(
                    realm,
                    DigestAlgorithm::Md5,
                    stale,
                    request.now_unix,
                ),
            },
        };
        let Some(authorization) = request.authorization else {
            return Err(challenge(false));
        };
        if let Some(credentials) = parse_digest(authorization) {
            if !same_path(&credentials.uri, request.url_path) {
                // A Digest answer covers the URI it names; one made for another URL must not
                // open this one.
                self.directory
                    .record_failed_login(&credentials.username, request.peer);
                return Err(challenge(false));
            }
            return match verify_digest(
                &self.directory,
                &self.nonces,
                &credentials,
                request.method,
                realm,
                request.peer,
                request.now_unix,
            ) {
                Ok(user) => Ok(user.name),
                Err(DigestFailure::Stale) => Err(challenge(true)),
                Err(DigestFailure::Rejected(error)) => Err(refusal(error, challenge(false))),
            };
        }
        if governing.scheme == AuthScheme::Basic {
            if let Some(credentials) = parse_basic(authorization) {
                return self
                    .directory
                    .authenticate(&credentials.user, &credentials.password, request.peer)
                    .map(|user| user.name)
                    .map_err(|error| refusal(error, challenge(false)));
            }
        }
        Err(challenge(false))
    }

    fn meets(&self, user: &str, requirements: &[Requirement]) -> bool {
        requirements.iter().any(|requirement| match requirement {
            Requirement::AnyUser | Requirement::ValidUser => true,
            Requirement::User(name) => name == user,
            Requirement::Group(group) => self.directory.is_member(group, user).unwrap_or(false),
        })
    }
}

fn refusal(error: AuthError, challenge: AccessOutcome) -> AccessOutcome {
    match error {
        AuthError::BadCredentials => challenge,
        AuthError::RateLimited { .. } => AccessOutcome::Forbidden {
            reason: "too many failed logins from this address",
        },
        AuthError::Unavailable => AccessOutcome::Forbidden {
            reason: "the directory is unavailable",
        },
    }
}

/// Whether a Digest `uri` (absolute `rtsp://host/a.mp4` or a bare path) names `url_path`.
fn same_path(digest_uri: &str, url_path: &str) -> bool {
    let path = match digest_uri.split_once("://") {
        Some((_, rest)) => rest.find('/').and_then(|i| rest.get(i..)).unwrap_or("/"),
        None => digest_uri,
    };
    path.trim_end_matches('/') == url_path.trim_end_matches('/')
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::access::policy::AccessRuleConfig;
    use serval_core::auth::{digest_response, DigestCredentials};
    use serval_core::directory::{digest_ha1, NewUser};

    struct Fixture {
        _dir: tempfile::TempDir,
        gate: AccessGate,
    }

    fn fixture(scheme: AuthScheme) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let store = serval_core::Store::open(&dir.path().join("s.db")).unwrap();
        let directory = Directory::new(store, &serval_core::config::DirectoryConfig::default());
        for name in ["bob", "eve"] {
            directory
                .add_user(&NewUser {
                    name,
                    password: Some("secret"),
                    ..NewUser::default()
                })
                .unwrap();
        }
        directory.add_group("staff").unwrap();
        directory.add_member("staff", "bob").unwrap();
        let rules = vec![AccessRuleConfig {
            path: "private".into(),
            require: vec!["group:staff".into()],
            scheme: Some(scheme),
            ..AccessRuleConfig::default()
        }];
        let policy = AccessPolicy::new(dir.path(), rules, AuthScheme::Digest);
        let deny = vec![Cidr::try_from("192.0.2.0/24".to_string()).unwrap()];
        Fixture {
            gate: AccessGate::new(policy, directory, Vec::new(), deny),
            _dir: dir,
        }
    }

    fn request<'a>(
        path: &'a str,
        authorization: Option<&'a str>,
        now_unix: u64,
    ) -> AccessRequest<'a> {
        AccessRequest {
            peer: "127.0.0.1".parse().unwrap(),
            method: "DESCRIBE",
            action: Action::Read,
            url_path: path,
            movie_path: path,
            authorization,
            now_unix,
        }
    }

    /// What a Digest client answers to `challenge` for `uri`.
    fn digest_answer(challenge: &str, user: &str, password: &str, uri: &str) -> String {
        let nonce = challenge
            .split("nonce=\"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap();
        let realm = challenge
            .split("realm=\"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap();
        let credentials = DigestCredentials {
            username: user.into(),
            realm: realm.into(),
            nonce: nonce.into(),
            uri: uri.into(),
            ..DigestCredentials::default()
        };
        let ha1 = digest_ha1(DigestAlgorithm::Md5, user, realm, password);
        let response = digest_response(DigestAlgorithm::Md5, &ha1, "DESCRIBE", &credentials);
        format!("Digest username=\"{user}\", realm=\"{realm}\", nonce=\"{nonce}\", uri=\"{uri}\", response=\"{response}\"")
    }

    fn challenge_of(outcome: AccessOutcome) -> String {
        match outcome {
            AccessOutcome::Challenge { www_authenticate } => www_authenticate,
            other => panic!("expected a challenge, got {other:?}"),
        }
    }

    #[test]
    fn digest_login_grants_members_and_refuses_others() {
        let f = fixture(AuthScheme::Digest);
        assert_eq!(
            f.gate.check(&request("/public.mp4", None, 1000)),
            AccessOutcome::Allowed { user: None }
        );
        let challenge = challenge_of(f.gate.check(&request("/private/a.mp4", None, 1000)));
        assert!(
            challenge.starts_with("Digest realm=\"Serval\""),
            "{challenge}"
        );
        let uri = "rtsp://127.0.0.1:8554/private/a.mp4";
        let bob = digest_answer(&challenge, "bob", "secret", uri);
        assert_eq!(
            f.gate.check(&request("/private/a.mp4", Some(&bob), 1010)),
            AccessOutcome::Allowed {
                user: Some("bob".into())
            }
        );
        let eve = digest_answer(&challenge, "eve", "secret", uri);
        assert!(matches!(
            f.gate.check(&request("/private/a.mp4", Some(&eve), 1010)),
            AccessOutcome::Forbidden { .. }
        ));
        let wrong = digest_answer(&challenge, "bob", "guess", uri);
        challenge_of(f.gate.check(&request("/private/a.mp4", Some(&wrong), 1010)));
        // Basic is refused where the rule says digest: the client is challenged for Digest.
        let basic = "Basic Ym9iOnNlY3JldA==";
        assert!(
            challenge_of(f.gate.check(&request("/private/a.mp4", Some(basic), 1010)))
                .starts_with("Digest")
        );
    }

    #[test]
    fn expired_nonce_gets_stale_and_another_urls_answer_is_refused() {
        let f = fixture(AuthScheme::Digest);
        let challenge = challenge_of(f.gate.check(&request("/private/a.mp4", None, 1000)));
        let bob = digest_answer(&challenge, "bob", "secret", "rtsp://h/private/a.mp4");
        let later = 1000 + DIGEST_NONCE_LIFETIME.as_secs() + 10;
        let stale = challenge_of(f.gate.check(&request("/private/a.mp4", Some(&bob), later)));
        assert!(stale.ends_with("stale=true"), "{stale}");
        let other = challenge_of(f.gate.check(&request("/private/b.mp4", Some(&bob), 1010)));
        assert!(!other.contains("stale"));
    }

    #[test]
    fn basic_scheme_accepts_basic_and_digest() {
        let f = fixture(AuthScheme::Basic);
        let challenge = challenge_of(f.gate.check(&request("/private/a.mp4", None, 1000)));
        assert_eq!(challenge, "Basic realm=\"Serval\", charset=\"UTF-8\"");
        assert_eq!(
            f.gate.check(&request(
                "/private/a.mp4",
                Some("Basic Ym9iOnNlY3JldA=="),
                1000
            )),
            AccessOutcome::Allowed {
                user: Some("bob".into())
            }
        );
    }

    #[test]
    fn denied_addresses_are_forbidden_before_anything_else() {
        let f = fixture(AuthScheme::Digest);
        let mut from_denied = request("/public.mp4", None, 1000);
        from_denied.peer = "192.0.2.7".parse().unwrap();
        assert!(matches!(
            f.gate.check(&from_denied),
            AccessOutcome::Forbidden { .. }
        ));
        assert!(!f.gate.admits_address("192.0.2.7".parse().unwrap()));
    }

    #[test]
    fn repeated_failures_are_rate_limited() {
        let f = fixture(AuthScheme::Basic);
        let bad = "Basic Ym9iOndyb25n"; // bob:wrong
        let mut outcomes = Vec::new();
        for _ in 0..20 {
            outcomes.push(f.gate.check(&request("/private/a.mp4", Some(bad), 1000)));
        }
        assert!(matches!(
            outcomes.last(),
            Some(AccessOutcome::Forbidden { .. })
        ));
    }

    #[test]
    fn digest_uri_paths_compare() {
        assert!(same_path("rtsp://h:554/a/b.mp4/", "/a/b.mp4"));
        assert!(same_path("/a/b.mp4", "/a/b.mp4"));
        assert!(!same_path("rtsp://h/a/c.mp4", "/a/b.mp4"));
        assert!(same_path("rtsp://h", "/"));
    }
}
