//! JSON API under `/api/v1/`: status, users, groups, services. Same authorization as the pages:
//! an admin's session cookie (plus `X-CSRF-Token` on changes), the bearer token from
//! `data_dir/admin.token`, or Basic credentials of an admin.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get};
use axum::{Json, Router};
use serde_json::{json, Value};

use super::{blocking, AdminState};
use crate::directory::NewUser;

pub(super) fn router() -> Router<AdminState> {
    Router::new()
        .route("/status", get(status_handler))
        .route("/users", get(list_users).post(add_user))
        .route("/users/{name}", delete(delete_user))
        .route("/groups", get(list_groups))
        .route("/services/{name}", get(service_json))
        .route(
            "/services/{name}/action",
            axum::routing::post(service_action),
        )
}

/// Why an API call was refused.
pub(super) struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut r = (self.0, Json(json!({ "error": self.1 }))).into_response();
        if self.0 == StatusCode::UNAUTHORIZED {
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer realm=\"serval-admin\""),
            );
        }
        r
    }
}

fn unauthorized() -> ApiError {
    ApiError(
        StatusCode::UNAUTHORIZED,
        "log in as a member of the admin group, or send the bearer token from data_dir/admin.token"
            .into(),
    )
}

/// Authorizes an API request; `changes` demands CSRF proof when a cookie session is used.
pub(super) async fn authorize(
    state: &AdminState,
    peer: std::net::IpAddr,
    headers: &HeaderMap,
    changes: bool,
) -> Result<String, ApiError> {
    if let Some(value) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        if let Some(token) = value.strip_prefix("Bearer ") {
            if crate::auth::constant_time_eq(
                token.trim().as_bytes(),
                state.inner.api_token.as_bytes(),
            ) {
                return Ok("(api token)".into());
            }
            return Err(unauthorized());
        }
        if let Some(creds) = crate::auth::parse_basic(value) {
            let st = state.clone();
            let ok = blocking(move || -> Result<Option<String>, String> {
                let user = st
                    .inner
                    .directory
                    .authenticate(&creds.user, &creds.password, peer)
                    .map_err(|e| e.to_string())?;
                Ok(st
                    .inner
                    .directory
                    .is_admin(&user.name)
                    .map_err(|e| e.to_string())?
                    .then_some(user.name))
            })
            .await
            .map_err(|_| unauthorized())?;
            return match ok {
                Ok(Some(name)) => Ok(name),
                Ok(None) => Err(ApiError(
                    StatusCode::FORBIDDEN,
                    "not a member of the admin group".into(),
                )),
                Err(message) => Err(ApiError(StatusCode::UNAUTHORIZED, message)),
            };
        }
    }
    match super::require_admin(state, headers).await {
        Ok(s) => {
            if changes {
                let sent = headers
                    .get("x-csrf-token")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("");
                if !crate::auth::constant_time_eq(sent.as_bytes(), s.csrf.as_bytes()) {
                    return Err(ApiError(
                        StatusCode::FORBIDDEN,
                        "missing or wrong X-CSRF-Token header".into(),
                    ));
                }
            }
            Ok(s.user)
        }
        Err(super::AdminError::Forbidden) => Err(ApiError(
            StatusCode::FORBIDDEN,
            "not a member of the admin group".into(),
        )),
        Err(_) => Err(unauthorized()),
    }
}

/// The status document (`serval status` prints it).
pub(super) fn status(state: &AdminState) -> Value {
    let unix = |t: std::time::SystemTime| {
        t.duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0)
    };
    let services: Vec<Value> = state
        .services()
        .iter()
        .map(|s| {
            json!({
                "name": s.name(),
                "listen": s.listen_addrs().iter().map(ToString::to_string).collect::<Vec<_>>(),
                "started_at": unix(s.started_at()),
                "connections": s.connections(),
                "load": s.load_summary(),
            })
        })
        .collect();
    let process = crate::metrics::ProcessStat::read();
    let listen: Vec<String> = state
        .inner
        .listen
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .iter()
        .map(ToString::to_string)
        .collect();
    json!({
        "version": crate::VERSION,
        "started_at": unix(state.inner.started_at),
        "uptime_seconds": state.inner.started_at.elapsed().map(|d| d.as_secs()).unwrap_or(0),
        "admin": { "listen": listen },
        "services": services,
        "process": { "rss_bytes": process.rss_bytes, "cpu_seconds": process.cpu_seconds, "open_fds": process.open_fds },
    })
}

async fn status_handler(
    State(state): State<AdminState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    authorize(&state, peer.ip(), &headers, false).await?;
    Ok(Json(status(&state)))
}

async fn list_users(
    State(state): State<AdminState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    authorize(&state, peer.ip(), &headers, false).await?;
    let st = state.clone();
    let users = blocking(move || st.inner.directory.list_users())
        .await
        .map_err(internal)?
        .map_err(|e| internal(super::AdminError::Internal(e.to_string())))?;
    Ok(Json(json!({ "users": users })))
}

#[derive(serde::Deserialize)]
struct NewUserJson {
    name: String,
    password: Option<String>,
    #[serde(default)]
    full_name: String,
    #[serde(default)]
    email: String,
    kind: Option<crate::directory::PrincipalKind>,
}

async fn add_user(
    State(state): State<AdminState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Json(body): Json<NewUserJson>,
) -> Result<Response, ApiError> {
    let actor = authorize(&state, peer.ip(), &headers, true).await?;
    let st = state.clone();
    let result = blocking(move || {
        st.inner.directory.add_user(&NewUser {
            name: &body.name,
            password: body.password.as_deref(),
            full_name: &body.full_name,
            email: &body.email,
            kind: body.kind,
        })
    })
    .await
    .map_err(internal)?;
    match result {
        Ok(user) => {
            tracing::info!(admin = %actor, user = %user.name, "user added through the API");
            Ok((StatusCode::CREATED, Json(json!({ "user": user }))).into_response())
        }
        Err(e @ crate::directory::DirectoryError::UserExists(_)) => {
            Err(ApiError(StatusCode::CONFLICT, e.to_string()))
        }
        Err(e @ crate::directory::DirectoryError::Store(_)) => {
            Err(internal(super::AdminError::Internal(e.to_string())))
        }
        Err(e) => Err(ApiError(StatusCode::UNPROCESSABLE_ENTITY, e.to_string())),
    }
}

async fn delete_user(
    State(state): State<AdminState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let actor = authorize(&state, peer.ip(), &headers, true).await?;
    let st = state.clone();
    let n = name.clone();
    match blocking(move || st.inner.directory.delete_user(&n))
        .await
        .map_err(internal)?
    {
        Ok(()) => {
            tracing::info!(admin = %actor, user = %name, "user deleted through the API");
            Ok(StatusCode::NO_CONTENT.into_response())
        }
        Err(e @ crate::directory::DirectoryError::NoSuchUser(_)) => {
            Err(ApiError(StatusCode::NOT_FOUND, e.to_string()))
        }
        Err(e) => Err(internal(super::AdminError::Internal(e.to_string()))),
    }
}

async fn list_groups(
    State(state): State<AdminState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    authorize(&state, peer.ip(), &headers, false).await?;
    let st = state.clone();
    let groups = blocking(move || st.inner.directory.list_groups())
        .await
        .map_err(internal)?
        .map_err(|e| internal(super::AdminError::Internal(e.to_string())))?;
    Ok(Json(json!({ "groups": groups })))
}

async fn service_json(
    State(state): State<AdminState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    authorize(&state, peer.ip(), &headers, false).await?;
    let service = state
        .service(&name)
        .ok_or_else(|| ApiError(StatusCode::NOT_FOUND, format!("no service named `{name}`")))?;
    let detail = service
        .admin_panel()
        .map(|p| p.json())
        .unwrap_or(Value::Null);
    Ok(Json(json!({
        "name": service.name(),
        "listen": service.listen_addrs().iter().map(ToString::to_string).collect::<Vec<_>>(),
        "connections": service.connections(),
        "detail": detail,
    })))
}

/// Runs a service page's action, as its form would: the JSON object's fields are the form's.
async fn service_action(
    State(state): State<AdminState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(name): Path<String>,
    Json(fields): Json<serde_json::Map<String, Value>>,
) -> Result<Json<Value>, ApiError> {
    let who = authorize(&state, peer.ip(), &headers, true).await?;
    let service = state
        .service(&name)
        .ok_or_else(|| ApiError(StatusCode::NOT_FOUND, format!("no service named `{name}`")))?;
    let panel = service.admin_panel().ok_or_else(|| {
        ApiError(
            StatusCode::NOT_FOUND,
            format!("service `{name}` has no actions"),
        )
    })?;
    let form: Vec<(String, String)> = fields
        .into_iter()
        .map(|(k, v)| {
            let text = match v {
                Value::String(s) => s,
                other => other.to_string(),
            };
            (k, text)
        })
        .collect();
    match panel.handle_action(&form) {
        Ok(message) => {
            tracing::info!(service = %name, user = %who, %message, "admin action");
            Ok(Json(json!({ "message": message })))
        }
        Err(error) => Err(ApiError(StatusCode::BAD_REQUEST, error)),
    }
}

fn internal(e: super::AdminError) -> ApiError {
    if let super::AdminError::Internal(detail) = &e {
        tracing::error!(error = %detail, "admin API request failed");
    }
    ApiError(
        StatusCode::INTERNAL_SERVER_ERROR,
        "internal error; see the server log".into(),
    )
}
