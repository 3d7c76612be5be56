//! FastCGI to php-fpm (or any FastCGI app): a pool of connections per socket, the request
//! sent in one write, the CGI response head (`Status:`, headers) parsed by [`parse_head`],
//! and the answer returned whole when it is quick, streamed when it is not.
//!
//! The records themselves are [`crate::fastcgi_wire`]'s. A reused connection that php-fpm
//! closed (pm.max_requests, restart) is replaced and the request sent once more, before any
//! answer was read, so nothing the client saw is repeated.

use crate::config::FastCgiAddr;
use crate::fastcgi_wire::{encode_request, next_record, Params, Record};
use bytes::{Bytes, BytesMut};
use futures::stream::BoxStream;
use futures::StreamExt as _;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpStream, UnixStream};
use tokio_util::either::Either;

type Stream = Either<TcpStream, UnixStream>;
type Idle = Arc<Mutex<Vec<Stream>>>;

/// Why a FastCGI request produced no answer.
#[derive(Debug, thiserror::Error)]
pub enum FastCgiError {
    #[error("cannot connect to FastCGI server {addr}: {reason}")]
    Connect { addr: String, reason: String },
    #[error("FastCGI server {addr} did not answer within {secs} s")]
    Timeout { addr: String, secs: u64 },
    #[error("FastCGI server {addr} failed: {reason}")]
    Protocol { addr: String, reason: String },
}

/// The answer head, then the body.
pub struct FastCgiResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: AnswerBody,
}

pub enum AnswerBody {
    /// The app finished within [`GATHER`]: sent with a Content-Length, in one write.
    Complete(Bytes),
    /// The app is still writing: its output is passed on as it comes.
    Streaming(BoxStream<'static, Result<Bytes, std::io::Error>>),
}

/// How long an answer is gathered whole before it is streamed instead. Most pages finish
/// well within it; an app that streams (progress output, long downloads) starts flowing
/// after it.
const GATHER: Duration = Duration::from_millis(20);

/// Most body bytes gathered before streaming begins.
const GATHER_BYTES: usize = 256 * 1024;

/// Read buffer per request: a typical page and its records arrive in one read.
const READ_BUFFER: usize = 16 * 1024;

/// Connections to one FastCGI server.
pub struct FastCgiPool {
    addr: FastCgiAddr,
    /// `addr` as logs and errors name it, made once.
    label: Arc<str>,
    idle: Idle,
    /// With keep-alive, one permit per request in flight: a new connection is opened only
    /// when no idle one is left, so open connections never outnumber the permits (php-fpm's
    /// workers, each of which serves one connection at a time).
    slots: Option<Arc<tokio::sync::Semaphore>>,
}

impl FastCgiPool {
    /// `keep_alive` connections are kept for reuse, and then at most that many requests run
    /// at once; 0 is a connection per request, as many at once as clients send.
    pub fn new(addr: FastCgiAddr, keep_alive: usize) -> Self {
        Self {
            label: addr.to_string().into(),
            addr,
            idle: Arc::new(Mutex::new(Vec::new())),
            slots: (keep_alive > 0).then(|| Arc::new(tokio::sync::Semaphore::new(keep_alive))),
        }
    }

    pub fn addr(&self) -> &FastCgiAddr {
        &self.addr
    }

    fn keep_alive(&self) -> bool {
        self.slots.is_some()
    }

    /// A new connection, with as much of `request` as went out already (see
    /// [`connect_unix_and_send`]).
    async fn connect(&self, request: &[u8]) -> Result<(Stream, usize), FastCgiError> {
        match &self.addr {
            FastCgiAddr::Unix(path) => connect_unix_and_send(path, request)
                .await
                .map(|(s, sent)| (Either::Right(s), sent)),
            FastCgiAddr::Tcp(addr) => TcpStream::connect(addr).await.map(|s| {
                let _ = s.set_nodelay(true);
                (Either::Left(s), 0)
            }),
        }
        .map_err(|e| FastCgiError::Connect {
            addr: self.label.to_string(),
            reason: e.to_string(),
        })
    }

    fn take_idle(&self) -> Option<Stream> {
        if !self.keep_alive() {
            return None;
        }
        self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop()
    }

    /// Runs one request; `stderr` lines from the app are logged with `script`. `timeout`
    /// bounds the wait for the answer head.
    pub async fn execute(
        &self,
        params: &Params,
        body: &[u8],
        timeout: Duration,
        script: &str,
    ) -> Result<FastCgiResponse, FastCgiError> {
        let request = encode_request(params, body, self.keep_alive());
        let attempt = async {
            // The slot first: only then is an idle connection (or a new one) ours to use.
            let permit = match &self.slots {
                Some(slots) => Some(slots.clone().acquire_owned().await.map_err(|_| {
                    FastCgiError::Protocol {
                        addr: self.label.to_string(),
                        reason: "pool closed".into(),
                    }
                })?),
                None => None,
            };
            let exchange = match self.take_idle() {
                Some(io) => match exchange(io, &request, script).await {
                    Err(f) if f.before_answer => {
                        tracing::debug!(error = %f.reason, "stale FastCGI connection; reconnecting");
                        let (io, sent) = self.connect(&request).await?;
                        exchange(io, &request[sent..], script).await
                    }
                    other => other,
                },
                None => {
                    let (io, sent) = self.connect(&request).await?;
                    exchange(io, &request[sent..], script).await
                }
            };
            exchange
                .map(|e| (e, permit))
                .map_err(|f| FastCgiError::Protocol {
                    addr: self.label.to_string(),
                    reason: f.reason,
                })
        };
        let (exchange, permit) = match tokio::time::timeout(timeout, attempt).await {
            Ok(r) => r?,
            Err(_) => {
                return Err(FastCgiError::Timeout {
                    addr: self.label.to_string(),
                    secs: timeout.as_secs(),
                })
            }
        };
        let idle = self.keep_alive().then(|| self.idle.clone());
        Ok(match exchange {
            Exchange::Complete {
                status,
                headers,
                body,
                io,
            } => {
                if let (Some(idle), Some(io)) = (idle, io) {
                    idle.lock().unwrap_or_else(|p| p.into_inner()).push(io);
                }
                // Released only now: the connection is idle again (or gone).
                drop(permit);
                FastCgiResponse {
                    status,
                    headers,
                    body: AnswerBody::Complete(body),
                }
            }
            Exchange::Streaming {
                status,
                headers,
                parts,
                io,
                buf,
            } => {
                let rest = Rest {
                    io: Some(io),
                    buf,
                    parts,
                    idle,
                    permit,
                    script: script.to_owned(),
                    addr: self.label.clone(),
                };
                FastCgiResponse {
                    status,
                    headers,
                    body: AnswerBody::Streaming(futures::stream::unfold(rest, Rest::next).boxed()),
                }
            }
        })
    }
}

/// Connects to a Unix socket and writes what fits of `request` at once; the number of bytes
/// written comes back with the stream.
///
/// A Unix socket connects at once (or fails at once, EAGAIN when the app's backlog is full),
/// and so does a write of a request into its empty buffer. `tokio::net::UnixStream::connect`
/// instead waits for the socket's first readiness event before anything is written: an extra
/// epoll round and a getsockopt on every request, as php-fpm gets a connection per request.
async fn connect_unix_and_send(
    path: &std::path::Path,
    request: &[u8],
) -> std::io::Result<(UnixStream, usize)> {
    use socket2::{Domain, SockAddr, Socket, Type};
    // Non-blocking from socket(2) on: two fcntl calls fewer per request.
    #[cfg(any(target_os = "linux", target_os = "android", target_os = "freebsd"))]
    let socket = Socket::new(Domain::UNIX, Type::STREAM.nonblocking().cloexec(), None)?;
    #[cfg(not(any(target_os = "linux", target_os = "android", target_os = "freebsd")))]
    let socket = {
        let socket = Socket::new(Domain::UNIX, Type::STREAM.cloexec(), None)?;
        socket.set_nonblocking(true)?;
        socket
    };
    let connected = match socket.connect(&SockAddr::unix(path)?) {
        Ok(()) => true,
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => false,
        Err(e) => return Err(e),
    };
    let std_stream = std::os::unix::net::UnixStream::from(std::os::fd::OwnedFd::from(socket));
    let mut sent = 0;
    if connected {
        use std::io::Write as _;
        match (&std_stream).write(request) {
            Ok(n) => sent = n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
    let stream = UnixStream::from_std(std_stream)?;
    if !connected {
        stream.writable().await?;
        if let Some(e) = stream.take_error()? {
            return Err(e);
        }
    }
    Ok((stream, sent))
}

/// What one request on a connection gave.
enum Exchange {
    Complete {
        status: u16,
        headers: Vec<(String, String)>,
        body: Bytes,
        /// The connection, when the app left it open for another request.
        io: Option<Stream>,
    },
    Streaming {
        status: u16,
        headers: Vec<(String, String)>,
        parts: VecDeque<Bytes>,
        io: Stream,
        buf: BytesMut,
    },
}

struct Failure {
    reason: String,
    /// Nothing came back: the request may go again on a fresh connection.
    before_answer: bool,
}

/// Next record of the answer; `None` at a clean end of the connection.
async fn read_record(io: &mut Stream, buf: &mut BytesMut) -> Result<Option<Record>, String> {
    loop {
        if let Some(record) = next_record(buf).map_err(|e| e.to_string())? {
            return Ok(Some(record));
        }
        if buf.capacity() - buf.len() < 1024 {
            buf.reserve(READ_BUFFER);
        }
        match io.read_buf(buf).await {
            Ok(0) if buf.is_empty() => return Ok(None),
            Ok(0) => return Err("the connection ended inside a record".into()),
            Ok(_) => {}
            Err(e) => return Err(e.to_string()),
        }
    }
}

/// Sends the request and reads the head, then gathers the body for up to [`GATHER`].
async fn exchange(mut io: Stream, request: &[u8], script: &str) -> Result<Exchange, Failure> {
    let fail = |reason: String, before_answer: bool| Failure {
        reason,
        before_answer,
    };
    io.write_all(request)
        .await
        .map_err(|e| fail(e.to_string(), true))?;
    let mut buf = BytesMut::with_capacity(READ_BUFFER);
    let mut head_bytes: Vec<u8> = Vec::new();
    let mut answered = false;
    let (status, headers, first) = loop {
        let record = read_record(&mut io, &mut buf)
            .await
            .map_err(|e| fail(e, !answered))?;
        let out = match record {
            None => {
                return Err(fail(
                    "the connection ended before an answer".into(),
                    !answered,
                ))
            }
            Some(Record::End { .. }) => {
                return Err(fail("the app ended without an answer head".into(), false))
            }
            Some(Record::Stderr(err)) => {
                answered = true;
                log_stderr(script, &err);
                continue;
            }
            Some(Record::Stdout(out)) => out,
        };
        answered = true;
        // Usually the whole head is in the first record: then the body is a slice of it.
        let parsed = if head_bytes.is_empty() {
            parse_head(&out)
        } else {
            head_bytes.extend_from_slice(&out);
            parse_head(&head_bytes)
        };
        match parsed {
            HeadParse::Incomplete if head_bytes.len().max(out.len()) < MAX_HEAD => {
                if head_bytes.is_empty() {
                    head_bytes.extend_from_slice(&out);
                }
            }
            HeadParse::Incomplete => return Err(fail("answer head over 64 KiB".into(), false)),
            HeadParse::Invalid(why) => {
                return Err(fail(format!("malformed answer head: {why}"), false))
            }
            HeadParse::Done {
                status,
                headers,
                body_start,
            } => {
                let first = if head_bytes.is_empty() {
                    out.slice(body_start..)
                } else {
                    Bytes::copy_from_slice(&head_bytes[body_start..])
                };
                break (status, headers, first);
            }
        }
    };
    let mut parts = VecDeque::new();
    let mut gathered = first.len();
    if !first.is_empty() {
        parts.push_back(first);
    }
    let gather_until = tokio::time::Instant::now() + GATHER;
    while gathered < GATHER_BYTES {
        match tokio::time::timeout_at(gather_until, read_record(&mut io, &mut buf)).await {
            Err(_) => break,
            Ok(Ok(Some(Record::Stdout(out)))) => {
                gathered += out.len();
                parts.push_back(out);
            }
            Ok(Ok(Some(Record::Stderr(err)))) => log_stderr(script, &err),
            Ok(Ok(Some(Record::End { .. }))) => {
                let body = match parts.len() {
                    0 => Bytes::new(),
                    1 => parts.pop_front().unwrap_or_default(),
                    _ => {
                        let mut all = BytesMut::with_capacity(gathered);
                        for p in parts {
                            all.extend_from_slice(&p);
                        }
                        all.freeze()
                    }
                };
                return Ok(Exchange::Complete {
                    status,
                    headers,
                    body,
                    io: buf.is_empty().then_some(io),
                });
            }
            Ok(Ok(None)) => return Err(fail("the answer broke off before its end".into(), false)),
            Ok(Err(e)) => return Err(fail(format!("answer broke off: {e}"), false)),
        }
    }
    Ok(Exchange::Streaming {
        status,
        headers,
        parts,
        io,
        buf,
    })
}

/// The rest of a streamed answer; owns its connection (and pool slot) until the end.
struct Rest {
    io: Option<Stream>,
    buf: BytesMut,
    parts: VecDeque<Bytes>,
    idle: Option<Idle>,
    permit: Option<tokio::sync::OwnedSemaphorePermit>,
    script: String,
    addr: Arc<str>,
}

impl Rest {
    async fn next(mut self) -> Option<(Result<Bytes, std::io::Error>, Self)> {
        if let Some(part) = self.parts.pop_front() {
            return Some((Ok(part), self));
        }
        let mut io = self.io.take()?;
        loop {
            match read_record(&mut io, &mut self.buf).await {
                Ok(Some(Record::Stdout(out))) => {
                    self.io = Some(io);
                    return Some((Ok(out), self));
                }
                Ok(Some(Record::Stderr(err))) => log_stderr(&self.script, &err),
                Ok(Some(Record::End { .. })) => {
                    if let (Some(idle), true) = (&self.idle, self.buf.is_empty()) {
                        idle.lock().unwrap_or_else(|p| p.into_inner()).push(io);
                    }
                    // Released only now: the connection is idle again (or gone).
                    self.permit = None;
                    return None;
                }
                Ok(None) | Err(_) => {
                    tracing::warn!(target: "serval_web", fastcgi = %self.addr, script = %self.script, "FastCGI answer broke off");
                    self.permit = None;
                    return Some((
                        Err(std::io::Error::other("the FastCGI answer broke off")),
                        self,
                    ));
                }
            }
        }
    }
}

/// Largest answer head accepted from a FastCGI app.
const MAX_HEAD: usize = 64 * 1024;

fn log_stderr(script: &str, err: &[u8]) {
    let text = String::from_utf8_lossy(err);
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        tracing::warn!(target: "serval_web", script, "FastCGI stderr: {line}");
    }
}

/// The parsed CGI answer head.
#[derive(Debug, PartialEq, Eq)]
pub enum HeadParse {
    Incomplete,
    Invalid(String),
    Done {
        status: u16,
        headers: Vec<(String, String)>,
        body_start: usize,
    },
}

/// Parses a CGI response head (RFC 3875 6.2): header lines up to an empty line; `Status:`
/// gives the status, a `Location:` without it means 302.
pub fn parse_head(buf: &[u8]) -> HeadParse {
    let (end, sep) = match find_blank_line(buf) {
        Some(x) => x,
        None => return HeadParse::Incomplete,
    };
    let Ok(text) = std::str::from_utf8(&buf[..end]) else {
        return HeadParse::Invalid("header bytes are not UTF-8".into());
    };
    let mut status = None;
    let mut headers = Vec::new();
    let mut location = false;
    for line in text.split('\n').map(|l| l.trim_end_matches('\r')) {
        if line.is_empty() {
            continue;
        }
        let Some((name, value)) = line.split_once(':') else {
            return HeadParse::Invalid(format!("line without a colon: {line:?}"));
        };
        let (name, value) = (name.trim(), value.trim());
        if name.is_empty() || name.contains(' ') {
            return HeadParse::Invalid(format!("bad header name {name:?}"));
        }
        if name.eq_ignore_ascii_case("status") {
            let code = value
                .split_whitespace()
                .next()
                .and_then(|c| c.parse::<u16>().ok());
            match code {
                Some(c) if (100..600).contains(&c) => status = Some(c),
                _ => return HeadParse::Invalid(format!("bad Status {value:?}")),
            }
            continue;
        }
        if name.eq_ignore_ascii_case("location") {
            location = true;
        }
        headers.push((name.to_owned(), value.to_owned()));
    }
    let status = status.unwrap_or(if location { 302 } else { 200 });
    HeadParse::Done {
        status,
        headers,
        body_start: end + sep,
    }
}

/// Position and length of the first empty line (CRLF CRLF or LF LF).
fn find_blank_line(buf: &[u8]) -> Option<(usize, usize)> {
    for i in 0..buf.len() {
        if buf[i..].starts_with(b"\r\n\r\n") {
            return Some((i, 4));
        }
        if buf[i..].starts_with(b"\n\n") {
            return Some((i, 2));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heads_with_status_location_and_defaults() {
        let head = parse_head(b"Status: 404 Not Found\r\nContent-type: text/html\r\n\r\nbody");
        assert_eq!(
            head,
            HeadParse::Done {
                status: 404,
                headers: vec![("Content-type".into(), "text/html".into())],
                body_start: 50
            }
        );
        assert!(matches!(
            parse_head(b"Location: /x\n\n"),
            HeadParse::Done { status: 302, .. }
        ));
        assert!(matches!(
            parse_head(b"X-Powered-By: PHP\r\n\r\n"),
            HeadParse::Done { status: 200, .. }
        ));
        assert_eq!(
            parse_head(b"Content-type: text/html\r\n"),
            HeadParse::Incomplete
        );
        assert!(matches!(
            parse_head(b"garbage\r\n\r\n"),
            HeadParse::Invalid(_)
        ));
        assert!(matches!(
            parse_head(b"Status: abc\r\n\r\n"),
            HeadParse::Invalid(_)
        ));
    }
}
