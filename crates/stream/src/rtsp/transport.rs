//! The `Transport` header (RFC 2326 §12.39): what a client asks for in SETUP and what we answer.
//!
//! We serve two transports: RTP/AVP over UDP unicast to the client's `client_port` pair, and
//! RTP/AVP/TCP interleaved on the RTSP connection. Multicast, other profiles and a missing
//! port pair are refused with 461. Parsing uses `rtsp-types`; the answer is formatted here
//! because it is one line with our own `server_port` and `ssrc`.

use rtsp_types::headers::transport::{RtpLowerTransport, RtpProfile, Transport, Transports};
use rtsp_types::Request;

/// What the client asked for, reduced to what we serve.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestedTransport {
    /// RTP/AVP over UDP to the client's ports (RTCP on `client_rtcp`, usually `client_rtp + 1`).
    Udp { client_rtp: u16, client_rtcp: u16 },
    /// RTP/AVP/TCP interleaved; channels chosen by the client or, when absent, by us.
    Interleaved { channels: Option<(u8, u8)> },
}

/// Why no offered transport can be served (answered 461 Unsupported Transport).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransportError {
    #[error("SETUP without a Transport header")]
    Missing,
    #[error("Transport header does not parse")]
    Malformed,
    #[error(
        "no offered transport is unicast RTP/AVP over UDP with client_port or over TCP: {offered}"
    )]
    Unsupported { offered: String },
}

/// Picks the first transport in the client's list that we serve.
pub fn requested_transport<B: AsRef<[u8]>>(
    request: &Request<B>,
) -> Result<RequestedTransport, TransportError> {
    let transports = match request.typed_header::<Transports>() {
        Ok(Some(transports)) => transports,
        Ok(None) => return Err(TransportError::Missing),
        Err(_) => return Err(TransportError::Malformed),
    };
    for transport in transports.iter() {
        let Transport::Rtp(rtp) = transport else {
            continue;
        };
        if rtp.profile != RtpProfile::Avp || rtp.params.multicast {
            continue;
        }
        match rtp.lower_transport {
            None | Some(RtpLowerTransport::Udp) => {
                let Some((client_rtp, client_rtcp)) = rtp.params.client_port else {
                    continue;
                };
                if client_rtp == 0 {
                    continue;
                }
                let client_rtcp = client_rtcp.unwrap_or(client_rtp.saturating_add(1));
                return Ok(RequestedTransport::Udp {
                    client_rtp,
                    client_rtcp,
                });
            }
            Some(RtpLowerTransport::Tcp) => {
                let channels = rtp.params.interleaved.map(|(rtp_channel, rtcp_channel)| {
                    (
                        rtp_channel,
                        rtcp_channel.unwrap_or(rtp_channel.wrapping_add(1)),
                    )
                });
                return Ok(RequestedTransport::Interleaved { channels });
            }
            Some(RtpLowerTransport::Other(_)) => continue,
        }
    }
    let offered = request
        .header(&rtsp_types::headers::TRANSPORT)
        .map(|v| v.as_str().chars().take(200).collect())
        .unwrap_or_default();
    Err(TransportError::Unsupported { offered })
}

/// The transport we set up for one track, as written back in the SETUP answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChosenTransport {
    Udp {
        client_rtp: u16,
        client_rtcp: u16,
        server_rtp: u16,
        server_rtcp: u16,
    },
    Interleaved {
        rtp_channel: u8,
        rtcp_channel: u8,
    },
}

impl ChosenTransport {
    /// The `Transport` header value of the SETUP response.
    pub fn header_value(&self, ssrc: u32) -> String {
        match self {
            ChosenTransport::Udp { client_rtp, client_rtcp, server_rtp, server_rtcp } => format!(
                "RTP/AVP;unicast;client_port={client_rtp}-{client_rtcp};server_port={server_rtp}-{server_rtcp};ssrc={ssrc:08X}"
            ),
            ChosenTransport::Interleaved { rtp_channel, rtcp_channel } => {
                format!("RTP/AVP/TCP;unicast;interleaved={rtp_channel}-{rtcp_channel};ssrc={ssrc:08X}")
            }
        }
    }

    /// "UDP" or "TCP", for logs and the admin page.
    pub fn lower_name(&self) -> &'static str {
        match self {
            ChosenTransport::Udp { .. } => "UDP",
            ChosenTransport::Interleaved { .. } => "TCP",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rtsp::framing::{decode, Decoded};

    fn transport_of(header: &str) -> Result<RequestedTransport, TransportError> {
        let bytes = format!(
            "SETUP rtsp://h/a.mp4/trackID=1 RTSP/1.0\r\nCSeq: 3\r\nTransport: {header}\r\n\r\n"
        );
        match decode(bytes.as_bytes()).unwrap() {
            Decoded::Request { request, .. } => requested_transport(&request),
            other => panic!("not a request: {other:?}"),
        }
    }

    #[test]
    fn udp_unicast_with_client_ports() {
        assert_eq!(
            transport_of("RTP/AVP;unicast;client_port=5000-5001"),
            Ok(RequestedTransport::Udp {
                client_rtp: 5000,
                client_rtcp: 5001
            })
        );
        assert_eq!(
            transport_of("RTP/AVP/UDP;unicast;client_port=6000"),
            Ok(RequestedTransport::Udp {
                client_rtp: 6000,
                client_rtcp: 6001
            })
        );
    }

    #[test]
    fn tcp_interleaved_with_and_without_channels() {
        assert_eq!(
            transport_of("RTP/AVP/TCP;unicast;interleaved=2-3"),
            Ok(RequestedTransport::Interleaved {
                channels: Some((2, 3))
            })
        );
        assert_eq!(
            transport_of("RTP/AVP/TCP;unicast"),
            Ok(RequestedTransport::Interleaved { channels: None })
        );
    }

    #[test]
    fn first_servable_offer_wins() {
        assert_eq!(
            transport_of("RTP/AVP;multicast;port=9000-9001,RTP/AVP/TCP;unicast;interleaved=0-1"),
            Ok(RequestedTransport::Interleaved {
                channels: Some((0, 1))
            })
        );
    }

    #[test]
    fn unservable_offers_are_refused() {
        assert!(matches!(
            transport_of("RTP/AVP;multicast"),
            Err(TransportError::Unsupported { .. })
        ));
        assert!(matches!(
            transport_of("RTP/SAVP;unicast;client_port=5000-5001"),
            Err(TransportError::Unsupported { .. })
        ));
        assert!(matches!(
            transport_of("RTP/AVP;unicast"),
            Err(TransportError::Unsupported { .. })
        ));
        assert!(matches!(
            transport_of("RAW/RAW/UDP;unicast;client_port=1-2"),
            Err(TransportError::Unsupported { .. })
        ));
    }

    #[test]
    fn answers_format_as_rfc_2326_shows() {
        let udp = ChosenTransport::Udp {
            client_rtp: 5000,
            client_rtcp: 5001,
            server_rtp: 6970,
            server_rtcp: 6971,
        };
        assert_eq!(
            udp.header_value(0xDEADBEEF),
            "RTP/AVP;unicast;client_port=5000-5001;server_port=6970-6971;ssrc=DEADBEEF"
        );
        let tcp = ChosenTransport::Interleaved {
            rtp_channel: 0,
            rtcp_channel: 1,
        };
        assert_eq!(
            tcp.header_value(1),
            "RTP/AVP/TCP;unicast;interleaved=0-1;ssrc=00000001"
        );
    }
}
