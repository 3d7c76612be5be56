//! The iterative walk: closest known zone cut, then referrals down to the answer, with QNAME
//! minimisation (RFC 9156), glueless delegations and CNAME chains.

use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use futures::stream::{FuturesUnordered, StreamExt as _};
use hickory_proto::op::{Edns, Message, MessageType, Query, ResponseCode};
use hickory_proto::rr::{Name, RData, Record, RecordType};

use super::cache::Cached;
use super::classify::{classify, Reply};
use super::dnssec::Security;
use super::upstream::AskError;
use super::{ede, group_rrsets, resolution, Failure, Recursor, Resolution, ServerState};

/// Longest CNAME chain followed (as BIND's and Unbound's limits).
pub const MAX_CNAME_CHAIN: usize = 8;
/// Referrals and minimisation steps in one lookup.
const MAX_STEPS: usize = 30;
/// Nesting of glueless lookups (a name server's name whose server's name needs a lookup...).
const MAX_GLUELESS_DEPTH: usize = 4;
/// How long one server gets before the next is also asked (the first is not abandoned).
const STAGGER: Duration = Duration::from_millis(250);
/// Longest wait for one server.
const ATTEMPT_TIMEOUT: Duration = Duration::from_millis(1500);
/// Longest a server that timed out is tried last (kept short: after an outage, answers
/// come back within seconds, not Unbound's two minutes of `rto 120000`).
const MAX_DOWN: Duration = Duration::from_secs(5);
/// The EDNS payload size offered to authorities.
const PAYLOAD: u16 = 1232;

/// One name and type, looked up, with what validation said of it.
pub(super) struct Found {
    pub data: Content,
    pub security: Security,
}

pub(super) enum Content {
    /// The RRset with its RRSIGs.
    Records(Vec<Record>),
    /// An alias: its target, and the CNAME with its RRSIGs.
    Alias(Name, Vec<Record>),
    NoData(Vec<Record>),
    NxDomain(Vec<Record>),
}

/// The data records of an answer, without the RRSIGs that came with them.
fn data_only(records: &[Record]) -> impl Iterator<Item = &Record> {
    records
        .iter()
        .filter(|r| r.record_type() != RecordType::RRSIG)
}

impl Recursor {
    /// Resolves (`name`, `record_type`) following CNAMEs, by `deadline`.
    pub(super) async fn resolve(
        &self,
        name: &Name,
        record_type: RecordType,
        deadline: Instant,
    ) -> Result<Resolution, Failure> {
        let mut answers = Vec::new();
        let mut security = if self.config.dnssec {
            Security::Secure
        } else {
            Security::Unchecked
        };
        let mut name = name.clone();
        let mut seen = HashSet::new();
        for _ in 0..=MAX_CNAME_CHAIN {
            if !seen.insert(name.to_lowercase()) {
                return Err(Failure::new(ede::OTHER, format!("CNAME loop at {name}")));
            }
            let found = self.lookup(&name, record_type, deadline, 0, true).await?;
            security = security.and(found.security);
            match found.data {
                Content::Records(records) => {
                    answers.extend(records);
                    return Ok(resolution(
                        ResponseCode::NoError,
                        answers,
                        Vec::new(),
                        security,
                    ));
                }
                Content::Alias(target, signed) => {
                    answers.extend(signed);
                    name = target;
                }
                Content::NoData(proof) => {
                    return Ok(resolution(ResponseCode::NoError, answers, proof, security))
                }
                Content::NxDomain(proof) => {
                    return Ok(resolution(ResponseCode::NXDomain, answers, proof, security))
                }
            }
        }
        Err(Failure::new(
            ede::OTHER,
            format!("CNAME chain longer than {MAX_CNAME_CHAIN}"),
        ))
    }

    /// One name and type: the cache, else a walk down from the closest known zone cut, the
    /// answer validated unless `validate` is off (the DNSKEY fetches of validation itself).
    pub(super) fn lookup<'a>(
        &'a self,
        name: &'a Name,
        record_type: RecordType,
        deadline: Instant,
        depth: usize,
        validate: bool,
    ) -> BoxFuture<'a, Result<Found, Failure>> {
        Box::pin(async move {
            if let Some(found) = self.cached(name, record_type) {
                return Ok(found);
            }
            // A DS lives in the parent zone: the walk stops above the name's own cut.
            let start = if record_type == RecordType::DS && !name.is_root() {
                name.base_name()
            } else {
                name.clone()
            };
            let (mut zone, mut servers) = self.closest_delegation(&start);
            let mut minimise = true;
            let mut known = zone.num_labels();
            for _ in 0..MAX_STEPS {
                let full = !minimise || known + 1 >= name.num_labels();
                let ask_name = if full {
                    name.clone()
                } else {
                    name.trim_to(usize::from(known) + 1)
                };
                let ask_type = if full { record_type } else { RecordType::A };
                let addresses = self.addresses_of(&zone, &servers, deadline, depth).await?;
                let reply = self
                    .query_servers(&zone, &addresses, &ask_name, ask_type, deadline)
                    .await?;
                let now = Instant::now();
                match classify(&zone, &ask_name, ask_type, &reply) {
                    Reply::Referral { child, .. }
                        if record_type == RecordType::DS && child == *name =>
                    {
                        // Asked the parent about a name below the cut first (minimised): ask
                        // it the DS question itself.
                        minimise = false;
                    }
                    Reply::Referral { child, ns, glue } => {
                        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
                        cache.put_records(ns.clone(), now);
                        for set in group_rrsets(glue.iter().map(|(_, _, r)| r)) {
                            cache.put_records(set, now);
                        }
                        drop(cache);
                        servers = ns
                            .iter()
                            .filter_map(|r| match &r.data {
                                RData::NS(target) => Some(target.0.to_lowercase()),
                                _ => None,
                            })
                            .map(|target| {
                                let ips = glue
                                    .iter()
                                    .filter(|(owner, _, _)| *owner == target)
                                    .map(|(_, ip, _)| *ip)
                                    .collect();
                                (target, ips)
                            })
                            .collect();
                        known = child.num_labels();
                        zone = child;
                    }
                    Reply::Answer(records) if full => {
                        let security = if !validate {
                            Security::Unchecked
                        } else if record_type == RecordType::DNSKEY {
                            self.zone_keys(name, deadline, depth).await.security()
                        } else {
                            let signer = signed_zone(&zone, &records, name, record_type);
                            let security = self
                                .secure_rrset(&signer, &records, name, record_type, deadline, depth)
                                .await;
                            match super::dnssec::wildcard_labels(&records, name, record_type) {
                                Some(labels) if security == Security::Secure => {
                                    self.secure_wildcard(
                                        &signer,
                                        &reply.authorities,
                                        name,
                                        labels,
                                        deadline,
                                        depth,
                                    )
                                    .await
                                }
                                _ => security,
                            }
                        };
                        self.cache
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .put_rrset(name, record_type, records.clone(), security.clone(), now);
                        return Ok(Found {
                            data: Content::Records(records),
                            security,
                        });
                    }
                    Reply::Alias {
                        target,
                        signed,
                        signed_by: (owner, kind),
                    } if full => {
                        let security = if validate {
                            let signer = signed_zone(&zone, &signed, &owner, kind);
                            self.secure_rrset(&signer, &signed, &owner, kind, deadline, depth)
                                .await
                        } else {
                            Security::Unchecked
                        };
                        self.cache
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .put_rrset(
                                name,
                                RecordType::CNAME,
                                signed.clone(),
                                security.clone(),
                                now,
                            );
                        return Ok(Found {
                            data: Content::Alias(target, signed),
                            security,
                        });
                    }
                    Reply::Alias { .. } => minimise = false,
                    Reply::Answer(_) | Reply::NoData(_) if !full => known += 1,
                    Reply::NoData(proof) => {
                        let security = if validate {
                            self.secure_denial(
                                &zone,
                                &proof,
                                name,
                                record_type,
                                false,
                                deadline,
                                depth,
                            )
                            .await
                        } else {
                            Security::Unchecked
                        };
                        self.cache_negative(
                            &ask_name,
                            ask_type,
                            Cached::NoData(proof.clone()),
                            security.clone(),
                            now,
                        );
                        return Ok(Found {
                            data: Content::NoData(proof),
                            security,
                        });
                    }
                    Reply::NxDomain(proof) => {
                        // Under a name that does not exist nothing does (RFC 8020).
                        let security = if validate {
                            self.secure_denial(
                                &zone, &proof, &ask_name, ask_type, true, deadline, depth,
                            )
                            .await
                        } else {
                            Security::Unchecked
                        };
                        self.cache_negative(
                            &ask_name,
                            ask_type,
                            Cached::NxDomain(proof.clone()),
                            security.clone(),
                            now,
                        );
                        return Ok(Found {
                            data: Content::NxDomain(proof),
                            security,
                        });
                    }
                    Reply::Answer(_) => unreachable!("handled above when full"),
                    Reply::Lame(_) => unreachable!("query_servers returns only usable replies"),
                }
            }
            Err(Failure::new(
                ede::OTHER,
                format!("more than {MAX_STEPS} referrals for {name}"),
            ))
        })
    }

    fn cache_negative(
        &self,
        name: &Name,
        record_type: RecordType,
        data: Cached,
        security: Security,
        now: Instant,
    ) {
        // RFC 2308 5: the SOA's own TTL, capped by its MINIMUM field.
        let proof = match &data {
            Cached::NoData(p) | Cached::NxDomain(p) => p.as_slice(),
            Cached::Records(_) => &[],
        };
        let ttl = proof
            .iter()
            .find_map(|r| match &r.data {
                RData::SOA(soa) => Some(r.ttl.min(soa.minimum)),
                _ => None,
            })
            .unwrap_or(0);
        self.cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .put_negative(name, record_type, data, security, ttl, now);
    }

    /// A fresh cache answer for one name and type (no CNAME following; the caller does).
    fn cached(&self, name: &Name, record_type: RecordType) -> Option<Found> {
        let now = Instant::now();
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        let hit = cache.get(name, record_type, now).filter(|h| !h.stale);
        let hit = match hit {
            Some(hit) => hit,
            None if record_type != RecordType::CNAME => cache
                .get(name, RecordType::CNAME, now)
                .filter(|h| !h.stale)?,
            None => return None,
        };
        let security = hit.security;
        let data = match hit.data {
            Cached::Records(records) => {
                let alias = data_only(&records).find_map(|r| match &r.data {
                    RData::CNAME(target) if record_type != RecordType::CNAME => {
                        Some(target.0.clone())
                    }
                    _ => None,
                });
                match alias {
                    Some(target) => Content::Alias(target, records),
                    None => Content::Records(records),
                }
            }
            Cached::NoData(proof) => Content::NoData(proof),
            Cached::NxDomain(proof) => Content::NxDomain(proof),
        };
        Some(Found { data, security })
    }

    /// The deepest zone above `name` whose servers are cached, with their names and known
    /// addresses; the root servers when none is.
    fn closest_delegation(&self, name: &Name) -> (Name, Vec<(Name, Vec<IpAddr>)>) {
        let now = Instant::now();
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        let mut zone = name.to_lowercase();
        loop {
            if let Some(hit) = cache.get(&zone, RecordType::NS, now).filter(|h| !h.stale) {
                if let Cached::Records(records) = hit.data {
                    let servers: Vec<(Name, Vec<IpAddr>)> = records
                        .iter()
                        .filter_map(|r| match &r.data {
                            RData::NS(target) => Some(target.0.to_lowercase()),
                            _ => None,
                        })
                        .map(|target| {
                            let ips = cached_addresses(&mut cache, &target, now);
                            (target, ips)
                        })
                        .collect();
                    if !servers.is_empty() {
                        return (zone, servers);
                    }
                }
            }
            if zone.is_root() {
                break;
            }
            zone = zone.base_name();
        }
        drop(cache);
        let roots = self
            .root_servers()
            .into_iter()
            .filter_map(|s| Some((Name::from_ascii(&s.name).ok()?, s.addresses)))
            .collect();
        (Name::root(), roots)
    }

    /// Addresses to ask for `zone`: the known ones, else those of a server name looked up
    /// (a glueless delegation), one name at a time until one has an address.
    async fn addresses_of(
        &self,
        zone: &Name,
        servers: &[(Name, Vec<IpAddr>)],
        deadline: Instant,
        depth: usize,
    ) -> Result<Vec<IpAddr>, Failure> {
        let mut addresses: Vec<IpAddr> = servers
            .iter()
            .flat_map(|(_, ips)| ips.iter().copied())
            .filter(|ip| self.may_ask(*ip))
            .collect();
        if !addresses.is_empty() {
            addresses.dedup();
            return Ok(addresses);
        }
        if depth >= MAX_GLUELESS_DEPTH {
            return Err(Failure::new(
                ede::NO_REACHABLE_AUTHORITY,
                format!(
                    "the servers of {zone} need lookups nested deeper than {MAX_GLUELESS_DEPTH}"
                ),
            ));
        }
        let mut last = None;
        for (server, _) in servers {
            // A server inside the zone without glue cannot be found through that zone.
            if zone.zone_of(server) {
                continue;
            }
            for record_type in [RecordType::A, RecordType::AAAA] {
                match self
                    .lookup_address(server, record_type, deadline, depth + 1)
                    .await
                {
                    Ok(ips) if !ips.is_empty() => {
                        let ips: Vec<IpAddr> =
                            ips.into_iter().filter(|ip| self.may_ask(*ip)).collect();
                        if !ips.is_empty() {
                            return Ok(ips);
                        }
                    }
                    Ok(_) => {}
                    Err(failure) => last = Some(failure),
                }
            }
        }
        Err(last.unwrap_or_else(|| {
            Failure::new(
                ede::NO_REACHABLE_AUTHORITY,
                format!("no address usable for any server of {zone}"),
            )
        }))
    }

    /// The A or AAAA addresses of a name server's name, CNAMEs followed.
    async fn lookup_address(
        &self,
        name: &Name,
        record_type: RecordType,
        deadline: Instant,
        depth: usize,
    ) -> Result<Vec<IpAddr>, Failure> {
        let mut name = name.clone();
        for _ in 0..=MAX_CNAME_CHAIN {
            match self
                .lookup(&name, record_type, deadline, depth, true)
                .await?
                .data
            {
                Content::Records(records) => {
                    return Ok(records
                        .iter()
                        .filter_map(|r| match &r.data {
                            RData::A(a) => Some(IpAddr::V4(a.0)),
                            RData::AAAA(a) => Some(IpAddr::V6(a.0)),
                            _ => None,
                        })
                        .collect())
                }
                Content::Alias(target, _) => name = target,
                Content::NoData(_) | Content::NxDomain(_) => return Ok(Vec::new()),
            }
        }
        Ok(Vec::new())
    }

    /// Asks the servers at `addresses` about (`name`, `record_type`), the best-known first and
    /// each next one `STAGGER` later or as soon as one fails; the first usable reply wins.
    pub(super) async fn query_servers(
        &self,
        zone: &Name,
        addresses: &[IpAddr],
        name: &Name,
        record_type: RecordType,
        deadline: Instant,
    ) -> Result<Message, Failure> {
        let order = self.by_preference(addresses);
        let mut next = 0;
        let mut pending = FuturesUnordered::new();
        let mut problems: Vec<String> = Vec::new();
        let mut timeouts = 0usize;
        let mut network_errors = 0usize;
        loop {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            if pending.is_empty() && next < order.len() {
                pending.push(self.attempt(order[next], name, record_type, deadline));
                next += 1;
            }
            if pending.is_empty() {
                break;
            }
            let stagger = tokio::time::sleep(STAGGER);
            tokio::select! {
                Some((ip, sent, outcome)) = pending.next() => match outcome {
                    Ok(reply) => match classify(zone, name, record_type, &reply) {
                        Reply::Lame(why) => {
                            self.note_answer(ip, sent.elapsed());
                            problems.push(format!("{ip} {why}"));
                        }
                        _ => {
                            self.note_answer(ip, sent.elapsed());
                            return Ok(reply);
                        }
                    },
                    Err(AskError::Timeout) => {
                        self.note_timeout(ip);
                        timeouts += 1;
                        problems.push(format!("{ip} did not answer"));
                    }
                    Err(AskError::Network(why)) => {
                        self.note_timeout(ip);
                        network_errors += 1;
                        problems.push(format!("{ip}: {why}"));
                    }
                },
                () = stagger, if next < order.len() => {
                    pending.push(self.attempt(order[next], name, record_type, deadline));
                    next += 1;
                }
                () = tokio::time::sleep_until(deadline.into()) => break,
            }
        }
        let code = if network_errors > 0 && timeouts == 0 {
            ede::NETWORK_ERROR
        } else {
            ede::NO_REACHABLE_AUTHORITY
        };
        let zone_text = if zone.is_root() {
            ".".to_owned()
        } else {
            zone.to_string()
        };
        let detail = if problems.is_empty() {
            "no server address to ask".to_owned()
        } else {
            problems.join("; ")
        };
        Err(Failure::new(
            code,
            format!("no server of {zone_text} answered {name} {record_type}: {detail}"),
        ))
    }

    /// One question to one server: `(server, when sent, reply)`, the reply parsed and
    /// checked to be a response to this question.
    fn attempt(
        &self,
        ip: IpAddr,
        name: &Name,
        record_type: RecordType,
        deadline: Instant,
    ) -> BoxFuture<'static, (IpAddr, Instant, Result<Message, AskError>)> {
        let id: u16 = rand::random();
        let mut query = Message::query();
        query.metadata.id = id;
        query.metadata.recursion_desired = false;
        query.add_query(Query::query(name.clone(), record_type));
        let mut edns = Edns::new();
        edns.set_max_payload(PAYLOAD);
        // DO: the authorities' RRSIGs and NSEC records, for validation.
        edns.set_dnssec_ok(self.config.dnssec);
        query.set_edns(edns);
        let bytes = query.to_vec().unwrap_or_default();
        let timeout = ATTEMPT_TIMEOUT.min(deadline.saturating_duration_since(Instant::now()));
        let server = SocketAddr::new(ip, self.config.port);
        let asking = self.upstream.ask(server, bytes, id, timeout);
        let question = (name.to_lowercase(), record_type);
        Box::pin(async move {
            let sent = Instant::now();
            let outcome = asking.await.and_then(|bytes| {
                let reply = Message::from_vec(&bytes)
                    .map_err(|e| AskError::Network(format!("unreadable reply: {e}")))?;
                let matches = reply.metadata.message_type == MessageType::Response
                    && reply.queries.len() == 1
                    && reply.queries[0].name().to_lowercase() == question.0
                    && reply.queries[0].query_type() == question.1;
                if matches {
                    Ok(reply)
                } else {
                    Err(AskError::Network("reply to another question".into()))
                }
            });
            (ip, sent, outcome)
        })
    }

    /// Addresses ordered: never-failed and fastest first, recently timed-out ones last.
    fn by_preference(&self, addresses: &[IpAddr]) -> Vec<IpAddr> {
        let now = Instant::now();
        let servers = self.servers.lock().unwrap_or_else(|p| p.into_inner());
        let mut ranked: Vec<(bool, Duration, u32, IpAddr)> = addresses
            .iter()
            .map(|ip| {
                let state = servers.get(ip);
                let down = state.and_then(|s| s.down_until).is_some_and(|t| t > now);
                let srtt = state.map(|s| s.srtt).unwrap_or(Duration::from_millis(100));
                // IPv4 first among equals: many offices have no IPv6 route.
                let family = u32::from(ip.is_ipv6());
                (down, srtt, family, *ip)
            })
            .collect();
        // Equal servers in random order, so load spreads and one bad server is not always first.
        use rand::seq::SliceRandom as _;
        ranked.shuffle(&mut rand::thread_rng());
        ranked.sort_by_key(|(down, srtt, family, _)| (*down, *family, srtt.as_millis() / 50));
        ranked.into_iter().map(|(_, _, _, ip)| ip).collect()
    }

    fn note_answer(&self, ip: IpAddr, rtt: Duration) {
        let mut servers = self.servers.lock().unwrap_or_else(|p| p.into_inner());
        if servers.len() > 10_000 {
            servers.clear();
        }
        let state = servers.entry(ip).or_insert(ServerState {
            srtt: rtt,
            timeouts: 0,
            down_until: None,
        });
        state.srtt = (state.srtt * 7 + rtt) / 8;
        state.timeouts = 0;
        state.down_until = None;
    }

    fn note_timeout(&self, ip: IpAddr) {
        let mut servers = self.servers.lock().unwrap_or_else(|p| p.into_inner());
        let state = servers.entry(ip).or_insert(ServerState {
            srtt: ATTEMPT_TIMEOUT,
            timeouts: 0,
            down_until: None,
        });
        state.timeouts = state.timeouts.saturating_add(1);
        if state.timeouts == 1 {
            // Once per outage: the next answer from it resets the count.
            tracing::warn!(target: "serval_dns::recursor", server = %ip,
                "name server stopped answering; asked last for a few seconds, then tried again");
        }
        let backoff = Duration::from_millis(500) * 2u32.saturating_pow(state.timeouts.min(8));
        state.down_until = Some(Instant::now() + backoff.min(MAX_DOWN));
    }
}

fn cached_addresses(cache: &mut super::Cache, name: &Name, now: Instant) -> Vec<IpAddr> {
    let mut ips = Vec::new();
    for record_type in [RecordType::A, RecordType::AAAA] {
        if let Some(hit) = cache.get(name, record_type, now).filter(|h| !h.stale) {
            if let Cached::Records(records) = hit.data {
                ips.extend(records.iter().filter_map(|r| match &r.data {
                    RData::A(a) => Some(IpAddr::V4(a.0)),
                    RData::AAAA(a) => Some(IpAddr::V6(a.0)),
                    _ => None,
                }));
            }
        }
    }
    ips
}

/// The zone that signed an RRset: its RRSIG's signer when that lies between `zone` (the zone
/// asked) and the owner, for a server that hosts a parent and its child; else `zone`.
fn signed_zone(zone: &Name, records: &[Record], owner: &Name, record_type: RecordType) -> Name {
    match super::dnssec::signer(records, owner, record_type) {
        Some(signer) if zone.zone_of(&signer) && signer.zone_of(owner) => signer,
        _ => zone.clone(),
    }
}
