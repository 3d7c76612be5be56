//! Errors of the media layer: one enum, each variant carrying what a person needs to find the problem.

/// Everything that can go wrong while demuxing a movie or packetizing its samples.
#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    /// The underlying file could not be read.
    #[error("I/O error reading media: {0}")]
    Io(#[from] std::io::Error),
    /// The file ends before a structure it declares.
    #[error(
        "truncated media: {what} at offset {offset} needs {need} bytes but only {have} remain"
    )]
    Truncated {
        what: &'static str,
        offset: u64,
        need: u64,
        have: u64,
    },
    /// A box holds values that cannot be right.
    #[error("corrupt `{box_type}` box at offset {offset}: {why}")]
    Corrupt {
        box_type: String,
        offset: u64,
        why: String,
    },
    /// A structure exceeds one of our named memory/size limits.
    #[error("`{what}` is {value}, over the limit of {limit}")]
    LimitExceeded {
        what: &'static str,
        value: u64,
        limit: u64,
    },
    /// A well-formed file that we do not stream (fragmented MP4, unknown codec, ...): RTSP 415.
    #[error("unsupported media: {reason}")]
    Unsupported { reason: String },
    /// No track of the movie can be streamed; one reason per track.
    #[error("no playable track: {}", reasons.join("; "))]
    NoPlayableTrack { reasons: Vec<String> },
    /// The caller asked for a track that is not selected for streaming.
    #[error("track {track_id} is not a streamed track of this movie")]
    NoSuchTrack { track_id: u32 },
}

impl MediaError {
    /// True when the file is fine but not something we stream (maps to RTSP 415 Unsupported Media Type).
    pub fn is_unsupported(&self) -> bool {
        matches!(
            self,
            MediaError::Unsupported { .. } | MediaError::NoPlayableTrack { .. }
        )
    }

    pub(crate) fn corrupt(
        box_type: impl Into<String>,
        offset: u64,
        why: impl Into<String>,
    ) -> Self {
        MediaError::Corrupt {
            box_type: box_type.into(),
            offset,
            why: why.into(),
        }
    }

    pub(crate) fn unsupported(reason: impl Into<String>) -> Self {
        MediaError::Unsupported {
            reason: reason.into(),
        }
    }
}
