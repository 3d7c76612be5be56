//! The edge of the RTSP listeners, between `accept` and the RTSP serve loop in `net`: address
//! checks (`[stream] allow/deny`, the per-address connection cap), making room by closing the
//! oldest connection that never set up a session when the connection limit is reached, the
//! TLS handshake of RTSPS listeners, and telling plain RTSP from the two halves of an
//! RTSP-over-HTTP tunnel, which it binds together by `x-sessioncookie`.
//!
//! What comes out is a [`ConnectionIo`]: a byte reader (the socket, the TLS stream, or for a
//! tunnel the decoded POST bodies), a writer (the socket, or the GET half), the bytes already
//! read, and a token that ends the connection. The serve loop cannot tell them apart.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::debug;

use crate::tunnel::{classify, Base64Stream, Classified, TunnelError, TunnelHalf};

/// Decoded POST chunks queued towards a tunnel's serve loop; the POST reader waits when full.
const TUNNEL_QUEUE_CHUNKS: usize = 64;
/// Read size while sniffing and while decoding a POST body.
const READ_CHUNK: usize = 4096;
/// Most tunnels waiting for or holding their POST half at once (each is also a connection).
const MAX_TUNNELS: usize = 10_000;
/// How long an accepted connection waits for a slot freed by closing an idle one.
const EVICTION_WAIT: Duration = Duration::from_secs(1);

pub type BoxedReader = Pin<Box<dyn AsyncRead + Send>>;
pub type BoxedWriter = Pin<Box<dyn AsyncWrite + Send>>;

/// One client connection as the RTSP serve loop sees it.
pub struct ConnectionIo {
    pub reader: BoxedReader,
    pub writer: BoxedWriter,
    /// Bytes read while deciding what the connection is; RTSP to be framed first.
    pub initial: BytesMut,
    /// Cancelled to close the connection: evicted as the oldest idle one, or its tunnel's GET
    /// half went away.
    pub stop: CancellationToken,
}

/// What the edge decided for a new connection.
pub enum Opened {
    /// Serve RTSP over this.
    Rtsp(ConnectionIo),
    /// The POST half of a tunnel, now feeding its GET half's serve loop: run this to the end.
    TunnelPost(Pin<Box<dyn std::future::Future<Output = ()> + Send>>),
    /// Refused or broken; already answered.
    Closed,
}

/// Edge state shared by the listeners.
pub struct Edge {
    max_per_ip: u32,
    request_timeout: Duration,
    server_name: &'static str,
    per_ip: Mutex<HashMap<IpAddr, u32>>,
    /// Connections without a session, oldest (lowest id) first, with their address and stop
    /// token.
    idle: Mutex<BTreeMap<u64, (Option<IpAddr>, CancellationToken)>>,
    /// Tunnel cookie → the queue into its GET half's serve loop.
    tunnels: Mutex<HashMap<String, mpsc::Sender<std::io::Result<Bytes>>>>,
}

/// Holds one of an address's connection slots; released on drop.
pub struct IpSlot {
    edge: Arc<Edge>,
    ip: IpAddr,
}

impl Drop for IpSlot {
    fn drop(&mut self) {
        let mut per_ip = self.edge.per_ip.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(count) = per_ip.get_mut(&self.ip) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                per_ip.remove(&self.ip);
            }
        }
    }
}

impl Edge {
    pub fn new(max_per_ip: u32, request_timeout: Duration, server_name: &'static str) -> Edge {
        Edge {
            max_per_ip: max_per_ip.max(1),
            request_timeout,
            server_name,
            per_ip: Mutex::default(),
            idle: Mutex::default(),
            tunnels: Mutex::default(),
        }
    }

    pub fn request_timeout(&self) -> Duration {
        self.request_timeout
    }

    /// Takes one of `ip`'s connection slots, or `None` when it holds `max_connections_per_ip`.
    pub fn claim_ip_slot(self: &Arc<Self>, ip: IpAddr) -> Option<IpSlot> {
        let mut per_ip = self.per_ip.lock().unwrap_or_else(|p| p.into_inner());
        let count = per_ip.entry(ip).or_insert(0);
        if *count >= self.max_per_ip {
            return None;
        }
        *count += 1;
        Some(IpSlot {
            edge: self.clone(),
            ip,
        })
    }

    /// As [`Edge::claim_ip_slot`], but when `ip` holds its cap, first closes that address's
    /// oldest connection without a session and waits (up to the eviction wait) for its slot: a
    /// host opening connections it never uses cannot lock its own address's viewers out.
    pub async fn claim_ip_slot_making_room(self: &Arc<Self>, ip: IpAddr) -> Option<IpSlot> {
        if let Some(slot) = self.claim_ip_slot(ip) {
            return Some(slot);
        }
        if !self.evict_oldest_idle_of(Some(ip)) {
            return None;
        }
        let deadline = tokio::time::Instant::now() + EVICTION_WAIT;
        while tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
            if let Some(slot) = self.claim_ip_slot(ip) {
                return Some(slot);
            }
        }
        None
    }

    /// Registers a connection as idle (no session yet): it may be closed to make room.
    #[cfg(test)]
    pub fn mark_idle(&self, id: u64, stop: &CancellationToken) {
        self.mark_idle_from(id, None, stop);
    }

    /// As [`Edge::mark_idle`], naming the client's address (for the per-address cap).
    pub fn mark_idle_from(&self, id: u64, ip: Option<IpAddr>, stop: &CancellationToken) {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        let known = idle.get(&id).and_then(|(known, _)| *known);
        idle.insert(id, (ip.or(known), stop.clone()));
    }

    /// The connection set up a session, or closed: it is no longer a candidate for eviction.
    pub fn forget_idle(&self, id: u64) {
        self.idle
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&id);
    }

    /// Closes the oldest connection that never set up a session; false when there is none.
    pub fn evict_oldest_idle(&self) -> bool {
        self.evict_oldest_idle_of(None)
    }

    /// Closes the oldest connection without a session, of `ip` only when given.
    fn evict_oldest_idle_of(&self, ip: Option<IpAddr>) -> bool {
        let oldest = {
            let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
            let id = idle
                .iter()
                .find(|(_, (from, _))| ip.is_none() || *from == ip)
                .map(|(id, _)| *id);
            id.and_then(|id| idle.remove(&id).map(|(_, stop)| (id, stop)))
        };
        match oldest {
            Some((id, stop)) => {
                debug!(target: "serval_stream::net", connection = id,
                       "connection limit reached: closing the oldest connection without a session");
                stop.cancel();
                true
            }
            None => false,
        }
    }

    /// How long to wait for a slot after evicting.
    pub fn eviction_wait(&self) -> Duration {
        EVICTION_WAIT
    }

    /// Reads the first bytes of a connection and decides what it is. `stream` is the socket or
    /// the TLS stream over it.
    #[cfg(test)]
    pub async fn open<S>(self: &Arc<Self>, stream: S, id: u64) -> Opened
    where
        S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    {
        self.open_from(stream, id, None).await
    }

    /// As [`Edge::open`], for a connection from `peer` (whose idle connections the per-address
    /// cap may then close).
    pub async fn open_from<S>(
        self: &Arc<Self>,
        mut stream: S,
        id: u64,
        peer: Option<IpAddr>,
    ) -> Opened
    where
        S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    {
        let mut initial = BytesMut::with_capacity(READ_CHUNK);
        let stop = CancellationToken::new();
        self.mark_idle_from(id, peer, &stop);
        let deadline = tokio::time::Instant::now() + self.request_timeout;
        let classified = loop {
            match classify(&initial) {
                Ok(Classified::NeedMore) => {}
                Ok(other) => break other,
                Err(error) => {
                    self.forget_idle(id);
                    refuse_http(&mut stream, &error, self.server_name).await;
                    return Opened::Closed;
                }
            }
            // A first request line arriving slower than the request timeout, an evicted idle
            // connection, or EOF: nothing to serve.
            let read = tokio::select! {
                () = stop.cancelled() => None,
                () = tokio::time::sleep_until(deadline) => None,
                read = stream.read_buf(&mut initial) => read.ok().filter(|n| *n > 0),
            };
            if read.is_none() {
                self.forget_idle(id);
                return Opened::Closed;
            }
        };
        match classified {
            Classified::Rtsp | Classified::NeedMore => {
                let (reader, writer) = tokio::io::split(stream);
                Opened::Rtsp(ConnectionIo {
                    reader: Box::pin(reader),
                    writer: Box::pin(writer),
                    initial,
                    stop,
                })
            }
            Classified::Tunnel {
                half,
                cookie,
                consumed,
            } => {
                let body = initial.split_off(consumed.min(initial.len()));
                match half {
                    TunnelHalf::Get => self.open_tunnel_get(stream, cookie, stop, id).await,
                    TunnelHalf::Post => {
                        self.forget_idle(id);
                        self.open_tunnel_post(stream, cookie, body).await
                    }
                }
            }
        }
    }

    async fn open_tunnel_get<S>(
        self: &Arc<Self>,
        mut stream: S,
        cookie: String,
        stop: CancellationToken,
        id: u64,
    ) -> Opened
    where
        S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    {
        let (sender, receiver) = mpsc::channel(TUNNEL_QUEUE_CHUNKS);
        let registered = {
            let mut tunnels = self.tunnels.lock().unwrap_or_else(|p| p.into_inner());
            let free = tunnels.len() < MAX_TUNNELS && !tunnels.contains_key(&cookie);
            if free {
                tunnels.insert(cookie.clone(), sender);
            }
            free
        };
        if !registered {
            self.forget_idle(id);
            refuse_http(
                &mut stream,
                &TunnelError::BadCookie { limit: 0 },
                self.server_name,
            )
            .await;
            return Opened::Closed;
        }
        if stream
            .write_all(crate::tunnel::get_response(self.server_name).as_bytes())
            .await
            .is_err()
        {
            self.drop_tunnel(&cookie);
            return Opened::Closed;
        }
        debug!(target: "serval_stream::net", %cookie, "RTSP-over-HTTP tunnel opened (GET half)");
        let (mut socket_reader, writer) = tokio::io::split(stream);
        // The client sends nothing more on the GET half; its end closes the tunnel.
        let edge = self.clone();
        let watch_stop = stop.clone();
        let watched_cookie = cookie.clone();
        tokio::spawn(async move {
            let mut discard = [0u8; 512];
            loop {
                tokio::select! {
                    () = watch_stop.cancelled() => break,
                    read = socket_reader.read(&mut discard) => match read {
                        Ok(0) | Err(_) => break,
                        Ok(_) => {}
                    },
                }
            }
            edge.drop_tunnel(&watched_cookie);
            watch_stop.cancel();
        });
        let chunks = futures::stream::unfold(receiver, |mut receiver| async move {
            receiver.recv().await.map(|chunk| (chunk, receiver))
        });
        Opened::Rtsp(ConnectionIo {
            reader: Box::pin(tokio_util::io::StreamReader::new(Box::pin(chunks))),
            writer: Box::pin(writer),
            initial: BytesMut::new(),
            stop,
        })
    }

    async fn open_tunnel_post<S>(
        self: &Arc<Self>,
        mut stream: S,
        cookie: String,
        body: BytesMut,
    ) -> Opened
    where
        S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    {
        let sender = self
            .tunnels
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&cookie)
            .cloned();
        let Some(sender) = sender else {
            debug!(target: "serval_stream::net", %cookie, "tunnel POST without its GET half");
            refuse_http(&mut stream, &TunnelError::NoCookie, self.server_name).await;
            return Opened::Closed;
        };
        let server_name = self.server_name;
        Opened::TunnelPost(Box::pin(async move {
            let mut decoder = Base64Stream::new();
            let mut decoded = BytesMut::new();
            let mut pending = body;
            loop {
                if let Err(error) = decoder.push(&pending, &mut decoded) {
                    debug!(target: "serval_stream::net", %error, "undecodable tunnel POST body");
                    refuse_http(&mut stream, &error, server_name).await;
                    // The serve loop sees a read error and closes the GET half too.
                    let _ = sender
                        .send(Err(std::io::Error::other("undecodable tunnel body")))
                        .await;
                    return;
                }
                pending.clear();
                if !decoded.is_empty() && sender.send(Ok(decoded.split().freeze())).await.is_err() {
                    return;
                }
                pending.reserve(READ_CHUNK);
                tokio::select! {
                    () = sender.closed() => return,
                    read = stream.read_buf(&mut pending) => match read {
                        Ok(0) | Err(_) => return,
                        Ok(_) => {}
                    },
                }
            }
        }))
    }

    fn drop_tunnel(&self, cookie: &str) {
        self.tunnels
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(cookie);
    }
}

/// Accepts the TLS handshake of an RTSPS connection within `timeout`.
pub async fn tls_handshake(
    acceptor: &tokio_rustls::TlsAcceptor,
    stream: TcpStream,
    timeout: Duration,
) -> Option<tokio_rustls::server::TlsStream<TcpStream>> {
    match tokio::time::timeout(timeout, acceptor.accept(stream)).await {
        Ok(Ok(tls)) => Some(tls),
        Ok(Err(error)) => {
            debug!(target: "serval_stream::net", %error, "TLS handshake failed");
            None
        }
        Err(_) => {
            debug!(target: "serval_stream::net", "TLS handshake timed out");
            None
        }
    }
}

/// The TLS acceptor for RTSPS: the service's `[tls]` config without the HTTP ALPN entry, since
/// RTSP clients offer none (or offer RTSP names) and must not be refused for it.
pub fn rtsps_acceptor(config: &Arc<rustls::ServerConfig>) -> tokio_rustls::TlsAcceptor {
    let mut config = rustls::ServerConfig::clone(config);
    config.alpn_protocols.clear();
    tokio_rustls::TlsAcceptor::from(Arc::new(config))
}

/// A plain answer to an address refused before any request was read.
pub async fn refuse_rtsp<S: AsyncWrite + Unpin>(stream: &mut S, status: &str, server: &str) {
    let text = format!("RTSP/1.0 {status}\r\nServer: {server}\r\nContent-Length: 0\r\n\r\n");
    let _ = tokio::time::timeout(Duration::from_secs(2), stream.write_all(text.as_bytes())).await;
}

async fn refuse_http<S: AsyncWrite + Unpin>(stream: &mut S, error: &TunnelError, server: &str) {
    let text = crate::tunnel::error_response(error, server);
    let _ = tokio::time::timeout(Duration::from_secs(2), stream.write_all(text.as_bytes())).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_address_slots_are_capped_and_released() {
        let edge = Arc::new(Edge::new(2, Duration::from_secs(5), "t"));
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        let a = edge.claim_ip_slot(ip).unwrap();
        let _b = edge.claim_ip_slot(ip).unwrap();
        assert!(edge.claim_ip_slot(ip).is_none());
        assert!(edge.claim_ip_slot("10.0.0.2".parse().unwrap()).is_some());
        drop(a);
        assert!(edge.claim_ip_slot(ip).is_some());
    }

    #[test]
    fn eviction_takes_the_oldest_idle_connection() {
        let edge = Edge::new(2, Duration::from_secs(5), "t");
        let (old, new) = (CancellationToken::new(), CancellationToken::new());
        edge.mark_idle(7, &new);
        edge.mark_idle(3, &old);
        assert!(edge.evict_oldest_idle());
        assert!(old.is_cancelled() && !new.is_cancelled());
        edge.forget_idle(7);
        assert!(!edge.evict_oldest_idle());
    }

    #[tokio::test]
    async fn tunnel_post_bodies_reach_the_get_half_decoded() {
        let edge = Arc::new(Edge::new(8, Duration::from_secs(5), "t"));
        let (client_get, server_get) = tokio::io::duplex(4096);
        let (mut client_post, server_post) = tokio::io::duplex(4096);
        let mut client_get = client_get;
        client_get
            .write_all(b"GET /a.mp4 HTTP/1.0\r\nx-sessioncookie: c00kie\r\n\r\n")
            .await
            .unwrap();
        let Opened::Rtsp(mut io) = edge.open(server_get, 1).await else {
            panic!("GET half not opened")
        };
        let mut answer = vec![0u8; 512];
        let n = client_get.read(&mut answer).await.unwrap();
        assert!(String::from_utf8_lossy(&answer[..n]).contains("application/x-rtsp-tunnelled"));
        client_post
            .write_all(b"POST /a.mp4 HTTP/1.0\r\nx-sessioncookie: c00kie\r\nContent-Length: 32767\r\n\r\nT1BUSU9OUyAq")
            .await
            .unwrap();
        let Opened::TunnelPost(post) = edge.open(server_post, 2).await else {
            panic!("POST half not bound")
        };
        tokio::spawn(post);
        client_post
            .write_all(b"IFJUU1AvMS4wDQoNCg==")
            .await
            .unwrap();
        let mut request = [0u8; 64];
        let mut got = 0;
        while got < 22 {
            got += io.reader.read(&mut request[got..]).await.unwrap();
        }
        assert_eq!(&request[..got], b"OPTIONS * RTSP/1.0\r\n\r\n");
        // The GET half going away ends the tunnel.
        drop(client_get);
        tokio::time::timeout(Duration::from_secs(2), io.stop.cancelled())
            .await
            .unwrap();
    }
}
