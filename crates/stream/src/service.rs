//! Binding the service: every socket and file is claimed in [`bind`], which fails with a clear
//! error (port in use, no free RTP port pair, unwritable folder) before anything serves; then
//! the serving tasks run until `ctx.shutdown`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use serval_core::config::Problems;
use serval_core::service::{AdminPanel, RunningService, StartContext};
use tokio::net::TcpListener;
use tracing::info;

use crate::access::gate::AccessGate;
use crate::access::policy::AccessPolicy;
use crate::access_log::AccessLog;
use crate::admin::StreamAdminPanel;
use crate::config::StreamConfig;
use crate::edge::Edge;
use crate::error::StreamError;
use crate::metrics::StreamMetrics;
use crate::movies::MovieLibrary;
use crate::net::{self, Shared};
use crate::rtsp::handler::{RtspServer, ServerSettings};

/// Binds the RTSP listeners and the shared UDP port pair, opens the movies folder and the
/// access log, registers metrics, and spawns the serving tasks.
pub async fn bind(
    ctx: StartContext<'_>,
    config: StreamConfig,
) -> Result<Arc<dyn RunningService>, StreamError> {
    let mut problems = Problems::new();
    config.validate(&mut problems);
    if problems.has_errors() {
        let text: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
        return Err(StreamError::Config(text.join("; ")));
    }
    let media_dir = if config.media_dir.as_os_str().is_empty() {
        ctx.data_dir.join("media")
    } else {
        config.media_dir.clone()
    };
    std::fs::create_dir_all(&media_dir).map_err(|source| StreamError::MediaDir {
        path: media_dir.clone(),
        source,
    })?;
    let library = Arc::new(
        MovieLibrary::new(&media_dir, usize::from(config.max_payload)).map_err(|source| {
            StreamError::MediaDir {
                path: media_dir.clone(),
                source,
            }
        })?,
    );

    let mut listeners = Vec::new();
    for addr in &config.listen.0 {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| StreamError::Bind {
                addr: *addr,
                source,
            })?;
        listeners.push(listener);
    }
    // RTSPS listeners: RTSP with RTP interleaved inside TLS, with the `[tls]` certificate.
    let rtsps = match (&ctx.tls, config.tls_listen.0.is_empty()) {
        (_, true) => None,
        (Some(tls), false) => Some(crate::edge::rtsps_acceptor(tls)),
        (None, false) => {
            return Err(StreamError::Config(
                "stream.tls_listen needs a certificate: configure [tls]".into(),
            ))
        }
    };
    let mut tls_listeners = Vec::new();
    for addr in &config.tls_listen.0 {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| StreamError::Bind {
                addr: *addr,
                source,
            })?;
        tls_listeners.push(listener);
    }
    // Plain listeners first, then RTSPS ones, in config order.
    let listen_addrs: Vec<SocketAddr> = listeners
        .iter()
        .chain(&tls_listeners)
        .filter_map(|l| l.local_addr().ok())
        .collect();
    // RTP leaves from the unspecified address of each family we listen on.
    let mut udp_ips = Vec::new();
    if config.listen.0.iter().any(SocketAddr::is_ipv4) {
        udp_ips.push(std::net::IpAddr::from([0, 0, 0, 0]));
    }
    if config.listen.0.iter().any(SocketAddr::is_ipv6) {
        udp_ips.push(std::net::IpAddr::from(std::net::Ipv6Addr::UNSPECIFIED));
    }
    let udp = net::bind_udp_pairs(&udp_ips, config.rtp_ports).await?;
    let udp_ports =
        udp.first().and_then(
            |pair| match (pair.rtp.local_addr(), pair.rtcp.local_addr()) {
                (Ok(rtp), Ok(rtcp)) => Some((rtp.port(), rtcp.port())),
                _ => None,
            },
        );
    let access_log_path = ctx.data_dir.join("logs").join("stream-access.log");
    let access_log = AccessLog::open(&access_log_path, SystemTime::now())?;
    let metrics = StreamMetrics::register(ctx.metrics);

    let (max_bandwidth_bps, bandwidth_source) = config
        .max_bandwidth
        .resolve(std::path::Path::new("/sys/class/net"));
    tracing::info!(target: "serval_stream", max_bandwidth = %crate::config::Bandwidth { bits_per_second: max_bandwidth_bps },
                   source = %bandwidth_source, "session bandwidth cap");
    let settings = ServerSettings {
        session_timeout: config.session_timeout.0,
        unplayed_session_timeout: config.unplayed_session_timeout.0,
        max_bandwidth_bps,
        udp_ports,
    };
    let gate = AccessGate::new(
        AccessPolicy::new(&media_dir, config.access.clone(), config.auth_scheme),
        ctx.directory.clone(),
        config.allow.clone(),
        config.deny.clone(),
    );
    let server = RtspServer::new(settings, library.clone(), rand::random())
        .with_access(gate)
        .with_max_sessions_per_client(
            usize::try_from(config.max_sessions_per_client).unwrap_or(usize::MAX),
        );
    let edge = Arc::new(Edge::new(
        config.max_connections_per_ip,
        config.request_timeout.0,
        crate::rtsp::handler::SERVER_NAME,
    ));
    let sockets: Vec<_> = udp
        .iter()
        .map(|pair| (pair.rtp.clone(), pair.rtcp.clone()))
        .collect();
    let max_connections = usize::try_from(config.max_connections).unwrap_or(usize::MAX);
    let shared = Arc::new(Shared::new(
        server,
        metrics,
        access_log,
        udp,
        ctx.shutdown.clone(),
        max_connections,
        edge,
        // One pacer per core: sessions are spread over the runtime's worker threads.
        std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get),
    ));
    for listener in listeners {
        shared
            .tracker
            .spawn(net::run_listener(shared.clone(), listener, None));
    }
    for listener in tls_listeners {
        shared
            .tracker
            .spawn(net::run_listener(shared.clone(), listener, rtsps.clone()));
    }
    for (rtp_socket, rtcp_socket) in sockets {
        shared
            .tracker
            .spawn(net::run_rtcp_receiver(shared.clone(), rtcp_socket));
        shared
            .tracker
            .spawn(net::run_rtp_drain(shared.clone(), rtp_socket));
    }
    shared.tracker.spawn(net::run_sweeper(shared.clone()));
    for shard_index in 0..shared.shards.len() {
        shared
            .tracker
            .spawn(crate::pacer::run_pacer(shared.clone(), shard_index));
    }
    info!(target: "serval_stream", listen = ?listen_addrs, media_dir = %media_dir.display(),
          rtp_ports = ?udp_ports, "streaming service bound");
    Ok(Arc::new(StreamService {
        panel: Arc::new(StreamAdminPanel {
            shared: shared.clone(),
            library,
        }),
        shared,
        listen_addrs,
        started_at: SystemTime::now(),
        started_instant: Instant::now(),
        udp_ports,
    }))
}

/// The running streaming service.
pub struct StreamService {
    shared: Arc<Shared>,
    panel: Arc<StreamAdminPanel>,
    listen_addrs: Vec<SocketAddr>,
    started_at: SystemTime,
    started_instant: Instant,
    udp_ports: Option<(u16, u16)>,
}

impl StreamService {
    /// The shared server RTP/RTCP ports actually bound.
    pub fn udp_ports(&self) -> Option<(u16, u16)> {
        self.udp_ports
    }
}

impl RunningService for StreamService {
    fn name(&self) -> &'static str {
        "stream"
    }
    fn listen_addrs(&self) -> Vec<SocketAddr> {
        self.listen_addrs.clone()
    }
    fn started_at(&self) -> SystemTime {
        self.started_at
    }
    fn connections(&self) -> u64 {
        u64::try_from(self.shared.server.session_count()).unwrap_or(u64::MAX)
    }
    fn load_summary(&self) -> String {
        let secs = self.started_instant.elapsed().as_secs_f64().max(1.0);
        let mbits = self.shared.bytes_sent_total() as f64 * 8.0 / secs / 1e6;
        format!(
            "{} sessions, {:.1} Mbit/s average since start",
            self.connections(),
            mbits
        )
    }
    fn admin_panel(&self) -> Option<Arc<dyn AdminPanel>> {
        Some(self.panel.clone())
    }
    fn wait(&self) -> futures::future::BoxFuture<'static, ()> {
        let tracker = self.shared.tracker.clone();
        Box::pin(async move {
            tracker.close();
            tracker.wait().await;
        })
    }
}
