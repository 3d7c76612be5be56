//! The queue: accepted messages until each recipient is delivered or bounced.
//!
//! Messages live in the [`spool`]; this module keeps an index of them in memory, runs the
//! deliveries (at most `concurrency` at once), retries temporary failures with doubling
//! waits, and turns permanent failures and old age into DSNs. Nothing leaves the queue
//! without a trace: a failure the sender cannot be told about (null sender, or a sender that
//! is itself undeliverable) goes to the postmaster's mailbox, and every deferral and bounce
//! is one WARN line naming the queue id, the next hop and the remote reply.

pub mod spool;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use serde::Serialize;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::deliver::{deliver_local, deliver_remote, Outcome, Route};
use crate::dsn::{Report, ReportedRecipient};
use crate::envelope::{Envelope, Notify, Origin, Recipient, Ret};
use crate::smtp::session::{RecipientClass, Recipients};
use crate::users::LocalUsers;
use spool::{DeliveryState, RecipientState, RecipientStatus, Spool};

pub struct Settings {
    pub hostname: String,
    pub retry_initial: Duration,
    pub retry_max: Duration,
    pub max_age: Duration,
    pub concurrency: usize,
}

#[derive(Clone, Default)]
pub struct Metrics {
    pub accepted: Counter,
    pub delivered: Counter,
    pub deferred: Counter,
    pub bounced: Counter,
    pub size: Gauge,
    pub oldest_age: Gauge,
}

struct Entry {
    sender: String,
    recipients: Vec<String>,
    received_at: u64,
    size: u64,
    state: DeliveryState,
    in_flight: bool,
}

/// A deferral, bounce or postmaster notice, for the admin page.
#[derive(Debug, Clone, Serialize)]
pub struct Event {
    pub at: u64,
    pub id: String,
    pub kind: &'static str,
    pub recipients: String,
    pub hop: String,
    pub reason: String,
}

/// One queued message as the CLI and admin page show it.
#[derive(Debug, Clone, Serialize)]
pub struct QueuedMessage {
    pub id: String,
    pub sender: String,
    pub recipients: Vec<String>,
    /// Recipients still to be delivered.
    pub pending: Vec<String>,
    pub received_at: u64,
    pub size: u64,
    pub attempts: u32,
    pub next_try: u64,
    pub last_error: Option<String>,
    pub in_flight: bool,
}

#[derive(Default)]
struct Inner {
    entries: BTreeMap<String, Entry>,
    /// (next try, id) of every entry not being delivered.
    schedule: BTreeSet<(u64, String)>,
    running: usize,
    events: VecDeque<Event>,
}

const EVENTS_KEPT: usize = 100;

pub struct Queue {
    pub spool: Spool,
    settings: Settings,
    route: Route,
    users: Arc<LocalUsers>,
    inner: Mutex<Inner>,
    wake: tokio::sync::Notify,
    pub metrics: Metrics,
    signer: Option<Arc<crate::dkim::Signer>>,
}

fn now() -> u64 {
    serval_core::now_unix()
}

pub(crate) fn now_micros() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

impl Queue {
    /// Opens the spool and indexes what is in it.
    pub fn open(
        spool: Spool,
        settings: Settings,
        route: Route,
        users: Arc<LocalUsers>,
        signer: Option<Arc<crate::dkim::Signer>>,
    ) -> std::io::Result<Arc<Queue>> {
        let stale = spool.clean_tmp()?;
        if stale > 0 {
            tracing::info!(target: "serval_mail::queue", stale, "removed unacknowledged partial writes");
        }
        let queue = Arc::new(Queue {
            spool,
            settings,
            route,
            users,
            inner: Mutex::new(Inner::default()),
            wake: tokio::sync::Notify::new(),
            metrics: Metrics::default(),
            signer,
        });
        let found = queue.rescan()?;
        if found > 0 {
            tracing::info!(target: "serval_mail::queue", messages = found, "queue loaded");
        }
        Ok(queue)
    }

    /// Indexes messages in the spool that are not indexed yet (after a restart, or written
    /// by `serval sendmail` while no server ran). Returns how many were added.
    pub fn rescan(&self) -> std::io::Result<usize> {
        let ids = self.spool.list()?;
        let mut added = 0;
        for id in ids {
            if self.lock().entries.contains_key(&id) {
                continue;
            }
            let (envelope, message) = match self.spool.read(&id) {
                Ok(m) => m,
                Err(e) => {
                    tracing::error!(target: "serval_mail::queue", %id, error = %e, "unreadable queue file left in place");
                    continue;
                }
            };
            let state = self
                .spool
                .read_state(&id)
                .ok()
                .flatten()
                .unwrap_or_default();
            let size = message.len() as u64;
            self.index(&id, &envelope, state, size);
            added += 1;
        }
        if added > 0 {
            self.wake.notify_one();
        }
        Ok(added)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn index(&self, id: &str, envelope: &Envelope, mut state: DeliveryState, size: u64) {
        state
            .recipients
            .resize(envelope.recipients.len(), RecipientState::default());
        let mut inner = self.lock();
        inner.schedule.insert((state.next_try, id.to_string()));
        inner.entries.insert(
            id.to_string(),
            Entry {
                sender: envelope.sender.clone(),
                recipients: envelope
                    .recipients
                    .iter()
                    .map(|r| r.address.clone())
                    .collect(),
                received_at: envelope.received_at,
                size,
                state,
                in_flight: false,
            },
        );
        self.metrics.size.set(inner.entries.len() as i64);
    }

    /// Queues a message durably (blocking: call from a blocking thread). Returns its id.
    pub fn enqueue(&self, mut envelope: Envelope, message: &[u8]) -> std::io::Result<String> {
        let id = spool::new_queue_id(now_micros());
        envelope.received_at = now();
        let prepared = crate::message::prepare(
            message,
            &envelope,
            &id,
            &self.settings.hostname,
            envelope.received_at,
        );
        self.spool.write(&id, &envelope, &prepared)?;
        self.index(
            &id,
            &envelope,
            DeliveryState::default(),
            prepared.len() as u64,
        );
        self.metrics.accepted.inc();
        tracing::info!(
            target: "serval_mail::queue",
            "{id}: from=<{}> to={} size={} via {} client={}{}",
            envelope.sender,
            list(&envelope.recipients.iter().map(|r| r.address.as_str()).collect::<Vec<_>>()),
            prepared.len(),
            envelope.origin.via,
            envelope.origin.ip,
            envelope.origin.auth_user.as_deref().map(|u| format!(" user={u}")).unwrap_or_default(),
        );
        self.wake.notify_one();
        Ok(id)
    }

    /// Runs deliveries until `shutdown`; in-flight deliveries finish first.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        let tasks = TaskTracker::new();
        let mut last_rescan = now();
        let mut last_gauge = 0;
        loop {
            let t = now();
            if t >= last_rescan + 30 {
                last_rescan = t;
                let _ = self.rescan();
            }
            let (due, wait) = self.take_due(t);
            for id in due {
                let queue = self.clone();
                tasks.spawn(async move {
                    queue.attempt(&id).await;
                    queue.lock().running -= 1;
                    queue.wake.notify_one();
                });
            }
            // A scan of every entry: once a second, not on every wake (each accepted message
            // wakes the loop, and 10,000 deferred messages may sit in the index).
            if t != last_gauge {
                last_gauge = t;
                self.update_age_gauge(t);
            }
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(wait) => {}
            }
        }
        tasks.close();
        tasks.wait().await;
    }

    /// Marks due entries in flight (up to the concurrency limit); returns them and how long
    /// to sleep before the next one is due.
    fn take_due(&self, t: u64) -> (Vec<String>, Duration) {
        let mut inner = self.lock();
        let mut due = Vec::new();
        while inner.running < self.settings.concurrency {
            let Some((next, id)) = inner.schedule.first().cloned() else {
                break;
            };
            if next > t {
                break;
            }
            inner.schedule.pop_first();
            if let Some(entry) = inner.entries.get_mut(&id) {
                entry.in_flight = true;
                inner.running += 1;
                due.push(id);
            }
        }
        let wait = match inner.schedule.first() {
            Some((next, _)) if *next > t => Duration::from_secs((*next - t).min(10)),
            Some(_) => Duration::from_secs(1),
            None => Duration::from_secs(10),
        };
        (due, wait)
    }

    fn update_age_gauge(&self, t: u64) {
        let inner = self.lock();
        let oldest = inner.entries.values().map(|e| e.received_at).min();
        self.metrics
            .oldest_age
            .set(oldest.map(|o| t.saturating_sub(o) as i64).unwrap_or(0));
    }

    /// One delivery attempt of every pending recipient of `id`.
    async fn attempt(&self, id: &str) {
        let spool = self.spool.clone();
        let read_id = id.to_string();
        let read = tokio::task::spawn_blocking(move || spool.read(&read_id)).await;
        let (envelope, message) = match read {
            Ok(Ok(m)) => m,
            other => {
                let error = match other {
                    Ok(Err(e)) => e.to_string(),
                    Err(e) => e.to_string(),
                    Ok(Ok(_)) => unreachable!(),
                };
                tracing::error!(target: "serval_mail::queue", "{id}: cannot read the queued message: {error}; left in the queue");
                self.reschedule_after(id, Duration::from_secs(300));
                return;
            }
        };
        let mut state = self
            .lock()
            .entries
            .get(id)
            .map(|e| e.state.clone())
            .unwrap_or_default();
        state
            .recipients
            .resize(envelope.recipients.len(), RecipientState::default());
        let pending: Vec<usize> = (0..envelope.recipients.len())
            .filter(|&i| state.recipients[i].status == RecipientStatus::Pending)
            .collect();
        let (local, remote): (Vec<usize>, Vec<usize>) = pending
            .iter()
            .partition(|&&i| envelope.recipients[i].local_user.is_some());
        let mut outcomes: Vec<(usize, Outcome)> = Vec::new();
        if !local.is_empty() {
            let spool = self.spool.clone();
            let env = envelope.clone();
            let msg = message.clone();
            let hostname = self.settings.hostname.clone();
            let done = tokio::task::spawn_blocking(move || {
                local
                    .into_iter()
                    .map(|i| {
                        let r = &env.recipients[i];
                        let user = r.local_user.as_deref().unwrap_or_default();
                        let outcome = match deliver_local(
                            &spool.mailboxes,
                            user,
                            &env,
                            &r.address,
                            &msg,
                            &hostname,
                        ) {
                            Ok(path) => Outcome::Delivered {
                                hop: "local".into(),
                                reply: format!("delivered to maildir {}", path.display()),
                            },
                            Err(e) => Outcome::Temporary {
                                hop: "local".into(),
                                reason: format!("cannot write to the mailbox of {user}: {e}"),
                                status: "4.3.0".into(),
                            },
                        };
                        (i, outcome)
                    })
                    .collect::<Vec<_>>()
            })
            .await
            .unwrap_or_default();
            outcomes.extend(done);
        }
        if !remote.is_empty() {
            let signed;
            let outgoing: &[u8] = match &self.signer {
                Some(signer) => {
                    signed = signer.sign(&envelope.sender, &message);
                    &signed
                }
                None => &message,
            };
            outcomes.extend(
                deliver_remote(
                    &self.route,
                    &self.settings.hostname,
                    &envelope,
                    &remote,
                    outgoing,
                )
                .await,
            );
        }
        self.settle(id, &envelope, &message, state, outcomes).await;
    }

    /// Records outcomes, bounces what failed, defers the rest or removes the message.
    async fn settle(
        &self,
        id: &str,
        envelope: &Envelope,
        message: &[u8],
        mut state: DeliveryState,
        outcomes: Vec<(usize, Outcome)>,
    ) {
        let t = now();
        let mut newly_failed: Vec<usize> = Vec::new();
        let mut deferred: Vec<usize> = Vec::new();
        let mut delivered_notify: Vec<usize> = Vec::new();
        let postmaster_notice = envelope.origin.via == "postmaster";
        for (i, outcome) in outcomes {
            let r = &mut state.recipients[i];
            match outcome {
                Outcome::Delivered { hop, reply } => {
                    r.status = RecipientStatus::Delivered;
                    tracing::info!(target: "serval_mail::queue", "{id}: delivered to=<{}> via {hop}: {reply}", envelope.recipients[i].address);
                    r.hop = Some(hop);
                    r.reply = Some(reply);
                    r.dsn_status = Some("2.0.0".into());
                    self.metrics.delivered.inc();
                    if envelope.recipients[i].notify.success
                        && envelope.recipients[i].local_user.is_some()
                    {
                        delivered_notify.push(i);
                    }
                }
                // The postmaster's own notices are never given up on: they are the last
                // place a failure is recorded.
                Outcome::Permanent {
                    hop,
                    reason,
                    status,
                } if !postmaster_notice => {
                    r.status = RecipientStatus::Failed;
                    r.hop = Some(hop);
                    r.reply = Some(reason);
                    r.dsn_status = Some(status);
                    newly_failed.push(i);
                }
                Outcome::Permanent {
                    hop,
                    reason,
                    status,
                }
                | Outcome::Temporary {
                    hop,
                    reason,
                    status,
                } => {
                    r.hop = Some(hop);
                    r.reply = Some(reason);
                    r.dsn_status = Some(status);
                    deferred.push(i);
                }
            }
        }
        // Too old: what is still deferred fails now.
        let expired = t.saturating_sub(envelope.received_at) >= self.settings.max_age.as_secs();
        if expired && !deferred.is_empty() && !postmaster_notice {
            for &i in &deferred {
                let r = &mut state.recipients[i];
                r.status = RecipientStatus::Failed;
                r.reply = Some(format!(
                    "gave up after {} attempts over {}: {}",
                    state.attempts + 1,
                    humantime_secs(self.settings.max_age.as_secs()),
                    r.reply.clone().unwrap_or_default()
                ));
                r.dsn_status = Some("4.4.7".into());
                newly_failed.push(i);
            }
            deferred.clear();
        }
        state.attempts += 1;
        state.last_attempt = t;
        if !newly_failed.is_empty() {
            self.bounce(id, envelope, message, &state, &newly_failed)
                .await;
        }
        if !delivered_notify.is_empty() {
            self.success_notice(id, envelope, message, &state, &delivered_notify)
                .await;
        }
        if deferred.is_empty() {
            let spool = self.spool.clone();
            let rm_id = id.to_string();
            if let Ok(Err(e)) | Err(e) = tokio::task::spawn_blocking(move || spool.remove(&rm_id))
                .await
                .map_err(std::io::Error::other)
            {
                tracing::error!(target: "serval_mail::queue", "{id}: done, but cannot remove it from the queue: {e}");
            }
            let mut inner = self.lock();
            inner.entries.remove(id);
            self.metrics.size.set(inner.entries.len() as i64);
            return;
        }
        let wait = self.backoff(state.attempts);
        state.next_try = t + wait.as_secs();
        let last = deferred
            .iter()
            .filter_map(|&i| state.recipients[i].reply.clone())
            .next_back();
        state.last_error = last;
        for &i in &deferred {
            let r = &state.recipients[i];
            let hop = r.hop.clone().unwrap_or_default();
            let reason = r.reply.clone().unwrap_or_default();
            self.metrics.deferred.inc();
            tracing::warn!(
                target: "serval_mail::queue",
                "{id}: deferred to=<{}> via {hop}: {reason}; attempt {}, next try in {}",
                envelope.recipients[i].address,
                state.attempts,
                humantime_secs(wait.as_secs()),
            );
            self.event(Event {
                at: t,
                id: id.to_string(),
                kind: "deferred",
                recipients: envelope.recipients[i].address.clone(),
                hop,
                reason,
            });
        }
        let spool = self.spool.clone();
        let (save_id, save_state) = (id.to_string(), state.clone());
        if let Ok(Err(e)) | Err(e) =
            tokio::task::spawn_blocking(move || spool.write_state(&save_id, &save_state))
                .await
                .map_err(std::io::Error::other)
        {
            tracing::error!(target: "serval_mail::queue", "{id}: cannot save the delivery state: {e}");
        }
        let mut inner = self.lock();
        if let Some(entry) = inner.entries.get_mut(id) {
            entry.state = state;
            entry.in_flight = false;
            let next = entry.state.next_try;
            inner.schedule.insert((next, id.to_string()));
        }
    }

    fn backoff(&self, attempts: u32) -> Duration {
        let base = self.settings.retry_initial;
        let factor = 1u32 << attempts.saturating_sub(1).min(20);
        (base * factor).min(self.settings.retry_max)
    }

    fn reschedule_after(&self, id: &str, wait: Duration) {
        let mut inner = self.lock();
        if let Some(entry) = inner.entries.get_mut(id) {
            entry.in_flight = false;
            entry.state.next_try = now() + wait.as_secs();
            let next = entry.state.next_try;
            inner.schedule.insert((next, id.to_string()));
        }
    }

    fn event(&self, event: Event) {
        let mut inner = self.lock();
        if inner.events.len() >= EVENTS_KEPT {
            inner.events.pop_front();
        }
        inner.events.push_back(event);
    }

    /// Sends the DSN for `failed` recipients, or the postmaster notice when the sender
    /// cannot take one.
    async fn bounce(
        &self,
        id: &str,
        envelope: &Envelope,
        message: &[u8],
        state: &DeliveryState,
        failed: &[usize],
    ) {
        let t = now();
        let reported: Vec<ReportedRecipient> = failed
            .iter()
            .map(|&i| reported(&envelope.recipients[i], &state.recipients[i], "failed"))
            .collect();
        let notify_sender: Vec<&ReportedRecipient> = failed
            .iter()
            .zip(&reported)
            .filter(|(&i, _)| !envelope.recipients[i].notify.never)
            .map(|(_, r)| r)
            .collect();
        for r in &reported {
            self.metrics.bounced.inc();
            tracing::warn!(
                target: "serval_mail::queue",
                "{id}: bounced to=<{}> via {}: {} (status {})",
                r.address,
                r.remote.as_deref().unwrap_or("-"),
                r.diagnostic,
                r.status
            );
            self.event(Event {
                at: t,
                id: id.to_string(),
                kind: "bounced",
                recipients: r.address.clone(),
                hop: r.remote.clone().unwrap_or_default(),
                reason: r.diagnostic.clone(),
            });
        }
        // A bounce of a bounce goes to the postmaster, so nothing is dropped silently.
        let double = envelope.sender.is_empty();
        if !double && notify_sender.is_empty() {
            tracing::info!(target: "serval_mail::queue", "{id}: sender asked for no failure notice (NOTIFY=NEVER)");
            return;
        }
        let dsn_id = spool::new_queue_id(now_micros());
        let to_postmaster = double.then(|| format!("postmaster@{}", self.settings.hostname));
        let report = Report {
            hostname: &self.settings.hostname,
            queue_id: id,
            envelope,
            message,
            recipients: if double {
                reported.clone()
            } else {
                notify_sender.into_iter().cloned().collect()
            },
            now: t,
            to_postmaster: to_postmaster.as_deref(),
            dsn_id: &dsn_id,
        };
        let bytes = report.render();
        let (recipient, via) = if double {
            (
                Recipient {
                    address: format!("postmaster@{}", self.settings.hostname),
                    local_user: Some(self.users.postmaster.clone()),
                    notify: Notify {
                        never: true,
                        ..Notify::default()
                    },
                    orcpt: None,
                },
                "postmaster",
            )
        } else {
            let local_user = match self.users.classify(&envelope.sender) {
                RecipientClass::Local { user } => Some(user),
                _ => None,
            };
            (
                Recipient {
                    address: envelope.sender.clone(),
                    local_user,
                    notify: Notify {
                        never: true,
                        ..Notify::default()
                    },
                    orcpt: None,
                },
                "bounce",
            )
        };
        let to = recipient.address.clone();
        let dsn = Envelope {
            sender: String::new(),
            recipients: vec![recipient],
            ret: Ret::Full,
            envid: None,
            smtputf8: false,
            origin: Origin {
                via: via.into(),
                ..Origin::default()
            },
            received_at: 0,
        };
        match self.enqueue_blocking(dsn, bytes).await {
            Ok(new_id) if double => {
                tracing::warn!(target: "serval_mail::queue", "{id}: undeliverable bounce kept for the postmaster ({}) as {new_id}", self.users.postmaster);
                self.event(Event {
                    at: t,
                    id: id.to_string(),
                    kind: "postmaster",
                    recipients: to,
                    hop: "local".into(),
                    reason: format!("double bounce, notice queued as {new_id}"),
                });
            }
            Ok(new_id) => {
                tracing::info!(target: "serval_mail::queue", "{id}: sender non-delivery notification: {new_id} to <{to}>");
            }
            Err(e) => {
                tracing::error!(target: "serval_mail::queue", "{id}: cannot queue the DSN to <{to}>: {e}")
            }
        }
    }

    async fn success_notice(
        &self,
        id: &str,
        envelope: &Envelope,
        message: &[u8],
        state: &DeliveryState,
        which: &[usize],
    ) {
        if envelope.sender.is_empty() {
            return;
        }
        let dsn_id = spool::new_queue_id(now_micros());
        let headers_only = Envelope {
            ret: Ret::Headers,
            ..envelope.clone()
        };
        let report = Report {
            hostname: &self.settings.hostname,
            queue_id: id,
            envelope: &headers_only,
            message,
            recipients: which
                .iter()
                .map(|&i| reported(&envelope.recipients[i], &state.recipients[i], "delivered"))
                .collect(),
            now: now(),
            to_postmaster: None,
            dsn_id: &dsn_id,
        };
        let local_user = match self.users.classify(&envelope.sender) {
            RecipientClass::Local { user } => Some(user),
            _ => None,
        };
        let dsn = Envelope {
            sender: String::new(),
            recipients: vec![Recipient {
                address: envelope.sender.clone(),
                local_user,
                notify: Notify {
                    never: true,
                    ..Notify::default()
                },
                orcpt: None,
            }],
            ret: Ret::Headers,
            envid: None,
            smtputf8: false,
            origin: Origin {
                via: "bounce".into(),
                ..Origin::default()
            },
            received_at: 0,
        };
        if let Err(e) = self.enqueue_blocking(dsn, report.render()).await {
            tracing::error!(target: "serval_mail::queue", "{id}: cannot queue the success notice: {e}");
        }
    }

    async fn enqueue_blocking(
        &self,
        envelope: Envelope,
        bytes: Vec<u8>,
    ) -> std::io::Result<String> {
        // The queue outlives every delivery task, so borrowing self into a scoped blocking
        // section is fine; block_in_place keeps the fsync off the async workers' backs.
        tokio::task::block_in_place(|| self.enqueue(envelope, &bytes))
    }

    /// The user whose Maildir gets postmaster mail.
    pub fn postmaster(&self) -> &str {
        &self.users.postmaster
    }

    /// Every message in the queue, oldest first.
    pub fn list(&self) -> Vec<QueuedMessage> {
        let inner = self.lock();
        let mut out: Vec<QueuedMessage> = inner
            .entries
            .iter()
            .map(|(id, e)| QueuedMessage {
                id: id.clone(),
                sender: e.sender.clone(),
                recipients: e.recipients.clone(),
                pending: e
                    .recipients
                    .iter()
                    .zip(&e.state.recipients)
                    .filter(|(_, s)| s.status == RecipientStatus::Pending)
                    .map(|(r, _)| r.clone())
                    .collect(),
                received_at: e.received_at,
                size: e.size,
                attempts: e.state.attempts,
                next_try: e.state.next_try,
                last_error: e.state.last_error.clone(),
                in_flight: e.in_flight,
            })
            .collect();
        out.sort_by_key(|m| (m.received_at, m.id.clone()));
        out
    }

    pub fn events(&self) -> Vec<Event> {
        self.lock().events.iter().rev().cloned().collect()
    }

    /// Makes every deferred message (or just `id`) due now. Returns how many.
    pub fn flush(&self, only: Option<&str>) -> usize {
        let mut inner = self.lock();
        let waiting: Vec<(u64, String)> = inner
            .schedule
            .iter()
            .filter(|(_, id)| only.is_none_or(|o| o == id))
            .cloned()
            .collect();
        for (next, id) in &waiting {
            inner.schedule.remove(&(*next, id.clone()));
            inner.schedule.insert((0, id.clone()));
            if let Some(e) = inner.entries.get_mut(id) {
                e.state.next_try = 0;
            }
        }
        drop(inner);
        self.wake.notify_one();
        waiting.len()
    }

    /// Removes a message without delivering it (the admin's choice; logged).
    pub fn delete(&self, id: &str) -> Result<(), String> {
        self.take_out(id)?;
        self.spool.remove(id).map_err(|e| format!("{id}: {e}"))?;
        tracing::warn!(target: "serval_mail::queue", "{id}: deleted from the queue by the administrator");
        Ok(())
    }

    /// Fails every pending recipient now, with a DSN to the sender.
    pub async fn bounce_now(&self, id: &str) -> Result<(), String> {
        self.take_out(id)?;
        let (envelope, message) = self.spool.read(id).map_err(|e| format!("{id}: {e}"))?;
        let mut state = self.spool.read_state(id).ok().flatten().unwrap_or_default();
        state
            .recipients
            .resize(envelope.recipients.len(), RecipientState::default());
        let pending: Vec<usize> = (0..envelope.recipients.len())
            .filter(|&i| state.recipients[i].status == RecipientStatus::Pending)
            .collect();
        for &i in &pending {
            let r = &mut state.recipients[i];
            r.status = RecipientStatus::Failed;
            r.reply = Some(format!(
                "returned by the administrator{}",
                r.reply
                    .as_deref()
                    .map(|e| format!("; last error: {e}"))
                    .unwrap_or_default()
            ));
            r.dsn_status = Some("5.0.0".into());
        }
        self.bounce(id, &envelope, &message, &state, &pending).await;
        self.spool.remove(id).map_err(|e| format!("{id}: {e}"))?;
        Ok(())
    }

    /// Takes an idle message out of the index (for delete and bounce).
    fn take_out(&self, id: &str) -> Result<(), String> {
        let mut inner = self.lock();
        let Some(entry) = inner.entries.get(id) else {
            return Err(format!("no message {id} in the queue"));
        };
        if entry.in_flight {
            return Err(format!(
                "{id} is being delivered right now; try again in a moment"
            ));
        }
        let next = entry.state.next_try;
        inner.schedule.remove(&(next, id.to_string()));
        inner.entries.remove(id);
        self.metrics.size.set(inner.entries.len() as i64);
        Ok(())
    }
}

fn reported(
    recipient: &Recipient,
    state: &RecipientState,
    action: &'static str,
) -> ReportedRecipient {
    ReportedRecipient {
        address: recipient.address.clone(),
        orcpt: recipient.orcpt.clone(),
        action,
        status: state.dsn_status.clone().unwrap_or_else(|| "5.0.0".into()),
        remote: state.hop.clone().filter(|h| h != "local"),
        diagnostic: state.reply.clone().unwrap_or_default(),
    }
}

fn list(addresses: &[&str]) -> String {
    addresses
        .iter()
        .map(|a| format!("<{a}>"))
        .collect::<Vec<_>>()
        .join(",")
}

/// "90s", "4m", "2h", "5d".
pub fn humantime_secs(secs: u64) -> String {
    match secs {
        s if s < 120 => format!("{s}s"),
        s if s < 7200 => format!("{}m", s / 60),
        s if s < 172_800 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86400),
    }
}
