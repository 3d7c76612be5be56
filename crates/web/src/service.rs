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

/// Binds the web listeners and starts serving.
pub async fn bind(
    ctx: StartContext<'_>,
    config: WebConfig,
) -> Result<Arc<dyn RunningService>, WebError> {
    let sites = Sites::build(&config.sites, &ctx.data_dir).map_err(WebError::Site)?;
    let plain = serval_core::http_server::bind_all(config.listen.addrs(), "web (HTTP)").await?;
    let tls_listeners = if config.tls_listen.addrs().is_empty() {
        Vec::new()
    } else {
        if ctx.tls.is_none() {
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
    });
    let connections = Arc::new(AtomicU64::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    if !plain.is_empty() {
        tasks.spawn(serval_core::http_server::serve(
            plain,
            http::router(state.clone(), false),
            limits,
            None,
            ctx.shutdown.clone(),
            connections.clone(),
        ));
    }
    if !tls_listeners.is_empty() {
        tasks.spawn(serval_core::http_server::serve(
            tls_listeners,
            http::router(state.clone(), true),
            limits,
            ctx.tls.clone(),
            ctx.shutdown.clone(),
            connections.clone(),
        ));
    }
    for site in &state.sites.all {
        tracing::info!(target: "serval_web", site = site.name(), root = %site.root.display(), php = %site.config.php, proxies = site.config.proxies.len(), "site ready");
    }
    let panel = Arc::new(crate::admin::WebPanel {
        state: state.clone(),
        tls: ctx.tls.is_some(),
    });
    Ok(Arc::new(Running {
        addrs,
        started_at: SystemTime::now(),
        connections,
        tasks: Mutex::new(Some(tasks)),
        panel,
    }))
}
