//! Splitting length-prefixed NAL units (the "AVCC"/"HVCC" sample layout of ISO 14496-15) out of a sample.

use bytes::Bytes;

/// Why a sample's NAL framing is broken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NalFramingError {
    #[error("NAL length field at byte {at} is cut off")]
    TruncatedLength { at: usize },
    #[error("NAL at byte {at} declares {declared} bytes but only {available} remain")]
    Overrun {
        at: usize,
        declared: usize,
        available: usize,
    },
    #[error("NAL length size {0} is not 1, 2 or 4")]
    BadLengthSize(u8),
}

/// The NAL units of a sample whose NALs are each prefixed by a `length_size`-byte big-endian length.
/// Returned as cheap slices of `sample`; empty NALs are dropped.
pub fn split_length_prefixed(
    sample: &Bytes,
    length_size: u8,
) -> Result<Vec<Bytes>, NalFramingError> {
    let width = match length_size {
        1 | 2 | 4 => usize::from(length_size),
        other => return Err(NalFramingError::BadLengthSize(other)),
    };
    let mut nals = Vec::new();
    let mut pos = 0usize;
    // Bounded: every iteration advances `pos` by at least `width` bytes.
    while pos < sample.len() {
        let len_bytes = sample
            .get(pos..pos + width)
            .ok_or(NalFramingError::TruncatedLength { at: pos })?;
        let declared = len_bytes
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
        let start = pos + width;
        let available = sample.len() - start;
        if declared > available {
            return Err(NalFramingError::Overrun {
                at: pos,
                declared,
                available,
            });
        }
        if declared > 0 {
            nals.push(sample.slice(start..start + declared));
        }
        pos = start + declared;
    }
    Ok(nals)
}
