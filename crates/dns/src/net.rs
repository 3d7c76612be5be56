//! The tokio driver: UDP and TCP listeners, and queries to the forwarders.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hickory_proto::op::Message;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::server::{forwarders_failed, relay, upstream_query, Outcome, Responder, Transport};

/// Forwarded questions in flight at once; past it a UDP query waits in the socket buffer.
const MAX_IN_FLIGHT: usize = 1024;
/// Open TCP client connections at once.
const MAX_TCP_CONNECTIONS: usize = 256;
/// A TCP client that sends nothing for this long is closed (RFC 7766 suggests seconds).
const TCP_IDLE: Duration = Duration::from_secs(10);

pub struct Driver {
    pub responder: Responder,
    pub forwarders: Vec<SocketAddr>,
    pub forward_timeout: Duration,
    pub query_log: bool,
    pub in_flight: Arc<Semaphore>,
    pub tcp_slots: Arc<Semaphore>,
    /// The `queries` counter of each outcome.
    outcomes: Vec<(&'static str, Counter)>,
}

/// Outcome labels of `dns_queries_total`: the response codes [`reply_code`] names, and drops.
const OUTCOMES: [&str; 8] = [
    "NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP", "REFUSED", "OTHER", "dropped",
];

impl Driver {
    pub fn new(
        responder: Responder,
        forwarders: Vec<SocketAddr>,
        forward_timeout: Duration,
        query_log: bool,
        queries: Family<Vec<(String, String)>, Counter>,
    ) -> Driver {
        let outcomes = OUTCOMES
            .iter()
            .map(|&o| {
                let labels = vec![("outcome".to_owned(), o.to_owned())];
                (o, queries.get_or_create(&labels).clone())
            })
            .collect();
        Driver {
            responder,
            forwarders,
            forward_timeout,
            query_log,
            outcomes,
            in_flight: Arc::new(Semaphore::new(MAX_IN_FLIGHT)),
            tcp_slots: Arc::new(Semaphore::new(MAX_TCP_CONNECTIONS)),
        }
    }

    /// The answer to one packet, forwarding when the core says so; `None` = no answer.
    async fn answer(
        &self,
        packet: &[u8],
        client: SocketAddr,
        transport: Transport,
    ) -> Option<Vec<u8>> {
        let started = Instant::now();
        let reply = match self.responder.handle(packet, client.ip(), transport) {
            Outcome::Drop => {
                self.count("dropped");
                return None;
            }
            Outcome::Reply(bytes) => bytes,
            Outcome::Forward(query) => self.forward_limited(&query, transport).await?,
        };
        self.record(packet, client, transport, started, &reply);
        Some(reply)
    }

    /// Counts an answer and writes its query-log line.
    fn record(
        &self,
        packet: &[u8],
        client: SocketAddr,
        transport: Transport,
        started: Instant,
        reply: &[u8],
    ) {
        let code = reply_code(reply);
        self.count(code);
        if self.query_log {
            let question = Message::from_vec(packet)
                .ok()
                .and_then(|m| {
                    m.queries
                        .first()
                        .map(|q| format!("{} {}", q.name(), q.query_type()))
                })
                .unwrap_or_else(|| "-".into());
            tracing::info!(target: "serval_dns::access", "{} {} {question} {code} {}ms",
                client.ip(), match transport { Transport::Udp => "udp", Transport::Tcp => "tcp" },
                started.elapsed().as_millis());
        }
    }

    fn count(&self, outcome: &str) {
        // Handles made once: no label allocation per query.
        if let Some((_, counter)) = self.outcomes.iter().find(|(name, _)| *name == outcome) {
            counter.inc();
        }
    }

    /// [`Driver::forward`] within the limit of questions in flight.
    async fn forward_limited(&self, query: &Message, transport: Transport) -> Option<Vec<u8>> {
        let _slot = self.in_flight.acquire().await.ok()?;
        Some(self.forward(query, transport).await)
    }

    async fn forward(&self, query: &Message, transport: Transport) -> Vec<u8> {
        for &forwarder in &self.forwarders {
            match ask(forwarder, query, self.forward_timeout).await {
                Ok(upstream) => {
                    if let Some(reply) = relay(query, &upstream, transport) {
                        return reply;
                    }
                    tracing::warn!(target: "serval_dns", %forwarder, "forwarder's reply does not answer the question; trying the next");
                }
                Err(reason) => {
                    tracing::warn!(target: "serval_dns", %forwarder, %reason, "forwarder did not answer");
                }
            }
        }
        forwarders_failed(query, transport)
    }
}

/// The rcode word of an encoded reply, for metrics and the query log.
fn reply_code(reply: &[u8]) -> &'static str {
    match reply.get(3).map(|b| b & 0x0f) {
        Some(0) => "NOERROR",
        Some(1) => "FORMERR",
        Some(2) => "SERVFAIL",
        Some(3) => "NXDOMAIN",
        Some(4) => "NOTIMP",
        Some(5) => "REFUSED",
        _ => "OTHER",
    }
}

/// One question to one forwarder over UDP (from a fresh socket: a random source port, as
/// well as a random ID), then over TCP when the answer is truncated.
async fn ask(forwarder: SocketAddr, query: &Message, timeout: Duration) -> Result<Vec<u8>, String> {
    let id: u16 = rand::random();
    let request = upstream_query(query, id);
    let local: SocketAddr = match forwarder.ip() {
        IpAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        IpAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let socket = UdpSocket::bind(local).await.map_err(|e| e.to_string())?;
    socket.connect(forwarder).await.map_err(|e| e.to_string())?;
    socket.send(&request).await.map_err(|e| e.to_string())?;
    let deadline = tokio::time::Instant::now() + timeout;
    let mut buf = vec![0u8; 65535];
    let reply = loop {
        let n = tokio::time::timeout_at(deadline, socket.recv(&mut buf))
            .await
            .map_err(|_| format!("no answer within {} ms", timeout.as_millis()))?
            .map_err(|e| e.to_string())?;
        // A connected socket only hears the forwarder; the ID must match too.
        if n >= 12 && u16::from_be_bytes([buf[0], buf[1]]) == id {
            break buf[..n].to_vec();
        }
    };
    if reply[2] & 0x02 == 0 {
        return Ok(reply);
    }
    // Truncated: the whole answer over TCP.
    tokio::time::timeout_at(deadline, async {
        let mut stream = TcpStream::connect(forwarder).await?;
        write_framed(&mut stream, &request).await?;
        read_framed(&mut stream).await
    })
    .await
    .map_err(|_| format!("no TCP answer within {} ms", timeout.as_millis()))?
    .map_err(|e| e.to_string())
}

async fn write_framed(stream: &mut TcpStream, message: &[u8]) -> std::io::Result<()> {
    let len = u16::try_from(message.len()).unwrap_or(u16::MAX);
    let mut framed = Vec::with_capacity(message.len() + 2);
    framed.extend_from_slice(&len.to_be_bytes());
    framed.extend_from_slice(&message[..usize::from(len)]);
    stream.write_all(&framed).await
}

async fn read_framed(stream: &mut TcpStream) -> std::io::Result<Vec<u8>> {
    let len = stream.read_u16().await?;
    let mut message = vec![0u8; usize::from(len)];
    stream.read_exact(&mut message).await?;
    Ok(message)
}

pub async fn serve_udp(
    socket: Arc<UdpSocket>,
    driver: Arc<Driver>,
    tasks: TaskTracker,
    shutdown: CancellationToken,
) {
    let mut buf = vec![0u8; 65535];
    loop {
        let (n, client) = tokio::select! {
            () = shutdown.cancelled() => return,
            r = socket.recv_from(&mut buf) => match r {
                Ok(x) => x,
                // ICMP errors from earlier sends surface here on some systems: keep serving.
                Err(_) => continue,
            },
        };
        // Local answers and refusals go out from this loop; only a forwarded question, which
        // waits on another server, gets a task of its own.
        let started = Instant::now();
        let packet = &buf[..n];
        match driver.responder.handle(packet, client.ip(), Transport::Udp) {
            Outcome::Drop => driver.count("dropped"),
            Outcome::Reply(reply) => {
                driver.record(packet, client, Transport::Udp, started, &reply);
                let _ = socket.send_to(&reply, client).await;
            }
            Outcome::Forward(query) => {
                let packet = packet.to_vec();
                let (socket, driver) = (socket.clone(), driver.clone());
                tasks.spawn(async move {
                    if let Some(reply) = driver.forward_limited(&query, Transport::Udp).await {
                        driver.record(&packet, client, Transport::Udp, started, &reply);
                        let _ = socket.send_to(&reply, client).await;
                    }
                });
            }
        }
    }
}

pub async fn serve_tcp(
    listener: TcpListener,
    driver: Arc<Driver>,
    tasks: TaskTracker,
    shutdown: CancellationToken,
) {
    loop {
        let slot = tokio::select! {
            () = shutdown.cancelled() => return,
            s = driver.tcp_slots.clone().acquire_owned() => match s { Ok(s) => s, Err(_) => return },
        };
        let (stream, client) = tokio::select! {
            () = shutdown.cancelled() => return,
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    tracing::warn!(target: "serval_dns", error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let (driver, shutdown) = (driver.clone(), shutdown.clone());
        tasks.spawn(async move {
            let _slot = slot;
            let mut stream = stream;
            loop {
                let message = tokio::select! {
                    () = shutdown.cancelled() => return,
                    r = tokio::time::timeout(TCP_IDLE, read_framed(&mut stream)) => match r {
                        Ok(Ok(m)) => m,
                        _ => return,
                    },
                };
                let Some(reply) = driver.answer(&message, client, Transport::Tcp).await else {
                    return;
                };
                if write_framed(&mut stream, &reply).await.is_err() {
                    return;
                }
            }
        });
    }
}

/// TCP client connections open now.
pub fn tcp_connections_open(driver: &Driver) -> usize {
    MAX_TCP_CONNECTIONS - driver.tcp_slots.available_permits()
}
