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
    #[error("request line exceeds {limit} bytes")]
    UriTooLong { limit: usize },
    #[error("a response arrived where a request was expected")]
    UnexpectedResponse,
}

impl FramingError {
    /// The RTSP status answered before the connection is closed: 414 for a request line that
    /// never ends (an over-long URI), 413 for an over-long body, 400 for the rest.
    pub fn status(&self) -> rtsp_types::StatusCode {
        match self {
            FramingError::UriTooLong { .. } => rtsp_types::StatusCode::RequestURITooLong,
            FramingError::BodyTooLarge { .. } => rtsp_types::StatusCode::RequestMessageBodyTooLarge,
            _ => rtsp_types::StatusCode::BadRequest,
        }
    }
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
            Err(too_large(buf))
        } else {
            Ok(Decoded::NeedMore)
        };
    };
    if head_len > MAX_HEAD_BYTES {
        return Err(too_large(buf));
    }
    let raw_head = buf.get(..head_len).unwrap_or_default();
    // Many RTSP clients and servers end lines with a bare LF; tolerate it by parsing a copy of
    // the head with CRLF line ends (rtsp-types only takes CRLF).
    let crlf_head = with_crlf_line_ends(raw_head);
    let head: &[u8] = crlf_head.as_deref().unwrap_or(raw_head);
    let facts = scan_head(head)?;
    let total = head_len
        .checked_add(facts.content_length)
        .ok_or(FramingError::BodyTooLarge {
            declared: facts.content_length,
            limit: MAX_BODY_BYTES,
        })?;
    let Some(body) = buf.get(head_len..total) else {
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
    let mut message = Vec::with_capacity(head.len() + body.len());
    message.extend_from_slice(head);
    message.extend_from_slice(body);
    if let Some(cseq) = &facts.cseq {
        // RFC 2326 §12.17: CSeq is a decimal sequence number; anything else cannot be matched
        // to its response by the client.
        if !cseq.bytes().all(|b| b.is_ascii_digit()) || cseq.parse::<u32>().is_err() {
            return Ok(Decoded::Rejected {
                status: RejectStatus::BadRequest,
                cseq: None,
                consumed: total,
            });
        }
    }
    match Message::<Vec<u8>>::parse(&message) {
        Ok((Message::Request(request), consumed)) if consumed == message.len() => {
            Ok(Decoded::Request {
                request: Box::new(request),
                consumed: total,
            })
        }
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

/// Length of the head including its terminating empty line, if the buffer holds it. The empty
/// line may end in CRLF or a bare LF (`\r\n\r\n`, `\n\n`, `\r\n\n`, `\n\r\n`).
fn find_head_end(buf: &[u8]) -> Option<usize> {
    let window = buf.get(..MAX_HEAD_BYTES + 4).unwrap_or(buf);
    let mut search = 0;
    while let Some(pos) = window.get(search..)?.iter().position(|&b| b == b'\n') {
        let after = search + pos + 1;
        match window.get(after..) {
            Some([b'\n', ..]) => return Some(after + 1),
            Some([b'\r', b'\n', ..]) => return Some(after + 2),
            Some([] | [b'\r']) => return None,
            _ => search = after,
        }
    }
    None
}

/// The head with every bare LF turned into CRLF, or `None` when it already uses CRLF only.
fn with_crlf_line_ends(head: &[u8]) -> Option<Vec<u8>> {
    let bare_lf = head
        .iter()
        .enumerate()
        .any(|(i, &b)| b == b'\n' && (i == 0 || head.get(i - 1) != Some(&b'\r')));
    if !bare_lf {
        return None;
    }
    let mut out = Vec::with_capacity(head.len() + 16);
    for (i, &b) in head.iter().enumerate() {
        if b == b'\n' && (i == 0 || head.get(i - 1) != Some(&b'\r')) {
            out.push(b'\r');
        }
        out.push(b);
    }
    Some(out)
}

/// The error for a head over the limit: a request line that never ends is an over-long URI
/// (414), anything else a head too large (400).
fn too_large(buf: &[u8]) -> FramingError {
    let first_line_ends = buf.get(..MAX_HEAD_BYTES).unwrap_or(buf).contains(&b'\n');
    if first_line_ends {
        FramingError::HeadTooLarge {
            limit: MAX_HEAD_BYTES,
        }
    } else {
        FramingError::UriTooLong {
            limit: MAX_HEAD_BYTES,
        }
    }
}
