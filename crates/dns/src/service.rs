//! `bind`: the DNS listeners, and the running service as the core sees it.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use serval_core::service::{RunningService, StartContext};
use tokio::net::{TcpListener, UdpSocket};
use tokio_util::task::TaskTracker;

use crate::config::{parse_forwarder, DnsConfig};
use crate::net::{serve_tcp, serve_udp, Driver};
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
}

struct Running {
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
    let responder = Responder::new(config.allow.clone(), zones, !forwarders.is_empty());
    let driver = Arc::new(Driver::new(
        responder,
        forwarders,
        config.forward_timeout.0,
        config.query_log,
        queries,
    ));
    let tasks = TaskTracker::new();
    let mut addrs = Vec::new();
    for &addr in config.listen.addrs() {
        let udp = UdpSocket::bind(addr)
            .await
            .map_err(|source| DnsError::Bind {
                addr,
                transport: "UDP",
                source,
            })?;
        // Port 0 in the config: TCP takes the port UDP got, so both share one address.
        let bound = udp.local_addr().unwrap_or(addr);
        let tcp = TcpListener::bind(bound)
            .await
            .map_err(|source| DnsError::Bind {
                addr: bound,
                transport: "TCP",
                source,
            })?;
        addrs.push(bound);
        tracing::info!(target: "serval_dns", %bound, "DNS listening (UDP and TCP)");
        tasks.spawn(serve_udp(
            Arc::new(udp),
            driver.clone(),
            tasks.clone(),
            ctx.shutdown.clone(),
        ));
        tasks.spawn(serve_tcp(
            tcp,
            driver.clone(),
            tasks.clone(),
            ctx.shutdown.clone(),
        ));
    }
    Ok(Arc::new(Running {
        addrs,
        started_at: SystemTime::now(),
        driver,
        tasks: Mutex::new(Some(tasks)),
    }))
}
