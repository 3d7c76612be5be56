//! The answer cache: RRsets and negative answers, bounded in bytes, kept past expiry for
//! serve-stale (RFC 8767).
//!
//! Written here rather than taken from hickory-resolver: its cache drops an entry at expiry,
//! and serve-stale needs the expired entry and its age.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use hickory_proto::rr::{Name, Record, RecordType};
use hickory_proto::serialize::binary::BinEncodable as _;

use super::dnssec::Security;

/// Longest time anything is cached (a day, as Unbound's cache-max-ttl).
pub const MAX_TTL: u32 = 86_400;
/// Longest time a negative answer is cached (RFC 2308 suggests 1 to 3 hours).
pub const MAX_NEGATIVE_TTL: u32 = 3_600;

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct Key {
    name: Name,
    /// `None`: the name itself does not exist (NXDOMAIN covers every type).
    record_type: Option<RecordType>,
}

/// What is known about a name and type.
#[derive(Debug, Clone, PartialEq)]
pub enum Cached {
    /// The RRset, with its RRSIGs.
    Records(Vec<Record>),
    /// The name exists without records of the type; the authority section that said so
    /// (SOA, NSEC/NSEC3 and their RRSIGs).
    NoData(Vec<Record>),
    /// The name does not exist; the authority section.
    NxDomain(Vec<Record>),
}

#[derive(Debug, Clone)]
struct Entry {
    data: Cached,
    security: Security,
    stored: Instant,
    ttl: Duration,
    bytes: usize,
    sequence: u64,
}

/// A cache hit: the data with TTLs counted down (or set to the stale TTL).
#[derive(Debug, Clone, PartialEq)]
pub struct Hit {
    pub data: Cached,
    pub security: Security,
    /// Past its TTL: only to be served when fresh resolution fails.
    pub stale: bool,
}

pub struct Cache {
    entries: HashMap<Key, Entry>,
    /// Insertion order, oldest first: the eviction order when the cache is over its bytes.
    order: BTreeMap<u64, Key>,
    next_sequence: u64,
    bytes: usize,
    max_bytes: usize,
    /// How long past expiry an entry is kept for serve-stale (zero: dropped at expiry).
    max_stale: Duration,
}

impl Cache {
    pub fn new(max_bytes: usize, max_stale: Duration) -> Cache {
        Cache {
            entries: HashMap::new(),
            order: BTreeMap::new(),
            next_sequence: 0,
            bytes: 0,
            max_bytes,
            max_stale,
        }
    }

    /// Bytes held now (as the wire size of the records, plus a fixed cost per entry).
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Drops everything (`serval dns flush`, or a config reload).
    pub fn clear(&mut self) {
        self.entries.clear();
        self.order.clear();
        self.bytes = 0;
    }

    /// Drops every entry of `name` (all types, and its NXDOMAIN); how many.
    pub fn remove_name(&mut self, name: &Name) -> usize {
        let name = name.to_lowercase();
        let keys: Vec<Key> = self
            .entries
            .keys()
            .filter(|k| k.name == name)
            .cloned()
            .collect();
        for key in &keys {
            self.remove(key);
        }
        keys.len()
    }

    /// Caches an RRset (all records of one name and type, as one server gave them) unchecked.
    pub fn put_records(&mut self, records: Vec<Record>, now: Instant) {
        let Some(first) = records.first() else {
            return;
        };
        let (name, record_type) = (first.name.clone(), first.record_type());
        self.put_rrset(&name, record_type, records, Security::Unchecked, now);
    }

    /// Caches the RRset (`name`, `record_type`), RRSIGs included, with what validation said.
    pub fn put_rrset(
        &mut self,
        name: &Name,
        record_type: RecordType,
        records: Vec<Record>,
        security: Security,
        now: Instant,
    ) {
        if records.is_empty() {
            return;
        }
        let key = Key {
            name: name.to_lowercase(),
            record_type: Some(record_type),
        };
        let ttl = records
            .iter()
            .map(|r| r.ttl)
            .min()
            .unwrap_or(0)
            .min(MAX_TTL);
        let ttl = bogus_cap(&security, ttl);
        self.put(key, Cached::Records(records), security, ttl, now);
    }

    /// Caches a negative answer for `ttl` seconds (the caller takes it from the SOA).
    pub fn put_negative(
        &mut self,
        name: &Name,
        record_type: RecordType,
        data: Cached,
        security: Security,
        ttl: u32,
        now: Instant,
    ) {
        let key = Key {
            name: name.to_lowercase(),
            record_type: match data {
                Cached::NxDomain(_) => None,
                _ => Some(record_type),
            },
        };
        let ttl = bogus_cap(&security, ttl.min(MAX_NEGATIVE_TTL));
        self.put(key, data, security, ttl, now);
    }

    fn put(&mut self, key: Key, data: Cached, security: Security, ttl: u32, now: Instant) {
        if ttl == 0 {
            // RFC 1035: zero means "use only for this transaction".
            return;
        }
        self.remove(&key);
        // The entry, its key (twice: the map and the eviction order) and the data.
        let bytes = std::mem::size_of::<Entry>()
            + 2 * std::mem::size_of::<Key>()
            + 64
            + key_bytes(&key)
            + data_bytes(&data);
        let sequence = self.next_sequence;
        self.next_sequence += 1;
        self.order.insert(sequence, key.clone());
        self.bytes += bytes;
        self.entries.insert(
            key,
            Entry {
                data,
                security,
                stored: now,
                ttl: Duration::from_secs(u64::from(ttl)),
                bytes,
                sequence,
            },
        );
        while self.bytes > self.max_bytes {
            let Some((_, oldest)) = self.order.pop_first() else {
                break;
            };
            if let Some(entry) = self.entries.remove(&oldest) {
                self.bytes -= entry.bytes;
            }
        }
    }

    fn remove(&mut self, key: &Key) {
        if let Some(old) = self.entries.remove(key) {
            self.order.remove(&old.sequence);
            self.bytes -= old.bytes;
        }
    }

    /// What is cached for `name` and `record_type`, an NXDOMAIN for `name` included.
    /// Entries past `max_stale` beyond their TTL are dropped on the way.
    pub fn get(&mut self, name: &Name, record_type: RecordType, now: Instant) -> Option<Hit> {
        let name = name.to_lowercase();
        let typed = Key {
            name: name.clone(),
            record_type: Some(record_type),
        };
        let typed_hit = self.hit(&typed, now);
        if typed_hit.as_ref().is_some_and(|h| !h.stale) {
            // Fresh data wins over an NXDOMAIN of the name (as below): one lookup, not two.
            return typed_hit;
        }
        let missing = Key {
            name,
            record_type: None,
        };
        let missing_hit = self.hit(&missing, now);
        match (typed_hit, missing_hit) {
            // The fresher of the two wins: a name may have been created or removed since.
            (Some(a), Some(b)) if a.stale && !b.stale => Some(b),
            (Some(a), _) => Some(a),
            (None, b) => b,
        }
    }

    fn hit(&mut self, key: &Key, now: Instant) -> Option<Hit> {
        let entry = self.entries.get(key)?;
        let age = now.saturating_duration_since(entry.stored);
        if age >= entry.ttl + self.max_stale {
            self.remove(key);
            return None;
        }
        let stale = age >= entry.ttl;
        let left = if stale {
            STALE_TTL
        } else {
            u32::try_from((entry.ttl - age).as_secs())
                .unwrap_or(u32::MAX)
                .max(1)
        };
        Some(Hit {
            data: with_ttl(&entry.data, left, stale),
            security: entry.security.clone(),
            stale,
        })
    }
}

/// The TTL a stale answer carries (RFC 8767 recommends 30 s).
pub const STALE_TTL: u32 = 30;

/// `data` with TTLs of at most `ttl` left (exactly `ttl` when stale: RFC 8767 4).
fn with_ttl(data: &Cached, ttl: u32, stale: bool) -> Cached {
    let one = |r: &Record| {
        let mut r = r.clone();
        r.ttl = if stale { ttl } else { ttl.min(r.ttl) };
        r
    };
    let set = |records: &[Record]| records.iter().map(one).collect();
    match data {
        Cached::Records(records) => Cached::Records(set(records)),
        Cached::NoData(s) => Cached::NoData(set(s)),
        Cached::NxDomain(s) => Cached::NxDomain(set(s)),
    }
}

/// Bogus data is kept a minute at most (RFC 4035 4.7): long enough for CD clients and to
/// spare the authorities, short enough that a fixed zone is seen soon.
fn bogus_cap(security: &Security, ttl: u32) -> u32 {
    match security {
        Security::Bogus { .. } => ttl.min(60),
        _ => ttl,
    }
}

fn key_bytes(key: &Key) -> usize {
    key.name.len()
}

fn data_bytes(data: &Cached) -> usize {
    // The record as held in memory (hickory's struct) plus its data on the heap, which is
    // about its wire size: the bound is on memory, not on what the records would weigh on
    // the wire.
    let record =
        |r: &Record| std::mem::size_of::<Record>() + r.to_bytes().map(|b| b.len()).unwrap_or(64);
    match data {
        Cached::Records(records) => records.iter().map(record).sum(),
        Cached::NoData(records) | Cached::NxDomain(records) => records.iter().map(record).sum(),
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use hickory_proto::rr::rdata::A;
    use hickory_proto::rr::RData;

    use super::*;

    fn a(name: &str, ttl: u32, last: u8) -> Record {
        Record::from_rdata(
            Name::from_ascii(name).unwrap(),
            ttl,
            RData::A(A(Ipv4Addr::new(192, 0, 2, last))),
        )
    }

    #[test]
    fn records_count_down_then_go_stale_then_go() {
        let t0 = Instant::now();
        let mut cache = Cache::new(1 << 20, Duration::from_secs(100));
        cache.put_records(vec![a("www.Example.test.", 60, 1)], t0);
        let name = Name::from_ascii("WWW.example.test.").unwrap();
        let hit = cache
            .get(&name, RecordType::A, t0 + Duration::from_secs(20))
            .unwrap();
        assert!(!hit.stale);
        let Cached::Records(records) = hit.data else {
            panic!()
        };
        assert_eq!(records[0].ttl, 40);
        let hit = cache
            .get(&name, RecordType::A, t0 + Duration::from_secs(61))
            .unwrap();
        assert!(hit.stale);
        let Cached::Records(records) = hit.data else {
            panic!()
        };
        assert_eq!(records[0].ttl, STALE_TTL);
        assert!(cache
            .get(&name, RecordType::A, t0 + Duration::from_secs(161))
            .is_none());
        assert!(cache.is_empty());
        assert_eq!(cache.bytes(), 0);
    }

    #[test]
    fn nxdomain_covers_every_type_and_a_fresher_answer_wins() {
        let t0 = Instant::now();
        let mut cache = Cache::new(1 << 20, Duration::from_secs(100));
        let name = Name::from_ascii("gone.example.test.").unwrap();
        cache.put_negative(
            &name,
            RecordType::A,
            Cached::NxDomain(Vec::new()),
            Security::Unchecked,
            30,
            t0,
        );
        let hit = cache.get(&name, RecordType::MX, t0).unwrap();
        assert_eq!(hit.data, Cached::NxDomain(Vec::new()));
        cache.put_records(
            vec![a("gone.example.test.", 300, 2)],
            t0 + Duration::from_secs(40),
        );
        let hit = cache
            .get(&name, RecordType::A, t0 + Duration::from_secs(41))
            .unwrap();
        assert!(matches!(hit.data, Cached::Records(_)), "{hit:?}");
    }

    #[test]
    fn the_oldest_entries_go_when_the_cache_is_full() {
        let t0 = Instant::now();
        let mut cache = Cache::new(1000, Duration::ZERO);
        for i in 0..50u8 {
            cache.put_records(vec![a(&format!("n{i}.example.test."), 300, i)], t0);
        }
        assert!(cache.bytes() <= 1000);
        assert!(cache.len() < 50);
        let newest = Name::from_ascii("n49.example.test.").unwrap();
        assert!(cache.get(&newest, RecordType::A, t0).is_some());
        let oldest = Name::from_ascii("n0.example.test.").unwrap();
        assert!(cache.get(&oldest, RecordType::A, t0).is_none());
    }

    #[test]
    fn zero_ttl_is_not_cached() {
        let t0 = Instant::now();
        let mut cache = Cache::new(1 << 20, Duration::from_secs(100));
        cache.put_records(vec![a("z.example.test.", 0, 1)], t0);
        assert!(cache.is_empty());
    }
}
