//! RTSP tunnelled in HTTP, the QuickTime scheme (also used by ffmpeg `-rtsp_transport http`
//! and GStreamer `rtsph://`): the client opens an HTTP GET, answered with
//! `application/x-rtsp-tunnelled` and then carrying RTSP responses and `$`-interleaved RTP down
//! to the client, and an HTTP POST whose body is the client's RTSP requests in base64; the two
//! are bound by the same `x-sessioncookie` header. The POST is never answered.
//!
//! Pure: [`classify`] looks at a connection's first bytes and [`Base64Stream`] decodes the POST
//! body as it arrives in arbitrary pieces. The binding of GET and POST lives in the driver.

use base64::Engine as _;
use bytes::BytesMut;

/// Longest HTTP request head accepted (same as an RTSP head).
pub const MAX_HTTP_HEAD_BYTES: usize = crate::rtsp::framing::MAX_HEAD_BYTES;
/// Most header lines in the HTTP request.
pub const MAX_HTTP_HEADERS: usize = crate::rtsp::framing::MAX_HEADERS;
/// Longest `x-sessioncookie` kept; clients send a 22-character GUID-like token.
pub const MAX_COOKIE_BYTES: usize = 128;
/// The content type of both tunnel halves.
pub const TUNNEL_CONTENT_TYPE: &str = "application/x-rtsp-tunnelled";

/// What a connection's first bytes are.
#[derive(Debug, PartialEq, Eq)]
pub enum Classified {
    /// Plain RTSP (or `$` data): hand the bytes to the RTSP framing.
    Rtsp,
    /// A complete HTTP request head opening one half of a tunnel; `consumed` bytes of head.
    Tunnel {
        half: TunnelHalf,
        cookie: String,
        consumed: usize,
    },
    /// Not decided yet.
    NeedMore,
}

/// Which half of the tunnel an HTTP request opens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TunnelHalf {
    /// Server to client: responses and interleaved packets.
    Get,
    /// Client to server: base64 requests.
    Post,
}

/// Why an HTTP request cannot open a tunnel; the driver answers with [`TunnelError::http_status`]
/// and closes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TunnelError {
    #[error("HTTP head exceeds {limit} bytes")]
    HeadTooLarge { limit: usize },
    #[error("HTTP request has over {limit} header lines")]
    TooManyHeaders { limit: usize },
    #[error("HTTP method `{0}` cannot open a tunnel")]
    Method(String),
    #[error("no x-sessioncookie header")]
    NoCookie,
    #[error("x-sessioncookie over {limit} bytes or with unprintable characters")]
    BadCookie { limit: usize },
    #[error("tunnel body is not base64 (byte {byte:#04x})")]
    NotBase64 { byte: u8 },
}

impl TunnelError {
    /// The HTTP status line sent before closing.
    pub fn http_status(&self) -> &'static str {
        match self {
            TunnelError::HeadTooLarge { .. } | TunnelError::TooManyHeaders { .. } => {
                "431 Request Header Fields Too Large"
            }
            TunnelError::Method(_) => "405 Method Not Allowed",
            _ => "400 Bad Request",
        }
    }
}

/// Looks at the first bytes of a connection on an RTSP port.
pub fn classify(buf: &[u8]) -> Result<Classified, TunnelError> {
    if buf.first() == Some(&b'$') {
        return Ok(Classified::Rtsp);
    }
    // A bare LF ends a line too (RTSP clients that send them get answered, not left waiting).
    let Some(line_end) = buf.iter().position(|&b| b == b'\n') else {
        // Without a whole request line over the limit, only GET and POST can be HTTP; anything
        // else goes to the RTSP framing, which answers it in RTSP (414 Request-URI Too Long).
        let http_method = buf.starts_with(b"GET ") || buf.starts_with(b"POST ");
        return if buf.len() > MAX_HTTP_HEAD_BYTES && http_method {
            Err(TunnelError::HeadTooLarge {
                limit: MAX_HTTP_HEAD_BYTES,
            })
        } else if buf.len() > MAX_HTTP_HEAD_BYTES {
            Ok(Classified::Rtsp)
        } else {
            Ok(Classified::NeedMore)
        };
    };
    let line = buf.get(..line_end).unwrap_or_default();
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if !line.ends_with(b" HTTP/1.0") && !line.ends_with(b" HTTP/1.1") {
        return Ok(Classified::Rtsp);
    }
    let Some(head_len) = buf
        .get(..MAX_HTTP_HEAD_BYTES.min(buf.len()))
        .and_then(|window| window.windows(4).position(|w| w == b"\r\n\r\n"))
        .map(|pos| pos + 4)
    else {
        return if buf.len() >= MAX_HTTP_HEAD_BYTES {
            Err(TunnelError::HeadTooLarge {
                limit: MAX_HTTP_HEAD_BYTES,
            })
        } else {
            Ok(Classified::NeedMore)
        };
    };
    let head = String::from_utf8_lossy(buf.get(..head_len).unwrap_or_default());
    let mut lines = head.split("\r\n").filter(|l| !l.is_empty());
    let request_line = lines.next().unwrap_or_default();
    let method = request_line.split(' ').next().unwrap_or_default();
    let half = match method {
        "GET" => TunnelHalf::Get,
        "POST" => TunnelHalf::Post,
        other => return Err(TunnelError::Method(other.chars().take(16).collect())),
    };
    let mut cookie = None;
    for (count, line) in lines.enumerate() {
        if count >= MAX_HTTP_HEADERS {
            return Err(TunnelError::TooManyHeaders {
                limit: MAX_HTTP_HEADERS,
            });
        }
        if let Some((name, value)) = line.split_once(':') {
            if name.trim().eq_ignore_ascii_case("x-sessioncookie") {
                cookie = Some(value.trim());
            }
        }
    }
    let cookie = cookie.ok_or(TunnelError::NoCookie)?;
    if cookie.is_empty()
        || cookie.len() > MAX_COOKIE_BYTES
        || !cookie.bytes().all(|b| b.is_ascii_graphic())
    {
        return Err(TunnelError::BadCookie {
            limit: MAX_COOKIE_BYTES,
        });
    }
    Ok(Classified::Tunnel {
        half,
        cookie: cookie.to_owned(),
        consumed: head_len,
    })
}

/// The answer to the GET half; the POST half gets none.
pub fn get_response(server: &str) -> String {
    format!(
        "HTTP/1.0 200 OK\r\nServer: {server}\r\nConnection: close\r\nCache-Control: no-store\r\n\
         Pragma: no-cache\r\nContent-Type: {TUNNEL_CONTENT_TYPE}\r\n\r\n"
    )
}

/// An HTTP refusal sent before closing.
pub fn error_response(error: &TunnelError, server: &str) -> String {
    format!(
        "HTTP/1.0 {}\r\nServer: {server}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
        error.http_status()
    )
}

/// Decodes a base64 body that arrives in arbitrary pieces. Clients encode each RTSP request
/// separately, so `=` padding may appear mid-stream; decoding goes quad by quad, and line
/// breaks some clients insert are skipped.
#[derive(Debug, Default)]
pub struct Base64Stream {
    quad: [u8; 4],
    filled: usize,
}

impl Base64Stream {
    pub fn new() -> Base64Stream {
        Base64Stream::default()
    }

    /// Appends the bytes `input` decodes to into `out`; a partial quad waits for the next call.
    pub fn push(&mut self, input: &[u8], out: &mut BytesMut) -> Result<(), TunnelError> {
        for &byte in input {
            if byte.is_ascii_whitespace() {
                continue;
            }
            if !(byte.is_ascii_alphanumeric() || matches!(byte, b'+' | b'/' | b'=')) {
                return Err(TunnelError::NotBase64 { byte });
            }
            let Some(slot) = self.quad.get_mut(self.filled) else {
                return Err(TunnelError::NotBase64 { byte });
            };
            *slot = byte;
            self.filled += 1;
            if self.filled == self.quad.len() {
                self.filled = 0;
                let mut decoded = [0u8; 3];
                let n = base64::engine::general_purpose::STANDARD
                    .decode_slice(self.quad, &mut decoded)
                    .map_err(|_| TunnelError::NotBase64 { byte })?;
                out.extend_from_slice(decoded.get(..n).unwrap_or_default());
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The GET half as ffmpeg 5 sends it.
    const FFMPEG_GET: &[u8] = b"GET /a.mp4 HTTP/1.0\r\nx-sessioncookie: 6b8b4567327b23c6\r\n\
        Accept: application/x-rtsp-tunnelled\r\nPragma: no-cache\r\nCache-Control: no-cache\r\n\r\n";

    #[test]
    fn get_and_post_halves_are_recognised_with_their_cookie() {
        assert_eq!(
            classify(FFMPEG_GET),
            Ok(Classified::Tunnel {
                half: TunnelHalf::Get,
                cookie: "6b8b4567327b23c6".into(),
                consumed: FFMPEG_GET.len()
            })
        );
        let post =
            b"POST /a.mp4 HTTP/1.0\r\nx-sessioncookie: abc\r\nContent-Length: 32767\r\n\r\nT1BUSU";
        assert!(matches!(
            classify(post),
            Ok(Classified::Tunnel {
                half: TunnelHalf::Post,
                consumed: 69,
                ..
            })
        ));
    }

    #[test]
    fn rtsp_and_partial_input_are_told_apart() {
        assert_eq!(
            classify(b"GET_PARAMETER rtsp://h/a.mp4 RTSP/1.0\r\n"),
            Ok(Classified::Rtsp)
        );
        assert_eq!(
            classify(b"OPTIONS * RTSP/1.0\r\nCSeq: 1\r\n\r\n"),
            Ok(Classified::Rtsp)
        );
        assert_eq!(classify(b"$\x01\x00"), Ok(Classified::Rtsp));
        assert_eq!(classify(b"GET /a.mp4 HT"), Ok(Classified::NeedMore));
        assert_eq!(
            classify(b"GET /a.mp4 HTTP/1.0\r\nx-sess"),
            Ok(Classified::NeedMore)
        );
        // Every split point of a GET gives NeedMore, then the same answer.
        for cut in 0..FFMPEG_GET.len() {
            let prefix = &FFMPEG_GET[..cut];
            assert!(matches!(
                classify(prefix),
                Ok(Classified::NeedMore) | Ok(Classified::Rtsp)
            ));
        }
    }

    #[test]
    fn bad_tunnel_heads_are_refused() {
        assert_eq!(
            classify(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"),
            Err(TunnelError::NoCookie)
        );
        assert_eq!(
            classify(b"PUT / HTTP/1.1\r\n\r\n"),
            Err(TunnelError::Method("PUT".into()))
        );
        let long = format!(
            "GET / HTTP/1.0\r\nx-sessioncookie: {}\r\n\r\n",
            "a".repeat(200)
        );
        assert!(matches!(
            classify(long.as_bytes()),
            Err(TunnelError::BadCookie { .. })
        ));
        let many = format!("GET / HTTP/1.0\r\n{}\r\n", "A: b\r\n".repeat(70));
        assert!(matches!(
            classify(many.as_bytes()),
            Err(TunnelError::TooManyHeaders { .. })
        ));
        let huge = format!("GET / HTTP/1.0\r\nA: {}", "b".repeat(9000));
        assert!(matches!(
            classify(huge.as_bytes()),
            Err(TunnelError::HeadTooLarge { .. })
        ));
        assert_eq!(
            error_response(&TunnelError::NoCookie, "S").lines().next(),
            Some("HTTP/1.0 400 Bad Request")
        );
    }

    #[test]
    fn base64_body_decodes_across_any_split_and_mid_stream_padding() {
        let requests = [
            "OPTIONS rtsp://h/a.mp4 RTSP/1.0\r\nCSeq: 1\r\n\r\n",
            "DESCRIBE rtsp://h/a.mp4 RTSP/1.0\r\nCSeq: 2\r\n\r\n",
        ];
        let encoded: String = requests
            .iter()
            .map(|r| base64::engine::general_purpose::STANDARD.encode(r))
            .collect::<Vec<_>>()
            .join("\r\n");
        let expected = requests.concat();
        for cut in 0..encoded.len() {
            let (a, b) = encoded.as_bytes().split_at(cut);
            let mut stream = Base64Stream::new();
            let mut out = BytesMut::new();
            stream.push(a, &mut out).unwrap();
            stream.push(b, &mut out).unwrap();
            assert_eq!(&out[..], expected.as_bytes(), "cut at {cut}");
        }
        let mut out = BytesMut::new();
        assert_eq!(
            Base64Stream::new().push(b"T1B*", &mut out),
            Err(TunnelError::NotBase64 { byte: b'*' })
        );
        assert!(Base64Stream::new().push(b"=AAA", &mut out).is_err());
    }
}
