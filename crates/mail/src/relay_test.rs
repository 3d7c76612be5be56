//! `serval mail test-relay`: the smarthost session a delivery would open (CONNECT,
//! STARTTLS, AUTH), then a MAIL FROM probe and RSET, so a wrong host, port, TLS mode or
//! password is found before mail piles up in the queue.

use crate::config::MailConfig;
use crate::deliver::Route;
use crate::envelope::{Envelope, Origin, Ret};
use crate::smtp::client::{Connection, Failure, Hop, Stage, TlsPolicy};

/// What the probe did: one line per step, and the failure that stopped it, if any.
pub struct RelayTest {
    pub hop: String,
    pub steps: Vec<String>,
    pub failure: Option<Failure>,
}

pub async fn run(config: &MailConfig, data_dir: &std::path::Path) -> Result<RelayTest, String> {
    if !config.relay.is_set() {
        return Err(
            "[mail.relay] host is empty: mail for other domains goes direct to each domain's MX, there is no smarthost to test"
                .into(),
        );
    }
    let Route::Relay {
        host,
        port,
        tls,
        auth,
        roots,
    } = crate::service::route(config, data_dir)?
    else {
        unreachable!("a set relay host gives a relay route")
    };
    let hostname = config.effective_hostname();
    let hop = Hop {
        host: host.clone(),
        port,
        addresses: Vec::new(),
        tls,
        tls_required_by: "[mail.relay] tls".into(),
        roots,
        auth: auth.clone(),
        helo: hostname.clone(),
    };
    let peer = format!("{host}:{port}");
    let mut steps = Vec::new();
    let mut report = RelayTest {
        hop: peer.clone(),
        steps: Vec::new(),
        failure: None,
    };
    let mut conn = match Connection::open(&hop).await {
        Ok(conn) => conn,
        Err(failure) => {
            steps.extend(passed_before(failure.stage, &hop, &peer));
            report.steps = steps;
            report.failure = Some(failure);
            return Ok(report);
        }
    };
    steps.extend(passed_before(Stage::Mail, &hop, &peer));
    let probe = Envelope {
        sender: format!("postmaster@{hostname}"),
        recipients: Vec::new(),
        ret: Ret::Full,
        envid: None,
        smtputf8: false,
        origin: Origin::default(),
        received_at: 0,
    };
    match conn.mail(&probe, 0).await {
        Ok(reply) => steps.push(format!("MAIL      ok   {}", reply.text())),
        Err(failure) => {
            report.steps = steps;
            report.failure = Some(failure);
            return Ok(report);
        }
    }
    match conn.rset().await {
        Ok(reply) => steps.push(format!("RSET      ok   {}", reply.text())),
        Err(failure) => {
            report.steps = steps;
            report.failure = Some(failure);
            return Ok(report);
        }
    }
    conn.quit().await;
    report.steps = steps;
    Ok(report)
}

/// The lines for the steps that succeeded before `stage`.
fn passed_before(stage: Stage, hop: &Hop, peer: &str) -> Vec<String> {
    let order = [
        Stage::Connect,
        Stage::Greeting,
        Stage::Ehlo,
        Stage::StartTls,
        Stage::Auth,
        Stage::Mail,
    ];
    let reached = order.iter().position(|s| *s == stage).unwrap_or(0);
    let mut lines = Vec::new();
    if reached > 0 {
        lines.push(format!(
            "CONNECT   ok   {peer}{}",
            if hop.tls == TlsPolicy::Implicit {
                " (TLS, certificate verified)"
            } else {
                ""
            }
        ));
    }
    if reached > 3 {
        lines.push(match hop.tls {
            TlsPolicy::Required => "STARTTLS  ok   certificate verified".to_string(),
            TlsPolicy::Implicit => "STARTTLS  -    not needed (tls = \"tls\")".to_string(),
            _ => "STARTTLS  -    skipped (tls = \"none\")".to_string(),
        });
    }
    if reached > 4 {
        lines.push(match &hop.auth {
            Some((user, _)) => format!("AUTH      ok   as {user}"),
            None => "AUTH      -    skipped (no mail.relay.user)".to_string(),
        });
    }
    lines
}
