//! The tokio driver of SMTP sessions: accept, feed bytes to [`Session`], do what it asks
//! (check a password, queue a message, start TLS), write its replies.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serval_core::Directory;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::Cidr;
use crate::queue::Queue;
use crate::smtp::session::{AuthOutcome, Listener, Session, SessionConfig, Step};
use crate::users::LocalUsers;

/// How long a client may stay silent (Postfix's smtpd_timeout).
const IDLE_TIMEOUT: Duration = Duration::from_secs(300);

pub struct Driver {
    pub hostname: String,
    pub max_message_size: u64,
    pub max_recipients: usize,
    pub mynetworks: Vec<Cidr>,
    pub tls: Option<Arc<rustls::ServerConfig>>,
    pub directory: Directory,
    pub users: Arc<LocalUsers>,
    pub queue: Arc<Queue>,
    pub sessions: tokio::sync::Semaphore,
    pub open: AtomicU64,
    /// SPF, DKIM and DMARC of mail from outside; None when `[mail.inbound] checks = false`.
    pub inbound: Option<Arc<crate::inbound::Checker>>,
}

enum Conn {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::server::TlsStream<TcpStream>>),
    /// Only while the handshake owns the stream.
    Gone,
}

impl Conn {
    async fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Conn::Plain(s) => s.read(buf).await,
            Conn::Tls(s) => s.read(buf).await,
            Conn::Gone => Ok(0),
        }
    }
    async fn write_all(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        match self {
            Conn::Plain(s) => write_flush(s, bytes).await,
            Conn::Tls(s) => write_flush(s.as_mut(), bytes).await,
            Conn::Gone => Ok(()),
        }
    }
}

async fn write_flush<S: AsyncWrite + AsyncRead + Unpin>(
    s: &mut S,
    bytes: &[u8],
) -> std::io::Result<()> {
    s.write_all(bytes).await?;
    s.flush().await
}

pub async fn serve(
    listener: TcpListener,
    kind: Listener,
    driver: Arc<Driver>,
    tasks: TaskTracker,
    shutdown: CancellationToken,
) {
    loop {
        let accepted = tokio::select! {
            () = shutdown.cancelled() => return,
            a = listener.accept() => a,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(target: "serval_mail::smtp", error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let driver = driver.clone();
        let shutdown = shutdown.clone();
        tasks.spawn(async move {
            let permit = driver.sessions.try_acquire();
            driver.open.fetch_add(1, Ordering::Relaxed);
            session(stream, peer, kind, &driver, permit.is_ok(), shutdown).await;
            driver.open.fetch_sub(1, Ordering::Relaxed);
        });
    }
}

fn plain_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}

async fn session(
    stream: TcpStream,
    peer: SocketAddr,
    kind: Listener,
    driver: &Driver,
    admitted: bool,
    shutdown: CancellationToken,
) {
    let started = Instant::now();
    let ip = plain_ip(peer.ip());
    let trusted_network = driver.mynetworks.iter().any(|c| c.contains(ip));
    let config = SessionConfig {
        hostname: driver.hostname.clone(),
        listener: kind,
        max_message_size: driver.max_message_size,
        max_recipients: driver.max_recipients,
        tls_available: driver.tls.is_some(),
        trusted_network,
        loopback: ip.is_loopback(),
        peer_ip: ip.to_string(),
    };
    let mut session = Session::new(config);
    if admitted {
        session.greet();
    } else {
        session.refuse("Too many connections; try again later");
    }
    let mut conn = Conn::Plain(stream);
    let mut buf = vec![0u8; 64 * 1024];
    let mut end = "quit";
    loop {
        let step = session.poll(driver.users.as_ref());
        if session.has_output() {
            if let Err(_e) = conn.write_all(&session.take_output()).await {
                end = "lost connection while writing";
                break;
            }
        }
        match step {
            Step::NeedInput => {
                let read = tokio::select! {
                    () = shutdown.cancelled(), if !session.in_data() => {
                        let _ = conn.write_all(b"421 4.3.2 Server shutting down\r\n").await;
                        end = "server shutdown";
                        break;
                    }
                    r = tokio::time::timeout(IDLE_TIMEOUT, conn.read(&mut buf)) => r,
                };
                match read {
                    Ok(Ok(0)) | Ok(Err(_)) => {
                        end = if session.in_data() {
                            "lost connection during DATA (nothing queued)"
                        } else {
                            "lost connection"
                        };
                        break;
                    }
                    Ok(Ok(n)) => session.input(&buf[..n]),
                    Err(_) => {
                        let _ = conn
                            .write_all(b"421 4.4.2 Timeout, closing the connection\r\n")
                            .await;
                        end = "timeout";
                        break;
                    }
                }
            }
            Step::Authenticate { user, password } => {
                let directory = driver.directory.clone();
                let outcome = tokio::task::spawn_blocking(move || {
                    match directory.authenticate(&user, &password, ip) {
                        Ok(_) => AuthOutcome::Ok,
                        Err(serval_core::directory::AuthError::BadCredentials) => {
                            AuthOutcome::BadCredentials
                        }
                        Err(serval_core::directory::AuthError::RateLimited { .. }) => {
                            AuthOutcome::RateLimited
                        }
                        Err(_) => AuthOutcome::Unavailable,
                    }
                })
                .await
                .unwrap_or(AuthOutcome::Unavailable);
                session.auth_done(outcome);
            }
            Step::Enqueue { envelope, message } => {
                let message = match &driver.inbound {
                    Some(checker) if !trusted_network && envelope.origin.auth_user.is_none() => {
                        match checker
                            .check(ip, &envelope.origin.helo, &envelope.sender, message)
                            .await
                        {
                            crate::inbound::Verdict::Accept { message } => message,
                            crate::inbound::Verdict::Reject(code, status, text) => {
                                tracing::info!(target: "serval_mail::inbound", %ip, sender = envelope.sender, "refused: {text}");
                                session.refused_after_data(code, status, &text);
                                continue;
                            }
                        }
                    }
                    _ => message,
                };
                let queue = driver.queue.clone();
                let result =
                    tokio::task::spawn_blocking(move || queue.enqueue(*envelope, &message))
                        .await
                        .map_err(std::io::Error::other)
                        .and_then(|r| r);
                if let Err(e) = &result {
                    tracing::error!(target: "serval_mail::queue", error = %e, "cannot write a message to the queue; the client was told to retry (451)");
                }
                session.enqueued(result.map_err(|e| e.to_string()));
            }
            Step::StartTls => {
                let Some(tls) = driver.tls.clone() else {
                    break;
                };
                let Conn::Plain(tcp) = std::mem::replace(&mut conn, Conn::Gone) else {
                    break;
                };
                let acceptor = tokio_rustls::TlsAcceptor::from(tls);
                match tokio::time::timeout(Duration::from_secs(30), acceptor.accept(tcp)).await {
                    Ok(Ok(stream)) => {
                        conn = Conn::Tls(Box::new(stream));
                        session.tls_started();
                    }
                    _ => {
                        end = "TLS handshake failed";
                        break;
                    }
                }
            }
            Step::Close => break,
        }
    }
    tracing::info!(
        target: "serval_mail::access",
        "{} [{}]:{} helo={} user={} tls={} {} {} time={}ms",
        kind.name(),
        ip,
        peer.port(),
        session.helo().unwrap_or("-"),
        session.auth_user().unwrap_or("-"),
        if matches!(conn, Conn::Tls(_)) { "yes" } else { "no" },
        session.counts.summary(),
        end,
        started.elapsed().as_millis()
    );
}
