//! Asking another name server: one question over UDP from a fresh socket (a random source
//! port as well as a random ID), again over TCP when the answer comes back truncated.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use futures::future::BoxFuture;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpStream, UdpSocket};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AskError {
    /// No answer in time.
    Timeout,
    /// The network said no: port closed (ICMP), no route, connection reset.
    Network(String),
}

impl std::fmt::Display for AskError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AskError::Timeout => f.write_str("no answer in time"),
            AskError::Network(reason) => f.write_str(reason),
        }
    }
}

/// How the recursor reaches name servers; the resolver's tests put a scripted Internet here.
pub trait Upstream: Send + Sync + 'static {
    /// Sends `query` (whose ID is `id`) to `server`; the reply's bytes, ID checked.
    fn ask(
        &self,
        server: SocketAddr,
        query: Vec<u8>,
        id: u16,
        timeout: Duration,
    ) -> BoxFuture<'static, Result<Vec<u8>, AskError>>;
}

/// The real network.
pub struct Network;

impl Upstream for Network {
    fn ask(
        &self,
        server: SocketAddr,
        query: Vec<u8>,
        id: u16,
        timeout: Duration,
    ) -> BoxFuture<'static, Result<Vec<u8>, AskError>> {
        Box::pin(ask(server, query, id, timeout))
    }
}

fn network(error: std::io::Error) -> AskError {
    AskError::Network(error.to_string())
}

/// One question to one server, UDP then TCP if truncated, within `timeout` in all.
pub async fn ask(
    server: SocketAddr,
    query: Vec<u8>,
    id: u16,
    timeout: Duration,
) -> Result<Vec<u8>, AskError> {
    let deadline = tokio::time::Instant::now() + timeout;
    let local: SocketAddr = match server.ip() {
        IpAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        IpAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let socket = UdpSocket::bind(local).await.map_err(network)?;
    socket.connect(server).await.map_err(network)?;
    socket.send(&query).await.map_err(network)?;
    // We offer 1232 bytes (EDNS); a larger datagram is cut short, fails to parse, and the
    // server counts as failed. A 64 KiB buffer per question in flight would cost megabytes
    // in a burst, which the allocator keeps.
    let mut buf = vec![0u8; 4096];
    let reply = loop {
        let n = tokio::time::timeout_at(deadline, socket.recv(&mut buf))
            .await
            .map_err(|_| AskError::Timeout)?
            .map_err(network)?;
        // A connected socket only hears that server; the ID must match too.
        if n >= 12 && u16::from_be_bytes([buf[0], buf[1]]) == id {
            break buf[..n].to_vec();
        }
    };
    if reply[2] & 0x02 == 0 {
        return Ok(reply);
    }
    let reply = tokio::time::timeout_at(deadline, async {
        let mut stream = TcpStream::connect(server).await?;
        write_framed(&mut stream, &query).await?;
        read_framed(&mut stream).await
    })
    .await
    .map_err(|_| AskError::Timeout)?
    .map_err(network)?;
    if reply.len() < 12 || u16::from_be_bytes([reply[0], reply[1]]) != id {
        return Err(AskError::Network("TCP answer with another ID".into()));
    }
    Ok(reply)
}

/// Writes one DNS message with its two-byte length (RFC 1035 4.2.2).
pub async fn write_framed(stream: &mut TcpStream, message: &[u8]) -> std::io::Result<()> {
    let len = u16::try_from(message.len()).unwrap_or(u16::MAX);
    let mut framed = Vec::with_capacity(message.len() + 2);
    framed.extend_from_slice(&len.to_be_bytes());
    framed.extend_from_slice(&message[..usize::from(len)]);
    stream.write_all(&framed).await
}

/// Reads one length-prefixed DNS message.
pub async fn read_framed(stream: &mut TcpStream) -> std::io::Result<Vec<u8>> {
    let len = stream.read_u16().await?;
    let mut message = vec![0u8; usize::from(len)];
    stream.read_exact(&mut message).await?;
    Ok(message)
}
