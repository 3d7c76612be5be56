//! The HTTP listener every HTTP-speaking part of Serval uses (admin site, CalDAV): binds with a
//! clear error, caps connections, times out slow and idle clients, serves plain or TLS, hands the
//! peer address to handlers, and drains in-flight requests on shutdown.
//!
//! Written over hyper-util directly because `axum::serve` offers neither TLS nor a connection cap
//! nor idle timeouts.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::ConnectInfo;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::time::{Instant, Sleep};
use tokio_util::sync::CancellationToken;
use tower::ServiceExt as _;

#[derive(Debug, thiserror::Error)]
#[error("cannot listen on {addr} for {what}: {reason}")]
pub struct BindError {
    pub addr: SocketAddr,
    pub what: String,
    pub reason: String,
}

/// Binds every address, naming the one that fails and why in words an admin can act on.
pub async fn bind_all(addrs: &[SocketAddr], what: &str) -> Result<Vec<TcpListener>, BindError> {
    let mut out = Vec::with_capacity(addrs.len());
    for addr in addrs {
        match TcpListener::bind(addr).await {
            Ok(l) => out.push(l),
            Err(e) => {
                return Err(BindError {
                    addr: *addr,
                    what: what.to_string(),
                    reason: explain_bind_error(&e, *addr),
                })
            }
        }
    }
    Ok(out)
}

/// Turns a bind error into a sentence that names the likely cause.
pub fn explain_bind_error(e: &std::io::Error, addr: SocketAddr) -> String {
    match e.kind() {
        std::io::ErrorKind::AddrInUse => "the address is already in use by another program".into(),
        std::io::ErrorKind::PermissionDenied if addr.port() < 1024 => format!(
            "permission denied: port {} is below 1024 (run as root or grant CAP_NET_BIND_SERVICE)",
            addr.port()
        ),
        std::io::ErrorKind::AddrNotAvailable => "no network interface has this address".into(),
        _ => e.to_string(),
    }
}

/// Connection limits and timeouts of an HTTP listener.
#[derive(Clone, Copy, Debug)]
pub struct HttpLimits {
    pub max_connections: usize,
    /// Time allowed to receive a request's headers.
    pub header_read_timeout: Duration,
    /// A connection with no bytes in either direction for this long is closed.
    pub idle_timeout: Duration,
    /// Largest request head; a larger one is answered 431 (hyper's read buffer limit).
    pub max_header_bytes: usize,
}

impl Default for HttpLimits {
    fn default() -> Self {
        HttpLimits {
            max_connections: 256,
            header_read_timeout: Duration::from_secs(15),
            idle_timeout: Duration::from_secs(120),
            // hyper's own default read buffer limit.
            max_header_bytes: 8192 + 4096 * 100,
        }
    }
}

/// Serves `router` on `listeners` until `shutdown`, then waits (up to 10 s) for in-flight requests.
/// `open_connections` is kept current for status reporting.
pub async fn serve(
    listeners: Vec<TcpListener>,
    router: axum::Router,
    limits: HttpLimits,
    tls: Option<Arc<rustls::ServerConfig>>,
    shutdown: CancellationToken,
    open_connections: Arc<AtomicU64>,
) {
    let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    serve_with_permits(
        listeners,
        router,
        limits,
        tls,
        shutdown,
        open_connections,
        permits,
    )
    .await
}

/// Like [`serve`], on `threads` single-threaded event loops of their own that take connections
/// from the same listeners, as nginx's worker processes do. A connection then lives on one
/// thread from accept to close: no task hops between threads, no cross-thread wake-ups, which
/// on a busy small server cost more than the requests themselves. The connection cap is shared.
pub async fn serve_on_threads(
    threads: usize,
    listeners: Vec<TcpListener>,
    router: axum::Router,
    limits: HttpLimits,
    tls: Option<Arc<rustls::ServerConfig>>,
    shutdown: CancellationToken,
    open_connections: Arc<AtomicU64>,
) {
    if threads <= 1 {
        return serve(listeners, router, limits, tls, shutdown, open_connections).await;
    }
    let std_listeners: Vec<std::net::TcpListener> = match listeners
        .into_iter()
        .map(|l| l.into_std())
        .collect::<Result<_, _>>()
    {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(error = %e, "cannot hand the HTTP listeners to worker threads");
            return;
        }
    };
    let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let mut finished = Vec::with_capacity(threads);
    for i in 0..threads {
        let clones: Vec<std::net::TcpListener> = match std_listeners
            .iter()
            .map(|l| l.try_clone())
            .collect()
        {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(error = %e, "cannot share an HTTP listener with a worker thread");
                break;
            }
        };
        let (done, finished_rx) = tokio::sync::oneshot::channel::<()>();
        let (router, tls, shutdown, open, permits) = (
            router.clone(),
            tls.clone(),
            shutdown.clone(),
            open_connections.clone(),
            permits.clone(),
        );
        let spawned = std::thread::Builder::new()
            .name(format!("serval-http-{i}"))
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(r) => r,
                    Err(e) => {
                        tracing::error!(error = %e, "cannot start an HTTP worker thread");
                        return;
                    }
                };
                runtime.block_on(async move {
                    let listeners = clones
                        .into_iter()
                        .filter_map(|l| TcpListener::from_std(l).ok())
                        .collect();
                    serve_with_permits(listeners, router, limits, tls, shutdown, open, permits)
                        .await;
                });
                drop(done);
            });
        match spawned {
            Ok(_) => finished.push(finished_rx),
            Err(e) => tracing::error!(error = %e, "cannot start an HTTP worker thread"),
        }
    }
    for rx in finished {
        let _ = rx.await;
    }
}

async fn serve_with_permits(
    listeners: Vec<TcpListener>,
    router: axum::Router,
    limits: HttpLimits,
    tls: Option<Arc<rustls::ServerConfig>>,
    shutdown: CancellationToken,
    open_connections: Arc<AtomicU64>,
    permits: Arc<Semaphore>,
) {
    let graceful = Arc::new(hyper_util::server::graceful::GracefulShutdown::new());
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    let mut tasks = tokio::task::JoinSet::new();
    for listener in listeners {
        let ctx = AcceptContext {
            router: router.clone(),
            limits,
            acceptor: acceptor.clone(),
            graceful: graceful.clone(),
            permits: permits.clone(),
            open_connections: open_connections.clone(),
        };
        let shutdown = shutdown.clone();
        tasks.spawn(async move { accept_loop(listener, ctx, shutdown).await });
    }
    tasks.spawn(timer_anchor(shutdown.clone()));
    while tasks.join_next().await.is_some() {}
    let Ok(graceful) = Arc::try_unwrap(graceful) else {
        return;
    };
    if tokio::time::timeout(Duration::from_secs(10), graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("HTTP connections still open 10 s after shutdown; closing them");
    }
}

/// Keeps a timer due within the next second on this thread's runtime until shutdown.
///
/// tokio's timer wheel wakes its driver (an eventfd write, then an extra epoll round) whenever
/// a timer is set earlier than the driver's next planned wake-up, and with no timer pending
/// that is every timer: each request's timeouts (FastCGI connect and answer, hyper's header
/// read) cost three such wake-ups. With a timer always due within a second, the seconds-long
/// request timeouts are never the earliest and set no wake-up; the anchor costs one wake-up a
/// second.
async fn timer_anchor(shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
    }
}

#[derive(Clone)]
struct AcceptContext {
    router: axum::Router,
    limits: HttpLimits,
    acceptor: Option<tokio_rustls::TlsAcceptor>,
    graceful: Arc<hyper_util::server::graceful::GracefulShutdown>,
    permits: Arc<Semaphore>,
    open_connections: Arc<AtomicU64>,
}

async fn accept_loop(listener: TcpListener, ctx: AcceptContext, shutdown: CancellationToken) {
    loop {
        let permit = tokio::select! {
            () = shutdown.cancelled() => return,
            p = ctx.permits.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => return },
        };
        let (stream, peer) = tokio::select! {
            () = shutdown.cancelled() => return,
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let ctx2 = ctx.clone();
        tokio::spawn(async move {
            ctx2.open_connections.fetch_add(1, Ordering::Relaxed);
            match &ctx2.acceptor {
                Some(acceptor) => {
                    let handshake = tokio::time::timeout(
                        ctx2.limits.header_read_timeout,
                        acceptor.accept(stream),
                    )
                    .await;
                    match handshake {
                        Ok(Ok(tls)) => serve_connection(tls, peer, &ctx2).await,
                        Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                }
                None => serve_connection(stream, peer, &ctx2).await,
            }
            ctx2.open_connections.fetch_sub(1, Ordering::Relaxed);
            drop(permit);
        });
    }
}

async fn serve_connection<S>(io: S, peer: SocketAddr, ctx: &AcceptContext)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let io = TokioIo::new(IdleTimeout::new(io, ctx.limits.idle_timeout));
    let router = ctx.router.clone();
    let service =
        hyper::service::service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
            req.extensions_mut().insert(ConnectInfo(peer));
            router.clone().oneshot(req.map(axum::body::Body::new))
        });
    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(ctx.limits.header_read_timeout)
        .max_buf_size(ctx.limits.max_header_bytes.max(8192))
        .keep_alive(true);
    let conn = builder.serve_connection_with_upgrades(io, service);
    let conn = ctx.graceful.watch(conn.into_owned());
    if let Err(e) = conn.await {
        tracing::debug!(%peer, error = %e, "HTTP connection ended with an error");
    }
}

/// Fails reads and writes once the connection has been idle (no bytes either way) for `timeout`.
struct IdleTimeout<S> {
    inner: S,
    timeout: Duration,
    /// Fires at the earliest moment the connection can be idle for `timeout`; moved on only
    /// when it fires, so traffic costs a clock read instead of a timer-wheel update per I/O.
    deadline: Pin<Box<Sleep>>,
    last_activity: Instant,
}

impl<S> IdleTimeout<S> {
    fn new(inner: S, timeout: Duration) -> Self {
        IdleTimeout {
            inner,
            timeout,
            deadline: Box::pin(tokio::time::sleep(timeout)),
            last_activity: Instant::now(),
        }
    }
    fn touch(&mut self) {
        self.last_activity = Instant::now();
    }
    fn check(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Error> {
        loop {
            match self.deadline.as_mut().poll(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(()) => {
                    let idle_until = self.last_activity + self.timeout;
                    if idle_until <= Instant::now() {
                        return Poll::Ready(std::io::Error::new(
                            std::io::ErrorKind::TimedOut,
                            "idle timeout",
                        ));
                    }
                    self.deadline.as_mut().reset(idle_until);
                }
            }
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for IdleTimeout<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        match Pin::new(&mut self.inner).poll_read(cx, buf) {
            Poll::Ready(r) => {
                if buf.filled().len() > before {
                    self.touch();
                }
                Poll::Ready(r)
            }
            Poll::Pending => match self.check(cx) {
                Poll::Ready(e) => Poll::Ready(Err(e)),
                Poll::Pending => Poll::Pending,
            },
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for IdleTimeout<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match Pin::new(&mut self.inner).poll_write(cx, data) {
            Poll::Ready(r) => {
                self.touch();
                Poll::Ready(r)
            }
            Poll::Pending => match self.check(cx) {
                Poll::Ready(e) => Poll::Ready(Err(e)),
                Poll::Pending => Poll::Pending,
            },
        }
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
