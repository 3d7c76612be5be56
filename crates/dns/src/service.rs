//! `bind`: the DNS listeners, and the running service as the core sees it.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use serval_core::service::{RunningService, StartContext};
use tokio::net::TcpListener;
use tokio_util::task::TaskTracker;

use crate::config::{parse_forwarder, DnsConfig};
use crate::net::{serve_tcp, serve_udp, Driver};
use crate::recursor::{Network, Recursor, RecursorConfig, PRIME_EVERY};
use crate::server::Responder;
use crate::zone::LocalZone;

#[derive(Debug, thiserror::Error)]
pub enum DnsError {
    #[error("cannot listen on {addr} ({transport}): {source}")]
    Bind {
        addr: SocketAddr,
        transport: &'static str,
        source: std::io::Error,
    },
    #[error("dns.local_zone[{index}]: {source}")]
    Zone {
        index: usize,
        source: crate::zone::ZoneError,
    },
    #[error("dns.forwarders: {0}")]
    Forwarder(String),
    #[error("dns.trust_anchors_file: {0}")]
    Anchors(String),
    #[error("dns.root_hints_file: {0}")]
    Hints(#[from] crate::recursor::roots::HintsError),
}

struct Running {
    panel: Arc<crate::admin::DnsPanel>,
    addrs: Vec<SocketAddr>,
    started_at: SystemTime,
    driver: Arc<Driver>,
    tasks: Mutex<Option<TaskTracker>>,
}

impl RunningService for Running {
    fn name(&self) -> &'static str {
        "dns"
    }
    fn listen_addrs(&self) -> Vec<SocketAddr> {
        self.addrs.clone()
    }
    fn started_at(&self) -> SystemTime {
        self.started_at
    }
    fn connections(&self) -> u64 {
        let open = crate::net::tcp_connections_open(&self.driver);
        u64::try_from(open).unwrap_or(0)
    }
    fn admin_panel(&self) -> Option<Arc<dyn serval_core::service::AdminPanel>> {
        Some(self.panel.clone())
    }
    fn load_summary(&self) -> String {
        format!("{} TCP clients", self.connections())
    }
    fn wait(&self) -> futures::future::BoxFuture<'static, ()> {
        let tasks = self.tasks.lock().ok().and_then(|mut t| t.take());
        Box::pin(async move {
            if let Some(tasks) = tasks {
                tasks.close();
                tasks.wait().await;
            }
        })
    }
}

/// Socket buffers of the UDP listeners. A burst of queries (a storm of random names, or
/// every laptop waking at once) queues here while the loop works; the kernel's default
/// (~208 KiB, a few hundred packets) drops the rest. Capped by net.core.rmem_max.
const UDP_BUFFER: usize = 4 << 20;

fn bind_udp(addr: SocketAddr) -> std::io::Result<std::net::UdpSocket> {
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::DGRAM,
        Some(socket2::Protocol::UDP),
    )?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    // One socket per receive thread on the same address; the kernel spreads clients over them.
    socket.set_reuse_port(true)?;
    let _ = socket.set_recv_buffer_size(UDP_BUFFER);
    let _ = socket.set_send_buffer_size(UDP_BUFFER);
    socket.bind(&addr.into())?;
    Ok(socket.into())
}

/// UDP receive threads per address: one per core, up to 4.
fn udp_threads() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .clamp(1, 4)
}

/// Binds UDP and TCP on every `listen` address and starts answering.
pub async fn bind(
    ctx: StartContext<'_>,
    config: DnsConfig,
) -> Result<Arc<dyn RunningService>, DnsError> {
    let zones = config
        .local_zones
        .iter()
        .enumerate()
        .map(|(index, z)| LocalZone::build(z).map_err(|source| DnsError::Zone { index, source }))
        .collect::<Result<Vec<_>, _>>()?;
    let forwarders = config
        .forwarders
        .iter()
        .map(|f| parse_forwarder(f))
        .collect::<Result<Vec<_>, _>>()
        .map_err(DnsError::Forwarder)?;
    let queries = Family::<Vec<(String, String)>, Counter>::default();
    ctx.metrics.sub_registry_with_prefix("dns").register(
        "queries",
        "DNS queries answered, by response code (or dropped)",
        queries.clone(),
    );
    let anchors = match config.trust_anchors_file.as_str() {
        "" => crate::recursor::dnssec::Anchors::compiled(),
        path => crate::recursor::dnssec::Anchors::read(std::path::Path::new(path))
            .map_err(DnsError::Anchors)?,
    };
    let registry = ctx.metrics.sub_registry_with_prefix("dns");
    let recursor_metrics = crate::recursor::RecursorMetrics::default().prepare();
    registry.register(
        "cache_hits",
        "Questions answered from the fresh cache",
        recursor_metrics.cache_hits.clone(),
    );
    registry.register(
        "cache_misses",
        "Questions that needed a walk (or a stale answer)",
        recursor_metrics.cache_misses.clone(),
    );
    registry.register(
        "stale_answers",
        "Answers served stale (RFC 8767, EDE 3) because the authorities did not answer in time",
        recursor_metrics.stale_answers.clone(),
    );
    registry.register(
        "servfails",
        "SERVFAIL answers by Extended DNS Error",
        recursor_metrics.servfails.clone(),
    );
    registry.register(
        "validation",
        "Recursive answers by DNSSEC result",
        recursor_metrics.validation.clone(),
    );
    let gauges = Gauges::default();
    registry.register(
        "cache_entries",
        "RRsets and negative answers cached (stale ones included)",
        gauges.entries.clone(),
    );
    registry.register("cache_bytes", "Bytes the cache holds", gauges.bytes.clone());
    registry.register(
        "root_primed_timestamp_seconds",
        "When the root servers last answered priming (0: not yet)",
        gauges.primed_at.clone(),
    );
    let recursor = if forwarders.is_empty() {
        let hints = match config.root_hints_file.as_str() {
            "" => crate::recursor::roots::compiled_hints(),
            path => crate::recursor::roots::read_hints(std::path::Path::new(path))?,
        };
        let mut recursor = Recursor::new(
            Arc::new(Network),
            RecursorConfig {
                data_dir: ctx.data_dir.clone(),
                hints,
                serve_stale: config.serve_stale,
                allow_loopback: config.allow_loopback_upstreams,
                port: 53,
                dnssec: config.dnssec,
                anchors: anchors.clone(),
                cache_bytes: usize::try_from(config.cache_size.0).unwrap_or(usize::MAX),
            },
        );
        recursor.metrics = recursor_metrics;
        Some(Arc::new(recursor))
    } else {
        None
    };
    // Forwarders or recursion: either way names beyond the local zones are resolved.
    let responder = Responder::new(config.allow.clone(), zones, true);
    let driver = Arc::new(Driver::new(
        responder,
        forwarders,
        config.forward_timeout.0,
        recursor.clone(),
        config.query_log,
        queries,
    ));
    let tasks = TaskTracker::new();
    let mut addrs = Vec::new();
    for &addr in config.listen.addrs() {
        // Port 0 in the config: TCP takes the port UDP got, so both share one address. That
        // port may be taken for TCP by someone else: then another UDP port is tried.
        let mut attempts = 0;
        let (udp, bound, tcp) = loop {
            let udp = bind_udp(addr).map_err(|source| DnsError::Bind {
                addr,
                transport: "UDP",
                source,
            })?;
            let bound = udp.local_addr().unwrap_or(addr);
            match TcpListener::bind(bound).await {
                Ok(tcp) => break (udp, bound, tcp),
                Err(e)
                    if addr.port() == 0
                        && e.kind() == std::io::ErrorKind::AddrInUse
                        && attempts < 16 =>
                {
                    attempts += 1;
                }
                Err(source) => {
                    return Err(DnsError::Bind {
                        addr: bound,
                        transport: "TCP",
                        source,
                    })
                }
            }
        };
        addrs.push(bound);
        tracing::info!(target: "serval_dns", %bound, "DNS listening (UDP and TCP)");
        let mut sockets = vec![udp];
        for _ in 1..udp_threads() {
            sockets.push(bind_udp(bound).map_err(|source| DnsError::Bind {
                addr: bound,
                transport: "UDP",
                source,
            })?);
        }
        for socket in sockets {
            let (driver, tasks_for_loop, shutdown) =
                (driver.clone(), tasks.clone(), ctx.shutdown.clone());
            let runtime = tokio::runtime::Handle::current();
            tasks.spawn_blocking(move || {
                serve_udp(Arc::new(socket), driver, runtime, tasks_for_loop, shutdown)
            });
        }
        tasks.spawn(serve_tcp(
            tcp,
            driver.clone(),
            tasks.clone(),
            ctx.shutdown.clone(),
        ));
    }
    if let Some(recursor) = &recursor {
        tasks.spawn(keep_primed(
            recursor.clone(),
            gauges.clone(),
            ctx.shutdown.clone(),
        ));
        tasks.spawn(update_gauges(
            recursor.clone(),
            gauges,
            ctx.shutdown.clone(),
        ));
    }
    let started_at = SystemTime::now();
    Ok(Arc::new(Running {
        panel: Arc::new(crate::admin::DnsPanel {
            driver: driver.clone(),
            recursor: recursor.clone(),
            started_at,
        }),
        addrs,
        started_at,
        driver,
        tasks: Mutex::new(Some(tasks)),
    }))
}

/// Primes at start and every [`PRIME_EVERY`]; after a failure, again within a minute. Every
/// outcome is logged: "all roots unreachable" must never be silent.
/// Cache and priming state for `/metrics`, refreshed every few seconds.
#[derive(Default, Clone)]
struct Gauges {
    entries: prometheus_client::metrics::gauge::Gauge,
    bytes: prometheus_client::metrics::gauge::Gauge,
    primed_at: prometheus_client::metrics::gauge::Gauge,
}

async fn update_gauges(
    recursor: Arc<Recursor>,
    gauges: Gauges,
    shutdown: tokio_util::sync::CancellationToken,
) {
    loop {
        let (entries, bytes) = recursor.cache_size();
        gauges
            .entries
            .set(i64::try_from(entries).unwrap_or(i64::MAX));
        gauges.bytes.set(i64::try_from(bytes).unwrap_or(i64::MAX));
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(std::time::Duration::from_secs(2)) => {}
        }
    }
}

async fn keep_primed(
    recursor: Arc<Recursor>,
    gauges: Gauges,
    shutdown: tokio_util::sync::CancellationToken,
) {
    let mut failures = 0u32;
    loop {
        let wait = match recursor.prime().await {
            Ok(servers) => {
                failures = 0;
                let now = SystemTime::now()
                    .duration_since(SystemTime::UNIX_EPOCH)
                    .map(|d| d.as_secs())
                    .unwrap_or(0);
                gauges.primed_at.set(i64::try_from(now).unwrap_or(0));
                let names: Vec<&str> = servers.iter().map(|s| s.name.as_str()).collect();
                tracing::info!(target: "serval_dns::recursor", servers = names.len(),
                    first = names.first().copied().unwrap_or(""), "primed: the root name servers answered");
                PRIME_EVERY
            }
            Err(failure) => {
                failures += 1;
                recursor
                    .priming
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .last_error = Some((SystemTime::now(), failure.reason.clone()));
                tracing::warn!(target: "serval_dns::recursor", reason = %failure.reason,
                    "priming failed; walks start from the kept or compiled-in root servers");
                std::time::Duration::from_secs(5 * u64::from(failures.min(12)))
            }
        };
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(wait) => {}
        }
    }
}
