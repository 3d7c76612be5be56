//! Binding each enabled service. The only place that names service crates.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context as _;
use prometheus_client::registry::Registry;
use serval_core::service::StartContext;
use serval_core::Directory;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::serve::Services;

/// Binds every enabled service, in order; the first failure is returned and the caller cancels
/// `shutdown`, so services already bound stop again.
#[allow(clippy::too_many_arguments)]
pub async fn bind_all(
    config: &Config,
    data_dir: &Path,
    directory: &Directory,
    registry: &mut Registry,
    tls: Option<Arc<rustls::ServerConfig>>,
    shutdown: &CancellationToken,
) -> anyhow::Result<Services> {
    let mut services: Services = Vec::new();
    let tls_not_after = tls
        .as_ref()
        .and_then(|_| serval_core::tls::certificate_not_after(&config.tls, data_dir));
    let shared = Shared {
        data_dir,
        directory,
        tls,
        tls_not_after,
        shutdown,
    };
    if config.stream.enabled {
        let stream = serval_stream::bind(shared.context(registry), config.stream.clone())
            .await
            .context("the stream service cannot start")?;
        services.push(stream);
    }
    if config.calendar.enabled {
        let calendar = serval_calendar::bind(shared.context(registry), config.calendar.clone())
            .await
            .context("the calendar service cannot start")?;
        services.push(calendar);
    }
    if config.web.enabled {
        let web = serval_web::bind(shared.context(registry), config.web.clone())
            .await
            .context("the web service cannot start")?;
        services.push(web);
    }
    if config.dns.enabled {
        let dns = serval_dns::bind(shared.context(registry), config.dns.clone())
            .await
            .context("the DNS service cannot start")?;
        services.push(dns);
    }
    if config.mail.enabled {
        let mail = serval_mail::bind(shared.context(registry), config.mail.clone())
            .await
            .context("the mail service cannot start")?;
        services.push(mail);
    }
    Ok(services)
}

/// What every service's start context shares.
struct Shared<'a> {
    data_dir: &'a Path,
    directory: &'a Directory,
    tls: Option<Arc<rustls::ServerConfig>>,
    tls_not_after: Option<std::time::SystemTime>,
    shutdown: &'a CancellationToken,
}

impl Shared<'_> {
    fn context<'r>(&self, metrics: &'r mut Registry) -> StartContext<'r> {
        StartContext {
            data_dir: self.data_dir.to_path_buf(),
            engine: self.directory.engine().clone(),
            directory: self.directory.clone(),
            metrics,
            tls: self.tls.clone(),
            tls_not_after: self.tls_not_after,
            shutdown: self.shutdown.child_token(),
        }
    }
}

/// Service tables whose change needs a restart.
pub fn changed_tables(running: &Config, new: &Config) -> Vec<&'static str> {
    let mut changed = Vec::new();
    if running.stream != new.stream {
        changed.push("[stream]");
    }
    if running.calendar != new.calendar {
        changed.push("[calendar]");
    }
    if running.web != new.web {
        changed.push("[web]");
    }
    if running.dns != new.dns {
        changed.push("[dns]");
    }
    if running.mail != new.mail {
        changed.push("[mail]");
    }
    changed
}
