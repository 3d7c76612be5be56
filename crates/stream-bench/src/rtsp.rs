//! The RTSP 1.0 pieces the load client needs, as pure functions over bytes: request text,
//! splitting a receive buffer into responses and `$`-interleaved frames (via `rtsp-types`),
//! and reading the tracks (control URL, clock rate) out of a DESCRIBE answer (via `sdp-types`).
//! No sockets and no clock here; `session` drives them.

use rtsp_types::headers::{self, Session, Transport, Transports};
use rtsp_types::{Message, ParseError, Response};

/// Largest response head plus body we buffer; a server sending more without completing a
/// message is broken (an SDP of a few tracks is a few KiB).
pub const MAX_MESSAGE_BYTES: usize = 256 * 1024;

/// Errors of the client side of the protocol, each naming what the server did.
#[derive(Debug, thiserror::Error)]
pub enum RtspClientError {
    #[error("unparsable RTSP message from the server")]
    Malformed,
    #[error("server sent {buffered} bytes without completing a message (limit {limit})")]
    MessageTooLarge { buffered: usize, limit: usize },
    #[error("{method} answered {status}")]
    Status { method: &'static str, status: u16 },
    #[error("{method} response lacks the {header} header")]
    MissingHeader {
        method: &'static str,
        header: &'static str,
    },
    #[error("DESCRIBE answer is not SDP: {0}")]
    Sdp(String),
    #[error("SDP lists no track with a control URL and a clock rate")]
    NoTracks,
}

/// One message taken from the front of the receive buffer.
#[derive(Debug)]
pub enum Incoming<'a> {
    Response {
        response: Response<&'a [u8]>,
        consumed: usize,
    },
    Interleaved {
        channel: u8,
        payload: &'a [u8],
        consumed: usize,
    },
    /// A request from the server (rare: some servers send keep-alives); skipped.
    Ignored {
        consumed: usize,
    },
    NeedMore,
}

/// Takes the first complete message from `buf`.
pub fn decode(buf: &[u8]) -> Result<Incoming<'_>, RtspClientError> {
    // Interleaved frames are by far the most common message once playing; read their 4-byte
    // header directly rather than going through the general parser, which builds header maps.
    if let [b'$', channel, hi, lo, rest @ ..] = buf {
        let len = usize::from(u16::from_be_bytes([*hi, *lo]));
        return Ok(match rest.get(..len) {
            Some(payload) => Incoming::Interleaved {
                channel: *channel,
                payload,
                consumed: 4 + len,
            },
            None => Incoming::NeedMore,
        });
    }
    match Message::<&[u8]>::parse(buf) {
        Ok((Message::Response(response), consumed)) => {
            Ok(Incoming::Response { response, consumed })
        }
        Ok((Message::Data(data), consumed)) => Ok(Incoming::Interleaved {
            channel: data.channel_id(),
            payload: data.into_body(),
            consumed,
        }),
        Ok((Message::Request(_), consumed)) => Ok(Incoming::Ignored { consumed }),
        Err(ParseError::Incomplete(_)) if buf.len() <= MAX_MESSAGE_BYTES => Ok(Incoming::NeedMore),
        Err(ParseError::Incomplete(_)) => Err(RtspClientError::MessageTooLarge {
            buffered: buf.len(),
            limit: MAX_MESSAGE_BYTES,
        }),
        Err(ParseError::Error) => Err(RtspClientError::Malformed),
    }
}

/// Request text. Written by hand: the crate's builder wants a parsed `Url` per request, and the
/// client only ever sends these few fixed shapes.
pub fn request(
    method: &str,
    url: &str,
    cseq: u32,
    session: Option<&str>,
    extra_headers: &[(&str, &str)],
) -> Vec<u8> {
    let mut text =
        format!("{method} {url} RTSP/1.0\r\nCSeq: {cseq}\r\nUser-Agent: serval-stream-bench\r\n");
    if let Some(id) = session {
        text.push_str("Session: ");
        text.push_str(id);
        text.push_str("\r\n");
    }
    for (name, value) in extra_headers {
        text.push_str(name);
        text.push_str(": ");
        text.push_str(value);
        text.push_str("\r\n");
    }
    text.push_str("\r\n");
    text.into_bytes()
}

/// Fails unless the response is 2xx.
pub fn expect_success(
    method: &'static str,
    response: &Response<&[u8]>,
) -> Result<(), RtspClientError> {
    let status = u16::from(response.status());
    if (200..300).contains(&status) {
        Ok(())
    } else {
        Err(RtspClientError::Status { method, status })
    }
}

/// The session id of a SETUP answer, without `;timeout=`.
pub fn session_id(
    method: &'static str,
    response: &Response<&[u8]>,
) -> Result<String, RtspClientError> {
    match response.typed_header::<Session>() {
        Ok(Some(Session(id, _))) => Ok(id),
        _ => Err(RtspClientError::MissingHeader {
            method,
            header: "Session",
        }),
    }
}

/// The interleaved RTP channel the server confirmed, if it named one.
pub fn interleaved_rtp_channel(response: &Response<&[u8]>) -> Option<u8> {
    let transports = response.typed_header::<Transports>().ok()??;
    transports.iter().find_map(|t| match t {
        Transport::Rtp(rtp) => rtp.params.interleaved.map(|(rtp_channel, _)| rtp_channel),
        Transport::Other(_) => None,
    })
}

/// The base for relative control URLs: Content-Base, else Content-Location, else the request URL.
pub fn content_base(response: &Response<&[u8]>, request_url: &str) -> String {
    response
        .header(&headers::CONTENT_BASE)
        .or_else(|| response.header(&headers::CONTENT_LOCATION))
        .map(|v| v.as_str().trim().to_string())
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| request_url.to_string())
}

/// One media section of the presentation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackInfo {
    /// `video`, `audio`, ...
    pub media: String,
    /// Absolute URL for SETUP.
    pub control_url: String,
    /// RTP timestamp units per second (`a=rtpmap:<pt> <name>/<rate>`).
    pub clock_rate: u32,
}

/// Tracks of a DESCRIBE answer, in SDP order.
pub fn tracks_from_sdp(sdp: &[u8], base: &str) -> Result<Vec<TrackInfo>, RtspClientError> {
    let session =
        sdp_types::Session::parse(sdp).map_err(|e| RtspClientError::Sdp(e.to_string()))?;
    let tracks: Vec<TrackInfo> = session
        .medias
        .iter()
        .filter_map(|media| {
            let control = media.get_first_attribute_value("control")??;
            let rtpmap = media.get_first_attribute_value("rtpmap")??;
            Some(TrackInfo {
                media: media.media.clone(),
                control_url: join_control(base, control),
                clock_rate: clock_rate_of_rtpmap(rtpmap)?,
            })
        })
        .collect();
    if tracks.is_empty() {
        return Err(RtspClientError::NoTracks);
    }
    Ok(tracks)
}

/// `96 H264/90000` → 90000; `97 MPEG4-GENERIC/44100/2` → 44100.
fn clock_rate_of_rtpmap(rtpmap: &str) -> Option<u32> {
    let (_pt, encoding) = rtpmap.trim().split_once(' ')?;
    let rate = encoding.split('/').nth(1)?.trim().parse().ok()?;
    (rate > 0).then_some(rate)
}

/// RFC 2326 §C.1.1: a control attribute is either absolute or relative to the base.
fn join_control(base: &str, control: &str) -> String {
    let control = control.trim();
    if control.contains("://") {
        return control.to_string();
    }
    if control == "*" {
        return base.trim_end_matches('/').to_string();
    }
    if base.ends_with('/') {
        format!("{base}{control}")
    } else {
        format!("{base}/{control}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SDP: &str = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=bench\r\nc=IN IP4 0.0.0.0\r\nt=0 0\r\n\
a=control:*\r\nm=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\na=control:trackID=1\r\n\
m=audio 0 RTP/AVP 97\r\na=rtpmap:97 MPEG4-GENERIC/44100/2\r\na=control:rtsp://h/a.mp4/stream=1\r\n";

    #[test]
    fn tracks_resolve_relative_and_absolute_controls() {
        let tracks = tracks_from_sdp(SDP.as_bytes(), "rtsp://h/a.mp4/").unwrap();
        assert_eq!(
            tracks,
            vec![
                TrackInfo {
                    media: "video".into(),
                    control_url: "rtsp://h/a.mp4/trackID=1".into(),
                    clock_rate: 90_000
                },
                TrackInfo {
                    media: "audio".into(),
                    control_url: "rtsp://h/a.mp4/stream=1".into(),
                    clock_rate: 44_100
                },
            ]
        );
        let tracks = tracks_from_sdp(SDP.as_bytes(), "rtsp://h/a.mp4").unwrap();
        assert_eq!(tracks[0].control_url, "rtsp://h/a.mp4/trackID=1");
    }

    #[test]
    fn sdp_without_usable_tracks_is_an_error() {
        let sdp = "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=x\r\nt=0 0\r\nm=video 0 RTP/AVP 96\r\n";
        assert!(matches!(
            tracks_from_sdp(sdp.as_bytes(), "rtsp://h/"),
            Err(RtspClientError::NoTracks)
        ));
        assert!(tracks_from_sdp(b"\xff\x00garbage", "rtsp://h/").is_err());
    }

    #[test]
    fn decode_splits_responses_and_frames_at_every_offset() {
        let mut wire = b"RTSP/1.0 200 OK\r\nCSeq: 3\r\nSession: abc;timeout=60\r\nTransport: RTP/AVP/TCP;unicast;interleaved=4-5\r\n\r\n".to_vec();
        wire.extend_from_slice(&[b'$', 4, 0, 3, 9, 8, 7]);
        for cut in 0..wire.len() {
            // Any proper prefix of the first message needs more bytes.
            let first_len = wire.len() - 7;
            if cut < first_len {
                assert!(
                    matches!(decode(&wire[..cut]), Ok(Incoming::NeedMore)),
                    "cut {cut}"
                );
            }
        }
        let Ok(Incoming::Response { response, consumed }) = decode(&wire) else {
            panic!("expected a response")
        };
        assert_eq!(session_id("SETUP", &response).unwrap(), "abc");
        assert_eq!(interleaved_rtp_channel(&response), Some(4));
        expect_success("SETUP", &response).unwrap();
        let rest = &wire[consumed..];
        let Ok(Incoming::Interleaved {
            channel,
            payload,
            consumed,
        }) = decode(rest)
        else {
            panic!("expected a frame")
        };
        assert_eq!((channel, payload, consumed), (4, &[9u8, 8, 7][..], 7));
    }

    #[test]
    fn error_status_and_garbage() {
        let wire = b"RTSP/1.0 454 Session Not Found\r\nCSeq: 1\r\n\r\n";
        let Ok(Incoming::Response { response, .. }) = decode(wire) else {
            panic!()
        };
        assert!(matches!(
            expect_success("PLAY", &response),
            Err(RtspClientError::Status { status: 454, .. })
        ));
        let big = vec![b'R'; MAX_MESSAGE_BYTES + 1];
        assert!(decode(&big).is_err());
    }

    #[test]
    fn gst_rtsp_server_describe_answer() {
        // Captured from gst-rtsp-server 1.22 serving the H.264+AAC fixture through
        // peers/gst_rtsp_server.py.
        let wire = include_bytes!("../tests/data/gst_1_22_describe.txt");
        let Ok(Incoming::Response { response, consumed }) = decode(wire) else {
            panic!("expected a response")
        };
        assert_eq!(consumed, wire.len());
        expect_success("DESCRIBE", &response).unwrap();
        let base = content_base(&response, "rtsp://127.0.0.1:18554/bench.mp4");
        assert_eq!(base, "rtsp://127.0.0.1:18554/bench.mp4/");
        let tracks = tracks_from_sdp(response.body(), &base).unwrap();
        let summary: Vec<(&str, &str, u32)> = tracks
            .iter()
            .map(|t| (t.media.as_str(), t.control_url.as_str(), t.clock_rate))
            .collect();
        assert_eq!(
            summary,
            vec![
                ("video", "rtsp://127.0.0.1:18554/bench.mp4/stream=0", 90_000),
                ("audio", "rtsp://127.0.0.1:18554/bench.mp4/stream=1", 44_100),
            ]
        );
    }

    #[test]
    fn request_text() {
        let text = request(
            "SETUP",
            "rtsp://h/a",
            2,
            Some("s1"),
            &[("Transport", "RTP/AVP;unicast;client_port=5000-5001")],
        );
        assert_eq!(
            String::from_utf8(text).unwrap(),
            "SETUP rtsp://h/a RTSP/1.0\r\nCSeq: 2\r\nUser-Agent: serval-stream-bench\r\nSession: s1\r\nTransport: RTP/AVP;unicast;client_port=5000-5001\r\n\r\n"
        );
    }
}
