//! Full recursion: from the root down, with a cache, priming and serve-stale.
//!
//! The walk (`walk`) asks name servers through an [`Upstream`]; the reading of each reply
//! (`classify`) and the cache are pure. Written on hickory-proto's wire types rather than
//! on hickory-resolver's recursor, which needs a roots file, has no priming, no serve-stale
//! and no failure reasons (see ../shared/reference/services.md, section 0).

mod cache;
pub(crate) mod classify;
pub mod dnssec;
pub mod rfc5011;
pub mod roots;
pub mod upstream;
mod validate;
mod walk;

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime};

use futures::future::{BoxFuture, FutureExt as _, Shared};
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{Name, RData, Record, RecordType};

pub use cache::{Cache, Cached};
use dnssec::{Anchors, Security};
use roots::RootServer;
pub use upstream::{AskError, Network, Upstream};
use validate::ZoneKeys;

/// Time one client question may take to resolve before SERVFAIL (clients retry at ~5 s;
/// the bar is a reason within 10 s).
pub const RESOLVE_BUDGET: Duration = Duration::from_secs(8);
/// With a stale answer in hand, how long fresh resolution may take before the stale answer
/// goes out (RFC 8767's client response timer; Unbound's 1.8 s).
pub const STALE_CLIENT_TIMEOUT: Duration = Duration::from_millis(1800);
/// How long past expiry a record may be served stale (RFC 8767 suggests 1 to 3 days).
pub const MAX_STALE: Duration = Duration::from_secs(86_400);
/// Re-priming period (the root NS RRset's TTL is 6 days; re-asking twice a day is cheap).
pub const PRIME_EVERY: Duration = Duration::from_secs(12 * 3600);
/// Cache size.
pub const CACHE_BYTES: usize = 64 << 20;

/// RFC 8914 codes the recursor gives.
pub mod ede {
    pub const OTHER: u16 = 0;
    pub const STALE_ANSWER: u16 = 3;
    pub const NO_REACHABLE_AUTHORITY: u16 = 22;
    pub const NETWORK_ERROR: u16 = 23;
}

/// Why resolution failed: the EDE code and a sentence for the admin and the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub ede: u16,
    pub reason: String,
}

impl Failure {
    fn new(ede: u16, reason: impl Into<String>) -> Failure {
        Failure {
            ede,
            reason: reason.into(),
        }
    }
}

/// The answer to one client question.
#[derive(Debug, Clone, PartialEq)]
pub struct Resolution {
    pub code: ResponseCode,
    pub answers: Vec<Record>,
    pub authorities: Vec<Record>,
    /// An Extended DNS Error to attach: code and text.
    pub ede: Option<(u16, String)>,
    /// What DNSSEC validation said of the whole answer (every link of a CNAME chain).
    pub security: Security,
}

impl Resolution {
    fn failed(failure: Failure) -> Resolution {
        Resolution {
            code: ResponseCode::ServFail,
            answers: Vec::new(),
            authorities: Vec::new(),
            ede: Some((failure.ede, failure.reason)),
            security: Security::Unchecked,
        }
    }
}

/// Counters the recursor keeps (registered under `dns_` by the service; unregistered in tests).
#[derive(Default, Clone)]
pub struct RecursorMetrics {
    pub cache_hits: prometheus_client::metrics::counter::Counter,
    pub cache_misses: prometheus_client::metrics::counter::Counter,
    pub stale_answers: prometheus_client::metrics::counter::Counter,
    /// SERVFAILs by Extended DNS Error ("22 No Reachable Authority", ...).
    /// The same counts, readable for the admin page.
    pub servfail_reasons: Arc<Mutex<std::collections::BTreeMap<String, u64>>>,
    pub servfails: prometheus_client::metrics::family::Family<
        Vec<(String, String)>,
        prometheus_client::metrics::counter::Counter,
    >,
    /// Answers by DNSSEC result (secure, insecure, bogus).
    pub validation: prometheus_client::metrics::family::Family<
        Vec<(String, String)>,
        prometheus_client::metrics::counter::Counter,
    >,
    /// `validation`'s secure, insecure and bogus counters, made once (no label strings per
    /// query); see [`RecursorMetrics::prepare`].
    validation_by_result: [prometheus_client::metrics::counter::Counter; 3],
}

impl RecursorMetrics {
    /// Creates the labelled counters used per query.
    pub fn prepare(mut self) -> RecursorMetrics {
        let get = |result: &str| {
            self.validation
                .get_or_create(&vec![("result".to_owned(), result.to_owned())])
                .clone()
        };
        self.validation_by_result = [get("secure"), get("insecure"), get("bogus")];
        self
    }
}

/// The name RFC 8914 gives an EDE code, for metrics and the admin page.
pub fn ede_name(code: u16) -> &'static str {
    match code {
        0 => "Other",
        1 => "Unsupported DNSKEY Algorithm",
        2 => "Unsupported DS Digest Type",
        3 => "Stale Answer",
        6 => "DNSSEC Bogus",
        7 => "Signature Expired",
        8 => "Signature Not Yet Valid",
        9 => "DNSKEY Missing",
        10 => "RRSIGs Missing",
        12 => "NSEC Missing",
        22 => "No Reachable Authority",
        23 => "Network Error",
        _ => "Other",
    }
}

pub struct RecursorConfig {
    /// Where the primed root set is kept.
    pub data_dir: PathBuf,
    /// The compiled-in hints, or `root_hints_file`'s.
    pub hints: Vec<RootServer>,
    pub serve_stale: bool,
    /// Test switch: name servers on loopback are asked, and loopback glue is kept.
    pub allow_loopback: bool,
    /// UDP/TCP port of name servers (53; tests of the walk may change it).
    pub port: u16,
    /// Validate answers (DO to authorities, AD to clients, SERVFAIL for bogus data).
    pub dnssec: bool,
    /// The root's trust anchors.
    pub anchors: Anchors,
    /// Cache size in bytes.
    pub cache_bytes: usize,
}

/// What is known about one name server's address: smoothed round trip and recent timeouts.
#[derive(Debug, Clone, Copy)]
struct ServerState {
    srtt: Duration,
    timeouts: u32,
    down_until: Option<Instant>,
}

/// Priming's state: when it last worked, and the last failure since.
#[derive(Debug, Clone, Default)]
pub struct PrimingStatus {
    pub succeeded_at: Option<SystemTime>,
    pub last_error: Option<(SystemTime, String)>,
}

type Pending = Shared<BoxFuture<'static, Result<Resolution, Failure>>>;

pub struct Recursor {
    upstream: Arc<dyn Upstream>,
    config: RecursorConfig,
    cache: Mutex<Cache>,
    servers: Mutex<HashMap<IpAddr, ServerState>>,
    /// The root servers a walk starts from: the primed set, else the hints.
    roots: RwLock<Vec<RootServer>>,
    /// Questions being resolved now, so a burst of clients asking one name makes one walk.
    in_flight: Mutex<HashMap<(Name, RecordType), Pending>>,
    /// What the last priming attempts said, for the admin page.
    pub priming: Mutex<PrimingStatus>,
    /// Validated keys of zones, and until when they are kept.
    keys: Mutex<HashMap<Name, (ZoneKeys, Instant)>>,
    /// RRsets (with their RRSIGs) whose signatures were checked (see `Recursor::verify`).
    verified: Mutex<std::collections::HashSet<Vec<u8>>>,
    /// RFC 5011 state of the root's KSKs.
    trust: Mutex<rfc5011::TrustState>,
    pub metrics: RecursorMetrics,
}

impl Recursor {
    pub fn new(upstream: Arc<dyn Upstream>, config: RecursorConfig) -> Recursor {
        let primed = roots::load_primed(&config.data_dir);
        // A kept priming result first, the hints after it: a restart uses what the root
        // itself last said, and dead hints cost nothing while a kept server answers.
        let mut start = primed.map(|p| p.servers).unwrap_or_default();
        for hint in &config.hints {
            if !start.iter().any(|s| s.name == hint.name) {
                start.push(hint.clone());
            }
        }
        let max_stale = if config.serve_stale {
            MAX_STALE
        } else {
            Duration::ZERO
        };
        Recursor {
            upstream,
            cache: Mutex::new(Cache::new(config.cache_bytes, max_stale)),
            servers: Mutex::new(HashMap::new()),
            roots: RwLock::new(start),
            in_flight: Mutex::new(HashMap::new()),
            priming: Mutex::new(PrimingStatus::default()),
            keys: Mutex::new(HashMap::new()),
            verified: Mutex::new(std::collections::HashSet::new()),
            trust: Mutex::new(rfc5011::TrustState::load(&config.data_dir)),
            metrics: RecursorMetrics::default(),
            config,
        }
    }

    pub fn dnssec_enabled(&self) -> bool {
        self.config.dnssec
    }

    /// Key tags of the root trust anchors.
    pub fn anchor_tags(&self) -> Vec<u16> {
        let anchors = &self.config.anchors;
        let mut tags: Vec<u16> = anchors.ds.iter().map(|d| d.key_tag()).collect();
        tags.extend(
            anchors
                .keys
                .iter()
                .filter_map(|k| k.calculate_key_tag().ok()),
        );
        tags
    }

    /// What the last check of the root's keys against the anchors said, if one was made.
    pub fn root_trust(&self) -> Option<String> {
        let keys = self.keys.lock().unwrap_or_else(|p| p.into_inner());
        keys.get(&Name::root()).map(|(k, _)| match k {
            ZoneKeys::Secure(keys) => format!("secure ({} keys)", keys.len()),
            ZoneKeys::Insecure => "insecure".into(),
            ZoneKeys::Bogus(code, reason) => format!("bogus: {reason} (EDE {code})"),
        })
    }

    /// The RFC 5011 state of the root's KSKs, in one line.
    pub fn trust_summary(&self) -> String {
        self.trust
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .summary()
    }

    /// The root servers a walk would start from now.
    pub fn root_servers(&self) -> Vec<RootServer> {
        self.roots.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Cache entries and bytes.
    pub fn cache_size(&self) -> (usize, usize) {
        let cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        (cache.len(), cache.bytes())
    }

    /// Drops every cached and stale entry, or those of `name` only; then validated keys too.
    /// The count of entries dropped.
    pub fn flush(&self, name: Option<&Name>) -> usize {
        let dropped = {
            let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
            match name {
                Some(name) => cache.remove_name(name),
                None => {
                    let n = cache.len();
                    cache.clear();
                    n
                }
            }
        };
        let mut keys = self.keys.lock().unwrap_or_else(|p| p.into_inner());
        match name {
            Some(name) => {
                keys.remove(&name.to_lowercase());
            }
            None => keys.clear(),
        }
        dropped
    }

    /// The answer from the fresh cache alone, without waiting: the UDP loop answers hits
    /// itself and gives only misses a task.
    pub fn answer_cached(&self, name: &Name, record_type: RecordType) -> Option<Resolution> {
        match self.cached_chain(name, record_type, Instant::now(), false) {
            Some((fresh, false)) => {
                self.count(&fresh, false);
                self.metrics.cache_hits.inc();
                Some(fresh)
            }
            _ => None,
        }
    }

    fn count(&self, resolution: &Resolution, stale: bool) {
        if stale {
            self.metrics.stale_answers.inc();
        }
        let result = match &resolution.security {
            Security::Secure => Some(0),
            Security::Insecure => Some(1),
            Security::Bogus { .. } => Some(2),
            Security::Unchecked => None,
        };
        if let Some(i) = result {
            self.metrics.validation_by_result[i].inc();
        }
        let failure = match (&resolution.security, &resolution.ede) {
            (Security::Bogus { ede, .. }, _) => Some(*ede),
            (_, Some((ede, _))) if resolution.code == ResponseCode::ServFail => Some(*ede),
            _ => None,
        };
        if let Some(code) = failure {
            let reason = format!("{code} {}", ede_name(code));
            self.metrics
                .servfails
                .get_or_create(&vec![("reason".into(), reason.clone())])
                .inc();
            *self
                .metrics
                .servfail_reasons
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .entry(reason)
                .or_default() += 1;
        }
    }

    /// The answer to a client's question: from the cache, else by walking from the root;
    /// when the walk fails or is slow and an expired answer is kept, that one (EDE 3).
    pub async fn answer(self: &Arc<Self>, name: &Name, record_type: RecordType) -> Resolution {
        if let Some(fresh) = self.answer_cached(name, record_type) {
            return fresh;
        }
        self.metrics.cache_misses.inc();
        let now = Instant::now();
        let stale = if self.config.serve_stale {
            self.cached_chain(name, record_type, now, true)
        } else {
            None
        };
        let walk = self.resolve_shared(name, record_type);
        let (answer, was_stale) = match stale {
            None => (walk.await.unwrap_or_else(Resolution::failed), false),
            Some((mut stale, _)) => match tokio::time::timeout(STALE_CLIENT_TIMEOUT, walk).await {
                Ok(Ok(fresh)) => (fresh, false),
                outcome => {
                    let why = match outcome {
                        Ok(Err(failure)) => failure.reason,
                        _ => format!(
                            "no fresh answer within {} ms",
                            STALE_CLIENT_TIMEOUT.as_millis()
                        ),
                    };
                    tracing::info!(target: "serval_dns::recursor", %name, %record_type, %why, "serving a stale answer");
                    stale.ede = Some((ede::STALE_ANSWER, format!("stale answer: {why}")));
                    (stale, true)
                }
            },
        };
        self.count(&answer, was_stale);
        answer
    }

    /// One walk per question at a time, shared by every client asking it; it runs to its end
    /// even if the client that started it has been answered stale meanwhile (that refreshes
    /// the cache).
    fn resolve_shared(self: &Arc<Self>, name: &Name, record_type: RecordType) -> Pending {
        let key = (name.to_lowercase(), record_type);
        let mut in_flight = self.in_flight.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(pending) = in_flight.get(&key) {
            return pending.clone();
        }
        let this = self.clone();
        let task_key = key.clone();
        let handle = tokio::spawn(async move {
            let deadline = Instant::now() + RESOLVE_BUDGET;
            let result = this.resolve(&task_key.0, task_key.1, deadline).await;
            this.in_flight
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&task_key);
            result
        });
        let pending: Pending = async move {
            handle
                .await
                .unwrap_or_else(|_| Err(Failure::new(ede::OTHER, "resolution task failed")))
        }
        .boxed()
        .shared();
        in_flight.insert(key, pending.clone());
        pending
    }

    /// The answer from the cache alone, following CNAMEs; `(answer, any part stale)`.
    fn cached_chain(
        &self,
        name: &Name,
        record_type: RecordType,
        now: Instant,
        allow_stale: bool,
    ) -> Option<(Resolution, bool)> {
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        let mut answers = Vec::new();
        let mut any_stale = false;
        let mut security = if self.config.dnssec {
            Security::Secure
        } else {
            Security::Unchecked
        };
        let mut name = name.clone();
        for _ in 0..=walk::MAX_CNAME_CHAIN {
            let mut hit = cache.get(&name, record_type, now);
            if hit.as_ref().is_none_or(|h| h.stale) && record_type != RecordType::CNAME {
                if let Some(alias) = cache.get(&name, RecordType::CNAME, now) {
                    if hit.as_ref().is_none() || !alias.stale {
                        hit = Some(alias);
                    }
                }
            }
            let hit = hit?;
            if hit.stale && !allow_stale {
                return None;
            }
            any_stale |= hit.stale;
            security = security.and(hit.security);
            match hit.data {
                Cached::Records(records) => {
                    let alias = records.iter().find_map(|r| match &r.data {
                        RData::CNAME(target) if record_type != RecordType::CNAME => {
                            Some(target.0.clone())
                        }
                        _ => None,
                    });
                    answers.extend(records);
                    match alias {
                        Some(target) => name = target,
                        None => {
                            return Some((
                                resolution(ResponseCode::NoError, answers, Vec::new(), security),
                                any_stale,
                            ))
                        }
                    }
                }
                Cached::NoData(proof) => {
                    return Some((
                        resolution(ResponseCode::NoError, answers, proof, security),
                        any_stale,
                    ))
                }
                Cached::NxDomain(proof) => {
                    return Some((
                        resolution(ResponseCode::NXDomain, answers, proof, security),
                        any_stale,
                    ))
                }
            }
        }
        None
    }

    /// Asks the root servers for their own NS set (RFC 8109) and, when one answers, starts
    /// every later walk from that set and keeps it in `data_dir`. Several servers are asked
    /// a little apart, so dead hints cost a fraction of a second each, not a timeout each.
    pub async fn prime(&self) -> Result<Vec<RootServer>, Failure> {
        let deadline = Instant::now() + RESOLVE_BUDGET;
        let start = self.root_servers();
        let addresses: Vec<IpAddr> = start
            .iter()
            .flat_map(|s| s.addresses.iter().copied())
            .filter(|ip| self.may_ask(*ip))
            .collect();
        let reply = self
            .query_servers(
                &Name::root(),
                &addresses,
                &Name::root(),
                RecordType::NS,
                deadline,
            )
            .await?;
        let mut servers: Vec<RootServer> = reply
            .answers
            .iter()
            .filter(|r| r.name.is_root())
            .filter_map(|r| match &r.data {
                RData::NS(target) => Some(RootServer {
                    name: target.0.to_lowercase().to_ascii(),
                    addresses: Vec::new(),
                }),
                _ => None,
            })
            .collect();
        for record in &reply.additionals {
            let owner = record.name.to_lowercase().to_ascii();
            let Some(server) = servers.iter_mut().find(|s| s.name == owner) else {
                continue;
            };
            match &record.data {
                RData::A(a) => server.addresses.push(IpAddr::V4(a.0)),
                RData::AAAA(a) => server.addresses.push(IpAddr::V6(a.0)),
                _ => {}
            }
        }
        servers.retain(|s| s.addresses.iter().any(|ip| self.may_ask(*ip)));
        if servers.is_empty() {
            return Err(Failure::new(
                ede::NO_REACHABLE_AUTHORITY,
                "the root's NS answer named no server with a usable address",
            ));
        }
        {
            let now = Instant::now();
            let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
            let ns: Vec<Record> = reply
                .answers
                .iter()
                .filter(|r| r.record_type() == RecordType::NS && r.name.is_root())
                .cloned()
                .collect();
            cache.put_records(ns, now);
            for set in group_rrsets(
                reply
                    .additionals
                    .iter()
                    .filter(|r| matches!(r.record_type(), RecordType::A | RecordType::AAAA)),
            ) {
                cache.put_records(set, now);
            }
        }
        *self.roots.write().unwrap_or_else(|p| p.into_inner()) = servers.clone();
        self.priming
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .succeeded_at = Some(SystemTime::now());
        let primed_at = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let kept = roots::PrimedRoots {
            primed_at,
            servers: servers.clone(),
        };
        if let Err(error) = roots::save_primed(&self.config.data_dir, &kept) {
            tracing::warn!(target: "serval_dns::recursor", %error, "cannot keep the primed root servers in data_dir");
        }
        Ok(servers)
    }

    /// Whether a name server at `ip` may be asked (never loopback, unspecified or multicast
    /// outside tests: a referral to 127.0.0.1 would have Serval ask itself).
    fn may_ask(&self, ip: IpAddr) -> bool {
        if ip.is_unspecified() || ip.is_multicast() {
            return false;
        }
        self.config.allow_loopback || !ip.is_loopback()
    }
}

fn resolution(
    code: ResponseCode,
    answers: Vec<Record>,
    authorities: Vec<Record>,
    security: Security,
) -> Resolution {
    Resolution {
        code,
        answers,
        authorities,
        ede: None,
        security,
    }
}

/// Records grouped by owner and type, in first-seen order.
fn group_rrsets<'a>(records: impl Iterator<Item = &'a Record>) -> Vec<Vec<Record>> {
    let mut sets: Vec<Vec<Record>> = Vec::new();
    for record in records {
        let found = sets.iter_mut().find(|set| {
            set[0].record_type() == record.record_type()
                && set[0].name.to_lowercase() == record.name.to_lowercase()
        });
        match found {
            Some(set) => set.push(record.clone()),
            None => sets.push(vec![record.clone()]),
        }
    }
    sets
}

#[cfg(test)]
mod tests;
