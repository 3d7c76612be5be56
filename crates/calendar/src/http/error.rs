//! One place maps failures to HTTP status and CalDAV precondition bodies (RFC 4791 §1.3).

use crate::dav::response::error_body;
use crate::dav::xml::{NS_CALDAV, NS_DAV};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

#[derive(Debug, thiserror::Error)]
pub enum DavError {
    /// 401; each challenge becomes one `WWW-Authenticate` header, in order.
    #[error("authentication required")]
    Unauthorized { challenges: Vec<String> },
    /// 401 for a clear-text password from another host over plain HTTP; the challenges offer
    /// only what this connection may use (Digest).
    #[error("passwords are refused over plain HTTP from other hosts; use HTTPS or Digest")]
    InsecureAuth { challenges: Vec<String> },
    #[error("too many failed logins; retry in {retry_after_secs} s")]
    RateLimited { retry_after_secs: u64 },
    #[error("forbidden")]
    Forbidden,
    #[error("not found")]
    NotFound,
    #[error("method not allowed here")]
    MethodNotAllowed,
    #[error("conflict: {0}")]
    Conflict(&'static str),
    #[error("precondition failed")]
    PreconditionFailed,
    #[error("bad request: {0}")]
    BadRequest(String),
    #[error("{status} {ns}{element}: {detail}")]
    Precondition {
        status: StatusCode,
        ns: &'static str,
        element: &'static str,
        inner: String,
        detail: String,
    },
    #[error("internal error: {0}")]
    Internal(String),
    /// The store cannot be reached (PostgreSQL down): 503, retried by clients.
    #[error("the calendar store is unavailable: {0}")]
    Unavailable(String),
}

impl DavError {
    /// A CALDAV precondition refused with 403 (RFC 4791 §1.3).
    pub fn caldav(element: &'static str, detail: impl Into<String>) -> Self {
        Self::Precondition {
            status: StatusCode::FORBIDDEN,
            ns: NS_CALDAV,
            element,
            inner: String::new(),
            detail: detail.into(),
        }
    }

    pub fn dav(status: StatusCode, element: &'static str, detail: impl Into<String>) -> Self {
        Self::Precondition {
            status,
            ns: NS_DAV,
            element,
            inner: String::new(),
            detail: detail.into(),
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Self::Unauthorized { .. } | Self::InsecureAuth { .. } => StatusCode::UNAUTHORIZED,
            Self::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Forbidden => StatusCode::FORBIDDEN,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::PreconditionFailed => StatusCode::PRECONDITION_FAILED,
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Precondition { status, .. } => *status,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }
}

impl From<crate::store::StoreError> for DavError {
    fn from(error: crate::store::StoreError) -> Self {
        match error {
            crate::store::StoreError::Core(serval_core::store::StoreError::Unavailable(reason)) => {
                Self::Unavailable(reason)
            }
            other => Self::Internal(other.to_string()),
        }
    }
}

impl From<crate::dav::request::RequestError> for DavError {
    fn from(error: crate::dav::request::RequestError) -> Self {
        use crate::dav::request::RequestError as E;
        match error {
            E::UnsupportedCollation(name) => {
                Self::caldav("supported-collation", format!("collation `{name}`"))
            }
            E::InvalidFilter(reason) => Self::caldav("valid-filter", reason),
            E::InvalidTimeRange { value } => {
                Self::BadRequest(format!("invalid time-range `{value}`"))
            }
            E::UnsupportedReport(name) => Self::dav(
                StatusCode::FORBIDDEN,
                "supported-report",
                format!("REPORT {name}"),
            ),
            other => Self::BadRequest(other.to_string()),
        }
    }
}

impl IntoResponse for DavError {
    fn into_response(self) -> Response {
        let status = self.status();
        match &self {
            // Our fault: the detail goes to the log only.
            Self::Internal(detail) => {
                tracing::error!(error = %detail, "calendar request failed");
                return (status, "internal server error\n").into_response();
            }
            Self::Unavailable(detail) => {
                tracing::error!(error = %detail, "calendar store unavailable; answering 503 until it is back");
                let mut response =
                    (status, "the calendar store is unavailable; retry shortly\n").into_response();
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(5u64));
                return response;
            }
            _ => tracing::debug!(%status, error = %self, "calendar request refused"),
        }
        let mut response = match &self {
            Self::Precondition {
                ns,
                element,
                inner,
                detail,
                ..
            } => {
                let mut r = error_body(ns, element, inner, detail).into_response();
                r.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/xml; charset=utf-8"),
                );
                r
            }
            other => format!("{other}\n").into_response(),
        };
        *response.status_mut() = status;
        if let Self::Unauthorized { challenges } | Self::InsecureAuth { challenges } = &self {
            // Separate headers, not one comma-joined value: clients split schemes more
            // reliably that way (RFC 9110 §11.6.1 allows both).
            for challenge in challenges {
                if let Ok(value) = HeaderValue::from_str(challenge) {
                    response
                        .headers_mut()
                        .append(header::WWW_AUTHENTICATE, value);
                }
            }
        }
        if let Self::RateLimited { retry_after_secs } = &self {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(*retry_after_secs));
        }
        response
    }
}
