//! `serval serve`: start everything from one config, or nothing at all.
//!
//! Order: validate the config, create and lock the data directory, start logging, open the
//! store, bind the admin site and every enabled service (any failure: one line naming the cause,
//! exit 1, nothing left running), then serve until SIGINT/SIGTERM. SIGHUP re-reads the config,
//! applies log levels live and logs which changes need a restart.

use std::path::Path;
use std::process::ExitCode;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use prometheus_client::registry::Registry;
use serval_core::admin::{AdminOptions, AdminState};
use serval_core::http_server::{self, HttpLimits};
use serval_core::service::RunningService;
use serval_core::Directory;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use crate::config::{self, Config, Loaded};
use crate::datadir;

pub fn run(config_path: Option<&Path>) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    serval_core::mark_process_start();
    let loaded = config::load(config_path);
    if config::report(&loaded, &mut std::io::stderr()) {
        anyhow::bail!("the config has errors (listed above); nothing was started");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("serval")
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(serve(loaded, config_path.map(Path::to_path_buf), started))
}

async fn serve(
    loaded: Loaded,
    config_path: Option<std::path::PathBuf>,
    started: Instant,
) -> anyhow::Result<ExitCode> {
    let Loaded {
        config, data_dir, ..
    } = loaded;
    // Installed first, so a signal during start-up is handled instead of killing the process.
    let signals = Signals::install().context("cannot install signal handlers")?;
    datadir::ensure(&data_dir)?;
    let _lock = datadir::lock(&data_dir)?;
    let access_log_dir = data_dir.join(&config.log.access_log_dir);
    let log = serval_core::logging::init(&config.log, &access_log_dir)
        .map_err(|e| anyhow::anyhow!("cannot start logging: {e}"))?;

    let engine =
        serval_core::store::open_engine(&config.store, &datadir::store_path(&data_dir), &data_dir)
            .context("cannot open the store")?;
    match &engine {
        serval_core::store::Engine::Sqlite(store) => {
            info!(path = %store.path().display(), "store: SQLite");
        }
        serval_core::store::Engine::Postgres(store) => {
            info!(target = %store.target(), "store: PostgreSQL");
        }
    }
    let directory = Directory::on(engine.clone(), &config.directory);
    let tls = serval_core::tls::server_config(&config.tls, &data_dir)
        .context("cannot set up TLS from [tls]")?;
    let shutdown = CancellationToken::new();
    let mut registry = Registry::default();

    // Bind everything before serving anything.
    let admin_listeners = if config.admin.enabled {
        http_server::bind_all(config.admin.listen.addrs(), "the admin site").await?
    } else {
        Vec::new()
    };
    let services = match crate::services::bind_all(
        &config,
        &data_dir,
        &directory,
        &mut registry,
        tls.clone(),
        &shutdown,
    )
    .await
    {
        Ok(s) => s,
        Err(e) => {
            shutdown.cancel();
            return Err(e);
        }
    };
    let admin_addrs: Vec<_> = admin_listeners
        .iter()
        .filter_map(|l| l.local_addr().ok())
        .collect();

    let token = serval_core::admin::session::random_token();
    datadir::write_token(&data_dir, &token)?;
    let registry = Arc::new(RwLock::new(registry));
    let admin_state = AdminState::new(
        directory.clone(),
        registry,
        log.tail.clone(),
        AdminOptions {
            secure_cookies: config.admin.tls,
            api_token: token,
            session_idle: config.admin.session_idle_timeout.0,
            public_metrics: config.admin.public_metrics,
        },
    );
    admin_state.set_services(services.clone());
    admin_state.set_listen(admin_addrs.clone());
    let admin_task = tokio::spawn(http_server::serve(
        admin_listeners,
        serval_core::admin::router(admin_state),
        HttpLimits {
            max_connections: config.admin.max_connections,
            ..HttpLimits::default()
        },
        if config.admin.tls { tls.clone() } else { None },
        shutdown.clone(),
        Arc::new(AtomicU64::new(0)),
    ));

    let scheme = if config.admin.tls { "https" } else { "http" };
    datadir::write_admin_url(
        &data_dir,
        admin_addrs.first().map(|a| format!("{scheme}://{a}")),
    )?;
    for addr in &admin_addrs {
        info!(url = %format!("{scheme}://{addr}/"), "admin site ready");
    }
    for s in &services {
        let addrs: Vec<String> = s.listen_addrs().iter().map(ToString::to_string).collect();
        info!(service = s.name(), listen = %addrs.join(", "), "service ready");
    }
    info!(
        data_dir = %data_dir.display(),
        startup_ms = started.elapsed().as_millis() as u64,
        version = serval_core::VERSION,
        "serval ready"
    );

    signals
        .wait(&config, config_path.as_deref(), &log, &shutdown)
        .await;

    info!("shutting down: finishing in-flight requests");
    let drain = async {
        let _ = admin_task.await;
        for s in &services {
            s.wait().await;
        }
    };
    if tokio::time::timeout(Duration::from_secs(15), drain)
        .await
        .is_err()
    {
        warn!("some connections did not finish within 15 s; closing them");
    }
    if let serval_core::store::Engine::Sqlite(store) = &engine {
        if let Err(e) = store.checkpoint() {
            error!(error = %e, "store checkpoint at shutdown failed (the WAL keeps the data)");
        }
    }
    info!("stopped");
    Ok(ExitCode::SUCCESS)
}

struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
}

impl Signals {
    fn install() -> std::io::Result<Signals> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(Signals {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
            hup: signal(SignalKind::hangup())?,
        })
    }

    /// Serves SIGHUP reloads until SIGINT or SIGTERM, then cancels `shutdown`.
    async fn wait(
        mut self,
        running: &Config,
        config_path: Option<&Path>,
        log: &serval_core::logging::LogHandle,
        shutdown: &CancellationToken,
    ) {
        loop {
            tokio::select! {
                _ = self.term.recv() => break,
                _ = self.int.recv() => break,
                _ = self.hup.recv() => reload(running, config_path, log),
            }
        }
        shutdown.cancel();
    }
}

/// Applies what can change live (log levels) and names what needs a restart.
fn reload(running: &Config, config_path: Option<&Path>, log: &serval_core::logging::LogHandle) {
    let loaded = config::load(config_path);
    if loaded.problems.has_errors() {
        let mut text = Vec::new();
        config::report(&loaded, &mut text);
        error!(problems = %String::from_utf8_lossy(&text).trim(), "SIGHUP: the config has errors; keeping the running config");
        return;
    }
    let new = &loaded.config;
    match log.apply(&new.log) {
        Ok(()) => {
            info!(levels = %serval_core::logging::directives(&new.log), "SIGHUP: log levels applied")
        }
        Err(e) => error!(error = %e, "SIGHUP: cannot apply log levels"),
    }
    let mut restart = Vec::new();
    if new.data_dir != running.data_dir {
        restart.push("data_dir");
    }
    if new.admin != running.admin {
        restart.push("[admin]");
    }
    if new.tls != running.tls {
        restart.push("[tls]");
    }
    if new.directory != running.directory {
        restart.push("[directory]");
    }
    if new.log.format != running.log.format || new.log.access_log_dir != running.log.access_log_dir
    {
        restart.push("log.format/log.access_log_dir");
    }
    restart.extend(crate::services::changed_tables(running, new));
    if restart.is_empty() {
        info!("SIGHUP: config reloaded");
    } else {
        warn!(changed = %restart.join(", "), "SIGHUP: these changes take effect after a restart");
    }
}

pub(crate) type Services = Vec<Arc<dyn RunningService>>;
