//! The tokio driver: accepts RTSP connections, feeds their bytes to the protocol core, writes
//! responses and interleaved packets, runs one sender task per session (waking at the next
//! packet's send time), shares one UDP port pair among all UDP sessions, and expires idle
//! sessions. It decides nothing about the protocol.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use std::collections::VecDeque;
use std::io::IoSlice;

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::{mpsc, Notify, Semaphore};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn, Instrument};

use crate::access_log::{AccessLog, AccessRecord};
use crate::edge::{BoxedWriter, ConnectionIo, Edge, Opened};
use crate::metrics::StreamMetrics;
use crate::rtsp::framing::{decode, Decoded, RejectStatus};
use crate::rtsp::handler::{
    lock, response_bytes, status_response, ClosedSession, Connection, Effect, RtspServer,
    SharedSession,
};
use crate::wire::Frame;

/// Frames queued for one TCP connection's writer. Beyond it the client is not reading as fast
/// as the movie plays and is dropped rather than buffered without limit (about 5.6 MB of
/// 1400-byte packets: several seconds of a high-bitrate movie).
const TCP_QUEUE_FRAMES: usize = 4096;
/// Frames gathered into one vectored write of the TCP writer (two `iovec`s each, well under
/// `IOV_MAX`), so a tick's packets for a connection leave in one system call.
const MAX_WRITE_FRAMES: usize = 64;
/// Largest copy made for writers that cannot gather (no vectored writes): bounds that buffer.
const MAX_COPY_BATCH: usize = 16 * 1024;
/// How often idle sessions are looked for.
const SWEEP_INTERVAL: Duration = Duration::from_secs(1);
/// Largest datagram read on the RTCP port (RTCP compounds are a few hundred bytes).
const MAX_RTCP_DATAGRAM: usize = 2048;
/// Read buffer of a connection; grows up to the framing limits only.
const READ_CHUNK: usize = 4096;

/// The bound server UDP port pair shared by every UDP session.
pub struct UdpPair {
    pub rtp: Arc<UdpSocket>,
    pub rtcp: Arc<UdpSocket>,
    pub is_ipv6: bool,
}

/// The sessions one pacer task serves, and the signal that wakes it at once (a session
/// started, seeked or paused).
#[derive(Default)]
pub(crate) struct PacerShard {
    pub(crate) playing: Mutex<HashMap<String, Playing>>,
    pub(crate) wake: Notify,
}

/// A session the pacer sends for, and where its packets go.
pub(crate) struct Playing {
    pub(crate) session: SharedSession,
    pub(crate) sink: Sink,
}

impl Playing {
    /// The connection carrying the session's packets, when interleaved.
    pub(crate) fn tcp(&self) -> Option<ConnectionHandle> {
        match &self.sink {
            Sink::Tcp(handle) => Some(handle.clone()),
            Sink::Udp => None,
        }
    }
}

/// State shared by every task of the service.
pub struct Shared {
    pub server: RtspServer,
    pub metrics: StreamMetrics,
    pub access_log: AccessLog,
    /// One pair per address family we listen on, all on the same port numbers.
    pub udp: Vec<UdpPair>,
    pub shutdown: CancellationToken,
    pub tracker: TaskTracker,
    /// Sessions by pacer shard; one pacer task per shard (per core), each session on one.
    pub(crate) shards: Vec<PacerShard>,
    connections: Mutex<HashMap<u64, ConnectionHandle>>,
    next_connection_id: AtomicU64,
    connection_slots: Arc<Semaphore>,
    bytes_sent_total: AtomicU64,
    /// Address checks, idle eviction, TLS and HTTP tunnels before the RTSP serve loop.
    pub(crate) edge: Arc<Edge>,
}

#[derive(Clone)]
pub(crate) struct ConnectionHandle {
    pub(crate) frames: mpsc::Sender<Frame>,
    pub(crate) drop_slow: CancellationToken,
}

impl Shared {
    // Called once, from `bind`; each argument is a distinct part of the service.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        server: RtspServer,
        metrics: StreamMetrics,
        access_log: AccessLog,
        udp: Vec<UdpPair>,
        shutdown: CancellationToken,
        max_connections: usize,
        edge: Arc<Edge>,
        pacer_shards: usize,
    ) -> Shared {
        Shared {
            server,
            metrics,
            access_log,
            udp,
            shutdown,
            tracker: TaskTracker::new(),
            shards: (0..pacer_shards.max(1))
                .map(|_| PacerShard::default())
                .collect(),
            connections: Mutex::new(HashMap::new()),
            next_connection_id: AtomicU64::new(1),
            connection_slots: Arc::new(Semaphore::new(max_connections)),
            bytes_sent_total: AtomicU64::new(0),
            edge,
        }
    }

    /// RTP bytes sent since start (for the load summary's bitrate).
    pub fn bytes_sent_total(&self) -> u64 {
        self.bytes_sent_total.load(Ordering::Relaxed)
    }

    /// The pacer shard serving session `id`.
    pub(crate) fn shard_of(&self, id: &str) -> &PacerShard {
        let hash = id.bytes().fold(0usize, |hash, byte| {
            hash.wrapping_mul(31).wrapping_add(usize::from(byte))
        });
        let index = hash % self.shards.len().max(1);
        // `shards` is never empty (built with at least one); the fallback only satisfies the type.
        self.shards.get(index).unwrap_or_else(|| &self.shards[0])
    }

    pub(crate) fn count_sent(&self, rtp_packets: u64, rtp_bytes: u64) {
        if rtp_packets > 0 {
            self.metrics.rtp_packets_sent.inc_by(rtp_packets);
            self.metrics.rtp_bytes_sent.inc_by(rtp_bytes);
            self.bytes_sent_total
                .fetch_add(rtp_bytes, Ordering::Relaxed);
        }
    }

    /// Ends a session on the admin's request.
    pub fn end_session(self: &Arc<Self>, id: &str) -> bool {
        let now = Instant::now().into_std();
        match self
            .server
            .close(id, now, crate::rtsp::handler::CloseReason::EndedByAdmin)
        {
            Some(closed) => {
                self.finish(closed);
                true
            }
            None => false,
        }
    }

    /// Carries out a request's effects; returns the sessions to send for at once (started,
    /// resumed or seeked).
    fn apply(self: &Arc<Self>, effects: Vec<Effect>) -> Vec<String> {
        let mut woken = Vec::new();
        for effect in effects {
            match effect {
                Effect::Created {
                    session,
                    connection,
                } => {
                    tracing::Span::current().record("session", lock(&session).id.as_str());
                    self.start_sender(session, connection)
                }
                Effect::Wake { session_id } => {
                    self.shard_of(&session_id).wake.notify_one();
                    woken.push(session_id);
                }
                Effect::Closed(closed) => self.finish(closed),
            }
        }
        woken
    }

    fn start_sender(self: &Arc<Self>, session: SharedSession, connection: Option<u64>) {
        let (id, client, movie) = {
            let guard = lock(&session);
            (guard.id.clone(), guard.client, guard.movie_path.clone())
        };
        let sink = match connection {
            Some(connection_id) => {
                match self
                    .connections
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .get(&connection_id)
                    .cloned()
                {
                    Some(handle) => Sink::Tcp(handle),
                    None => return,
                }
            }
            None => Sink::Udp,
        };
        self.shard_of(&id)
            .playing
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id.clone(), Playing { session, sink });
        self.metrics.sessions_open.inc();
        self.metrics.sessions_total.inc();
        info!(target: "serval_stream::session", session = %id, %client, %movie, "session created");
    }

    /// Stops a closed session's sender, logs it and writes its access log line.
    fn finish(self: &Arc<Self>, closed: ClosedSession) {
        match closed.reason {
            crate::rtsp::handler::CloseReason::EvictedUnplayed => {
                self.metrics.sessions_evicted_unplayed.inc();
            }
            crate::rtsp::handler::CloseReason::NeverPlayed => {
                self.metrics.sessions_expired_unplayed.inc();
            }
            _ => {}
        }
        // Counted before locking the session: the table lock is always taken first.
        let total_clients = self.server.session_count();
        let session = lock(&closed.session);
        if self
            .shard_of(&session.id)
            .playing
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&session.id)
            .is_some()
        {
            self.metrics.sessions_open.dec();
        }
        let (bytes_sent, packets_sent) = session.totals();
        let packets_lost: i64 = session
            .tracks
            .iter()
            .map(|t| i64::from(t.receiver.cumulative_lost.max(0)))
            .sum();
        self.metrics
            .rtcp_packets_lost
            .inc_by(u64::try_from(packets_lost).unwrap_or(0));
        let (audio_codec, video_codec) = session.presentation.codecs();
        let transport = session
            .tracks
            .first()
            .map_or("-", |t| t.transport.lower_name());
        let lasted = closed
            .closed_at
            .saturating_duration_since(session.created_at);
        info!(target: "serval_stream::session", session = %session.id, client = %session.client,
              movie = %session.movie_path, reason = ?closed.reason, bytes_sent, packets_sent, packets_lost,
              seconds = lasted.as_secs(), "session closed");
        let server_ip = session
            .server_ip
            .unwrap_or(std::net::IpAddr::from([0, 0, 0, 0]));
        self.access_log.write(&AccessRecord {
            client_ip: session.client.ip(),
            ended_at: SystemTime::now(),
            uri_stem: session.movie_path.clone(),
            start_position: session.first_play_start.unwrap_or_default(),
            duration: lasted,
            user_agent: session.user_agent.clone(),
            file_length: session.presentation.duration(),
            file_size: session.presentation.file_size(),
            transport,
            audio_codec,
            video_codec,
            bytes_sent,
            packets_sent,
            packets_lost,
            server_ip,
            total_clients,
            username: session.user.clone(),
        });
    }
}

/// Where a session's packets go.
pub(crate) enum Sink {
    Udp,
    Tcp(ConnectionHandle),
}

/// Accepts connections until shutdown; `tls` makes it an RTSPS listener. Each connection gets
/// its own task at once, so a slow handshake or a wait for a free slot never delays accepting.
pub async fn run_listener(
    shared: Arc<Shared>,
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
) {
    loop {
        let accepted = tokio::select! {
            () = shared.shutdown.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(pair) => pair,
            Err(error) => {
                // Out of file descriptors and the like: back off instead of spinning.
                warn!(target: "serval_stream::net", %error, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let id = shared.next_connection_id.fetch_add(1, Ordering::Relaxed);
        // `session` is filled in by the first SETUP on the connection.
        let span = tracing::info_span!("rtsp", %peer, connection = id, tls = tls.is_some(),
                                       session = tracing::field::Empty);
        shared
            .tracker
            .spawn(admit(shared.clone(), stream, peer, id, tls.clone()).instrument(span));
    }
}

/// Checks a new connection's address and slots, runs the TLS handshake, and serves it.
async fn admit(
    shared: Arc<Shared>,
    mut stream: TcpStream,
    peer: SocketAddr,
    id: u64,
    tls: Option<tokio_rustls::TlsAcceptor>,
) {
    let server_name = crate::rtsp::handler::SERVER_NAME;
    if let Some(gate) = shared.server.access() {
        if !gate.admits_address(peer.ip()) {
            debug!(target: "serval_stream::access", %peer, "address refused by [stream] allow/deny");
            shared.metrics.connections_refused.inc();
            crate::edge::refuse_rtsp(&mut stream, "403 Forbidden", server_name).await;
            return;
        }
    }
    let Some(_ip_slot) = shared.edge.claim_ip_slot_making_room(peer.ip()).await else {
        debug!(target: "serval_stream::net", %peer, "per-address connection limit reached, answering 503");
        shared.metrics.connections_refused.inc();
        crate::edge::refuse_rtsp(&mut stream, "503 Service Unavailable", server_name).await;
        return;
    };
    let permit = match shared.connection_slots.clone().try_acquire_owned() {
        Ok(permit) => Some(permit),
        // Full: close the oldest connection that never set up a session, and take its slot.
        Err(_) if shared.edge.evict_oldest_idle() => {
            shared.metrics.idle_connections_evicted.inc();
            tokio::time::timeout(
                shared.edge.eviction_wait(),
                shared.connection_slots.clone().acquire_owned(),
            )
            .await
            .ok()
            .and_then(Result::ok)
        }
        Err(_) => None,
    };
    let Some(_permit) = permit else {
        debug!(target: "serval_stream::net", %peer, "connection limit reached, answering 503");
        shared.metrics.connections_refused.inc();
        crate::edge::refuse_rtsp(&mut stream, "503 Service Unavailable", server_name).await;
        return;
    };
    let local = stream
        .local_addr()
        .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
    let opened = match tls {
        Some(acceptor) => {
            let Some(tls_stream) =
                crate::edge::tls_handshake(&acceptor, stream, shared.edge.request_timeout()).await
            else {
                return;
            };
            shared.edge.open_from(tls_stream, id, Some(peer.ip())).await
        }
        None => shared.edge.open_from(stream, id, Some(peer.ip())).await,
    };
    match opened {
        Opened::Rtsp(io) => serve_connection(shared.clone(), io, peer, local, id).await,
        Opened::TunnelPost(feed) => feed.await,
        Opened::Closed => {}
    }
    shared.edge.forget_idle(id);
}

async fn serve_connection(
    shared: Arc<Shared>,
    io: ConnectionIo,
    peer: SocketAddr,
    local: SocketAddr,
    id: u64,
) {
    let ConnectionIo {
        mut reader,
        writer,
        initial,
        stop,
    } = io;
    let (frames, queued) = mpsc::channel::<Frame>(TCP_QUEUE_FRAMES);
    let handle = ConnectionHandle {
        frames: frames.clone(),
        drop_slow: CancellationToken::new(),
    };
    shared
        .connections
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(id, handle.clone());
    shared.metrics.connections_open.inc();
    let writer_task = shared
        .tracker
        .spawn(write_frames(writer, queued).in_current_span());
    debug!(target: "serval_stream::net", "connection open");

    let mut connection = Connection::new(id, peer, local);
    let mut buffer = initial;
    let idle_limit = shared.server.settings().session_timeout;
    let request_timeout = shared.edge.request_timeout();
    // When the bytes now buffered started to arrive without making a whole request or frame.
    let mut partial_since: Option<Instant> = None;
    'connection: loop {
        loop {
            let now = Instant::now().into_std();
            let decoded = match decode(&buffer) {
                Ok(decoded) => decoded,
                Err(error) => {
                    debug!(target: "serval_stream::rtsp", %error, "unrecoverable framing error, closing");
                    let response = status_response(None, error.status());
                    let _ = frames
                        .send(Frame::whole(Bytes::from(response_bytes(&response))))
                        .await;
                    break 'connection;
                }
            };
            let consumed = decoded.consumed();
            match decoded {
                Decoded::NeedMore => break,
                Decoded::Skip { .. } => {}
                Decoded::Interleaved {
                    channel, payload, ..
                } => {
                    shared.metrics.rtcp_reports_received.inc();
                    shared
                        .server
                        .interleaved(&connection, now, channel, payload);
                }
                Decoded::Rejected { status, cseq, .. } => {
                    let status = match status {
                        RejectStatus::VersionNotSupported => {
                            rtsp_types::StatusCode::RTSPVersionNotSupported
                        }
                        RejectStatus::BadRequest => rtsp_types::StatusCode::BadRequest,
                    };
                    let response = status_response(cseq.as_deref(), status);
                    if frames
                        .send(Frame::whole(Bytes::from(response_bytes(&response))))
                        .await
                        .is_err()
                    {
                        break 'connection;
                    }
                }
                Decoded::Request { request, .. } => {
                    // Handlers may open and parse a movie file: run them off the async workers.
                    let handled = {
                        let shared = shared.clone();
                        let mut moved = connection;
                        tokio::task::spawn_blocking(move || {
                            let (response, effects) = shared.server.handle_request(
                                &mut moved,
                                now,
                                SystemTime::now(),
                                &request,
                            );
                            (moved, request, response, effects)
                        })
                        .await
                    };
                    let Ok((returned, request, response, effects)) = handled else {
                        warn!(target: "serval_stream::rtsp", "request handler panicked, closing the connection");
                        break 'connection;
                    };
                    connection = returned;
                    debug!(target: "serval_stream::rtsp", method = ?request.method(),
                           url = %request.request_uri().map(|u| u.as_str()).unwrap_or("*"),
                           status = u16::from(response.status()), "request");
                    match response.status() {
                        rtsp_types::StatusCode::Unauthorized => {
                            shared.metrics.requests_unauthorized.inc();
                        }
                        rtsp_types::StatusCode::Forbidden => {
                            shared.metrics.requests_forbidden.inc();
                        }
                        _ => {}
                    }
                    // The response goes out before any packet the request starts.
                    if frames
                        .send(Frame::whole(Bytes::from(response_bytes(&response))))
                        .await
                        .is_err()
                    {
                        break 'connection;
                    }
                    for session_id in shared.apply(effects) {
                        crate::pacer::send_due_now(&shared, &session_id).await;
                    }
                }
            }
            buffer.advance(consumed);
        }
        if connection.has_set_up_sessions() {
            shared.edge.forget_idle(id);
        }
        // A request or frame must arrive whole within the request timeout of its first byte,
        // so a client sending one byte a second cannot hold a connection.
        partial_since = if buffer.is_empty() {
            None
        } else {
            partial_since.or_else(|| Some(Instant::now()))
        };
        let partial_deadline = partial_since.map(|since| since + request_timeout);
        buffer.reserve(READ_CHUNK);
        // A connection that never set up a session and sends nothing for a session timeout
        // only holds a slot; close it.
        let idle_deadline = Instant::now() + idle_limit;
        let read = tokio::select! {
            () = shared.shutdown.cancelled() => break,
            () = stop.cancelled() => {
                debug!(target: "serval_stream::net", "connection closed by the edge (evicted, or its tunnel ended)");
                break;
            }
            () = tokio::time::sleep_until(idle_deadline), if !connection.has_set_up_sessions() => {
                debug!(target: "serval_stream::net", "idle connection without a session, closing");
                break;
            }
            () = tokio::time::sleep_until(partial_deadline.unwrap_or(idle_deadline)), if partial_deadline.is_some() => {
                debug!(target: "serval_stream::net", buffered = buffer.len(),
                       "request not complete within the request timeout, closing");
                shared.metrics.requests_timed_out.inc();
                break;
            }
            () = handle.drop_slow.cancelled() => {
                warn!(target: "serval_stream::net", "client reads too slowly, dropping the connection");
                shared.metrics.slow_readers_dropped.inc();
                break;
            }
            read = reader.read_buf(&mut buffer) => read,
        };
        match read {
            Ok(0) => {
                debug!(target: "serval_stream::net", "client closed the connection");
                break;
            }
            Err(error) => {
                debug!(target: "serval_stream::net", %error, "read failed, closing");
                break;
            }
            Ok(_) => {}
        }
    }
    shared.edge.forget_idle(id);
    // Ends the tunnel watcher of a GET half, if any.
    stop.cancel();
    shared
        .connections
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .remove(&id);
    shared.metrics.connections_open.dec();
    let now = Instant::now().into_std();
    for closed in shared.server.connection_closed(id, now) {
        shared.finish(closed);
    }
    drop(frames);
    drop(handle);
    // Let queued responses drain (the writer ends when every sender is gone); don't wait forever.
    let _ = tokio::time::timeout(Duration::from_secs(2), writer_task).await;
    debug!(target: "serval_stream::net", "connection closed");
}

/// Writes queued responses and interleaved frames, gathering what is queued into one
/// vectored write: each packet's head and its shared payload go to the kernel as they are,
/// never copied into a per-connection buffer (a writer that cannot gather gets a small copy).
async fn write_frames(mut writer: BoxedWriter, mut queued: mpsc::Receiver<Frame>) {
    let gathers = writer.is_write_vectored();
    let mut pending: VecDeque<Frame> = VecDeque::new();
    // Bytes of `pending[0]` already written.
    let mut written = 0usize;
    let mut copy = BytesMut::new();
    loop {
        if pending.is_empty() {
            match queued.recv().await {
                Some(frame) => pending.push_back(frame),
                None => break,
            }
        }
        while pending.len() < MAX_WRITE_FRAMES {
            match queued.try_recv() {
                Ok(frame) => pending.push_back(frame),
                Err(_) => break,
            }
        }
        let result = if gathers {
            let slices = unwritten_slices(&pending, written);
            writer.write_vectored(&slices).await
        } else {
            copy.clear();
            for slice in unwritten_slices(&pending, written) {
                if !copy.is_empty() && copy.len() + slice.len() > MAX_COPY_BATCH {
                    break;
                }
                copy.extend_from_slice(&slice);
            }
            writer.write(&copy).await
        };
        match result {
            Ok(0) | Err(_) => return,
            Ok(count) => written = consume(&mut pending, written + count),
        }
    }
    let _ = writer.shutdown().await;
}

/// The parts of `pending` not yet written, `written` bytes into the first frame.
fn unwritten_slices(pending: &VecDeque<Frame>, written: usize) -> Vec<IoSlice<'_>> {
    let mut slices = Vec::with_capacity(pending.len() * 2);
    let mut skip = written;
    for frame in pending {
        for part in [frame.head.as_slice(), &frame.body[..]] {
            let rest = part.get(skip.min(part.len())..).unwrap_or(&[]);
            skip = skip.saturating_sub(part.len());
            if !rest.is_empty() {
                slices.push(IoSlice::new(rest));
            }
        }
    }
    slices
}

/// Drops the frames `written` bytes cover; returns how far into the new first frame they reach.
fn consume(pending: &mut VecDeque<Frame>, mut written: usize) -> usize {
    while let Some(first) = pending.front() {
        if written < first.len() {
            return written;
        }
        written -= first.len();
        pending.pop_front();
    }
    0
}

/// Reads RTCP from clients on the shared RTCP port and routes it by source address.
pub async fn run_rtcp_receiver(shared: Arc<Shared>, socket: Arc<UdpSocket>) {
    let mut datagram = vec![0u8; MAX_RTCP_DATAGRAM];
    loop {
        let received = tokio::select! {
            () = shared.shutdown.cancelled() => return,
            received = socket.recv_from(&mut datagram) => received,
        };
        let Ok((len, from)) = received else { continue };
        let Some(bytes) = datagram.get(..len) else {
            continue;
        };
        if shared
            .server
            .udp_rtcp(from, Instant::now().into_std(), bytes)
            .is_some()
        {
            shared.metrics.rtcp_reports_received.inc();
        }
    }
}

/// Drains the shared RTP port: clients send a few packets there to open NAT bindings.
pub async fn run_rtp_drain(shared: Arc<Shared>, socket: Arc<UdpSocket>) {
    let mut datagram = vec![0u8; MAX_RTCP_DATAGRAM];
    loop {
        tokio::select! {
            () = shared.shutdown.cancelled() => return,
            _ = socket.recv_from(&mut datagram) => {}
        }
    }
}

/// Expires silent sessions and refreshes the packet-chunk gauge every second; on shutdown,
/// closes every session.
pub async fn run_sweeper(shared: Arc<Shared>) {
    let mut interval = tokio::time::interval(SWEEP_INTERVAL);
    loop {
        tokio::select! {
            () = shared.shutdown.cancelled() => break,
            _ = interval.tick() => {}
        }
        for closed in shared.server.expire(Instant::now().into_std()) {
            shared.finish(closed);
        }
        let chunks = shared.server.catalog().packet_chunks_live();
        shared
            .metrics
            .packet_chunks_live
            .set(i64::try_from(chunks).unwrap_or(i64::MAX));
    }
    let now = Instant::now().into_std();
    for closed in shared
        .server
        .close_all(now, crate::rtsp::handler::CloseReason::Shutdown)
    {
        shared.finish(closed);
    }
}

/// Binds the first (even RTP, odd RTCP) port pair of `range` that is free on every address
/// in `ips` (one unspecified address per family we listen on), so one `server_port` answer
/// holds for IPv4 and IPv6 clients alike.
pub async fn bind_udp_pairs(
    ips: &[std::net::IpAddr],
    range: crate::config::PortRange,
) -> Result<Vec<UdpPair>, crate::error::StreamError> {
    let mut last_error = String::from("empty range");
    'ports: for rtp_port in range.rtp_ports() {
        let mut pairs = Vec::new();
        for ip in ips {
            let bound =
                bind_udp(*ip, rtp_port).and_then(|rtp| Ok((rtp, bind_udp(*ip, rtp_port + 1)?)));
            match bound {
                Ok((rtp, rtcp)) => pairs.push(UdpPair {
                    rtp: Arc::new(rtp),
                    rtcp: Arc::new(rtcp),
                    is_ipv6: ip.is_ipv6(),
                }),
                Err(error) => {
                    last_error = format!("{ip} port {rtp_port}/{}: {error}", rtp_port + 1);
                    continue 'ports;
                }
            }
        }
        return Ok(pairs);
    }
    Err(crate::error::StreamError::NoRtpPortPair { range, last_error })
}

/// A non-blocking UDP socket; IPv6 ones are IPv6-only so the IPv4 socket can share the port.
fn bind_udp(ip: std::net::IpAddr, port: u16) -> std::io::Result<UdpSocket> {
    let domain = if ip.is_ipv6() {
        socket2::Domain::IPV6
    } else {
        socket2::Domain::IPV4
    };
    let socket = socket2::Socket::new(domain, socket2::Type::DGRAM, Some(socket2::Protocol::UDP))?;
    if ip.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.set_nonblocking(true)?;
    socket.bind(&SocketAddr::new(ip, port).into())?;
    UdpSocket::from_std(socket.into())
}
