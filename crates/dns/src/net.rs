//! The tokio driver: UDP and TCP listeners, and queries to the forwarders.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hickory_proto::op::Message;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::recursor::upstream::{read_framed, write_framed};
use crate::recursor::Recursor;
use crate::server::{
    forwarders_failed, recursed, relay, upstream_query, Outcome, Responder, Transport,
};

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
    /// Full recursion, when no forwarders are set.
    pub recursor: Option<Arc<Recursor>>,
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
        recursor: Option<Arc<Recursor>>,
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
            recursor,
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
            Outcome::Resolve(query) => self.forward_limited(&query, transport).await?,
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

    /// Queries answered (or dropped) so far, by outcome.
    pub fn outcome_counts(&self) -> Vec<(&'static str, u64)> {
        self.outcomes
            .iter()
            .map(|(name, c)| (*name, c.get()))
            .collect()
    }

    fn count(&self, outcome: &str) {
        // Handles made once: no label allocation per query.
        if let Some((_, counter)) = self.outcomes.iter().find(|(name, _)| *name == outcome) {
            counter.inc();
        }
    }

    /// The reply from the recursor's fresh cache, when recursion is on and it holds one.
    fn cached_reply(&self, query: &Message, transport: Transport) -> Option<Vec<u8>> {
        let recursor = self
            .recursor
            .as_ref()
            .filter(|_| self.forwarders.is_empty())?;
        let question = query.queries.first()?;
        let resolution = recursor.answer_cached(question.name(), question.query_type())?;
        Some(recursed(query, resolution, transport))
    }

    /// [`Driver::forward`] within the limit of questions in flight.
    async fn forward_limited(&self, query: &Message, transport: Transport) -> Option<Vec<u8>> {
        let _slot = self.in_flight.acquire().await.ok()?;
        Some(self.forward(query, transport).await)
    }

    async fn forward(&self, query: &Message, transport: Transport) -> Vec<u8> {
        if let (true, Some(recursor)) = (self.forwarders.is_empty(), &self.recursor) {
            let question = &query.queries[0];
            let resolution = recursor
                .answer(question.name(), question.query_type())
                .await;
            if let Some((code, reason)) = &resolution.ede {
                if resolution.code == hickory_proto::op::ResponseCode::ServFail {
                    tracing::warn!(target: "serval_dns::recursor", name = %question.name(),
                        record_type = %question.query_type(), ede = code, %reason, "SERVFAIL");
                }
            }
            return recursed(query, resolution, transport);
        }
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

/// One question to one forwarder, with a new random ID.
async fn ask(forwarder: SocketAddr, query: &Message, timeout: Duration) -> Result<Vec<u8>, String> {
    let id: u16 = rand::random();
    let request = upstream_query(query, id);
    crate::recursor::upstream::ask(forwarder, request, id, timeout)
        .await
        .map_err(|e| match e {
            crate::recursor::AskError::Timeout => {
                format!("no answer within {} ms", timeout.as_millis())
            }
            other => other.to_string(),
        })
}

/// One UDP receive loop on its own OS thread, blocking in `recv_from`: local answers and cache
/// hits go out from here without touching the async runtime (a reactor wake-up per packet
/// cost more than answering it); only a question that must wait on other servers becomes a
/// task on `runtime`. Several such loops share one address through SO_REUSEPORT.
pub fn serve_udp(
    socket: Arc<std::net::UdpSocket>,
    driver: Arc<Driver>,
    runtime: tokio::runtime::Handle,
    tasks: TaskTracker,
    shutdown: CancellationToken,
) {
    // Wakes the loop to notice a shutdown.
    let _ = socket.set_read_timeout(Some(Duration::from_millis(200)));
    let mut buf = vec![0u8; 65535];
    while !shutdown.is_cancelled() {
        let (n, client) = match socket.recv_from(&mut buf) {
            Ok(x) => x,
            // Timeouts, and ICMP errors from earlier sends on some systems: keep serving.
            Err(_) => continue,
        };
        let started = Instant::now();
        let packet = &buf[..n];
        match driver.responder.handle(packet, client.ip(), Transport::Udp) {
            Outcome::Drop => driver.count("dropped"),
            Outcome::Reply(reply) => {
                driver.record(packet, client, Transport::Udp, started, &reply);
                let _ = socket.send_to(&reply, client);
            }
            Outcome::Resolve(query) => {
                if let Some(reply) = driver.cached_reply(&query, Transport::Udp) {
                    driver.record(packet, client, Transport::Udp, started, &reply);
                    let _ = socket.send_to(&reply, client);
                    continue;
                }
                let packet = packet.to_vec();
                let (socket, driver) = (socket.clone(), driver.clone());
                tasks.spawn_on(
                    async move {
                        if let Some(reply) = driver.forward_limited(&query, Transport::Udp).await {
                            driver.record(&packet, client, Transport::Udp, started, &reply);
                            // A UDP send does not wait on the peer; blocking here is brief.
                            let _ = socket.send_to(&reply, client);
                        }
                    },
                    &runtime,
                );
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
    // The accept loop holds one slot while it waits for the next client.
    (MAX_TCP_CONNECTIONS - driver.tcp_slots.available_permits()).saturating_sub(1)
}
