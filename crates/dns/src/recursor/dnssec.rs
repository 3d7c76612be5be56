//! DNSSEC validation's pure parts (RFC 4033-4035, 5155): trust anchors, RRSIG checks over an
//! RRset with a zone's keys, the DNSKEY-to-DS link, and NSEC/NSEC3 denial proofs.
//!
//! hickory-proto does the cryptography (`Verifier`, `DS::covers`, NSEC3 hashing); the rules
//! of which signature, key and proof count are this module's, because hickory keeps them in
//! its resolver's `DnssecDnsHandle`, which has no serve-stale, EDE codes or RFC 5011.

use hickory_proto::dnssec::rdata::{DNSSECRData, DNSKEY, DS, NSEC, NSEC3, RRSIG};
use hickory_proto::dnssec::{
    Algorithm, Nsec3HashAlgorithm, PublicKey as _, TrustAnchors, Verifier as _,
};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};

/// RFC 8914 codes of validation failures.
pub mod ede {
    pub const UNSUPPORTED_DNSKEY_ALGORITHM: u16 = 1;
    pub const DNSSEC_BOGUS: u16 = 6;
    pub const SIGNATURE_EXPIRED: u16 = 7;
    pub const SIGNATURE_NOT_YET_VALID: u16 = 8;
    pub const DNSKEY_MISSING: u16 = 9;
    pub const RRSIGS_MISSING: u16 = 10;
    pub const NSEC_MISSING: u16 = 12;
}

/// Beyond this many NSEC3 iterations a zone is treated as unsigned (RFC 9276 3.2; Unbound's 150).
pub const MAX_NSEC3_ITERATIONS: u16 = 150;

/// What validation concluded about some data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Security {
    /// Signed, and the chain of trust from the root anchor holds: AD may be set.
    Secure,
    /// Provably unsigned (a delegation without DS, or only unsupported algorithms).
    Insecure,
    /// Should be signed and is not, or a signature fails: SERVFAIL unless the client set CD.
    Bogus { ede: u16, reason: String },
    /// Not checked (`dnssec = false`).
    Unchecked,
}

impl Security {
    pub fn bogus(ede: u16, reason: impl Into<String>) -> Security {
        Security::Bogus {
            ede,
            reason: reason.into(),
        }
    }

    /// The weaker of two (an answer is as secure as its least secure part).
    pub fn and(self, other: Security) -> Security {
        use Security::*;
        match (self, other) {
            (b @ Bogus { .. }, _) | (_, b @ Bogus { .. }) => b,
            (Unchecked, _) | (_, Unchecked) => Unchecked,
            (Insecure, _) | (_, Insecure) => Insecure,
            (Secure, Secure) => Secure,
        }
    }
}

/// The keys trusted for the root: DS digests and/or whole DNSKEYs.
#[derive(Debug, Clone, Default)]
pub struct Anchors {
    pub ds: Vec<DS>,
    pub keys: Vec<DNSKEY>,
    /// Public keys (base64) revoked by the root (RFC 5011): never trusted.
    pub revoked: Vec<String>,
}

impl Anchors {
    /// The root KSKs hickory-proto ships (KSK-2017, 20326, and KSK-2024, 38696).
    pub fn compiled() -> Anchors {
        let bundled = TrustAnchors::default();
        let keys = (0..)
            .map_while(|i| bundled.get(i).cloned())
            .map(|key| DNSKEY::with_flags(257, key))
            .collect();
        Anchors {
            ds: Vec::new(),
            keys,
            revoked: Vec::new(),
        }
    }

    /// Presentation-format DS and DNSKEY lines for "." (as in `root.key` or `root.ds`).
    pub fn parse(text: &str) -> Result<Anchors, String> {
        let (_, sets) = hickory_proto::serialize::txt::Parser::new(text, None, Some(Name::root()))
            .parse()
            .map_err(|e| e.to_string())?;
        let mut anchors = Anchors::default();
        for (key, set) in sets {
            if !Name::from(key.name().clone()).is_root() {
                return Err(format!(
                    "{} is not \".\": only root anchors are read",
                    key.name()
                ));
            }
            for record in set.records_without_rrsigs() {
                match &record.data {
                    RData::DNSSEC(DNSSECRData::DS(ds)) => anchors.ds.push(ds.clone()),
                    RData::DNSSEC(DNSSECRData::DNSKEY(k)) => anchors.keys.push(k.clone()),
                    other => {
                        return Err(format!(
                            "{} record: only DS and DNSKEY lines are read",
                            other.record_type()
                        ))
                    }
                }
            }
        }
        if anchors.ds.is_empty() && anchors.keys.is_empty() {
            return Err("no DS or DNSKEY line for \".\"".into());
        }
        Ok(anchors)
    }

    /// Reads `trust_anchors_file`.
    pub fn read(path: &std::path::Path) -> Result<Anchors, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        Anchors::parse(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// Whether `key` is trusted by these anchors.
    pub fn trusts(&self, key: &DNSKEY) -> bool {
        if !self.revoked.is_empty() {
            let public = data_encoding::BASE64.encode(key.public_key().public_bytes());
            if self.revoked.contains(&public) {
                return false;
            }
        }
        self.keys.iter().any(|k| same_key(k, key))
            || self
                .ds
                .iter()
                .any(|ds| ds.covers(&Name::root(), key).unwrap_or(false))
    }
}

fn same_key(a: &DNSKEY, b: &DNSKEY) -> bool {
    a.public_key().public_bytes() == b.public_key().public_bytes() && a.algorithm() == b.algorithm()
}

/// Algorithms validated; others make a zone insecure (RFC 4035 5.2), never bogus.
pub fn supported(algorithm: Algorithm) -> bool {
    matches!(
        algorithm,
        Algorithm::RSASHA256
            | Algorithm::RSASHA512
            | Algorithm::ECDSAP256SHA256
            | Algorithm::ECDSAP384SHA384
            | Algorithm::ED25519
    )
}

pub fn rrsig(record: &Record) -> Option<&RRSIG> {
    match &record.data {
        RData::DNSSEC(DNSSECRData::RRSIG(sig)) => Some(sig),
        _ => None,
    }
}

pub fn dnskey(record: &Record) -> Option<&DNSKEY> {
    match &record.data {
        RData::DNSSEC(DNSSECRData::DNSKEY(key)) => Some(key),
        _ => None,
    }
}

pub fn ds(record: &Record) -> Option<&DS> {
    match &record.data {
        RData::DNSSEC(DNSSECRData::DS(ds)) => Some(ds),
        _ => None,
    }
}

/// The RRSIGs over (`owner`, `record_type`) among `records`.
pub fn signatures<'a>(
    records: &'a [Record],
    owner: &Name,
    record_type: RecordType,
) -> Vec<&'a RRSIG> {
    records
        .iter()
        .filter(|r| r.name.to_lowercase() == owner.to_lowercase())
        .filter_map(rrsig)
        .filter(|sig| sig.input().type_covered == record_type)
        .collect()
}

/// The zone that signed (`owner`, `record_type`), from its RRSIGs.
pub fn signer(records: &[Record], owner: &Name, record_type: RecordType) -> Option<Name> {
    signatures(records, owner, record_type)
        .first()
        .map(|sig| sig.input().signer_name.to_lowercase())
}

/// Checks that one of `keys` of `zone` signed the RRset (`owner`, `record_type`) in
/// `records` (the set and its RRSIGs), valid at `now` (seconds since the epoch).
pub fn verify_rrset(
    records: &[Record],
    owner: &Name,
    record_type: RecordType,
    zone: &Name,
    keys: &[DNSKEY],
    now: u32,
) -> Result<(), (u16, String)> {
    let set: Vec<&Record> = records
        .iter()
        .filter(|r| r.record_type() == record_type && r.name.to_lowercase() == owner.to_lowercase())
        .collect();
    let sigs = signatures(records, owner, record_type);
    if sigs.is_empty() {
        return Err((
            ede::RRSIGS_MISSING,
            format!("no RRSIG over {owner} {record_type} (zone {zone} is signed)"),
        ));
    }
    let mut failure = (
        ede::DNSSEC_BOGUS,
        format!("no signature over {owner} {record_type} verifies with a key of {zone}"),
    );
    for sig in sigs {
        let input = sig.input();
        if input.signer_name.to_lowercase() != zone.to_lowercase() {
            continue;
        }
        // Serial-number arithmetic (RFC 4034 3.1.5): the window may wrap past 2106.
        if (now.wrapping_sub(input.sig_inception.get()) as i32) < 0 {
            failure = (
                ede::SIGNATURE_NOT_YET_VALID,
                format!("the RRSIG over {owner} {record_type} is not valid yet"),
            );
            continue;
        }
        if (input.sig_expiration.get().wrapping_sub(now) as i32) < 0 {
            failure = (
                ede::SIGNATURE_EXPIRED,
                format!("the RRSIG over {owner} {record_type} has expired"),
            );
            continue;
        }
        for key in keys
            .iter()
            .filter(|k| k.zone_key() && !k.revoke() && k.algorithm() == input.algorithm)
        {
            if key.calculate_key_tag().ok() != Some(input.key_tag) {
                continue;
            }
            if key
                .verify_rrsig(owner, DNSClass::IN, sig, set.iter().copied())
                .is_ok()
            {
                return Ok(());
            }
        }
    }
    Err(failure)
}

/// The DNSKEYs of `zone` a DS of its parent vouches for, each with a signature over the
/// whole DNSKEY RRset; then every zone key of the set is usable (RFC 4035 5.2).
pub fn keys_vouched_by_ds(
    records: &[Record],
    zone: &Name,
    ds_set: &[DS],
    now: u32,
) -> Result<Vec<DNSKEY>, (u16, String)> {
    let keys: Vec<DNSKEY> = records
        .iter()
        .filter(|r| r.name.to_lowercase() == zone.to_lowercase())
        .filter_map(dnskey)
        .cloned()
        .collect();
    let linked: Vec<DNSKEY> = keys
        .iter()
        .filter(|k| ds_set.iter().any(|ds| ds.covers(zone, k).unwrap_or(false)))
        .cloned()
        .collect();
    if linked.is_empty() {
        return Err((
            ede::DNSKEY_MISSING,
            format!("no DNSKEY of {zone} matches its DS records"),
        ));
    }
    verify_rrset(records, zone, RecordType::DNSKEY, zone, &linked, now)?;
    Ok(keys)
}

/// The root's DNSKEYs, if a trusted one signed them.
pub fn root_keys(
    records: &[Record],
    anchors: &Anchors,
    now: u32,
) -> Result<Vec<DNSKEY>, (u16, String)> {
    let root = Name::root();
    let keys: Vec<DNSKEY> = records
        .iter()
        .filter(|r| r.name.is_root())
        .filter_map(dnskey)
        .cloned()
        .collect();
    let trusted: Vec<DNSKEY> = keys.iter().filter(|k| anchors.trusts(k)).cloned().collect();
    if trusted.is_empty() {
        return Err((
            ede::DNSKEY_MISSING,
            "no root DNSKEY matches the trust anchors (is the anchor outdated? see trust_anchors_file)".into(),
        ));
    }
    verify_rrset(records, &root, RecordType::DNSKEY, &root, &trusted, now)?;
    Ok(keys)
}

fn nsec(record: &Record) -> Option<&NSEC> {
    match &record.data {
        RData::DNSSEC(DNSSECRData::NSEC(n)) => Some(n),
        _ => None,
    }
}

fn nsec3(record: &Record) -> Option<&NSEC3> {
    match &record.data {
        RData::DNSSEC(DNSSECRData::NSEC3(n)) => Some(n),
        _ => None,
    }
}

/// The NSEC and NSEC3 records (with their owners) of an authority section.
pub fn denial_records(authority: &[Record]) -> impl Iterator<Item = &Record> {
    authority
        .iter()
        .filter(|r| matches!(r.record_type(), RecordType::NSEC | RecordType::NSEC3))
}

/// `name` falls strictly between an NSEC's owner and its next name (canonical order, RFC 4034
/// 6.1; the last NSEC of a zone wraps to the apex).
fn nsec_covers(owner: &Name, next: &Name, name: &Name) -> bool {
    if owner < next {
        owner < name && name < next
    } else {
        owner < name || name < next
    }
}

/// What a negative answer proves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Denial {
    /// The name or type does not exist.
    Proven,
    /// An opt-out NSEC3 span covers it: an unsigned delegation may exist (insecure).
    OptOut,
}

/// Proof that `name` has no `record_type` (NODATA), from NSEC or NSEC3 records of `zone`.
pub fn proves_nodata(
    authority: &[Record],
    zone: &Name,
    name: &Name,
    record_type: RecordType,
) -> Result<Denial, String> {
    let name = name.to_lowercase();
    for record in authority {
        if let Some(n) = nsec(record) {
            let owner = record.name.to_lowercase();
            let types: Vec<RecordType> = n.type_bit_maps().collect();
            if owner == name {
                if types.contains(&record_type) || types.contains(&RecordType::CNAME) {
                    return Err(format!("the NSEC at {name} lists {record_type}"));
                }
                // A DS denial must come from the parent side of a cut (NS, no SOA) or a name
                // that is no cut; a child's apex NSEC says nothing about the parent's DS.
                if record_type == RecordType::DS
                    && types.contains(&RecordType::SOA)
                    && !name.is_root()
                {
                    return Err(format!(
                        "the NSEC for {name} is the child's apex, not the parent's"
                    ));
                }
                return Ok(Denial::Proven);
            }
            // An empty non-terminal: the next name lies below `name`.
            let next = n.next_domain_name().to_lowercase();
            if nsec_covers(&owner, &next, &name) && name.zone_of(&next) {
                return Ok(Denial::Proven);
            }
        }
    }
    let nsec3s = nsec3_set(authority, zone)?;
    if nsec3s.is_empty() {
        return Err(format!(
            "no NSEC or NSEC3 proves {name} {record_type} absent"
        ));
    }
    if let Some(n) = nsec3_matching(&nsec3s, &name)? {
        let types: Vec<RecordType> = n.type_bit_maps().collect();
        if types.contains(&record_type) || types.contains(&RecordType::CNAME) {
            return Err(format!("the NSEC3 for {name} lists {record_type}"));
        }
        return Ok(Denial::Proven);
    }
    if record_type == RecordType::DS {
        // RFC 5155 8.6: a closest encloser, and the next closer name in an opt-out span.
        let (_, next_closer) = closest_encloser(&nsec3s, &name)?;
        if let Some(n) = nsec3_covering(&nsec3s, &next_closer)? {
            if n.opt_out() {
                return Ok(Denial::OptOut);
            }
        }
    }
    Err(format!("no NSEC3 matches {name}"))
}

/// The wildcard an answer was expanded from, if it was: its RRSIG counts fewer labels than
/// the owner has (RFC 4035 5.3.2); the label count of the wildcard's parent.
pub fn wildcard_labels(records: &[Record], owner: &Name, record_type: RecordType) -> Option<u8> {
    signatures(records, owner, record_type)
        .iter()
        .map(|sig| sig.input().num_labels)
        .find(|labels| *labels < owner.num_labels())
}

/// Proof that a wildcard answer was due: no closer name exists (RFC 4035 5.3.4, RFC 5155 8.8):
/// an NSEC covering `name`, or an NSEC3 covering the next closer name.
pub fn proves_wildcard_expansion(
    authority: &[Record],
    zone: &Name,
    name: &Name,
    labels: u8,
) -> Result<(), String> {
    let name = name.to_lowercase();
    let nsec_covered = authority.iter().any(|r| {
        nsec(r).is_some_and(|n| {
            nsec_covers(
                &r.name.to_lowercase(),
                &n.next_domain_name().to_lowercase(),
                &name,
            )
        })
    });
    if nsec_covered {
        return Ok(());
    }
    let nsec3s = nsec3_set(authority, zone)?;
    let next_closer = name.trim_to(usize::from(labels) + 1);
    if nsec3_covering(&nsec3s, &next_closer)?.is_some() {
        return Ok(());
    }
    Err(format!(
        "a wildcard answer for {name} without proof that the name itself does not exist"
    ))
}

/// Proof that `name` does not exist (NXDOMAIN): no such name, and no wildcard to expand.
pub fn proves_nxdomain(authority: &[Record], zone: &Name, name: &Name) -> Result<Denial, String> {
    let name = name.to_lowercase();
    let nsecs: Vec<(Name, Name)> = authority
        .iter()
        .filter_map(|r| {
            nsec(r).map(|n| (r.name.to_lowercase(), n.next_domain_name().to_lowercase()))
        })
        .collect();
    if !nsecs.is_empty() {
        let Some((owner, next)) = nsecs.iter().find(|(o, n)| nsec_covers(o, n, &name)) else {
            return Err(format!("no NSEC covers {name}"));
        };
        // The closest encloser is the longest ancestor shared with either end of the span.
        let encloser = [owner, next]
            .iter()
            .map(|end| common_ancestor(&name, end))
            .max_by_key(|n| n.num_labels())
            .unwrap_or_else(Name::root);
        let wildcard = Name::from_ascii("*")
            .and_then(|w| w.append_name(&encloser))
            .map_err(|e| e.to_string())?;
        if nsecs
            .iter()
            .any(|(o, n)| nsec_covers(o, n, &wildcard) || *o == wildcard)
        {
            return Ok(Denial::Proven);
        }
        return Err(format!("no NSEC proves there is no wildcard {wildcard}"));
    }
    let nsec3s = nsec3_set(authority, zone)?;
    if nsec3s.is_empty() {
        return Err(format!("no NSEC or NSEC3 proves {name} absent"));
    }
    let (encloser, next_closer) = closest_encloser(&nsec3s, &name)?;
    let covering = nsec3_covering(&nsec3s, &next_closer)?
        .ok_or_else(|| format!("no NSEC3 covers {next_closer}"))?;
    let wildcard = Name::from_ascii("*")
        .and_then(|w| w.append_name(&encloser))
        .map_err(|e| e.to_string())?;
    if nsec3_covering(&nsec3s, &wildcard)?.is_none() {
        // Opt-out spans need no wildcard proof for an insecure delegation, but NXDOMAIN does.
        return Err(format!("no NSEC3 proves there is no wildcard {wildcard}"));
    }
    Ok(if covering.opt_out() {
        Denial::OptOut
    } else {
        Denial::Proven
    })
}

fn common_ancestor(a: &Name, b: &Name) -> Name {
    let mut candidate = a.clone();
    while !candidate.zone_of(b) {
        candidate = candidate.base_name();
    }
    candidate
}

/// (hashed owner label, next hash, record) of a zone's NSEC3s, all with one parameter set.
type Nsec3Entry<'a> = (String, String, &'a NSEC3);

fn nsec3_set<'a>(authority: &'a [Record], zone: &Name) -> Result<Vec<Nsec3Entry<'a>>, String> {
    let mut set = Vec::new();
    for record in authority {
        let Some(n) = nsec3(record) else { continue };
        if record.name.base_name().to_lowercase() != zone.to_lowercase() {
            continue;
        }
        if n.hash_algorithm() != Nsec3HashAlgorithm::SHA1 {
            continue;
        }
        if n.iterations() > MAX_NSEC3_ITERATIONS {
            return Err(format!(
                "NSEC3 with {} iterations (more than {MAX_NSEC3_ITERATIONS})",
                n.iterations()
            ));
        }
        let owner = record
            .name
            .iter()
            .next()
            .map(|l| String::from_utf8_lossy(l).to_ascii_lowercase())
            .unwrap_or_default();
        let next = data_encoding::BASE32_DNSSEC
            .encode(n.next_hashed_owner_name())
            .to_ascii_lowercase();
        set.push((owner, next, n));
    }
    Ok(set)
}

fn nsec3_hash(n: &NSEC3, name: &Name) -> Result<String, String> {
    let digest = n
        .hash_algorithm()
        .hash(n.salt(), name, n.iterations())
        .map_err(|e| e.to_string())?;
    Ok(data_encoding::BASE32_DNSSEC
        .encode(digest.as_ref())
        .to_ascii_lowercase())
}

fn nsec3_matching<'a>(set: &[Nsec3Entry<'a>], name: &Name) -> Result<Option<&'a NSEC3>, String> {
    let Some((_, _, first)) = set.first() else {
        return Ok(None);
    };
    let hash = nsec3_hash(first, name)?;
    Ok(set
        .iter()
        .find(|(owner, _, _)| *owner == hash)
        .map(|(_, _, n)| *n))
}

fn nsec3_covering<'a>(set: &[Nsec3Entry<'a>], name: &Name) -> Result<Option<&'a NSEC3>, String> {
    let Some((_, _, first)) = set.first() else {
        return Ok(None);
    };
    let hash = nsec3_hash(first, name)?;
    Ok(set
        .iter()
        .find(|(owner, next, _)| {
            if owner < next {
                *owner < hash && hash < *next
            } else {
                *owner < hash || hash < *next
            }
        })
        .map(|(_, _, n)| *n))
}

/// RFC 5155 8.3: the closest ancestor of `name` an NSEC3 matches, and the next closer name.
fn closest_encloser(set: &[Nsec3Entry<'_>], name: &Name) -> Result<(Name, Name), String> {
    let mut child = name.clone();
    let mut candidate = name.base_name();
    loop {
        if nsec3_matching(set, &candidate)?.is_some() {
            return Ok((candidate, child));
        }
        if candidate.is_root() {
            return Err(format!("no NSEC3 matches an ancestor of {name}"));
        }
        child = candidate.clone();
        candidate = candidate.base_name();
    }
}
