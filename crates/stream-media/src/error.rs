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

    /// An equal copy, for errors stored once in a shared packet chunk and returned to every session that
    /// reaches them. `MediaError` is not `Clone` because `std::io::Error` is not: an I/O error is rebuilt
    /// with the same kind and message (its OS error code and source chain are not kept).
    pub(crate) fn rebuild(&self) -> MediaError {
        match self {
            MediaError::Io(e) => MediaError::Io(std::io::Error::new(e.kind(), e.to_string())),
            MediaError::Truncated {
                what,
                offset,
                need,
                have,
            } => MediaError::Truncated {
                what,
                offset: *offset,
                need: *need,
                have: *have,
            },
            MediaError::Corrupt {
                box_type,
                offset,
                why,
            } => MediaError::Corrupt {
                box_type: box_type.clone(),
                offset: *offset,
                why: why.clone(),
            },
            MediaError::LimitExceeded { what, value, limit } => MediaError::LimitExceeded {
                what,
                value: *value,
                limit: *limit,
            },
            MediaError::Unsupported { reason } => MediaError::Unsupported {
                reason: reason.clone(),
            },
            MediaError::NoPlayableTrack { reasons } => MediaError::NoPlayableTrack {
                reasons: reasons.clone(),
            },
            MediaError::NoSuchTrack { track_id } => MediaError::NoSuchTrack {
                track_id: *track_id,
            },
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rebuilt_errors_read_the_same() {
        let errors = [
            MediaError::Io(std::io::Error::new(
                std::io::ErrorKind::PermissionDenied,
                "no access",
            )),
            MediaError::Truncated {
                what: "sample data",
                offset: 7,
                need: 9,
                have: 1,
            },
            MediaError::corrupt("stsz", 12, "bad"),
            MediaError::LimitExceeded {
                what: "x",
                value: 2,
                limit: 1,
            },
            MediaError::unsupported("fragmented"),
            MediaError::NoPlayableTrack {
                reasons: vec!["a".into(), "b".into()],
            },
            MediaError::NoSuchTrack { track_id: 3 },
        ];
        for error in &errors {
            let copy = error.rebuild();
            assert_eq!(copy.to_string(), error.to_string());
            if !matches!(error, MediaError::Io(_)) {
                assert_eq!(format!("{copy:?}"), format!("{error:?}"));
            }
            assert_eq!(copy.is_unsupported(), error.is_unsupported());
        }
        let MediaError::Io(copy) = errors[0].rebuild() else {
            panic!("not an I/O error")
        };
        assert_eq!(copy.kind(), std::io::ErrorKind::PermissionDenied);
    }
}
