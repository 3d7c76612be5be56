//! One load-client session on tokio: DESCRIBE, SETUP of every track (UDP client ports or TCP
//! interleaved channels), PLAY, keep-alives while the step holds, TEARDOWN when told to stop.
//! Over TCP the same task reads the interleaved RTP; over UDP it hands its RTP sockets to the
//! receiver threads of `udp`.

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};

use crate::rtsp::{self, Incoming, RtspClientError, TrackInfo};
use crate::stats::{micros_histogram, MicrosHistogram, TrackStats};
use crate::udp::{bind_client_pair, ReceiverHandle, TrackKey};

/// Longest wait for one RTSP response (gst-rtsp-server builds a pipeline per SETUP under load).
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(20);
/// Keep-alive period: well inside the 60 s session timeout both servers default to.
const KEEPALIVE_EVERY: Duration = Duration::from_secs(20);
/// Read size for the control connection (which carries all RTP of a TCP session).
const READ_CHUNK: usize = 64 * 1024;

/// What a session is asked to do.
#[derive(Debug, Clone)]
pub struct SessionPlan {
    pub index: usize,
    pub url: String,
    pub server: SocketAddr,
    pub tcp: bool,
}

/// Everything a finished session reports.
#[derive(Debug)]
pub struct SessionOutcome {
    pub index: usize,
    pub tcp: bool,
    pub n_tracks: usize,
    pub play_sent: Option<Instant>,
    /// Set when the session failed before or while playing.
    pub error: Option<String>,
    /// Per-track statistics of a TCP session (UDP ones come from the receiver threads).
    pub tcp_tracks: Vec<TrackStats>,
    pub lateness: Option<MicrosHistogram>,
}

/// Shared by all sessions of a step.
pub struct StepClock {
    pub epoch: Instant,
    pub delivered_bytes: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

#[derive(Debug, thiserror::Error)]
enum SessionError {
    #[error("{0}")]
    Rtsp(#[from] RtspClientError),
    #[error("{what}: {source}")]
    Io {
        what: &'static str,
        source: std::io::Error,
    },
    #[error("no {0} response within the timeout")]
    Timeout(&'static str),
    #[error("server closed the connection")]
    Closed,
}

/// Runs one session until `stop` turns true; reports `true`/`false` on `started` once PLAY has
/// succeeded or failed.
pub async fn run_session(
    plan: SessionPlan,
    clock: std::sync::Arc<StepClock>,
    udp: ReceiverHandle,
    started: mpsc::UnboundedSender<bool>,
    mut stop: watch::Receiver<bool>,
) -> SessionOutcome {
    let mut outcome = SessionOutcome {
        index: plan.index,
        tcp: plan.tcp,
        n_tracks: 0,
        play_sent: None,
        error: None,
        tcp_tracks: Vec::new(),
        lateness: None,
    };
    let mut conn = match Connection::open(&plan, clock).await {
        Ok(c) => c,
        Err(e) => {
            outcome.error = Some(e.to_string());
            let _ = started.send(false);
            return outcome;
        }
    };
    let mut rtcp_sockets = Vec::new();
    match conn
        .start(&plan, &udp, &mut rtcp_sockets, &mut outcome)
        .await
    {
        Ok(()) => {
            let _ = started.send(true);
            if let Err(e) = conn.play_until_stopped(&plan, &mut stop).await {
                outcome.error = Some(e.to_string());
            }
        }
        Err(e) => {
            outcome.error = Some(e.to_string());
            let _ = started.send(false);
        }
    }
    outcome.tcp_tracks = std::mem::take(&mut conn.tracks);
    outcome.lateness = Some(std::mem::replace(&mut conn.lateness, micros_histogram()));
    // Counting is over; a polite TEARDOWN lets the server free the session at once.
    if conn.session.is_some() {
        let _ = tokio::time::timeout(Duration::from_secs(5), conn.teardown(&plan)).await;
    }
    drop(rtcp_sockets);
    outcome
}

/// The control connection and, for TCP sessions, the per-track counters.
struct Connection {
    stream: TcpStream,
    buffer: Vec<u8>,
    cseq: u32,
    session: Option<String>,
    clock: std::sync::Arc<StepClock>,
    /// Interleaved RTP channel per track (TCP sessions).
    channels: Vec<u8>,
    tracks: Vec<TrackStats>,
    lateness: MicrosHistogram,
    counting: bool,
    /// A GET_PARAMETER was sent and its answer has not been read yet.
    pending_keepalive: bool,
}

impl Connection {
    async fn open(
        plan: &SessionPlan,
        clock: std::sync::Arc<StepClock>,
    ) -> Result<Connection, SessionError> {
        let stream = tokio::time::timeout(RESPONSE_TIMEOUT, TcpStream::connect(plan.server))
            .await
            .map_err(|_| SessionError::Timeout("TCP connect"))?
            .map_err(|source| SessionError::Io {
                what: "connect",
                source,
            })?;
        let _ = stream.set_nodelay(true);
        Ok(Connection {
            stream,
            buffer: Vec::with_capacity(READ_CHUNK),
            cseq: 0,
            session: None,
            clock,
            channels: Vec::new(),
            tracks: Vec::new(),
            lateness: micros_histogram(),
            counting: true,
            pending_keepalive: false,
        })
    }

    /// DESCRIBE, SETUP each track, PLAY.
    async fn start(
        &mut self,
        plan: &SessionPlan,
        udp: &ReceiverHandle,
        rtcp_sockets: &mut Vec<UdpSocket>,
        outcome: &mut SessionOutcome,
    ) -> Result<(), SessionError> {
        let (sdp, base) = self
            .exchange("DESCRIBE", &plan.url, &[("Accept", "application/sdp")])
            .await?;
        let tracks: Vec<TrackInfo> = rtsp::tracks_from_sdp(&sdp, &base)?;
        outcome.n_tracks = tracks.len();
        let ip = plan.server.ip();
        for (track_idx, track) in tracks.iter().enumerate() {
            if plan.tcp {
                let rtp_channel = u8::try_from(track_idx * 2).unwrap_or(u8::MAX - 1);
                let transport = format!(
                    "RTP/AVP/TCP;unicast;interleaved={}-{}",
                    rtp_channel,
                    rtp_channel + 1
                );
                let confirmed = self.setup(&track.control_url, &transport).await?;
                self.channels.push(confirmed.unwrap_or(rtp_channel));
                self.tracks.push(TrackStats::new(track.clock_rate));
            } else {
                let (rtp, rtcp) = bind_client_pair(ip).map_err(|source| SessionError::Io {
                    what: "bind client UDP ports",
                    source,
                })?;
                let port = rtp
                    .local_addr()
                    .map_err(|source| SessionError::Io {
                        what: "client port",
                        source,
                    })?
                    .port();
                let transport = format!(
                    "RTP/AVP;unicast;client_port={}-{}",
                    port,
                    port.saturating_add(1)
                );
                self.setup(&track.control_url, &transport).await?;
                udp.add(
                    rtp,
                    TrackKey {
                        session: plan.index,
                        track: track_idx,
                    },
                    track.clock_rate,
                )
                .map_err(|source| SessionError::Io {
                    what: "hand socket to receiver",
                    source,
                })?;
                rtcp_sockets.push(rtcp);
            }
        }
        outcome.play_sent = Some(Instant::now());
        self.exchange("PLAY", &plan.url, &[("Range", "npt=0.000-")])
            .await?;
        Ok(())
    }

    /// SETUP one track; returns the interleaved channel the server confirmed.
    async fn setup(&mut self, url: &str, transport: &str) -> Result<Option<u8>, SessionError> {
        self.cseq += 1;
        let bytes = rtsp::request(
            "SETUP",
            url,
            self.cseq,
            self.session.as_deref(),
            &[("Transport", transport)],
        );
        self.write(&bytes).await?;
        let (session, channel) = self
            .await_response("SETUP", |response| {
                rtsp::expect_success("SETUP", response)?;
                Ok((
                    rtsp::session_id("SETUP", response)?,
                    rtsp::interleaved_rtp_channel(response),
                ))
            })
            .await?;
        if self.session.is_none() {
            self.session = Some(session);
        }
        Ok(channel)
    }

    /// Sends a request and waits for a 2xx answer; returns (body, content base).
    async fn exchange(
        &mut self,
        method: &'static str,
        url: &str,
        headers: &[(&str, &str)],
    ) -> Result<(Vec<u8>, String), SessionError> {
        self.cseq += 1;
        let bytes = rtsp::request(method, url, self.cseq, self.session.as_deref(), headers);
        self.write(&bytes).await?;
        self.await_response(method, |response| {
            rtsp::expect_success(method, response)?;
            Ok((response.body().to_vec(), rtsp::content_base(response, url)))
        })
        .await
    }

    async fn write(&mut self, bytes: &[u8]) -> Result<(), SessionError> {
        self.stream
            .write_all(bytes)
            .await
            .map_err(|source| SessionError::Io {
                what: "write request",
                source,
            })
    }

    /// Reads until the next response, counting interleaved RTP on the way, and maps it.
    async fn await_response<T>(
        &mut self,
        method: &'static str,
        map: impl Fn(&rtsp_types::Response<&[u8]>) -> Result<T, RtspClientError>,
    ) -> Result<T, SessionError> {
        let deadline = tokio::time::Instant::now() + RESPONSE_TIMEOUT;
        loop {
            if let Some(result) = self.take_response(&map)? {
                return result.map_err(SessionError::from);
            }
            tokio::time::timeout_at(deadline, self.read_more())
                .await
                .map_err(|_| SessionError::Timeout(method))??;
        }
    }

    /// Consumes buffered frames; stops at the first response and returns it mapped.
    fn take_response<T>(
        &mut self,
        map: &impl Fn(&rtsp_types::Response<&[u8]>) -> Result<T, RtspClientError>,
    ) -> Result<Option<Result<T, RtspClientError>>, SessionError> {
        let arrival = Instant::now();
        let arrival_us =
            u64::try_from(arrival.duration_since(self.clock.epoch).as_micros()).unwrap_or(u64::MAX);
        let mut offset = 0;
        let mut delivered = 0u64;
        let mut found = None;
        while let Some(rest) = self.buffer.get(offset..) {
            match rtsp::decode(rest)? {
                Incoming::NeedMore => break,
                Incoming::Ignored { consumed } => offset += consumed,
                Incoming::Interleaved {
                    channel,
                    payload,
                    consumed,
                } => {
                    offset += consumed;
                    if self.counting {
                        if let Some(track_idx) = self.channels.iter().position(|&c| c == channel) {
                            if let Some(track) = self.tracks.get_mut(track_idx) {
                                track.on_packet(payload, arrival, arrival_us, &mut self.lateness);
                                delivered += u64::try_from(payload.len()).unwrap_or(0);
                            }
                        }
                    }
                }
                Incoming::Response { response, consumed } => {
                    offset += consumed;
                    found = Some(map(&response));
                    break;
                }
            }
        }
        self.buffer.drain(..offset.min(self.buffer.len()));
        if delivered > 0 {
            self.clock
                .delivered_bytes
                .fetch_add(delivered, std::sync::atomic::Ordering::Relaxed);
        }
        Ok(found)
    }

    async fn read_more(&mut self) -> Result<(), SessionError> {
        // `read_buf` fills spare capacity without zeroing it first, which matters at a
        // thousand TCP sessions reading 64 KiB at a time.
        self.buffer.reserve(READ_CHUNK);
        match self.stream.read_buf(&mut self.buffer).await {
            Ok(0) => Err(SessionError::Closed),
            Ok(_) => Ok(()),
            Err(source) => Err(SessionError::Io {
                what: "read",
                source,
            }),
        }
    }

    /// Receives (TCP) and keeps the session alive until `stop`.
    async fn play_until_stopped(
        &mut self,
        plan: &SessionPlan,
        stop: &mut watch::Receiver<bool>,
    ) -> Result<(), SessionError> {
        let mut keepalive = tokio::time::interval_at(
            tokio::time::Instant::now() + KEEPALIVE_EVERY,
            KEEPALIVE_EVERY,
        );
        loop {
            if *stop.borrow() {
                self.counting = false;
                return Ok(());
            }
            tokio::select! {
                read = self.read_more() => {
                    read?;
                    // Responses here can only answer keep-alives; a refusal means the session is gone.
                    if let Some(result) = self.take_response(&|r| rtsp::expect_success("GET_PARAMETER", r))? {
                        self.pending_keepalive = false;
                        result?;
                    }
                }
                _ = keepalive.tick() => {
                    if !self.pending_keepalive {
                        self.cseq += 1;
                        let bytes = rtsp::request("GET_PARAMETER", &plan.url, self.cseq, self.session.as_deref(), &[]);
                        self.write(&bytes).await?;
                        self.pending_keepalive = true;
                    }
                }
                changed = stop.changed() => {
                    if changed.is_err() { self.counting = false; return Ok(()); }
                }
            }
        }
    }

    async fn teardown(&mut self, plan: &SessionPlan) {
        self.counting = false;
        self.cseq += 1;
        let bytes = rtsp::request(
            "TEARDOWN",
            &plan.url,
            self.cseq,
            self.session.as_deref(),
            &[],
        );
        if self.write(&bytes).await.is_err() {
            return;
        }
        // Skip a pending keep-alive answer, then the TEARDOWN answer.
        for _ in 0..=usize::from(self.pending_keepalive) {
            if self.await_response("TEARDOWN", |_| Ok(())).await.is_err() {
                return;
            }
        }
    }
}
