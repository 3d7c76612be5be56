//! Starting the service: bind listeners, open the store, serve until shutdown.

use crate::config::CalendarConfig;
use crate::http::{self, AppState, Metrics};
use crate::store::{CalendarStore, StoreError};
use serval_core::service::{RunningService, StartContext};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};
use tokio_util::sync::CancellationToken;

#[derive(Debug, thiserror::Error)]
pub enum CalendarError {
    #[error(transparent)]
    Bind(#[from] serval_core::http_server::BindError),
    #[error("calendar store: {0}")]
    Store(#[from] StoreError),
    #[error("calendar.tls_listen is set but [tls] is not configured")]
    TlsMissing,
}

struct Running {
    addrs: Vec<SocketAddr>,
    started_at: SystemTime,
    connections: Arc<AtomicU64>,
    tasks: Mutex<Option<tokio::task::JoinSet<()>>>,
    panel: Arc<crate::admin::CalendarPanel>,
}

impl RunningService for Running {
    fn name(&self) -> &'static str {
        "calendar"
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

/// How long a sync token stays valid (CalendarServer's SyncTokenLifetimeDays, 14): the
/// change log is pruned to this age, and clients holding older tokens resync.
pub const SYNC_TOKEN_LIFETIME: Duration = Duration::from_secs(14 * 24 * 60 * 60);

/// How often the change log is pruned after the pruning at start.
const PRUNE_INTERVAL: Duration = Duration::from_secs(24 * 60 * 60);

/// Prunes the sync change log at start and then daily until shutdown.
async fn prune_sync_log(store: Arc<dyn CalendarStore>, shutdown: CancellationToken) {
    loop {
        let lifetime = i64::try_from(SYNC_TOKEN_LIFETIME.as_secs()).unwrap_or(i64::MAX);
        let before = http::now().saturating_sub(lifetime);
        let pruning = store.clone();
        match tokio::task::spawn_blocking(move || pruning.prune_changes(before)).await {
            Ok(Ok(removed)) => tracing::info!(removed, before, "pruned the calendar change log"),
            Ok(Err(error)) => tracing::error!(%error, "pruning the calendar change log failed"),
            Err(error) => tracing::error!(%error, "pruning the calendar change log panicked"),
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(PRUNE_INTERVAL) => {}
        }
    }
}

/// Binds the CalDAV listeners and starts serving.
pub async fn bind(
    ctx: StartContext<'_>,
    config: CalendarConfig,
) -> Result<Arc<dyn RunningService>, CalendarError> {
    let store = crate::store::open(&ctx.engine)?;
    let plain =
        serval_core::http_server::bind_all(config.listen.addrs(), "calendar (CalDAV)").await?;
    let tls_listeners = if config.tls_listen.addrs().is_empty() {
        Vec::new()
    } else {
        if ctx.tls.is_none() {
            return Err(CalendarError::TlsMissing);
        }
        serval_core::http_server::bind_all(config.tls_listen.addrs(), "calendar (CalDAV over TLS)")
            .await?
    };
    let mut addrs = Vec::new();
    for listener in plain.iter().chain(tls_listeners.iter()) {
        if let Ok(addr) = listener.local_addr() {
            addrs.push(addr);
        }
    }
    let metrics = Metrics::new();
    let sub = ctx.metrics.sub_registry_with_prefix("calendar");
    sub.register(
        "requests",
        "CalDAV requests by method and status",
        metrics.requests.clone(),
    );
    sub.register(
        "request_duration_seconds",
        "CalDAV request latency by method",
        metrics.duration.clone(),
    );
    let state = Arc::new(AppState {
        store: store.clone(),
        directory: ctx.directory.clone(),
        config,
        metrics,
        nonces: serval_core::auth::DigestNonces::new(http::DIGEST_NONCE_LIFETIME),
    });
    let connections = Arc::new(AtomicU64::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    let limits = serval_core::http_server::HttpLimits::default();
    if !plain.is_empty() {
        let router = http::router(state.clone(), false);
        tasks.spawn(serval_core::http_server::serve(
            plain,
            router,
            limits,
            None,
            ctx.shutdown.clone(),
            connections.clone(),
        ));
    }
    if !tls_listeners.is_empty() {
        let router = http::router(state.clone(), true);
        tasks.spawn(serval_core::http_server::serve(
            tls_listeners,
            router,
            limits,
            ctx.tls.clone(),
            ctx.shutdown.clone(),
            connections.clone(),
        ));
    }
    tasks.spawn(prune_sync_log(state.store.clone(), ctx.shutdown.clone()));
    tracing::info!(?addrs, "calendar service listening");
    let panel = Arc::new(crate::admin::CalendarPanel {
        store,
        directory: ctx.directory.clone(),
    });
    Ok(Arc::new(Running {
        panel,
        addrs,
        started_at: SystemTime::now(),
        connections,
        tasks: Mutex::new(Some(tasks)),
    }))
}
