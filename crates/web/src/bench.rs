//! The load client of `serval bench web`: keep-alive HTTP/1.1 connections, each sending one
//! GET after another for a fixed time, recording every latency. Written over raw sockets
//! (not reqwest) so the client spends as little CPU as possible on a machine it shares with
//! the server under test; it reads Content-Length and chunked bodies, which is all the
//! servers measured send.

use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::TcpStream;

/// Figures of one load run.
#[derive(Debug, Clone)]
pub struct LoadReport {
    pub requests: u64,
    pub errors: u64,
    pub seconds: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    /// Status of the first answer (to catch a misconfigured peer answering 404s fast).
    pub first_status: u16,
    pub body_bytes: u64,
}

impl LoadReport {
    pub fn rate(&self) -> f64 {
        self.requests as f64 / self.seconds
    }
}

/// Runs `connections` keep-alive connections against `addr` for `duration`, each GETting `path`.
pub async fn load(
    addr: std::net::SocketAddr,
    host: &str,
    path: &str,
    connections: usize,
    duration: Duration,
) -> LoadReport {
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: serval-bench\r\nAccept: */*\r\n\r\n"
    );
    let started = Instant::now();
    let deadline = started + duration;
    let mut tasks = Vec::new();
    for _ in 0..connections {
        let request = request.clone();
        tasks.push(tokio::spawn(async move {
            connection(addr, request, deadline).await
        }));
    }
    let mut latencies: Vec<u32> = Vec::new();
    let (mut errors, mut first_status, mut body_bytes) = (0, 0, 0);
    for t in tasks {
        if let Ok(r) = t.await {
            latencies.extend(r.latencies_us);
            errors += r.errors;
            body_bytes += r.body_bytes;
            if first_status == 0 {
                first_status = r.first_status;
            }
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    latencies.sort_unstable();
    let pct = |p: f64| {
        if latencies.is_empty() {
            0.0
        } else {
            let i = ((latencies.len() as f64 - 1.0) * p).round() as usize;
            f64::from(latencies[i]) / 1000.0
        }
    };
    LoadReport {
        requests: latencies.len() as u64,
        errors,
        seconds,
        p50_ms: pct(0.50),
        p99_ms: pct(0.99),
        first_status,
        body_bytes,
    }
}

/// Longest wait for one answer before it counts as an error.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);

struct ConnectionResult {
    latencies_us: Vec<u32>,
    errors: u64,
    first_status: u16,
    body_bytes: u64,
}

async fn connection(
    addr: std::net::SocketAddr,
    request: String,
    deadline: Instant,
) -> ConnectionResult {
    let mut out = ConnectionResult {
        latencies_us: Vec::with_capacity(100_000),
        errors: 0,
        first_status: 0,
        body_bytes: 0,
    };
    let mut stream: Option<BufReader<TcpStream>> = None;
    while Instant::now() < deadline {
        if stream.is_none() {
            match TcpStream::connect(addr).await {
                Ok(s) => {
                    let _ = s.set_nodelay(true);
                    stream = Some(BufReader::new(s));
                }
                Err(_) => {
                    out.errors += 1;
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            }
        }
        let Some(s) = stream.as_mut() else { continue };
        let sent = Instant::now();
        // A server that stops answering is counted, not waited for forever.
        match tokio::time::timeout(ANSWER_TIMEOUT, exchange(s, request.as_bytes())).await {
            Err(_) => {
                out.errors += 1;
                stream = None;
            }
            Ok(Ok((status, bytes, keep))) => {
                if out.first_status == 0 {
                    out.first_status = status;
                }
                if status >= 400 {
                    out.errors += 1;
                } else {
                    out.latencies_us
                        .push(u32::try_from(sent.elapsed().as_micros()).unwrap_or(u32::MAX));
                    out.body_bytes += bytes;
                }
                if !keep {
                    stream = None;
                }
            }
            Ok(Err(_)) => {
                // A server closing a keep-alive connection (nginx's keepalive_requests) is not
                // an error of the request: reconnect and go on.
                stream = None;
            }
        }
    }
    out
}

/// Sends one request, reads its answer: (status, body bytes, keep-alive).
async fn exchange(
    s: &mut BufReader<TcpStream>,
    request: &[u8],
) -> std::io::Result<(u16, u64, bool)> {
    s.get_mut().write_all(request).await?;
    let mut line = String::new();
    if s.read_line(&mut line).await? == 0 {
        return Err(std::io::ErrorKind::UnexpectedEof.into());
    }
    let status: u16 = line
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or(std::io::ErrorKind::InvalidData)?;
    let (mut length, mut chunked, mut keep) = (None, false, true);
    loop {
        line.clear();
        s.read_line(&mut line).await?;
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        if let Some((n, v)) = l.split_once(':') {
            let (n, v) = (n.trim().to_ascii_lowercase(), v.trim());
            match n.as_str() {
                "content-length" => length = v.parse::<u64>().ok(),
                "transfer-encoding" => chunked = v.eq_ignore_ascii_case("chunked"),
                "connection" => keep = !v.eq_ignore_ascii_case("close"),
                _ => {}
            }
        }
    }
    let mut total = 0;
    if chunked {
        loop {
            line.clear();
            s.read_line(&mut line).await?;
            let size = u64::from_str_radix(line.trim().split(';').next().unwrap_or(""), 16)
                .map_err(|_| std::io::ErrorKind::InvalidData)?;
            if size == 0 {
                line.clear();
                s.read_line(&mut line).await?;
                break;
            }
            skip(s, size).await?;
            skip(s, 2).await?;
            total += size;
        }
    } else if let Some(n) = length {
        skip(s, n).await?;
        total = n;
    }
    Ok((status, total, keep))
}

async fn skip(s: &mut BufReader<TcpStream>, mut n: u64) -> std::io::Result<()> {
    let mut buf = [0u8; 16 * 1024];
    while n > 0 {
        let want = usize::try_from(n.min(buf.len() as u64)).unwrap_or(buf.len());
        let got = s.read(&mut buf[..want]).await?;
        if got == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        n -= got as u64;
    }
    Ok(())
}
