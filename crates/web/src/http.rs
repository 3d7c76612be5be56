//! The axum driver: one handler picks the site, then redirects, realms, proxies, PHP and
//! static files in that order; every answer is access-logged in Apache's combined format.

use crate::config::WebConfig;
use crate::fastcgi::{AnswerBody, FastCgiError};
use crate::fastcgi_wire::Params;
use crate::files::{self, Target};
use crate::proxy::{self, Forwarding, ProxyClient, ProxyError};
use crate::sites::{Site, Sites};
use axum::body::Body;
use axum::extract::{ConnectInfo, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::BodyExt as _;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use serval_core::directory::AuthError;
use serval_core::Directory;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;
use tower::ServiceExt as _;

pub type Labels = Vec<(String, String)>;

#[derive(Clone, Default)]
pub struct Metrics {
    /// Requests by site and status class.
    pub requests: Family<Labels, Counter>,
}

/// Status classes counted per site, 1xx to 5xx.
pub const STATUS_CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

impl Metrics {
    /// Each site's counters, made once so a request only increments one (no label
    /// strings built and hashed per request). Indexed like `Sites::all`.
    pub fn per_site(&self, sites: &Sites) -> Vec<[Counter; 5]> {
        sites
            .all
            .iter()
            .map(|site| {
                STATUS_CLASSES.map(|class| {
                    self.requests
                        .get_or_create(&vec![
                            ("site".to_owned(), site.name().to_owned()),
                            ("status".to_owned(), class.to_owned()),
                        ])
                        .clone()
                })
            })
            .collect()
    }
}

pub struct AppState {
    pub sites: Sites,
    pub config: WebConfig,
    pub directory: Directory,
    pub proxy: ProxyClient,
    /// `Metrics::per_site(&sites)`: each site's request counters.
    pub site_requests: Vec<[Counter; 5]>,
    /// Pending ACME HTTP-01 answers, when `[web.acme]` is on.
    pub challenges: Option<Arc<crate::acme::Challenges>>,
    /// Small files' contents, checked against their stat on every request.
    pub(crate) file_cache: crate::small_file::FileCache,
}

/// Marks answers Serval made itself (errors it may replace with the site's error page).
#[derive(Clone, Copy)]
struct OwnError;

/// Marks answers not to compress (the site turned compression off).
#[derive(Clone, Copy)]
pub struct NoCompress;

#[derive(Clone, Copy)]
pub struct Secure(pub bool);

pub fn router(state: Arc<AppState>, secure: bool) -> axum::Router {
    let compress = tower_http::compression::CompressionLayer::new().compress_when(
        |status: StatusCode,
         _v: axum::http::Version,
         headers: &HeaderMap,
         ext: &axum::http::Extensions| {
            ext.get::<NoCompress>().is_none()
                && status != StatusCode::PARTIAL_CONTENT
                && !headers.contains_key(header::CONTENT_RANGE)
                && worth_compressing(headers)
        },
    );
    axum::Router::new()
        .fallback(handle)
        .layer(compress)
        .layer(axum::Extension(Secure(secure)))
        .with_state(state)
}

/// Text-like and not tiny: images, audio, video and archives are compressed already.
fn worth_compressing(headers: &HeaderMap) -> bool {
    let small = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .is_some_and(|n| n < 256);
    let kind = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    let texty = kind.starts_with("text/")
        || kind == "image/svg+xml"
        || ["json", "javascript", "xml", "wasm"]
            .iter()
            .any(|k| kind.contains(k));
    !small && texty && !kind.starts_with("text/event-stream")
}

async fn handle(
    State(state): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    axum::Extension(Secure(secure)): axum::Extension<Secure>,
    request: Request<Body>,
) -> Response<Body> {
    let started = Instant::now();
    let host = request
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_owned)
        .or_else(|| request.uri().authority().map(|a| a.to_string()));
    let site = state.sites.pick(host.as_deref()).clone();
    // The parts of the access line the request is consumed for: kept until the answer is done.
    let request_line = format!(
        "{} {} {}",
        request.method(),
        request
            .uri()
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or("/"),
        protocol_name(request.version())
    );
    let referer = request.headers().get(header::REFERER).cloned();
    let agent = request.headers().get(header::USER_AGENT).cloned();
    let is_head = request.method() == Method::HEAD;
    let mut user = None;
    let mut response = route(&state, &site, peer, secure, request, &mut user).await;
    if response.extensions().get::<OwnError>().is_some() {
        response = Box::pin(error_page(&site, response, is_head)).await;
    }
    if !site.config.compress {
        response.extensions_mut().insert(NoCompress);
    }
    let status = response.status();
    let length = response
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-");
    let mut entry = String::with_capacity(160 + request_line.len());
    {
        use std::fmt::Write as _;
        let _ = write!(
            entry,
            "{} - {} [",
            peer.ip(),
            user.as_deref().unwrap_or("-")
        );
        access_time(&mut entry);
        let _ = write!(
            entry,
            "] \"{request_line}\" {} {length} \"",
            status.as_u16()
        );
        push_quoted(&mut entry, referer.as_ref());
        entry.push_str("\" \"");
        push_quoted(&mut entry, agent.as_ref());
        entry.push('"');
    }
    tracing::info!(target: "serval_web::access", "{entry}");
    tracing::debug!(target: "serval_web", site = site.name(), status = status.as_u16(), ms = started.elapsed().as_millis() as u64, "request");
    let class = usize::from(status.as_u16() / 100).clamp(1, 5) - 1;
    state.site_requests[site.index][class].inc();
    response
}

/// A header value for the access log: `-` when absent or not text, quotes escaped.
fn push_quoted(out: &mut String, value: Option<&HeaderValue>) {
    match value.and_then(|v| v.to_str().ok()) {
        None => out.push('-'),
        Some(v) if !v.contains('"') => out.push_str(v),
        Some(v) => out.push_str(&v.replace('"', "\\\"")),
    }
}

/// The time as the combined log format writes it, formatted once a second per thread.
fn access_time(out: &mut String) {
    thread_local! {
        static CACHED: std::cell::RefCell<(i64, String)> = const { std::cell::RefCell::new((i64::MIN, String::new())) };
    }
    let now = chrono::Utc::now();
    CACHED.with(|c| {
        let mut c = c.borrow_mut();
        if c.0 != now.timestamp() {
            c.1 = now.format("%d/%b/%Y:%H:%M:%S +0000").to_string();
            c.0 = now.timestamp();
        }
        out.push_str(&c.1);
    });
}

/// An answer Serval makes itself: a short text naming the problem.
fn own(status: StatusCode, message: &str) -> Response<Body> {
    let mut r = Response::new(Body::from(format!("{message}\n")));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r.extensions_mut().insert(OwnError);
    r
}

async fn route(
    state: &AppState,
    site: &Arc<Site>,
    peer: SocketAddr,
    secure: bool,
    request: Request<Body>,
    user: &mut Option<String>,
) -> Response<Body> {
    // Request smuggling. hyper already refuses differing Content-Lengths and, when
    // Transfer-Encoding is present, drops Content-Length and frames by Transfer-Encoding
    // (RFC 9112 6.3), so that pair never reaches here; repeated equal Content-Lengths do.
    // Everything forwarded is framed anew (FastCGI CONTENT_LENGTH, hyper's client framing),
    // so no backend can read a request boundary differently.
    if request
        .headers()
        .get_all(header::CONTENT_LENGTH)
        .iter()
        .count()
        > 1
    {
        let mut r = own(StatusCode::BAD_REQUEST, "more than one Content-Length");
        r.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
        return r;
    }
    let path = request.uri().path().to_owned();
    if let Some(challenges) = &state.challenges {
        // Before redirects and realms: the CA must reach the answer on plain HTTP.
        if path.starts_with(crate::acme::CHALLENGE_PREFIX) {
            return match challenges.answer(&path) {
                Some(body) => {
                    let mut r = Response::new(Body::from(body));
                    r.headers_mut().insert(
                        header::CONTENT_TYPE,
                        HeaderValue::from_static("application/octet-stream"),
                    );
                    r
                }
                None => own(StatusCode::NOT_FOUND, "no such ACME challenge"),
            };
        }
    }
    let query = request.uri().query().map(str::to_owned);
    if let Some(r) = redirect(site, &path, query.as_deref()) {
        return r;
    }
    let mut auth_header_consumed = false;
    if let Some(realm) = site.config.auth.iter().find(|a| under(&path, &a.path)) {
        match Box::pin(check_login(
            state,
            site,
            realm,
            request.headers(),
            peer,
            secure,
        ))
        .await
        {
            Ok(name) => {
                *user = Some(name);
                auth_header_consumed = true;
            }
            Err(r) => return r,
        }
    }
    if let Some((i, rule)) = site
        .config
        .proxies
        .iter()
        .enumerate()
        .find(|(_, p)| under(&path, &p.path))
    {
        let f = Forwarding {
            upstream: &site.upstreams[i],
            peer,
            secure,
            preserve_host: rule.preserve_host,
            timeout: rule.timeout.0,
        };
        let mut request = request;
        if auth_header_consumed {
            request.headers_mut().remove(header::AUTHORIZATION);
        }
        return match Box::pin(proxy::forward(&state.proxy, request, f)).await {
            Ok(r) => r,
            Err(ProxyError::Timeout) => {
                tracing::warn!(target: "serval_web", site = site.name(), upstream = %rule.to, "upstream did not answer within {} s", rule.timeout.0.as_secs());
                own(
                    StatusCode::GATEWAY_TIMEOUT,
                    &format!("the application at {} did not answer in time", rule.to),
                )
            }
            Err(ProxyError::Unreachable(reason)) => {
                tracing::warn!(target: "serval_web", site = site.name(), upstream = %rule.to, %reason, "upstream unreachable");
                own(
                    StatusCode::BAD_GATEWAY,
                    &format!("the application at {} is unreachable", rule.to),
                )
            }
        };
    }
    if !matches!(
        *request.method(),
        Method::GET
            | Method::HEAD
            | Method::POST
            | Method::OPTIONS
            | Method::PUT
            | Method::DELETE
            | Method::PATCH
    ) {
        return own(StatusCode::NOT_IMPLEMENTED, "method not implemented");
    }
    let rules = files::Rules {
        dotfiles: site.config.dotfiles,
        follow_symlinks: site.config.follow_symlinks,
        php: site.fastcgi.is_some(),
    };
    // On the event loop: a few stat calls on a cached tree cost less than a hop to the
    // blocking pool (see small_file).
    let target = files::resolve(&site.root, &path, rules);
    match target {
        Target::BadRequest(why) => own(StatusCode::BAD_REQUEST, why),
        Target::NotFound => own(StatusCode::NOT_FOUND, "not found"),
        Target::AddSlash { location } => {
            let location = match &query {
                Some(q) => format!("{location}?{q}"),
                None => location,
            };
            redirect_to(StatusCode::MOVED_PERMANENTLY, &location)
        }
        Target::Folder(folder) => {
            for name in &site.config.index {
                // Through the same checks as any path: an index that is a link out of the
                // root is not served either.
                if let Target::File {
                    path: candidate,
                    script_name,
                    path_info,
                    meta,
                } = files::resolve(&site.root, &format!("{path}{name}"), rules)
                {
                    return file(
                        state,
                        site,
                        peer,
                        secure,
                        request,
                        candidate,
                        meta.0,
                        script_name,
                        path_info,
                        auth_header_consumed,
                    )
                    .await;
                }
            }
            if site.config.listing {
                let folder2 = folder.clone();
                let (p, dots) = (path.clone(), site.config.dotfiles);
                return match tokio::task::spawn_blocking(move || files::listing(&folder2, &p, dots))
                    .await
                {
                    Ok(Ok(html)) => {
                        let mut r = Response::new(Body::from(html));
                        r.headers_mut().insert(
                            header::CONTENT_TYPE,
                            HeaderValue::from_static("text/html; charset=utf-8"),
                        );
                        r
                    }
                    _ => own(StatusCode::FORBIDDEN, "this folder cannot be listed"),
                };
            }
            own(
                StatusCode::FORBIDDEN,
                "this folder has no index file and listing is off",
            )
        }
        Target::File {
            path: file_path,
            script_name,
            path_info,
            meta,
        } => {
            file(
                state,
                site,
                peer,
                secure,
                request,
                file_path,
                meta.0,
                script_name,
                path_info,
                auth_header_consumed,
            )
            .await
        }
    }
}

fn under(path: &str, prefix: &str) -> bool {
    path.starts_with(prefix) || (prefix.ends_with('/') && path == prefix.trim_end_matches('/'))
}

fn redirect_to(status: StatusCode, location: &str) -> Response<Body> {
    let mut r = Response::new(Body::empty());
    *r.status_mut() = status;
    if let Ok(v) = HeaderValue::from_str(location) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    r
}

fn redirect(site: &Site, path: &str, query: Option<&str>) -> Option<Response<Body>> {
    for r in &site.config.redirects {
        let target = if r.from.ends_with('/') {
            path.strip_prefix(r.from.as_str())
                .map(|rest| format!("{}{rest}", r.to))
        } else if path == r.from {
            Some(r.to.clone())
        } else {
            None
        };
        if let Some(mut location) = target {
            if let Some(q) = query {
                location.push(if location.contains('?') { '&' } else { '?' });
                location.push_str(q);
            }
            let status = StatusCode::from_u16(if r.status == 0 { 301 } else { r.status })
                .unwrap_or(StatusCode::MOVED_PERMANENTLY);
            return Some(redirect_to(status, &location));
        }
    }
    None
}

async fn check_login(
    state: &AppState,
    site: &Site,
    realm: &crate::config::AuthConfig,
    headers: &HeaderMap,
    peer: SocketAddr,
    secure: bool,
) -> Result<String, Response<Body>> {
    let realm_name = if realm.realm.is_empty() {
        site.name().to_owned()
    } else {
        realm.realm.clone()
    };
    let challenge = || {
        let mut r = own(StatusCode::UNAUTHORIZED, "a login is needed");
        if let Ok(v) = HeaderValue::from_str(&serval_core::auth::basic_challenge(&realm_name)) {
            r.headers_mut().insert(header::WWW_AUTHENTICATE, v);
        }
        r
    };
    let Some(value) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    else {
        return Err(challenge());
    };
    if !secure && !peer.ip().is_loopback() && !state.config.allow_insecure_auth {
        return Err(own(
            StatusCode::FORBIDDEN,
            "logins over plain HTTP are refused: use https://, or set web.allow_insecure_auth on a trusted network",
        ));
    }
    let Some(credentials) = serval_core::auth::parse_basic(value) else {
        return Err(challenge());
    };
    let directory = state.directory.clone();
    let groups = realm.groups.clone();
    let result = tokio::task::spawn_blocking(move || {
        let user = directory.authenticate(&credentials.user, &credentials.password, peer.ip())?;
        let member_of = directory.groups_of(&user.name).unwrap_or_default();
        Ok::<_, AuthError>((user.name, member_of))
    })
    .await;
    match result {
        Ok(Ok((name, member_of))) => {
            if groups.is_empty() || groups.iter().any(|g| member_of.contains(g)) {
                Ok(name)
            } else {
                tracing::info!(target: "serval_web", user = %name, path = %realm.path, "login refused: not in the realm's groups");
                Err(own(
                    StatusCode::FORBIDDEN,
                    "your account is not in a group allowed here",
                ))
            }
        }
        Ok(Err(AuthError::RateLimited { retry_after })) => {
            let mut r = own(
                StatusCode::TOO_MANY_REQUESTS,
                "too many failed logins from this address",
            );
            r.headers_mut().insert(
                header::RETRY_AFTER,
                HeaderValue::from(retry_after.as_secs().max(1)),
            );
            Err(r)
        }
        Ok(Err(AuthError::Unavailable)) | Err(_) => Err(own(
            StatusCode::SERVICE_UNAVAILABLE,
            "the directory is unavailable",
        )),
        Ok(Err(AuthError::BadCredentials)) => Err(challenge()),
    }
}

#[allow(clippy::too_many_arguments)]
async fn file(
    state: &AppState,
    site: &Arc<Site>,
    peer: SocketAddr,
    secure: bool,
    request: Request<Body>,
    path: std::path::PathBuf,
    meta: std::fs::Metadata,
    script_name: String,
    path_info: String,
    auth_consumed: bool,
) -> Response<Body> {
    if path.extension().is_some_and(|e| e == "php") {
        return match &site.fastcgi {
            // Boxed, as the other rare and large futures here: the static path's future stays
            // small, and hyper moves it on every request.
            Some(_) => {
                Box::pin(php(
                    state,
                    site,
                    peer,
                    secure,
                    request,
                    path,
                    script_name,
                    path_info,
                    auth_consumed,
                ))
                .await
            }
            // Never hand out PHP source because PHP is not configured.
            None => own(StatusCode::FORBIDDEN, "PHP is not configured for this site"),
        };
    }
    if !matches!(*request.method(), Method::GET | Method::HEAD) {
        let mut r = own(
            StatusCode::METHOD_NOT_ALLOWED,
            "static files take GET and HEAD",
        );
        r.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return r;
    }
    let etag = files::etag(&meta);
    let cache = site.config.cache_max_age.0.as_secs();
    let decorate = |r: &mut Response<Body>| {
        if let Ok(v) = HeaderValue::from_str(&etag) {
            r.headers_mut().insert(header::ETAG, v);
        }
        if cache > 0 {
            if let Ok(v) = HeaderValue::from_str(&format!("max-age={cache}")) {
                r.headers_mut().insert(header::CACHE_CONTROL, v);
            }
        }
    };
    if let Some(inm) = request
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
    {
        if files::none_match(inm, &etag) {
            let mut r = Response::new(Body::empty());
            *r.status_mut() = StatusCode::NOT_MODIFIED;
            decorate(&mut r);
            return r;
        }
    }
    if meta.len() <= crate::small_file::SMALL_FILE {
        let head = request.method() == Method::HEAD;
        return match crate::small_file::respond(
            &path,
            &meta,
            request.headers(),
            head,
            &etag,
            &state.file_cache,
        ) {
            Ok(mut r) => {
                decorate(&mut r);
                r
            }
            Err(_) => own(StatusCode::NOT_FOUND, "not found"),
        };
    }
    // If-Range with our ETag: ServeFile only compares dates, so an ETag that no longer
    // matches drops the Range here (the whole file is sent, as RFC 9110 13.1.5 says).
    let mut request = request;
    if let Some(if_range) = request
        .headers()
        .get(header::IF_RANGE)
        .and_then(|v| v.to_str().ok())
    {
        if if_range.starts_with('"') || if_range.starts_with("W/") {
            let matches = if_range == etag;
            request.headers_mut().remove(header::IF_RANGE);
            if !matches {
                request.headers_mut().remove(header::RANGE);
            }
        }
    }
    match Box::pin(tower_http::services::ServeFile::new(&path).oneshot(request)).await {
        Ok(r) => {
            let mut r = r.map(Body::new);
            decorate(&mut r);
            if r.status() == StatusCode::NOT_FOUND {
                r.extensions_mut().insert(OwnError);
            }
            r
        }
        Err(e) => match e {},
    }
}

#[allow(clippy::too_many_arguments)]
async fn php(
    state: &AppState,
    site: &Arc<Site>,
    peer: SocketAddr,
    secure: bool,
    request: Request<Body>,
    path: std::path::PathBuf,
    script_name: String,
    path_info: String,
    auth_consumed: bool,
) -> Response<Body> {
    let Some(pool) = site.fastcgi.clone() else {
        return own(StatusCode::FORBIDDEN, "PHP is not configured for this site");
    };
    let (parts, body) = request.into_parts();
    let limit = state.config.max_body_size.0;
    if parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .is_some_and(|n| n > limit)
    {
        return own(
            StatusCode::PAYLOAD_TOO_LARGE,
            &format!(
                "the request body is over web.max_body_size ({})",
                state.config.max_body_size
            ),
        );
    }
    // The body is read whole (up to max_body_size) before php-fpm sees the request, as nginx
    // does by default: a slow upload then holds no PHP worker.
    let body =
        match http_body_util::Limited::new(body, usize::try_from(limit).unwrap_or(usize::MAX))
            .collect()
            .await
        {
            Ok(b) => b.to_bytes(),
            Err(e) => {
                if e.downcast_ref::<http_body_util::LengthLimitError>()
                    .is_some()
                {
                    return own(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        &format!(
                            "the request body is over web.max_body_size ({})",
                            state.config.max_body_size
                        ),
                    );
                }
                return own(
                    StatusCode::BAD_REQUEST,
                    "the request body could not be read",
                );
            }
        };
    let local = state.config.listen.addrs().first().copied();
    let host = parts
        .headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(crate::sites::host_name)
        .unwrap_or_else(|| site.name().to_owned());
    let mut params = Params::with_capacity(1024);
    params.push("GATEWAY_INTERFACE", "CGI/1.1");
    params.push(
        "SERVER_SOFTWARE",
        concat!("serval/", env!("CARGO_PKG_VERSION")),
    );
    params.push("SERVER_PROTOCOL", protocol_name(parts.version));
    params.push("REQUEST_METHOD", parts.method.as_str());
    params.push(
        "REQUEST_URI",
        parts
            .uri
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or("/"),
    );
    params.push("DOCUMENT_URI", parts.uri.path());
    params.push("QUERY_STRING", parts.uri.query().unwrap_or(""));
    params.push("SCRIPT_FILENAME", path.as_os_str().as_encoded_bytes());
    params.push("SCRIPT_NAME", &script_name);
    params.push("PHP_SELF", format!("{script_name}{path_info}"));
    params.push("DOCUMENT_ROOT", site.root.as_os_str().as_encoded_bytes());
    params.push("REMOTE_ADDR", peer.ip().to_string());
    params.push("REMOTE_PORT", peer.port().to_string());
    params.push("SERVER_NAME", host);
    params.push(
        "SERVER_ADDR",
        local.map(|a| a.ip().to_string()).unwrap_or_default(),
    );
    params.push(
        "SERVER_PORT",
        local.map(|a| a.port().to_string()).unwrap_or_default(),
    );
    params.push(
        "CONTENT_TYPE",
        parts
            .headers
            .get(header::CONTENT_TYPE)
            .map(|v| v.as_bytes())
            .unwrap_or(b""),
    );
    params.push(
        "CONTENT_LENGTH",
        if body.is_empty() {
            String::new()
        } else {
            body.len().to_string()
        },
    );
    params.push("REDIRECT_STATUS", "200");
    if !path_info.is_empty() {
        params.push("PATH_INFO", &path_info);
        params.push(
            "PATH_TRANSLATED",
            format!("{}{path_info}", site.root.to_string_lossy()),
        );
    }
    if secure {
        params.push("HTTPS", "on");
    }
    for name in parts.headers.keys() {
        // Serval checked the login itself: the password goes no further (Proxy: httpoxy).
        if (auth_consumed && name == header::AUTHORIZATION) || name.as_str() == "proxy" {
            continue;
        }
        if name == header::CONTENT_TYPE || name == header::CONTENT_LENGTH {
            continue;
        }
        params.push_header(
            name.as_str(),
            parts.headers.get_all(name).iter().map(|v| v.as_bytes()),
        );
    }
    let timeout = site.config.php_timeout.0;
    match pool.execute(&params, &body, timeout, &script_name).await {
        Ok(answer) => {
            let mut r = Response::new(Body::empty());
            *r.status_mut() = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::OK);
            for (name, value) in &answer.headers {
                if let (Ok(n), Ok(v)) = (
                    header::HeaderName::from_bytes(name.as_bytes()),
                    HeaderValue::from_str(value),
                ) {
                    r.headers_mut().append(n, v);
                }
            }
            match answer.body {
                AnswerBody::Complete(bytes) => {
                    r.headers_mut()
                        .insert(header::CONTENT_LENGTH, HeaderValue::from(bytes.len()));
                    *r.body_mut() = Body::from(bytes);
                }
                AnswerBody::Streaming(stream) => *r.body_mut() = Body::from_stream(stream),
            }
            r
        }
        Err(FastCgiError::Timeout { addr, secs }) => {
            tracing::warn!(target: "serval_web", site = site.name(), fastcgi = %addr, script = %script_name, "FastCGI server did not answer within {secs} s (php_timeout)");
            own(
                StatusCode::GATEWAY_TIMEOUT,
                "the PHP application did not answer in time",
            )
        }
        Err(e) => {
            tracing::warn!(target: "serval_web", site = site.name(), script = %script_name, error = %e, "FastCGI request failed");
            own(
                StatusCode::BAD_GATEWAY,
                "the PHP application is unreachable",
            )
        }
    }
}

/// The CGI name of an HTTP version.
fn protocol_name(version: axum::http::Version) -> &'static str {
    match version {
        axum::http::Version::HTTP_09 => "HTTP/0.9",
        axum::http::Version::HTTP_10 => "HTTP/1.0",
        axum::http::Version::HTTP_2 => "HTTP/2.0",
        axum::http::Version::HTTP_3 => "HTTP/3.0",
        _ => "HTTP/1.1",
    }
}

/// Replaces one of Serval's own error answers with the site's page for that status, if any.
async fn error_page(site: &Site, response: Response<Body>, is_head: bool) -> Response<Body> {
    let code = response.status().as_u16().to_string();
    let Some(page) = site.config.error_pages.get(&code) else {
        return response;
    };
    let rules = files::Rules {
        dotfiles: true,
        follow_symlinks: site.config.follow_symlinks,
        php: false,
    };
    let Target::File { path, .. } = files::resolve(&site.root, page, rules) else {
        return response;
    };
    let Ok(bytes) = tokio::fs::read(&path).await else {
        return response;
    };
    let (mut parts, _) = response.into_parts();
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    let body = if is_head {
        Body::empty()
    } else {
        Body::from(bytes)
    };
    Response::from_parts(parts, body)
}
