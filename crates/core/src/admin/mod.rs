//! The admin site on `[admin] listen`: login, overview, users and groups, live log tail, one page
//! per service, the JSON API under `/api/v1/`, Prometheus `/metrics` and `/healthz`.
//!
//! Only members of the `admin` group get in. Browsers authenticate with a session cookie and echo a
//! per-session CSRF token on every form; scripts (`serval status`) use the bearer token the server
//! writes to `data_dir/admin.token` at start (mode 0600), or Basic with an admin's password.

mod api;
mod pages;
pub mod session;

use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::SystemTime;

use axum::extract::{ConnectInfo, Form, Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use prometheus_client::registry::Registry;

use crate::directory::{Directory, NewUser, ADMIN_GROUP};
use crate::logging::LogTail;
use crate::service::RunningService;
use crate::store::{Store, StoreError};
use session::{AdminSession, CSRF_FIELD, LOGIN_CSRF_COOKIE, SESSION_COOKIE};

/// Largest form or JSON body the admin site accepts.
const MAX_BODY_BYTES: usize = 64 * 1024;

/// Everything the admin site reads.
#[derive(Clone)]
pub struct AdminState {
    inner: Arc<Inner>,
}

struct Inner {
    directory: Directory,
    sessions: Arc<dyn session::AdminSessionStore>,
    registry: Arc<RwLock<Registry>>,
    services: RwLock<Vec<Arc<dyn RunningService>>>,
    log_tail: LogTail,
    secure_cookies: bool,
    api_token: String,
    session_idle_secs: u64,
    public_metrics: bool,
    started_at: SystemTime,
    listen: RwLock<Vec<SocketAddr>>,
}

/// Settings of the admin site.
pub struct AdminOptions {
    pub secure_cookies: bool,
    pub api_token: String,
    pub session_idle: std::time::Duration,
    pub public_metrics: bool,
}

/// Applies the admin site's store migrations; call once at start before serving.
pub fn migrate(store: &Store) -> Result<(), StoreError> {
    store.migrate("admin", session::MIGRATIONS)
}

impl AdminState {
    pub fn new(
        directory: Directory,
        registry: Arc<RwLock<Registry>>,
        log_tail: LogTail,
        options: AdminOptions,
    ) -> AdminState {
        AdminState {
            inner: Arc::new(Inner {
                sessions: session::store_for(directory.engine()),
                directory,
                registry,
                services: RwLock::default(),
                log_tail,
                secure_cookies: options.secure_cookies,
                api_token: options.api_token,
                session_idle_secs: options.session_idle.as_secs(),
                public_metrics: options.public_metrics,
                started_at: SystemTime::now(),
                listen: RwLock::default(),
            }),
        }
    }

    /// Sets the services shown on the overview (after they have bound).
    pub fn set_services(&self, services: Vec<Arc<dyn RunningService>>) {
        *self
            .inner
            .services
            .write()
            .unwrap_or_else(|p| p.into_inner()) = services;
    }

    /// Records the addresses the admin site itself listens on.
    pub fn set_listen(&self, addrs: Vec<SocketAddr>) {
        *self.inner.listen.write().unwrap_or_else(|p| p.into_inner()) = addrs;
    }

    fn services(&self) -> Vec<Arc<dyn RunningService>> {
        self.inner
            .services
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn service(&self, name: &str) -> Option<Arc<dyn RunningService>> {
        self.services().into_iter().find(|s| s.name() == name)
    }
}

/// The admin router.
pub fn router(state: AdminState) -> Router {
    Router::new()
        .route("/", get(|| async { Redirect::to("/admin/") }))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/metrics", get(metrics))
        .route("/login", get(login_page).post(login))
        .route("/setup", post(first_admin))
        .route("/logout", post(logout))
        .route("/admin/", get(overview))
        .route("/admin/users", get(users_page).post(users_action))
        .route("/admin/groups", get(groups_page).post(groups_action))
        .route("/admin/logs", get(logs_page))
        .route(
            "/admin/service/{name}",
            get(service_page).post(service_action),
        )
        .nest("/api/v1", api::router())
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(axum::middleware::map_response(security_headers))
        .with_state(state)
}

async fn security_headers(mut response: Response) -> Response {
    let h = response.headers_mut();
    h.insert(
        header::X_FRAME_OPTIONS,
        header::HeaderValue::from_static("DENY"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        header::HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        header::HeaderValue::from_static("same-origin"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        header::HeaderValue::from_static(
            "default-src 'self'; style-src 'self' 'unsafe-inline'; form-action 'self'",
        ),
    );
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(
            header::CACHE_CONTROL,
            header::HeaderValue::from_static("no-store"),
        );
    }
    response
}

/// Runs blocking directory/store work off the async workers.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, AdminError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| AdminError::Internal(e.to_string()))
}

/// Errors of admin handlers, mapped to a status in one place.
#[derive(Debug)]
pub(crate) enum AdminError {
    LoginRequired,
    Forbidden,
    BadCsrf,
    NotFound,
    Internal(String),
}

impl From<StoreError> for AdminError {
    fn from(e: StoreError) -> Self {
        AdminError::Internal(e.to_string())
    }
}

impl From<crate::directory::DirectoryError> for AdminError {
    fn from(e: crate::directory::DirectoryError) -> Self {
        AdminError::Internal(e.to_string())
    }
}

impl IntoResponse for AdminError {
    fn into_response(self) -> Response {
        match self {
            AdminError::LoginRequired => Redirect::to("/login").into_response(),
            AdminError::Forbidden => (StatusCode::FORBIDDEN, Html(pages::message_page("Forbidden", "Only members of the admin group may use this site."))).into_response(),
            AdminError::BadCsrf => (StatusCode::FORBIDDEN, Html(pages::message_page("Form expired", "The form's security token did not match. Go back, reload the page and try again."))).into_response(),
            AdminError::NotFound => (StatusCode::NOT_FOUND, Html(pages::message_page("Not found", "There is no such page."))).into_response(),
            AdminError::Internal(detail) => {
                tracing::error!(error = %detail, "admin request failed");
                (StatusCode::INTERNAL_SERVER_ERROR, Html(pages::message_page("Server error", "The request failed; the server log has the details."))).into_response()
            }
        }
    }
}

/// The admin session of a request, or an error that sends the browser to the login page.
async fn require_admin(
    state: &AdminState,
    headers: &HeaderMap,
) -> Result<AdminSession, AdminError> {
    let Some(token) = session::cookie(headers, SESSION_COOKIE).map(str::to_string) else {
        return Err(AdminError::LoginRequired);
    };
    let st = state.clone();
    let found = blocking(move || {
        session::find(
            st.inner.sessions.as_ref(),
            &token,
            st.inner.session_idle_secs,
        )
    })
    .await??;
    let Some(session) = found else {
        return Err(AdminError::LoginRequired);
    };
    let st = state.clone();
    let user = session.user.clone();
    if !blocking(move || st.inner.directory.is_admin(&user)).await?? {
        return Err(AdminError::Forbidden);
    }
    Ok(session)
}

/// Checks the CSRF field of a posted form against the session.
fn check_csrf(session: &AdminSession, form: &[(String, String)]) -> Result<(), AdminError> {
    let sent = form
        .iter()
        .find(|(k, _)| k == CSRF_FIELD)
        .map(|(_, v)| v.as_str())
        .unwrap_or("");
    if crate::auth::constant_time_eq(sent.as_bytes(), session.csrf.as_bytes()) {
        Ok(())
    } else {
        Err(AdminError::BadCsrf)
    }
}

fn field<'a>(form: &'a [(String, String)], name: &str) -> &'a str {
    form.iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .unwrap_or("")
}

fn redirect_with(path: &str, message: &str) -> Response {
    let target = format!("{path}?msg={}", urlencoding::encode(message));
    Redirect::to(&target).into_response()
}

#[derive(serde::Deserialize, Default)]
struct MessageQuery {
    msg: Option<String>,
}

async fn metrics(
    State(state): State<AdminState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Response {
    if !state.inner.public_metrics
        && api::authorize(&state, peer.ip(), &headers, false)
            .await
            .is_err()
    {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    let body = {
        let registry = state
            .inner
            .registry
            .read()
            .unwrap_or_else(|p| p.into_inner());
        crate::metrics::render(&registry)
    };
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        body,
    )
        .into_response()
}

async fn login_page(
    State(state): State<AdminState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Query(q): Query<MessageQuery>,
) -> Result<Response, AdminError> {
    let st = state.clone();
    let has_admin = !blocking(move || st.inner.directory.group_members(ADMIN_GROUP))
        .await??
        .is_empty();
    let csrf = session::random_token();
    let first_run = !has_admin && peer.ip().is_loopback();
    let body = pages::login_page(&csrf, q.msg.as_deref(), first_run, !has_admin && !first_run);
    let cookie = session::set_cookie(
        LOGIN_CSRF_COOKIE,
        &csrf,
        state.inner.secure_cookies,
        Some(3600),
    );
    Ok(([(header::SET_COOKIE, cookie)], Html(body)).into_response())
}

fn check_login_csrf(headers: &HeaderMap, form: &[(String, String)]) -> Result<(), AdminError> {
    let cookie = session::cookie(headers, LOGIN_CSRF_COOKIE).unwrap_or("");
    let sent = field(form, CSRF_FIELD);
    if !cookie.is_empty() && crate::auth::constant_time_eq(cookie.as_bytes(), sent.as_bytes()) {
        Ok(())
    } else {
        Err(AdminError::BadCsrf)
    }
}

async fn login(
    State(state): State<AdminState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(form): Form<Vec<(String, String)>>,
) -> Result<Response, AdminError> {
    check_login_csrf(&headers, &form)?;
    let (name, password) = (
        field(&form, "username").to_string(),
        field(&form, "password").to_string(),
    );
    let st = state.clone();
    let outcome = blocking(move || -> Result<Result<String, String>, AdminError> {
        match st.inner.directory.authenticate(&name, &password, peer.ip()) {
            Ok(user) => {
                if !st.inner.directory.is_admin(&user.name)? {
                    tracing::warn!(%peer, user = %user.name, "admin login refused: not in the admin group");
                    return Ok(Err("This account is not a member of the admin group.".into()));
                }
                let token = session::create(st.inner.sessions.as_ref(), &user.name)?;
                tracing::info!(%peer, user = %user.name, "admin logged in");
                Ok(Ok(token))
            }
            Err(e) => Ok(Err(e.to_string())),
        }
    })
    .await??;
    match outcome {
        Ok(token) => {
            let cookie =
                session::set_cookie(SESSION_COOKIE, &token, state.inner.secure_cookies, None);
            Ok(([(header::SET_COOKIE, cookie)], Redirect::to("/admin/")).into_response())
        }
        Err(message) => {
            let mut r = redirect_with("/login", &message);
            *r.status_mut() = StatusCode::SEE_OTHER;
            Ok(r)
        }
    }
}

/// First-run flow: on a fresh store with no admin, a browser on this machine may create one.
async fn first_admin(
    State(state): State<AdminState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(form): Form<Vec<(String, String)>>,
) -> Result<Response, AdminError> {
    check_login_csrf(&headers, &form)?;
    if !peer.ip().is_loopback() {
        return Err(AdminError::Forbidden);
    }
    let (name, password) = (
        field(&form, "username").to_string(),
        field(&form, "password").to_string(),
    );
    if password != field(&form, "password2") {
        return Ok(redirect_with("/login", "The two passwords differ."));
    }
    let st = state.clone();
    let result = blocking(move || -> Result<Result<String, String>, AdminError> {
        if !st.inner.directory.group_members(ADMIN_GROUP)?.is_empty() {
            return Ok(Err("An admin already exists; log in instead.".into()));
        }
        let new = NewUser {
            name: &name,
            password: Some(&password),
            ..NewUser::default()
        };
        if let Err(e) = st.inner.directory.add_user(&new) {
            return Ok(Err(e.to_string()));
        }
        st.inner.directory.add_member(ADMIN_GROUP, &name)?;
        tracing::info!(%peer, user = %name, "first admin created from the admin page");
        Ok(Ok(session::create(st.inner.sessions.as_ref(), &name)?))
    })
    .await??;
    match result {
        Ok(token) => {
            let cookie =
                session::set_cookie(SESSION_COOKIE, &token, state.inner.secure_cookies, None);
            Ok(([(header::SET_COOKIE, cookie)], Redirect::to("/admin/")).into_response())
        }
        Err(message) => Ok(redirect_with("/login", &message)),
    }
}

async fn logout(
    State(state): State<AdminState>,
    headers: HeaderMap,
    Form(form): Form<Vec<(String, String)>>,
) -> Result<Response, AdminError> {
    let session = require_admin(&state, &headers).await?;
    check_csrf(&session, &form)?;
    if let Some(token) = session::cookie(&headers, SESSION_COOKIE).map(str::to_string) {
        let st = state.clone();
        blocking(move || session::delete(st.inner.sessions.as_ref(), &token)).await??;
    }
    let cookie = session::set_cookie(SESSION_COOKIE, "", state.inner.secure_cookies, Some(0));
    Ok((
        [(header::SET_COOKIE, cookie)],
        redirect_with("/login", "Logged out."),
    )
        .into_response())
}

async fn overview(
    State(state): State<AdminState>,
    headers: HeaderMap,
) -> Result<Response, AdminError> {
    let session = require_admin(&state, &headers).await?;
    let status = api::status(&state);
    Ok(Html(pages::overview(&session, &status, &state.services())).into_response())
}

/// Renders the users or the groups page from the whole directory.
type DirectoryRenderer = fn(
    &AdminSession,
    &[crate::directory::User],
    &[crate::directory::Group],
    Option<&str>,
    &[std::sync::Arc<dyn RunningService>],
) -> String;

/// Renders a page that lists the directory (users or groups) with `render`.
async fn directory_page(
    state: AdminState,
    headers: HeaderMap,
    message: Option<String>,
    render: DirectoryRenderer,
) -> Result<Response, AdminError> {
    let session = require_admin(&state, &headers).await?;
    let st = state.clone();
    let (users, groups) = blocking(move || -> Result<_, AdminError> {
        Ok((
            st.inner.directory.list_users()?,
            st.inner.directory.list_groups()?,
        ))
    })
    .await??;
    let body = render(
        &session,
        &users,
        &groups,
        message.as_deref(),
        &state.services(),
    );
    Ok(Html(body).into_response())
}

async fn users_page(
    State(state): State<AdminState>,
    headers: HeaderMap,
    Query(q): Query<MessageQuery>,
) -> Result<Response, AdminError> {
    directory_page(state, headers, q.msg, pages::users).await
}

async fn users_action(
    State(state): State<AdminState>,
    headers: HeaderMap,
    Form(form): Form<Vec<(String, String)>>,
) -> Result<Response, AdminError> {
    let session = require_admin(&state, &headers).await?;
    check_csrf(&session, &form)?;
    let st = state.clone();
    let actor = session.user.clone();
    let message = blocking(move || {
        let d = &st.inner.directory;
        let name = field(&form, "name");
        let result = match field(&form, "action") {
            "add" => {
                let password = field(&form, "password");
                let kind = field(&form, "kind").parse().ok();
                let new = NewUser {
                    name,
                    password: (!password.is_empty()).then_some(password),
                    full_name: field(&form, "full_name"),
                    email: field(&form, "email"),
                    kind,
                };
                d.add_user(&new).map(|_| format!("Added user {name}."))
            }
            "delete" if name == actor => {
                Ok("You cannot delete your own account while logged in.".to_string())
            }
            "delete" => d
                .delete_user(name)
                .map(|()| format!("Deleted user {name}.")),
            "passwd" => d
                .set_password(name, field(&form, "password"))
                .map(|()| format!("Password of {name} changed.")),
            other => Ok(format!("Unknown action `{other}`.")),
        };
        let message = result.unwrap_or_else(|e| e.to_string());
        tracing::info!(admin = %actor, %message, "admin changed users");
        message
    })
    .await?;
    Ok(redirect_with("/admin/users", &message))
}

async fn groups_page(
    State(state): State<AdminState>,
    headers: HeaderMap,
    Query(q): Query<MessageQuery>,
) -> Result<Response, AdminError> {
    directory_page(state, headers, q.msg, pages::groups).await
}

async fn groups_action(
    State(state): State<AdminState>,
    headers: HeaderMap,
    Form(form): Form<Vec<(String, String)>>,
) -> Result<Response, AdminError> {
    let session = require_admin(&state, &headers).await?;
    check_csrf(&session, &form)?;
    let st = state.clone();
    let actor = session.user.clone();
    let message = blocking(move || {
        let d = &st.inner.directory;
        let (group, user) = (field(&form, "group"), field(&form, "user"));
        let result = match field(&form, "action") {
            "add" => d.add_group(group).map(|()| format!("Added group {group}.")),
            "delete" if group == ADMIN_GROUP => {
                Ok("The admin group cannot be deleted.".to_string())
            }
            "delete" => d
                .delete_group(group)
                .map(|()| format!("Deleted group {group}.")),
            "add-member" => d
                .add_member(group, user)
                .map(|()| format!("Added {user} to {group}.")),
            "remove-member" if group == ADMIN_GROUP && user == actor => {
                Ok("You cannot remove yourself from the admin group while logged in.".to_string())
            }
            "remove-member" => d
                .remove_member(group, user)
                .map(|()| format!("Removed {user} from {group}.")),
            other => Ok(format!("Unknown action `{other}`.")),
        };
        let message = result.unwrap_or_else(|e| e.to_string());
        tracing::info!(admin = %actor, %message, "admin changed groups");
        message
    })
    .await?;
    Ok(redirect_with("/admin/groups", &message))
}

async fn logs_page(
    State(state): State<AdminState>,
    headers: HeaderMap,
) -> Result<Response, AdminError> {
    let session = require_admin(&state, &headers).await?;
    let lines = state.inner.log_tail.lines();
    Ok(Html(pages::logs(&session, &lines, &state.services())).into_response())
}

async fn service_page(
    State(state): State<AdminState>,
    headers: HeaderMap,
    Path(name): Path<String>,
    Query(q): Query<MessageQuery>,
) -> Result<Response, AdminError> {
    let session = require_admin(&state, &headers).await?;
    let service = state.service(&name).ok_or(AdminError::NotFound)?;
    let csrf_field = format!(
        "<input type=\"hidden\" name=\"{CSRF_FIELD}\" value=\"{}\">",
        crate::html::escape(&session.csrf)
    );
    let action = format!("/admin/service/{}", urlencoding::encode(&name));
    let body = match service.admin_panel() {
        Some(panel) => blocking(move || panel.render(&csrf_field, &action)).await?,
        None => "<p>This service has no settings page yet.</p>".to_string(),
    };
    Ok(Html(pages::service(
        &session,
        service.as_ref(),
        &body,
        q.msg.as_deref(),
        &state.services(),
    ))
    .into_response())
}

async fn service_action(
    State(state): State<AdminState>,
    headers: HeaderMap,
    Path(name): Path<String>,
    Form(form): Form<Vec<(String, String)>>,
) -> Result<Response, AdminError> {
    let session = require_admin(&state, &headers).await?;
    check_csrf(&session, &form)?;
    let service = state.service(&name).ok_or(AdminError::NotFound)?;
    let panel = service.admin_panel().ok_or(AdminError::NotFound)?;
    let fields: Vec<(String, String)> = form.into_iter().filter(|(k, _)| k != CSRF_FIELD).collect();
    let actor = session.user.clone();
    let message = blocking(move || match panel.handle_action(&fields) {
        Ok(m) | Err(m) => {
            tracing::info!(admin = %actor, service = %name, message = %m, "admin action");
            m
        }
    })
    .await?;
    let path = format!("/admin/service/{}", urlencoding::encode(service.name()));
    Ok(redirect_with(&path, &message))
}
