//! FastCGI to php-fpm (or any FastCGI app): a pool of keep-alive connections per socket,
//! CGI/1.1 parameters as nginx's `fastcgi_params` sets them, and the answer streamed back.
//!
//! The wire protocol is the `fastcgi-client` crate's; this module adds what a web server
//! needs around it: connection reuse (a connection php-fpm closed is replaced and the request
//! retried once, before any answer was read), the CGI response head (`Status:`, headers) parsed
//! by [`parse_head`], and a timeout for the head.

use crate::config::FastCgiAddr;
use bytes::Bytes;
use fastcgi_client::{response::Content, Client, Params, Request, StreamExt as _};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::{TcpStream, UnixStream};
use tokio_util::either::Either;

/// Buffered both ways: the client crate writes each FastCGI record on its own, which would be
/// a system call (and a wake-up of php-fpm) per record; buffered, a request is one write.
type Conn =
    Client<tokio::io::BufStream<Either<TcpStream, UnixStream>>, fastcgi_client::conn::KeepAlive>;

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

/// The answer head, then the body as it arrives.
pub struct FastCgiResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: tokio::sync::mpsc::Receiver<Result<Bytes, std::io::Error>>,
    /// Body bytes that came with the head.
    pub first: Bytes,
    /// `first` is the whole body (the app finished within [`GATHER`]): send it with a
    /// Content-Length, in one write.
    pub complete: bool,
}

/// How long an answer is gathered whole before it is streamed instead. Most pages finish
/// well within it; an app that streams (progress output, long downloads) starts flowing
/// after it.
const GATHER: std::time::Duration = std::time::Duration::from_millis(20);

/// Most body bytes gathered before streaming begins.
const GATHER_BYTES: usize = 256 * 1024;

/// Keep-alive connections to one FastCGI server.
pub struct FastCgiPool {
    addr: FastCgiAddr,
    idle: Arc<Mutex<Vec<Conn>>>,
    /// One permit per request in flight. A new connection is opened only when no idle one
    /// is left, so open connections never outnumber the permits (php-fpm's workers).
    slots: Arc<tokio::sync::Semaphore>,
    /// Whether finished connections go back to `idle`.
    keep_alive: bool,
}

impl FastCgiPool {
    /// `keep_alive` connections are kept for reuse, and then at most that many requests run
    /// at once; 0 is a connection per request, as many at once as clients send.
    pub fn new(addr: FastCgiAddr, keep_alive: usize) -> Self {
        let slots = if keep_alive == 0 {
            tokio::sync::Semaphore::MAX_PERMITS
        } else {
            keep_alive
        };
        Self {
            addr,
            idle: Arc::new(Mutex::new(Vec::new())),
            slots: Arc::new(tokio::sync::Semaphore::new(slots)),
            keep_alive: keep_alive > 0,
        }
    }

    pub fn addr(&self) -> &FastCgiAddr {
        &self.addr
    }

    async fn connect(&self) -> Result<Conn, FastCgiError> {
        let stream = match &self.addr {
            FastCgiAddr::Unix(path) => UnixStream::connect(path).await.map(Either::Right),
            FastCgiAddr::Tcp(addr) => TcpStream::connect(addr).await.map(|s| {
                let _ = s.set_nodelay(true);
                Either::Left(s)
            }),
        }
        .map_err(|e| FastCgiError::Connect {
            addr: self.addr.to_string(),
            reason: e.to_string(),
        })?;
        Ok(Client::new_keep_alive(tokio::io::BufStream::new(stream)))
    }

    fn take_idle(&self) -> Option<Conn> {
        self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop()
    }

    /// Runs one request; `stderr` lines from the app are logged with `script`.
    pub async fn execute(
        &self,
        params: Vec<(String, String)>,
        body: Bytes,
        timeout: Duration,
        script: String,
    ) -> Result<FastCgiResponse, FastCgiError> {
        let addr = self.addr.to_string();
        let slot = || async {
            self.slots
                .clone()
                .acquire_owned()
                .await
                .map_err(|_| FastCgiError::Protocol {
                    addr: addr.clone(),
                    reason: "pool closed".into(),
                })
        };
        let attempt = async {
            // A reused connection may have been closed by php-fpm (pm.max_requests, restart):
            // then once more on a fresh one. Nothing was answered yet, so nothing is repeated
            // that the client saw.
            // The slot first: only then is an idle connection (or a new one) ours to use.
            let permit = slot().await?;
            if let Some(conn) = self.take_idle() {
                match start(
                    conn,
                    &params,
                    &body,
                    &addr,
                    &script,
                    self.keep_alive.then(|| self.idle.clone()),
                    permit,
                )
                .await
                {
                    Ok(r) => return Ok(r),
                    Err(e) => tracing::debug!(error = %e, "stale FastCGI connection; reconnecting"),
                }
                let permit = slot().await?;
                let conn = self.connect().await?;
                return start(
                    conn,
                    &params,
                    &body,
                    &addr,
                    &script,
                    self.keep_alive.then(|| self.idle.clone()),
                    permit,
                )
                .await;
            }
            let conn = self.connect().await?;
            start(
                conn,
                &params,
                &body,
                &addr,
                &script,
                self.keep_alive.then(|| self.idle.clone()),
                permit,
            )
            .await
        };
        match tokio::time::timeout(timeout, attempt).await {
            Ok(r) => r,
            Err(_) => Err(FastCgiError::Timeout {
                addr,
                secs: timeout.as_secs(),
            }),
        }
    }
}

/// Sends the request on `conn` and waits for the head; a task owns the connection, forwards
/// the body, and returns the connection to `idle` when the app has finished cleanly.
async fn start(
    mut conn: Conn,
    params: &[(String, String)],
    body: &Bytes,
    addr: &str,
    script: &str,
    idle: Option<Arc<Mutex<Vec<Conn>>>>,
    permit: tokio::sync::OwnedSemaphorePermit,
) -> Result<FastCgiResponse, FastCgiError> {
    let mut p = Params::default();
    p.clear();
    for (k, v) in params {
        p.insert(k.clone().into(), v.clone().into());
    }
    let (head_tx, head_rx) = tokio::sync::oneshot::channel();
    let (body, script_owned, addr_owned) = (body.clone(), script.to_owned(), addr.to_owned());
    tokio::spawn(async move {
        let reusable = relay(&mut conn, p, body, head_tx, &script_owned, &addr_owned).await;
        if let (true, Some(idle)) = (reusable, idle) {
            idle.lock().unwrap_or_else(|p| p.into_inner()).push(conn);
        }
        // Released only now: the connection is idle again (or gone).
        drop(permit);
    });
    head_rx.await.unwrap_or_else(|_| {
        Err(FastCgiError::Protocol {
            addr: addr.to_owned(),
            reason: "the answer task ended".into(),
        })
    })
}

/// One request on `conn`: the head goes to `head_tx`, the body to the channel inside it.
/// `true` when the app finished its answer and the connection can be reused.
async fn relay(
    conn: &mut Conn,
    params: Params<'static>,
    body: Bytes,
    head_tx: tokio::sync::oneshot::Sender<Result<FastCgiResponse, FastCgiError>>,
    script: &str,
    addr: &str,
) -> bool {
    let fail = |reason: String| FastCgiError::Protocol {
        addr: addr.to_owned(),
        reason,
    };
    let mut stdin = &body[..];
    let mut stream = match conn.execute_stream(Request::new(params, &mut stdin)).await {
        Ok(s) => s,
        Err(e) => {
            let _ = head_tx.send(Err(fail(e.to_string())));
            return false;
        }
    };
    let mut buffered: Vec<u8> = Vec::new();
    let head = loop {
        match stream.next().await {
            None => break Err("the connection ended before an answer".to_owned()),
            Some(Err(e)) => break Err(e.to_string()),
            Some(Ok(Content::Stderr(err))) => log_stderr(script, &err),
            Some(Ok(Content::Stdout(out))) => {
                buffered.extend_from_slice(&out);
                match parse_head(&buffered) {
                    HeadParse::Incomplete if buffered.len() < MAX_HEAD => {}
                    HeadParse::Incomplete => break Err("answer head over 64 KiB".to_owned()),
                    HeadParse::Invalid(why) => break Err(format!("malformed answer head: {why}")),
                    HeadParse::Done {
                        status,
                        headers,
                        body_start,
                    } => break Ok((status, headers, body_start)),
                }
            }
        }
    };
    let (status, headers, body_start) = match head {
        Ok(h) => h,
        Err(reason) => {
            let _ = head_tx.send(Err(fail(reason)));
            return false;
        }
    };
    let mut body = buffered.split_off(body_start);
    let gather_until = tokio::time::Instant::now() + GATHER;
    let mut complete = false;
    while body.len() < GATHER_BYTES {
        match tokio::time::timeout_at(gather_until, stream.next()).await {
            Err(_) => break,
            Ok(None) => {
                complete = true;
                break;
            }
            Ok(Some(Ok(Content::Stdout(out)))) => body.extend_from_slice(&out),
            Ok(Some(Ok(Content::Stderr(err)))) => log_stderr(script, &err),
            Ok(Some(Err(e))) => {
                let _ = head_tx.send(Err(fail(format!("answer broke off: {e}"))));
                return false;
            }
        }
    }
    let (body_tx, body_rx) = tokio::sync::mpsc::channel(16);
    let first = Bytes::from(body);
    // A client that left stops getting bytes, but the answer is read to its end so the
    // connection stays reusable.
    let mut client_gone = head_tx
        .send(Ok(FastCgiResponse {
            status,
            headers,
            body: body_rx,
            first,
            complete,
        }))
        .is_err();
    if complete {
        return true;
    }
    while let Some(content) = stream.next().await {
        match content {
            Ok(Content::Stdout(out)) => {
                if !client_gone && body_tx.send(Ok(out)).await.is_err() {
                    client_gone = true;
                }
            }
            Ok(Content::Stderr(err)) => log_stderr(script, &err),
            Err(e) => {
                tracing::warn!(target: "serval_web", fastcgi = addr, script, error = %e, "FastCGI answer broke off");
                let _ = body_tx
                    .send(Err(std::io::Error::other(e.to_string())))
                    .await;
                return false;
            }
        }
    }
    true
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
