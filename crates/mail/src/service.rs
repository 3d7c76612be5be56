//! `bind`: the queue, the delivery loop and the SMTP listeners, and the running service as
//! the core sees it.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use serval_core::service::{RunningService, StartContext};
use tokio::net::TcpListener;
use tokio_util::task::TaskTracker;

use crate::config::{mail_dir, MailConfig, RelayTls};
use crate::deliver::Route;
use crate::net::{serve, Driver};
use crate::queue::{Queue, Settings};
use crate::smtp::client::TlsPolicy;
use crate::smtp::session::Listener;
use crate::users::LocalUsers;

#[derive(Debug, thiserror::Error)]
pub enum MailError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("the queue in {path}: {source}")]
    Queue {
        path: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    Config(String),
}

struct Running {
    panel: Arc<crate::admin::MailPanel>,
    addrs: Vec<SocketAddr>,
    started_at: SystemTime,
    driver: Arc<Driver>,
    tasks: Mutex<Option<TaskTracker>>,
}

impl RunningService for Running {
    fn name(&self) -> &'static str {
        "mail"
    }
    fn listen_addrs(&self) -> Vec<SocketAddr> {
        self.addrs.clone()
    }
    fn started_at(&self) -> SystemTime {
        self.started_at
    }
    fn connections(&self) -> u64 {
        self.driver.open.load(Ordering::Relaxed)
    }
    fn load_summary(&self) -> String {
        format!(
            "{} SMTP sessions, {} queued",
            self.connections(),
            self.driver.queue.metrics.size.get()
        )
    }
    fn admin_panel(&self) -> Option<Arc<dyn serval_core::service::AdminPanel>> {
        Some(self.panel.clone())
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

/// The route for remote recipients from `[mail.relay]`.
pub fn route(config: &MailConfig, data_dir: &std::path::Path) -> Result<Route, String> {
    route_using(config, data_dir, || resolver(config))
}

/// [`route`], with `dns` asked for the resolver only when mail goes direct to MX hosts (the
/// server shares one resolver, and its cache, with the inbound checks).
fn route_using(
    config: &MailConfig,
    data_dir: &std::path::Path,
    dns: impl FnOnce() -> Result<hickory_resolver::TokioResolver, String>,
) -> Result<Route, String> {
    let roots = Arc::new(
        crate::smtp::client::roots(config.ca_file_path(data_dir).as_deref())
            .map_err(|e| format!("mail.ca_file: {e}"))?,
    );
    if !config.relay.is_set() {
        let resolver = dns()
            .map_err(|e| {
                tracing::warn!(target: "serval_mail::queue", error = %e, "no DNS resolver: mail to other domains stays queued");
            })
            .ok()
            .map(Arc::new);
        let mta_sts = config.mta_sts.then(|| {
            Arc::new(crate::mta_sts::MtaSts::open(
                mail_dir(data_dir).join("mta-sts.json"),
                roots.clone(),
            ))
        });
        let dane = if config.dane {
            let servers = config
                .nameservers
                .iter()
                .map(|s| crate::config::parse_nameserver(s))
                .collect::<Result<Vec<_>, _>>()?;
            match crate::dane::Dane::from_servers(&servers) {
                Ok(dane) => Some(Arc::new(dane)),
                Err(reason) => {
                    tracing::info!(target: "serval_mail::dane", "DANE is off: {reason}");
                    None
                }
            }
        } else {
            None
        };
        return Ok(Route::Mx(Arc::new(crate::mx::MxRoute {
            resolver,
            port: 25,
            roots,
            mta_sts,
            dane,
        })));
    }
    let (host, port) = config.relay.host_port()?;
    let auth = config
        .relay
        .password(data_dir)?
        .map(|password| (config.relay.user.clone(), password));
    Ok(Route::Relay {
        host,
        port,
        tls: match config.relay.tls {
            RelayTls::None => TlsPolicy::None,
            RelayTls::Starttls => TlsPolicy::Required,
            RelayTls::Tls => TlsPolicy::Implicit,
        },
        auth,
        roots,
    })
}

/// The resolver for MX, MTA-STS and address lookups: `nameservers`, else /etc/resolv.conf.
fn resolver(config: &MailConfig) -> Result<hickory_resolver::TokioResolver, String> {
    if config.nameservers.is_empty() {
        return hickory_resolver::TokioResolver::builder_tokio()
            .and_then(|b| b.build())
            .map_err(|e| e.to_string());
    }
    let mut servers = Vec::new();
    for text in &config.nameservers {
        let addr = crate::config::parse_nameserver(text)?;
        let mut server = hickory_resolver::config::NameServerConfig::udp_and_tcp(addr.ip());
        for connection in &mut server.connections {
            connection.port = addr.port();
        }
        servers.push(server);
    }
    hickory_resolver::TokioResolver::builder_with_config(
        hickory_resolver::config::ResolverConfig::from_parts(None, Vec::new(), servers),
        hickory_resolver::net::runtime::TokioRuntimeProvider::default(),
    )
    .build()
    .map_err(|e| e.to_string())
}

pub async fn bind(
    ctx: StartContext<'_>,
    config: MailConfig,
) -> Result<Arc<dyn RunningService>, MailError> {
    let hostname = config.effective_hostname();
    let local_domains = config.effective_local_domains();
    let dir = mail_dir(&ctx.data_dir);
    let spool = crate::queue::spool::Spool::open(&dir).map_err(|source| MailError::Queue {
        path: dir.display().to_string(),
        source,
    })?;
    let users = Arc::new(LocalUsers {
        directory: ctx.directory.clone(),
        local_domains: local_domains.clone(),
        postmaster: config.postmaster.trim().to_string(),
    });
    let signer = if config.dkim.enabled {
        let signer = crate::dkim::Signer::load_or_create(
            &dir.join(".dkim"),
            &config.dkim,
            &ctx.data_dir,
            config
                .local_domains
                .iter()
                .map(|d| d.trim().trim_end_matches('.').to_ascii_lowercase())
                .collect(),
        )
        .map_err(|e| MailError::Config(format!("mail.dkim: {e}")))?;
        Some(Arc::new(signer))
    } else {
        None
    };
    let dns = resolver(&config);
    let route = route_using(&config, &ctx.data_dir, || dns.clone()).map_err(MailError::Config)?;
    let queue = Queue::open(
        spool,
        Settings {
            hostname: hostname.clone(),
            retry_initial: config.queue.retry_initial.0,
            retry_max: config.queue.retry_max.0,
            max_age: config.queue.max_age.0,
            concurrency: config.queue.concurrency,
        },
        route.clone(),
        users.clone(),
        signer.clone(),
    )
    .map_err(|source| MailError::Queue {
        path: dir.display().to_string(),
        source,
    })?;
    let mut listeners = Vec::new();
    for (kind, list) in [
        (Listener::Smtp, &config.listen),
        (Listener::Submission, &config.submission_listen),
    ] {
        for &addr in list.addrs() {
            let listener = TcpListener::bind(addr)
                .await
                .map_err(|source| MailError::Bind { addr, source })?;
            listeners.push((kind, listener));
        }
    }
    let addrs: Vec<SocketAddr> = listeners
        .iter()
        .filter_map(|(_, l)| l.local_addr().ok())
        .collect();

    let registry = ctx.metrics.sub_registry_with_prefix("mail");
    let m = &queue.metrics;
    registry.register(
        "accepted",
        "Messages accepted into the queue",
        m.accepted.clone(),
    );
    registry.register("delivered", "Recipients delivered", m.delivered.clone());
    registry.register(
        "deferred",
        "Delivery attempts deferred (per recipient)",
        m.deferred.clone(),
    );
    registry.register("bounced", "Recipients bounced", m.bounced.clone());
    registry.register("queue_size", "Messages in the queue", m.size.clone());
    registry.register(
        "queue_oldest_age_seconds",
        "Age of the oldest message in the queue",
        m.oldest_age.clone(),
    );

    let driver = Arc::new(Driver {
        hostname: hostname.clone(),
        max_message_size: config.max_message_size.0,
        max_recipients: config.max_recipients,
        mynetworks: config.mynetworks.clone(),
        tls: ctx.tls.clone(),
        directory: ctx.directory.clone(),
        users,
        queue: queue.clone(),
        sessions: tokio::sync::Semaphore::new(config.max_connections),
        open: Default::default(),
        inbound: if config.inbound.checks {
            match dns {
                Ok(r) => Some(Arc::new(crate::inbound::Checker::new(
                    r,
                    &hostname,
                    &config.inbound,
                ))),
                Err(e) => {
                    tracing::warn!(target: "serval_mail::inbound", error = %e, "no DNS resolver: mail from outside is accepted unchecked (no SPF, DKIM, DMARC)");
                    None
                }
            }
        } else {
            None
        },
    });
    let tasks = TaskTracker::new();
    tasks.spawn(queue.clone().run(ctx.shutdown.clone()));
    for (kind, listener) in listeners {
        tasks.spawn(serve(
            listener,
            kind,
            driver.clone(),
            tasks.clone(),
            ctx.shutdown.clone(),
        ));
    }
    match &route {
        Route::Relay {
            host, port, auth, ..
        } => tracing::info!(
            target: "serval_mail::queue",
            "mail for other domains goes through the smarthost {host}:{port}{}",
            if auth.is_some() { " with AUTH" } else { " without AUTH" }
        ),
        Route::Mx(mx) => {
            tracing::info!(
                target: "serval_mail::queue",
                mta_sts = mx.mta_sts.is_some(),
                dane = ?mx.dane.as_ref().map(|d| d.server()),
                "mail for other domains goes direct to each domain's MX"
            )
        }
    }
    let panel = Arc::new(crate::admin::MailPanel {
        queue,
        signer,
        hostname,
        local_domains,
        relay: route.describe(),
    });
    Ok(Arc::new(Running {
        panel,
        addrs,
        started_at: SystemTime::now(),
        driver,
        tasks: Mutex::new(Some(tasks)),
    }))
}
