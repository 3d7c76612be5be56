//! The tokio/axum driver: authentication, access rights, method dispatch, access log and
//! metrics. Protocol decisions live in the pure modules; handlers here glue them to the store.

mod auth;
pub use auth::DIGEST_NONCE_LIFETIME;
mod error;
mod objects;
mod outbox;
mod principals;
pub(crate) use objects::{floating_zone, index_text};
mod props;
mod report;
pub use report::MAX_QUERY_WITH_DATA_RESULTS;
mod scheduling;
mod sharee_props;
pub(crate) mod sharing;

pub use error::DavError;

use crate::config::CalendarConfig;
use crate::paths::{self, Target};
use crate::store::schedule::{INBOX, OUTBOX};
use crate::store::CalendarStore;
use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use serval_core::auth::DigestNonces;
use serval_core::directory::User;
use serval_core::Directory;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

/// DAV compliance classes we implement (RFC 4918 §18, RFC 4791 §5.1, CalendarServer proxy).
/// RFC 6638 implicit scheduling is `calendar-auto-schedule`. Class 2 (locking) is
/// deliberately absent.
pub const DAV_HEADER: &str =
    "1, 3, access-control, calendar-access, calendar-proxy, calendarserver-sharing, extended-mkcol, calendar-auto-schedule";
const ALLOW: &str =
    "OPTIONS, GET, HEAD, POST, PUT, DELETE, PROPFIND, PROPPATCH, MKCOL, MKCALENDAR, REPORT, MOVE, COPY";

/// Metric labels: (name, value) pairs such as `("method", "PUT")`.
type Labels = Vec<(String, String)>;

/// Per-method request metrics.
#[derive(Clone)]
pub struct Metrics {
    pub requests: Family<Labels, Counter>,
    pub duration: Family<Labels, Histogram, fn() -> Histogram>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        fn buckets() -> Histogram {
            Histogram::new(
                [
                    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
                ]
                .into_iter(),
            )
        }
        Self {
            requests: Family::default(),
            duration: Family::new_with_constructor(buckets),
        }
    }
}

/// Shared state of the service's handlers.
pub struct AppState {
    pub store: Arc<dyn CalendarStore>,
    pub directory: Directory,
    pub config: CalendarConfig,
    pub metrics: Metrics,
    /// Issues and checks the Digest nonces of every 401 (stateless, so one per service).
    pub nonces: DigestNonces,
}

/// Set on routers serving TLS listeners.
#[derive(Clone, Copy)]
pub struct Secure(pub bool);

pub fn router(state: Arc<AppState>, secure: bool) -> axum::Router {
    axum::Router::new()
        .fallback(handle)
        .with_state(state)
        .layer(axum::Extension(Secure(secure)))
}

/// The authenticated user and what they may see.
pub(crate) struct Caller {
    pub user: User,
    /// The user's name plus `group:NAME` for each group: the keys delegation grants use.
    pub identities: Vec<String>,
}

/// What a caller may do in an owner's home.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Rights {
    None,
    Read,
    Write,
    Owner,
}

pub(crate) struct Request2 {
    pub method: Method,
    pub path: String,
    pub headers: HeaderMap,
    pub body: Bytes,
}

async fn handle(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    axum::Extension(Secure(secure)): axum::Extension<Secure>,
    request: Request<Body>,
) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let (response, user) = dispatch(&state, peer, secure, request).await;
    let status = response.status();
    let length = response
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-")
        .to_owned();
    // Common log format, with the DAV method; its own target so operators can route it.
    tracing::info!(
        target: "serval_calendar::access",
        "{} - {} [{}] \"{} {} HTTP/1.1\" {} {}",
        peer.ip(),
        user.as_deref().unwrap_or("-"),
        chrono::Utc::now().format("%d/%b/%Y:%H:%M:%S +0000"),
        method,
        path,
        status.as_u16(),
        length
    );
    let labels = vec![
        ("method".to_owned(), method.to_string()),
        ("status".to_owned(), status.as_u16().to_string()),
    ];
    state.metrics.requests.get_or_create(&labels).inc();
    state
        .metrics
        .duration
        .get_or_create(&vec![("method".to_owned(), method.to_string())])
        .observe(started.elapsed().as_secs_f64());
    response
}

async fn dispatch(
    state: &Arc<AppState>,
    peer: SocketAddr,
    secure: bool,
    request: Request<Body>,
) -> (Response, Option<String>) {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let target = paths::parse(&path);
    if target == Some(Target::WellKnown) {
        let mut r = StatusCode::MOVED_PERMANENTLY.into_response();
        r.headers_mut()
            .insert(header::LOCATION, HeaderValue::from_static("/"));
        return (r, None);
    }
    if method == Method::OPTIONS {
        return (options_response(), None);
    }
    let path_and_query = request
        .uri()
        .path_and_query()
        .map_or_else(|| path.clone(), |p| p.as_str().to_owned());
    let auth_request = auth::AuthRequest {
        peer,
        secure,
        method: &method,
        path_and_query: &path_and_query,
        headers: request.headers(),
    };
    let caller = match auth::authenticate(state, auth_request).await {
        Ok(caller) => caller,
        Err(e) => return (e.into_response(), None),
    };
    let user = Some(caller.user.name.clone());
    let Some(target) = target else {
        return (DavError::NotFound.into_response(), user);
    };
    let limit = state
        .config
        .max_resource_size
        .max(crate::dav::xml::MAX_XML_BYTES)
        + 1;
    let (parts, body) = request.into_parts();
    let body = match read_body(body, limit).await {
        Ok(body) => body,
        Err(()) => {
            let e = DavError::Precondition {
                status: StatusCode::PAYLOAD_TOO_LARGE,
                ns: crate::dav::xml::NS_CALDAV,
                element: "max-resource-size",
                inner: String::new(),
                detail: format!("body over {limit} bytes"),
            };
            return (e.into_response(), user);
        }
    };
    let req = Request2 {
        method,
        path,
        headers: parts.headers,
        body,
    };
    let result = route(state, &caller, target, req).await;
    (result.unwrap_or_else(IntoResponse::into_response), user)
}

/// Past the limit, this much more is read and dropped so the client, still sending, gets
/// our 413 instead of a reset connection.
const MAX_DRAIN_BYTES: usize = 8 * 1024 * 1024;

/// Reads a body of at most `limit` bytes; `Err` when it is larger.
async fn read_body(body: Body, limit: usize) -> Result<Bytes, ()> {
    use futures::StreamExt;
    let mut stream = body.into_data_stream();
    let mut buffer = Vec::new();
    let mut drained = 0usize;
    while let Some(chunk) = stream.next().await {
        let Ok(chunk) = chunk else { return Err(()) };
        if drained > 0 || buffer.len() + chunk.len() > limit {
            drained += chunk.len();
            if drained > MAX_DRAIN_BYTES {
                return Err(());
            }
            continue;
        }
        buffer.extend_from_slice(&chunk);
    }
    if drained > 0 {
        Err(())
    } else {
        Ok(Bytes::from(buffer))
    }
}

fn options_response() -> Response {
    let mut r = StatusCode::OK.into_response();
    let h = r.headers_mut();
    h.insert("DAV", HeaderValue::from_static(DAV_HEADER));
    h.insert(header::ALLOW, HeaderValue::from_static(ALLOW));
    r
}

async fn route(
    state: &Arc<AppState>,
    caller: &Caller,
    target: Target,
    req: Request2,
) -> Result<Response, DavError> {
    // RFC 6638 scheduling boxes: the outbox stores nothing (PROPFIND describes it, POST
    // asks for free-busy); the inbox is created on first use and only the server writes it.
    match (&target, req.method.as_str()) {
        (Target::Collection { owner, calendar }, method) if calendar == OUTBOX => {
            return match method {
                "PROPFIND" => outbox::propfind(state, caller, owner, &req).await,
                "POST" => outbox::post(state, caller, owner, &req).await,
                _ => Err(DavError::MethodNotAllowed),
            };
        }
        (Target::Object { calendar, .. }, _) if calendar == OUTBOX => {
            return Err(DavError::NotFound)
        }
        (Target::Object { calendar, .. }, "PUT" | "MOVE" | "COPY") if calendar == INBOX => {
            return Err(DavError::Forbidden)
        }
        (Target::Collection { owner, calendar }, _)
            if calendar == INBOX && *owner == caller.user.name =>
        {
            scheduling::ensure_inbox(state, owner).await?;
        }
        _ => {}
    }
    // The notification collection (sharing invites) is not a calendar.
    match (&target, req.method.as_str()) {
        (Target::Collection { owner, calendar }, "PROPFIND")
            if calendar == sharing::NOTIFICATION_COLLECTION =>
        {
            return sharing::propfind(state, caller, owner, None).await
        }
        (
            Target::Object {
                owner,
                calendar,
                object,
            },
            "PROPFIND",
        ) if calendar == sharing::NOTIFICATION_COLLECTION => {
            return sharing::propfind(state, caller, owner, Some(object)).await
        }
        (
            Target::Object {
                owner,
                calendar,
                object,
            },
            "GET" | "HEAD",
        ) if calendar == sharing::NOTIFICATION_COLLECTION => {
            return sharing::get(state, caller, owner, object).await
        }
        (
            Target::Collection { owner, calendar }
            | Target::Object {
                owner, calendar, ..
            },
            _,
        ) if calendar == sharing::NOTIFICATION_COLLECTION => {
            return Err(if *owner == caller.user.name {
                DavError::Forbidden
            } else {
                DavError::NotFound
            });
        }
        _ => {}
    }
    match req.method.as_str() {
        "POST" => sharing::post(state, caller, &target, &req).await,
        "PROPFIND" => props::propfind(state, caller, &target, &req).await,
        "PROPPATCH" => props::proppatch(state, caller, &target, &req).await,
        "MKCALENDAR" | "MKCOL" => objects::mkcalendar(state, caller, &target, &req).await,
        "GET" | "HEAD" => objects::get(state, caller, &target, &req).await,
        "PUT" => objects::put(state, caller, &target, &req).await,
        "DELETE" => objects::delete(state, caller, &target, &req).await,
        "MOVE" | "COPY" => objects::move_or_copy(state, caller, &target, &req).await,
        "REPORT" => report::report(state, caller, &target, &req).await,
        _ => Err(DavError::MethodNotAllowed),
    }
}

/// What `caller` may do in `owner`'s home: owner, a read/write delegate, or nothing.
pub(crate) async fn rights(
    state: &Arc<AppState>,
    caller: &Caller,
    owner: &str,
) -> Result<Rights, DavError> {
    if caller.user.name == owner {
        return Ok(Rights::Owner);
    }
    // A group's calendars are read and written by its members.
    if owner.starts_with("group:") {
        return Ok(if caller.identities.iter().any(|i| i == owner) {
            Rights::Write
        } else {
            Rights::None
        });
    }
    let grants = blocking(state, {
        let identities = caller.identities.clone();
        move |store| store.delegations_to(&identities)
    })
    .await?;
    Ok(grants
        .iter()
        .filter(|g| g.owner == owner)
        .map(|g| if g.write { Rights::Write } else { Rights::Read })
        .max()
        .unwrap_or(Rights::None))
}

/// Runs a store call on the blocking pool.
pub(crate) async fn blocking<T: Send + 'static>(
    state: &Arc<AppState>,
    f: impl FnOnce(&dyn CalendarStore) -> Result<T, crate::store::StoreError> + Send + 'static,
) -> Result<T, DavError> {
    let state = state.clone();
    tokio::task::spawn_blocking(move || f(state.store.as_ref()))
        .await
        .map_err(|e| DavError::Internal(e.to_string()))?
        .map_err(DavError::from)
}

/// Wall clock in Unix seconds; the only place the HTTP layer reads it.
pub(crate) fn now() -> i64 {
    i64::try_from(serval_core::now_unix()).unwrap_or(i64::MAX)
}

pub(crate) fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

pub(crate) fn xml_response(status: StatusCode, body: String) -> Response {
    let mut r = (status, body).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/xml; charset=utf-8"),
    );
    r
}
