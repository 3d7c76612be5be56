//! The one place that maps what went wrong with a request to the RTSP status the client sees.
//!
//! Client mistakes get the precise RFC 2326 status and a debug line; our own faults get a bare
//! 500 and an error log with the detail (which never goes to the client).

use rtsp_types::StatusCode;

use crate::library::CatalogError;
use crate::rtsp::range::RangeError;
use crate::rtsp::session::PlayError;
use crate::rtsp::transport::TransportError;

/// Why a request was not served.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RtspError {
    #[error("malformed request: {0}")]
    Malformed(String),
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    #[error("no track `{0}` in this presentation")]
    NoSuchTrack(String),
    #[error("session `{0}` not found")]
    UnknownSession(String),
    #[error("{method} is not valid in state {state}")]
    NotValidInState {
        method: &'static str,
        state: &'static str,
    },
    #[error("aggregate operation not allowed: {0}")]
    AggregateNotAllowed(&'static str),
    #[error("only aggregate operation allowed on a session of {n_tracks} tracks")]
    OnlyAggregateAllowed { n_tracks: usize },
    #[error(transparent)]
    Transport(#[from] TransportError),
    #[error(transparent)]
    Range(#[from] RangeError),
    #[error("range start is beyond the end of the movie")]
    RangeBeyondEnd,
    #[error("`{header}: {value}` is not served (only normal-speed playback)")]
    HeaderNotValid { header: &'static str, value: String },
    #[error("SET_PARAMETER parameters are not understood")]
    ParameterNotUnderstood,
    #[error("method `{0}` is not implemented")]
    NotImplemented(String),
    #[error("client {client} already holds {limit} sessions, the per-client limit")]
    TooManySessions {
        client: std::net::IpAddr,
        limit: usize,
    },
    #[error("the request URL names `{url_movie}` but the session plays another movie")]
    SessionOfAnotherUrl { url_movie: String },
    #[error("not enough bandwidth: {in_use} + {wanted} bit/s over the limit of {limit}")]
    NotEnoughBandwidth {
        in_use: u64,
        wanted: u64,
        limit: u64,
    },
}

impl RtspError {
    /// The status line the client gets.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Malformed(_) => StatusCode::BadRequest,
            Self::Catalog(CatalogError::Forbidden(_)) => StatusCode::Forbidden,
            Self::Catalog(CatalogError::NotFound(_)) | Self::NoSuchTrack(_) => StatusCode::NotFound,
            Self::Catalog(CatalogError::Unsupported(_)) => StatusCode::UnsupportedMediaType,
            Self::Catalog(CatalogError::Broken(_)) => StatusCode::InternalServerError,
            // A session is only found at the URL it was set up for, so a grant for one movie
            // cannot be used to play another.
            Self::UnknownSession(_) | Self::SessionOfAnotherUrl { .. } => {
                StatusCode::SessionNotFound
            }
            Self::NotValidInState { .. } => StatusCode::MethodNotValidInThisState,
            Self::AggregateNotAllowed(_) => StatusCode::AggregateOperationNotAllowed,
            Self::OnlyAggregateAllowed { .. } => StatusCode::OnlyAggregateOperationAllowed,
            Self::Transport(_) => StatusCode::UnsupportedTransport,
            Self::Range(_) | Self::RangeBeyondEnd => StatusCode::InvalidRange,
            Self::HeaderNotValid { .. } => StatusCode::HeaderFieldNotValidForResource,
            Self::ParameterNotUnderstood => StatusCode::ParameterNotUnderstood,
            Self::NotImplemented(_) => StatusCode::NotImplemented,
            Self::NotEnoughBandwidth { .. } | Self::TooManySessions { .. } => {
                StatusCode::NotEnoughBandwidth
            }
        }
    }

    /// True when the fault is ours (logged as an error rather than a client mistake).
    pub fn is_server_fault(&self) -> bool {
        u16::from(self.status()) >= 500 && !matches!(self, Self::NotImplemented(_))
    }
}

impl From<PlayError> for RtspError {
    fn from(error: PlayError) -> Self {
        match error {
            PlayError::RangeBeyondEnd { .. } => RtspError::RangeBeyondEnd,
            PlayError::Media(error) => RtspError::Catalog(error),
        }
    }
}
