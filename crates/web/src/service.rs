//! Starting the service: resolve the sites, bind listeners, serve until shutdown.

use crate::config::WebConfig;
use crate::http::{self, AppState, Metrics};
use crate::sites::Sites;
use serval_core::service::{RunningService, StartContext};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

#[derive(Debug, thiserror::Error)]
pub enum WebError {
    #[error(transparent)]
    Bind(#[from] serval_core::http_server::BindError),
    #[error("{0}")]
    Site(String),
    #[error("web.tls_listen is set but [tls] is not configured")]
    TlsMissing,
}

struct Running {
    addrs: Vec<SocketAddr>,
    started_at: SystemTime,
    connections: Arc<AtomicU64>,
    tasks: Mutex<Option<tokio::task::JoinSet<()>>>,
    panel: Arc<crate::admin::WebPanel>,
}

impl RunningService for Running {
    fn name(&self) -> &'static str {
        "web"
    }
    fn listen_addrs(&self) -> Vec<SocketAddr> {
        self.addrs.clone()
    }
    fn started_at(&self) -> SystemTime {
        self.started_at
    }
    fn connections(&self) -> u64 {
        self.connections.load(Ordering::Relaxed)
    }
    fn admin_panel(&self) -> Option<Arc<dyn serval_core::service::AdminPanel>> {
        Some(self.panel.clone())
    }
    fn wait(&self) -> futures::future::BoxFuture<'static, ()> {
        let tasks = self.tasks.lock().ok().and_then(|mut t| t.take());
        Box::pin(async move {
            if let Some(mut tasks) = tasks {
                while tasks.join_next().await.is_some() {}
            }
        })
    }
}

/// Memory for small files' contents (see `small_file::FileCache`): an office's pages,
/// scripts and style sheets fit many times over.
const FILE_CACHE_BYTES: usize = 16 * 1024 * 1024;

/// Binds the web listeners and starts serving.
pub async fn bind(
    ctx: StartContext<'_>,
    config: WebConfig,
) -> Result<Arc<dyn RunningService>, WebError> {
    let sites = Sites::build(&config.sites, &ctx.data_dir).map_err(WebError::Site)?;
    let plain = serval_core::http_server::bind_all(config.listen.addrs(), "web (HTTP)").await?;
    let acme_on = config.acme.enabled;
    let tls_listeners = if config.tls_listen.addrs().is_empty() {
        Vec::new()
    } else {
        if ctx.tls.is_none() && !acme_on {
            return Err(WebError::TlsMissing);
        }
        serval_core::http_server::bind_all(config.tls_listen.addrs(), "web (HTTPS)").await?
    };
    let addrs: Vec<SocketAddr> = plain
        .iter()
        .chain(tls_listeners.iter())
        .filter_map(|l| l.local_addr().ok())
        .collect();
    let metrics = Metrics::default();
    ctx.metrics.sub_registry_with_prefix("web").register(
        "requests",
        "Web requests by site and status class",
        metrics.requests.clone(),
    );
    let expiry = prometheus_client::metrics::family::Family::<
        Vec<(String, String)>,
        prometheus_client::metrics::gauge::Gauge,
    >::default();
    ctx.metrics.sub_registry_with_prefix("web").register(
        "certificate_expiry_timestamp_seconds",
        "When each HTTPS site's certificate expires (Unix time)",
        expiry.clone(),
    );
    if let (Some(t), false) = (ctx.tls_not_after, tls_listeners.is_empty()) {
        let secs = t
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        for site in &sites.all {
            expiry
                .get_or_create(&vec![("site".to_owned(), site.name().to_owned())])
                .set(i64::try_from(secs).unwrap_or(i64::MAX));
        }
    }
    let (challenges, acme, https_config) = if acme_on {
        let challenges = Arc::new(crate::acme::Challenges::default());
        let certificates = Arc::new(crate::acme::Certificates::new(
            ctx.tls.as_ref().map(|c| c.cert_resolver.clone()),
        ));
        let wanted = sites
            .all
            .iter()
            .filter(|s| s.config.acme)
            .map(|s| {
                (
                    s.name().to_owned(),
                    crate::acme::site_names(&s.config.host, &s.config.aliases),
                )
            })
            .collect();
        let manager = Arc::new(crate::acme::Manager::new(
            config.acme.clone(),
            &ctx.data_dir,
            wanted,
            certificates.clone(),
            challenges.clone(),
            expiry.clone(),
        ));
        let https =
            crate::acme::server_config(certificates).map_err(|e| WebError::Site(e.to_string()))?;
        (Some(challenges), Some(manager), Some(https))
    } else {
        (None, None, ctx.tls.clone())
    };
    let limits = serval_core::http_server::HttpLimits {
        max_connections: config.max_connections,
        max_header_bytes: usize::try_from(config.max_header_size.0).unwrap_or(usize::MAX),
        ..serval_core::http_server::HttpLimits::default()
    };
    let site_requests = metrics.per_site(&sites);
    let state = Arc::new(AppState {
        site_requests,
        sites,
        config,
        directory: ctx.directory.clone(),
        proxy: crate::proxy::client(),
        challenges,
        file_cache: crate::small_file::FileCache::new(FILE_CACHE_BYTES),
    });
    let connections = Arc::new(AtomicU64::new(0));
    let tls_listeners_empty = tls_listeners.is_empty();
    let mut tasks = tokio::task::JoinSet::new();
    // One event loop per core for the sites, like nginx's `worker_processes auto`.
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    if !plain.is_empty() {
        tasks.spawn(serval_core::http_server::serve_on_threads(
            threads,
            plain,
            http::router(state.clone(), false),
            limits,
            None,
            ctx.shutdown.clone(),
            connections.clone(),
        ));
    }
    if !tls_listeners.is_empty() {
        tasks.spawn(serval_core::http_server::serve_on_threads(
            threads,
            tls_listeners,
            http::router(state.clone(), true),
            limits,
            https_config,
            ctx.shutdown.clone(),
            connections.clone(),
        ));
    }
    for site in &state.sites.all {
        tracing::info!(target: "serval_web", site = site.name(), root = %site.root.display(), php = %site.config.php, proxies = site.config.proxies.len(), "site ready");
    }
    if let Some(manager) = &acme {
        tasks.spawn(manager.clone().run(ctx.shutdown.clone()));
    }
    let panel = Arc::new(crate::admin::WebPanel {
        state: state.clone(),
        tls: ctx.tls.is_some(),
        https: !tls_listeners_empty,
        tls_not_after: ctx.tls_not_after,
        acme,
    });
    Ok(Arc::new(Running {
        addrs,
        started_at: SystemTime::now(),
        connections,
        tasks: Mutex::new(Some(tasks)),
        panel,
    }))
}
