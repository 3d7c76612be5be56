//! The chain of trust: each zone's keys, from the root anchor down through DS records, and
//! the security of the answers and denials a zone gives.

use std::time::{Duration, Instant, SystemTime};

use futures::future::BoxFuture;
use hickory_proto::dnssec::rdata::DS;
use hickory_proto::rr::{Name, Record, RecordType};

use super::dnssec::{self, ede, Denial, Security};
use super::walk::Content;
use super::{Failure, Recursor};

/// How long a zone's validated keys are kept before they are fetched and checked again.
const KEYS_TTL: Duration = Duration::from_secs(3600);
/// How long a failed chain is remembered (so a broken zone is not re-walked per query).
const BOGUS_KEYS_TTL: Duration = Duration::from_secs(60);

/// What is known of a zone's keys.
#[derive(Debug, Clone)]
pub enum ZoneKeys {
    Secure(Vec<hickory_proto::dnssec::rdata::DNSKEY>),
    Insecure,
    Bogus(u16, String),
}

impl ZoneKeys {
    pub fn security(&self) -> Security {
        match self {
            ZoneKeys::Secure(_) => Security::Secure,
            ZoneKeys::Insecure => Security::Insecure,
            ZoneKeys::Bogus(code, reason) => Security::bogus(*code, reason.clone()),
        }
    }
}

pub fn unix_now() -> u32 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs() as u32)
        .unwrap_or(0)
}

/// Most RRsets whose signatures are remembered as checked.
const MAX_VERIFIED: usize = 50_000;

impl Recursor {
    /// [`dnssec::verify_rrset`], remembering RRsets already checked: an NXDOMAIN storm of
    /// random names meets the same few NSEC3 records again and again, and each check is a
    /// public-key operation. The memory is keyed by the RRset's and its RRSIGs' bytes, so
    /// different data never matches; the signatures' validity window is checked each time.
    pub(super) fn verify(
        &self,
        records: &[Record],
        owner: &Name,
        record_type: RecordType,
        zone: &Name,
        keys: &[hickory_proto::dnssec::rdata::DNSKEY],
        now: u32,
    ) -> Result<(), (u16, String)> {
        use hickory_proto::serialize::binary::BinEncodable as _;
        // Worth remembering only what recurs across questions: denial proofs and keys. An
        // answer's RRset is checked once and then cached with its result.
        if !matches!(
            record_type,
            RecordType::NSEC
                | RecordType::NSEC3
                | RecordType::DNSKEY
                | RecordType::DS
                | RecordType::SOA
        ) {
            return dnssec::verify_rrset(records, owner, record_type, zone, keys, now);
        }
        let mut parts: Vec<Vec<u8>> = records
            .iter()
            .filter(|r| r.name.to_lowercase() == owner.to_lowercase())
            .filter(|r| {
                r.record_type() == record_type
                    || dnssec::rrsig(r).is_some_and(|s| s.input().type_covered == record_type)
            })
            .filter_map(|r| {
                let mut r = r.clone();
                r.ttl = 0;
                r.to_bytes().ok()
            })
            .collect();
        parts.sort();
        let mut key = zone.to_lowercase().to_ascii().into_bytes();
        for part in parts {
            key.extend_from_slice(&part);
        }
        let in_window = dnssec::signatures(records, owner, record_type)
            .iter()
            .any(|sig| {
                let input = sig.input();
                input.signer_name.to_lowercase() == zone.to_lowercase()
                    && (now.wrapping_sub(input.sig_inception.get()) as i32) >= 0
                    && (input.sig_expiration.get().wrapping_sub(now) as i32) >= 0
            });
        if in_window
            && self
                .verified
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .contains(&key)
        {
            return Ok(());
        }
        dnssec::verify_rrset(records, owner, record_type, zone, keys, now)?;
        let mut verified = self.verified.lock().unwrap_or_else(|p| p.into_inner());
        if verified.len() >= MAX_VERIFIED {
            verified.clear();
        }
        verified.insert(key);
        Ok(())
    }

    /// The security of an RRset of `zone`.
    pub(super) async fn secure_rrset(
        &self,
        zone: &Name,
        records: &[Record],
        owner: &Name,
        record_type: RecordType,
        deadline: Instant,
        depth: usize,
    ) -> Security {
        if !self.config.dnssec {
            return Security::Unchecked;
        }
        match self.zone_keys(zone, deadline, depth).await {
            ZoneKeys::Secure(keys) => {
                match self.verify(records, owner, record_type, zone, &keys, unix_now()) {
                    Ok(()) => Security::Secure,
                    Err((code, reason)) => Security::bogus(code, reason),
                }
            }
            other => other.security(),
        }
    }

    /// The security of a wildcard answer's proof that no closer name exists.
    pub(super) async fn secure_wildcard(
        &self,
        zone: &Name,
        authority: &[Record],
        name: &Name,
        labels: u8,
        deadline: Instant,
        depth: usize,
    ) -> Security {
        let keys = match self.zone_keys(zone, deadline, depth).await {
            ZoneKeys::Secure(keys) => keys,
            other => return other.security(),
        };
        let now = unix_now();
        let proof: Vec<Record> = authority
            .iter()
            .filter(|r| zone.zone_of(&r.name))
            .cloned()
            .collect();
        let mut owners: Vec<(Name, RecordType)> = dnssec::denial_records(&proof)
            .map(|r| (r.name.to_lowercase(), r.record_type()))
            .collect();
        owners.dedup();
        for (owner, kind) in &owners {
            if let Err((code, reason)) = self.verify(&proof, owner, *kind, zone, &keys, now) {
                return Security::bogus(code, reason);
            }
        }
        match dnssec::proves_wildcard_expansion(&proof, zone, name, labels) {
            Ok(()) => Security::Secure,
            Err(reason) => Security::bogus(ede::NSEC_MISSING, reason),
        }
    }

    /// The security of a negative answer of `zone`: its NSEC/NSEC3 records signed, and proving
    /// what they must.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn secure_denial(
        &self,
        zone: &Name,
        proof: &[Record],
        name: &Name,
        record_type: RecordType,
        nxdomain: bool,
        deadline: Instant,
        depth: usize,
    ) -> Security {
        if !self.config.dnssec {
            return Security::Unchecked;
        }
        let zone = proof
            .iter()
            .find(|r| r.record_type() == RecordType::SOA)
            .map(|r| r.name.to_lowercase())
            .filter(|apex| zone.zone_of(apex))
            .unwrap_or_else(|| zone.clone());
        let keys = match self.zone_keys(&zone, deadline, depth).await {
            ZoneKeys::Secure(keys) => keys,
            other => return other.security(),
        };
        let now = unix_now();
        let mut owners: Vec<(Name, RecordType)> = dnssec::denial_records(proof)
            .map(|r| (r.name.to_lowercase(), r.record_type()))
            .collect();
        owners.dedup();
        if owners.is_empty() {
            return Security::bogus(
                ede::NSEC_MISSING,
                format!("{zone} is signed but gave no NSEC or NSEC3 for {name} {record_type}"),
            );
        }
        for (owner, kind) in &owners {
            if let Err((code, reason)) = self.verify(proof, owner, *kind, &zone, &keys, now) {
                return Security::bogus(code, reason);
            }
        }
        let proven = if nxdomain {
            dnssec::proves_nxdomain(proof, &zone, name)
        } else {
            dnssec::proves_nodata(proof, &zone, name, record_type)
        };
        match proven {
            Ok(Denial::Proven) => Security::Secure,
            Ok(Denial::OptOut) => Security::Insecure,
            Err(reason) => Security::bogus(ede::NSEC_MISSING, reason),
        }
    }

    /// The validated keys of `zone` (cached): the root's checked against the trust anchors,
    /// any other zone's against the DS records its parent signed.
    pub(super) fn zone_keys<'a>(
        &'a self,
        zone: &'a Name,
        deadline: Instant,
        depth: usize,
    ) -> BoxFuture<'a, ZoneKeys> {
        Box::pin(async move {
            let zone = zone.to_lowercase();
            if let Some((keys, until)) = self
                .keys
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get(&zone)
            {
                if *until > Instant::now() {
                    return keys.clone();
                }
            }
            let keys = self.fetch_zone_keys(&zone, deadline, depth).await;
            let keep = match keys {
                ZoneKeys::Bogus(..) => BOGUS_KEYS_TTL,
                _ => KEYS_TTL,
            };
            match &keys {
                ZoneKeys::Bogus(code, reason) => {
                    tracing::warn!(target: "serval_dns::dnssec", %zone, ede = code, %reason, "chain of trust broken");
                }
                ZoneKeys::Insecure => {
                    tracing::debug!(target: "serval_dns::dnssec", %zone, "zone is unsigned (insecure)")
                }
                ZoneKeys::Secure(k) => {
                    tracing::debug!(target: "serval_dns::dnssec", %zone, keys = k.len(), "zone keys validated")
                }
            }
            let mut cache = self.keys.lock().unwrap_or_else(|p| p.into_inner());
            if cache.len() > 10_000 {
                cache.clear();
            }
            cache.insert(zone, (keys.clone(), Instant::now() + keep));
            keys
        })
    }

    /// Feeds a validated root DNSKEY set to RFC 5011 tracking; logs and keeps any change.
    fn track_root_keys(&self, records: &[Record], now: u32) {
        let mut trust = self.trust.lock().unwrap_or_else(|p| p.into_inner());
        let first = trust.checked_at == 0;
        let changes = trust.observe(records, &self.config.anchors, now);
        for change in &changes {
            tracing::warn!(target: "serval_dns::dnssec", "{change}");
        }
        if first {
            tracing::info!(target: "serval_dns::dnssec", keys = %trust.summary(), "root trust anchors");
        }
        if first || !changes.is_empty() {
            if let Err(error) = trust.save(&self.config.data_dir) {
                tracing::warn!(target: "serval_dns::dnssec", %error, "cannot keep the trust-anchor state in data_dir");
            }
        }
    }

    async fn fetch_zone_keys(&self, zone: &Name, deadline: Instant, depth: usize) -> ZoneKeys {
        let now = unix_now();
        if zone.is_root() {
            let records = match self
                .lookup(zone, RecordType::DNSKEY, deadline, depth + 1, false)
                .await
            {
                Ok(found) => match found.data {
                    Content::Records(records) => records,
                    _ => {
                        return ZoneKeys::Bogus(
                            ede::DNSKEY_MISSING,
                            "the root has no DNSKEY records".into(),
                        )
                    }
                },
                Err(failure) => return bogus_from(failure, "the root's DNSKEY records"),
            };
            let anchors = self
                .trust
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .effective(&self.config.anchors);
            return match dnssec::root_keys(&records, &anchors, now) {
                Ok(keys) => {
                    self.track_root_keys(&records, now);
                    ZoneKeys::Secure(keys)
                }
                Err((code, reason)) => ZoneKeys::Bogus(code, reason),
            };
        }
        if depth > 12 {
            return ZoneKeys::Bogus(
                ede::DNSSEC_BOGUS,
                format!("the chain of trust to {zone} is too long"),
            );
        }
        // The DS set, validated (by the lookup) with the parent's keys.
        let ds_found = match self
            .lookup(zone, RecordType::DS, deadline, depth + 1, true)
            .await
        {
            Ok(found) => found,
            Err(failure) => return bogus_from(failure, &format!("the DS records of {zone}")),
        };
        match (&ds_found.data, &ds_found.security) {
            (_, Security::Bogus { ede, reason }) => return ZoneKeys::Bogus(*ede, reason.clone()),
            (_, Security::Insecure | Security::Unchecked) => return ZoneKeys::Insecure,
            (Content::Records(_), Security::Secure) => {}
            // A signed proof that the parent holds no DS: an unsigned delegation.
            (_, Security::Secure) => return ZoneKeys::Insecure,
        }
        let Content::Records(records) = &ds_found.data else {
            return ZoneKeys::Insecure;
        };
        let ds_set: Vec<DS> = records
            .iter()
            .filter_map(dnssec::ds)
            .filter(|ds| dnssec::supported(ds.algorithm()) && ds.digest_type().is_supported())
            .cloned()
            .collect();
        if ds_set.is_empty() {
            // RFC 4035 5.2: only unknown algorithms or digests: treated as unsigned.
            return ZoneKeys::Insecure;
        }
        let keys = match self
            .lookup(zone, RecordType::DNSKEY, deadline, depth + 1, false)
            .await
        {
            Ok(Found {
                data: Content::Records(records),
                ..
            }) => records,
            Ok(_) => {
                return ZoneKeys::Bogus(
                    ede::DNSKEY_MISSING,
                    format!("{zone} has a DS but no DNSKEY records"),
                )
            }
            Err(failure) => return bogus_from(failure, &format!("the DNSKEY records of {zone}")),
        };
        match dnssec::keys_vouched_by_ds(&keys, zone, &ds_set, now) {
            Ok(keys) => ZoneKeys::Secure(keys),
            Err((code, reason)) => ZoneKeys::Bogus(code, reason),
        }
    }
}

use super::walk::Found;

/// A fetch for validation that failed: the data cannot be trusted (RFC 4035 5.5).
fn bogus_from(failure: Failure, what: &str) -> ZoneKeys {
    ZoneKeys::Bogus(
        ede::DNSSEC_BOGUS,
        format!("{what} could not be fetched: {}", failure.reason),
    )
}
