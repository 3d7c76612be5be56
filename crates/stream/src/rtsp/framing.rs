//! Framing of one RTSP connection's byte stream (RFC 2326 §10.12): requests and `$`-interleaved
//! binary frames share the buffer, so the decoder looks at the first byte, checks every size
//! against a named limit before trusting it, and says `NeedMore` until a whole unit is there.
//!
//! The head is parsed by `rtsp-types`; we run our own pre-pass first because that parser takes
//! any Content-Length and any number of headers, and answers RTSP/1.1 with a plain parse error
//! where a client deserves 505.

use rtsp_types::{Message, Method, Request};

/// Longest request head (request line plus headers) we buffer before refusing.
pub const MAX_HEAD_BYTES: usize = 8 * 1024;
/// Most header lines in one request; real clients send under 15.
pub const MAX_HEADERS: usize = 64;
/// Largest request body (SET_PARAMETER, ANNOUNCE bodies are small SDP or text).
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// One unit taken off the front of the buffer.
#[derive(Debug)]
pub enum Decoded<'a> {
    /// A complete, parsed request, and how many bytes it used.
    Request {
        request: Box<Request<Vec<u8>>>,
        consumed: usize,
    },
    /// A `$`-framed binary frame (RTCP from a TCP client, typically).
    Interleaved {
        channel: u8,
        payload: &'a [u8],
        consumed: usize,
    },
    /// A complete request we cannot serve; answer `status` (with the CSeq if we found one) and
    /// skip `consumed` bytes: the connection stays usable.
    Rejected {
        status: RejectStatus,
        cseq: Option<String>,
        consumed: usize,
    },
    /// Line ends between requests, dropped without an answer.
    Skip { consumed: usize },
    /// Not enough bytes yet.
    NeedMore,
}

/// Why a well-delimited request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RejectStatus {
    /// 505: an RTSP version other than 1.0.
    VersionNotSupported,
    /// 400: the head is not a valid RTSP request.
    BadRequest,
}

/// A framing error after which the stream cannot be resynchronised; the connection is closed
/// after a 400 answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FramingError {
    #[error("request head exceeds {limit} bytes without an empty line")]
    HeadTooLarge { limit: usize },
    #[error("request has {count} header lines, over the limit of {limit}")]
    TooManyHeaders { count: usize, limit: usize },
    #[error("Content-Length `{value}` is not a byte count")]
    BadContentLength { value: String },
    #[error("body of {declared} bytes is over the limit of {limit}")]
    BodyTooLarge { declared: usize, limit: usize },
    #[error("a response arrived where a request was expected")]
    UnexpectedResponse,
}

/// Takes one unit off the front of `buf`.
pub fn decode(buf: &[u8]) -> Result<Decoded<'_>, FramingError> {
    if let [b'$', channel, len_hi, len_lo, rest @ ..] = buf {
        let len = usize::from(u16::from_be_bytes([*len_hi, *len_lo]));
        return Ok(match rest.get(..len) {
            Some(payload) => Decoded::Interleaved {
                channel: *channel,
                payload,
                consumed: 4 + len,
            },
            None => Decoded::NeedMore,
        });
    }
    if buf.first() == Some(&b'$') {
        return Ok(Decoded::NeedMore);
    }
    // Clients may send a bare CRLF between requests (RFC 2326 §4 allows it as keep-alive noise).
    let leading_blank = buf
        .iter()
        .take_while(|b| **b == b'\r' || **b == b'\n')
        .count();
    if leading_blank > 0 {
        return Ok(Decoded::Skip {
            consumed: leading_blank,
        });
    }
    let Some(head_len) = find_head_end(buf) else {
        return if buf.len() > MAX_HEAD_BYTES {
            Err(FramingError::HeadTooLarge {
                limit: MAX_HEAD_BYTES,
            })
        } else {
            Ok(Decoded::NeedMore)
        };
    };
    if head_len > MAX_HEAD_BYTES {
        return Err(FramingError::HeadTooLarge {
            limit: MAX_HEAD_BYTES,
        });
    }
    let head = buf.get(..head_len).unwrap_or_default();
    let facts = scan_head(head)?;
    let total = head_len
        .checked_add(facts.content_length)
        .ok_or(FramingError::BodyTooLarge {
            declared: facts.content_length,
            limit: MAX_BODY_BYTES,
        })?;
    let Some(message) = buf.get(..total) else {
        return Ok(Decoded::NeedMore);
    };
    if facts.is_response {
        return Err(FramingError::UnexpectedResponse);
    }
    if !facts.version_is_1_0 {
        let status = if facts.looks_like_rtsp {
            RejectStatus::VersionNotSupported
        } else {
            RejectStatus::BadRequest
        };
        return Ok(Decoded::Rejected {
            status,
            cseq: facts.cseq,
            consumed: total,
        });
    }
    match Message::<Vec<u8>>::parse(message) {
        Ok((Message::Request(request), consumed)) if consumed == total => Ok(Decoded::Request {
            request: Box::new(request),
            consumed,
        }),
        _ => Ok(Decoded::Rejected {
            status: RejectStatus::BadRequest,
            cseq: facts.cseq,
            consumed: total,
        }),
    }
}

impl Decoded<'_> {
    /// Bytes to drop from the buffer after handling this unit.
    pub fn consumed(&self) -> usize {
        match self {
            Decoded::Request { consumed, .. }
            | Decoded::Interleaved { consumed, .. }
            | Decoded::Rejected { consumed, .. }
            | Decoded::Skip { consumed } => *consumed,
            Decoded::NeedMore => 0,
        }
    }

    /// The method, for requests.
    pub fn method(&self) -> Option<&Method> {
        match self {
            Decoded::Request { request, .. } => Some(request.method()),
            _ => None,
        }
    }
}

/// What the pre-pass learns from a complete head.
struct HeadFacts {
    content_length: usize,
    cseq: Option<String>,
    version_is_1_0: bool,
    looks_like_rtsp: bool,
    is_response: bool,
}

fn scan_head(head: &[u8]) -> Result<HeadFacts, FramingError> {
    let text = String::from_utf8_lossy(head);
    let mut lines = text.split("\r\n");
    let request_line = lines.next().unwrap_or_default();
    let is_response = request_line.starts_with("RTSP/");
    let version = request_line.rsplit(' ').next().unwrap_or_default();
    let mut facts = HeadFacts {
        content_length: 0,
        cseq: None,
        version_is_1_0: version == "RTSP/1.0",
        looks_like_rtsp: version.starts_with("RTSP/") && request_line.split(' ').count() == 3,
        is_response,
    };
    let mut count = 0usize;
    for line in lines.filter(|l| !l.is_empty()) {
        count += 1;
        if count > MAX_HEADERS {
            return Err(FramingError::TooManyHeaders {
                count,
                limit: MAX_HEADERS,
            });
        }
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.trim().eq_ignore_ascii_case("content-length") {
            let declared: usize = value.parse().map_err(|_| FramingError::BadContentLength {
                value: value.chars().take(32).collect(),
            })?;
            if declared > MAX_BODY_BYTES {
                return Err(FramingError::BodyTooLarge {
                    declared,
                    limit: MAX_BODY_BYTES,
                });
            }
            facts.content_length = declared;
        } else if name.trim().eq_ignore_ascii_case("cseq") && value.len() <= 16 && !value.is_empty()
        {
            facts.cseq = Some(value.to_owned());
        }
    }
    Ok(facts)
}

/// Length of the head including its terminating empty line, if the buffer holds it.
fn find_head_end(buf: &[u8]) -> Option<usize> {
    let window = buf.get(..MAX_HEAD_BYTES + 4).unwrap_or(buf);
    window
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|pos| pos + 4)
}
