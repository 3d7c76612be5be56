//! Local zones: names the office answers itself, authoritatively and without recursion.
//!
//! Each record is one zone-file line parsed by hickory-proto's zone parser with the zone as
//! origin, so owners are relative to the zone (`@` is the apex) and a target without a
//! trailing dot is relative too, exactly as in a zone file. A local zone shadows the real zone
//! of the same name: names under it are never looked up elsewhere.

use std::collections::{BTreeMap, BTreeSet};

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::rdata::SOA;
use hickory_proto::rr::{Name, RData, Record, RecordType};
use hickory_proto::serialize::txt::Parser;

use crate::config::LocalZoneConfig;

/// Longest CNAME chain followed inside the local zones.
const MAX_CNAME_CHAIN: usize = 8;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ZoneError {
    #[error("name `{name}` is not a domain name: {reason}")]
    BadName { name: String, reason: String },
    #[error("records[{index}] `{line}`: {reason}")]
    BadRecord {
        index: usize,
        line: String,
        reason: String,
    },
}

/// One local zone, ready to answer.
#[derive(Debug, Clone)]
pub struct LocalZone {
    apex: Name,
    /// Records by lower-cased owner and type.
    records: BTreeMap<(Name, RecordType), Vec<Record>>,
    /// Every owner name (lower case), for NODATA versus NXDOMAIN.
    owners: BTreeSet<Name>,
    soa: Record,
}

/// What a local zone says about a question.
#[derive(Debug, PartialEq)]
pub struct ZoneAnswer {
    pub code: ResponseCode,
    pub answers: Vec<Record>,
    /// The SOA on a negative answer (RFC 2308), for the client's negative caching.
    pub authorities: Vec<Record>,
}

impl LocalZone {
    pub fn build(config: &LocalZoneConfig) -> Result<LocalZone, ZoneError> {
        let mut apex = Name::from_ascii(config.name.trim()).map_err(|e| ZoneError::BadName {
            name: config.name.clone(),
            reason: e.to_string(),
        })?;
        apex.set_fqdn(true);
        let apex = apex.to_lowercase();
        let mut records: BTreeMap<(Name, RecordType), Vec<Record>> = BTreeMap::new();
        for (index, line) in config.records.iter().enumerate() {
            let bad = |reason: String| ZoneError::BadRecord {
                index,
                line: line.clone(),
                reason,
            };
            let trimmed = line.trim();
            // One record per line, no directives: `$INCLUDE` would read files.
            if trimmed.starts_with('$') || trimmed.contains('\n') || trimmed.is_empty() {
                return Err(bad("give one record: owner [ttl] type data".into()));
            }
            let text = format!("$TTL {}\n{trimmed}\n", config.ttl);
            let (_, sets) = Parser::new(text, None, Some(apex.clone()))
                .parse()
                .map_err(|e| bad(e.to_string()))?;
            for set in sets.values() {
                for record in set.records_without_rrsigs() {
                    let owner = record.name.to_lowercase();
                    if !apex.zone_of(&owner) {
                        return Err(bad(format!("`{owner}` is outside the zone {apex}")));
                    }
                    records
                        .entry((owner, record.record_type()))
                        .or_default()
                        .push(record.clone());
                }
            }
        }
        let owners = records.keys().map(|(n, _)| n.clone()).collect();
        let soa = records
            .get(&(apex.clone(), RecordType::SOA))
            .and_then(|v| v.first().cloned())
            .unwrap_or_else(|| synthetic_soa(&apex, config.ttl));
        Ok(LocalZone {
            apex,
            records,
            owners,
            soa,
        })
    }

    pub fn apex(&self) -> &Name {
        &self.apex
    }

    /// Whether `name` is in this zone (the apex or below it).
    pub fn contains(&self, name: &Name) -> bool {
        self.apex.zone_of(&name.to_lowercase())
    }

    /// The answer for `name` (which [`LocalZone::contains`]) and `kind`.
    pub fn lookup(&self, name: &Name, kind: RecordType) -> ZoneAnswer {
        let mut answers = Vec::new();
        let mut current = name.to_lowercase();
        for _ in 0..MAX_CNAME_CHAIN {
            if let Some(found) = self.find(&current, kind) {
                let direct = answers.is_empty();
                answers.extend(found.into_iter().map(|mut r| {
                    // The client's spelling of the name it asked, as servers answer.
                    if direct {
                        r.name = name.clone();
                    }
                    r
                }));
                return self.positive(answers);
            }
            match self.records.get(&(current.clone(), RecordType::CNAME)) {
                Some(cname) if kind != RecordType::CNAME => {
                    answers.extend(cname.iter().cloned());
                    let Some(RData::CNAME(target)) = cname.first().map(|r| &r.data) else {
                        return self.positive(answers);
                    };
                    let target = target.0.to_lowercase();
                    if !self.contains(&target) {
                        // The target is elsewhere: the client follows it.
                        return self.positive(answers);
                    }
                    current = target;
                }
                _ => {
                    // NODATA or NXDOMAIN for the last name reached (after any CNAMEs, which
                    // stay in the answer).
                    let code = if self.exists(&current) {
                        ResponseCode::NoError
                    } else {
                        ResponseCode::NXDomain
                    };
                    return ZoneAnswer {
                        code,
                        answers,
                        authorities: vec![self.soa.clone()],
                    };
                }
            }
        }
        // A CNAME loop: what was found so far, as other servers do.
        self.positive(answers)
    }

    fn positive(&self, answers: Vec<Record>) -> ZoneAnswer {
        ZoneAnswer {
            code: ResponseCode::NoError,
            answers,
            authorities: Vec::new(),
        }
    }

    fn find(&self, name: &Name, kind: RecordType) -> Option<Vec<Record>> {
        if kind == RecordType::ANY {
            let all: Vec<Record> = self
                .records
                .range((name.clone(), RecordType::Unknown(0))..)
                .take_while(|((n, _), _)| n == name)
                .flat_map(|(_, v)| v.iter().cloned())
                .collect();
            return (!all.is_empty()).then_some(all);
        }
        if kind == RecordType::SOA && *name == self.apex {
            return Some(vec![self.soa.clone()]);
        }
        self.records.get(&(name.clone(), kind)).cloned()
    }

    /// The name has records, or names below it do (an empty non-terminal).
    fn exists(&self, name: &Name) -> bool {
        *name == self.apex || self.owners.iter().any(|owner| name.zone_of(owner))
    }
}

/// The SOA of a zone that gives none: negative answers need one (RFC 2308).
fn synthetic_soa(apex: &Name, ttl: u32) -> Record {
    let mname = Name::from_ascii("localhost.").unwrap_or_else(|_| Name::root());
    let rname = Name::from_ascii("hostmaster")
        .ok()
        .and_then(|h| h.append_domain(apex).ok())
        .unwrap_or_else(|| apex.clone());
    let minimum = ttl.min(3600);
    Record::from_rdata(
        apex.clone(),
        minimum,
        RData::SOA(SOA::new(mname, rname, 1, 3600, 600, 86400, minimum)),
    )
}

/// The zone among `zones` that holds `name` (the deepest, when zones nest).
pub fn zone_for<'a>(zones: &'a [LocalZone], name: &Name) -> Option<&'a LocalZone> {
    zones
        .iter()
        .filter(|z| z.contains(name))
        .max_by_key(|z| z.apex.num_labels())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zone(records: &[&str]) -> LocalZone {
        LocalZone::build(&LocalZoneConfig {
            name: "office.test".into(),
            records: records.iter().map(|r| r.to_string()).collect(),
            ttl: 300,
        })
        .unwrap()
    }

    fn name(text: &str) -> Name {
        Name::from_ascii(text).unwrap()
    }

    #[test]
    fn owners_are_relative_and_at_is_the_apex() {
        let z = zone(&[
            "printer A 192.168.1.50",
            "@ MX 10 mail",
            "mail 60 A 192.168.1.2",
        ]);
        let a = z.lookup(&name("Printer.Office.Test."), RecordType::A);
        assert_eq!(a.code, ResponseCode::NoError);
        assert_eq!(a.answers.len(), 1);
        assert_eq!(a.answers[0].ttl, 300);
        assert_eq!(a.answers[0].name, name("Printer.Office.Test."));
        let mx = z.lookup(&name("office.test."), RecordType::MX);
        let RData::MX(mx) = &mx.answers[0].data else {
            panic!("{mx:?}")
        };
        // No trailing dot: relative to the zone, as in a zone file.
        assert_eq!(mx.exchange, name("mail.office.test."));
        assert_eq!(
            z.lookup(&name("mail.office.test."), RecordType::A).answers[0].ttl,
            60
        );
    }

    #[test]
    fn nodata_nxdomain_and_empty_non_terminals() {
        let z = zone(&["a.b A 10.0.0.1"]);
        let nodata = z.lookup(&name("a.b.office.test."), RecordType::AAAA);
        assert_eq!(nodata.code, ResponseCode::NoError);
        assert!(nodata.answers.is_empty());
        assert_eq!(nodata.authorities[0].record_type(), RecordType::SOA);
        let ent = z.lookup(&name("b.office.test."), RecordType::A);
        assert_eq!(ent.code, ResponseCode::NoError);
        let nx = z.lookup(&name("nothing.office.test."), RecordType::A);
        assert_eq!(nx.code, ResponseCode::NXDomain);
        assert_eq!(nx.authorities.len(), 1);
    }

    #[test]
    fn cname_chains_are_followed_inside_the_zone() {
        let z = zone(&[
            "www CNAME web",
            "web CNAME host",
            "host A 10.0.0.9",
            "out CNAME www.example.org.",
            "loop1 CNAME loop2",
            "loop2 CNAME loop1",
        ]);
        let a = z.lookup(&name("www.office.test."), RecordType::A);
        assert_eq!(a.answers.len(), 3);
        assert_eq!(a.answers[2].record_type(), RecordType::A);
        let out = z.lookup(&name("out.office.test."), RecordType::A);
        assert_eq!(out.answers.len(), 1);
        let looped = z.lookup(&name("loop1.office.test."), RecordType::A);
        assert_eq!(looped.answers.len(), MAX_CNAME_CHAIN);
    }

    #[test]
    fn bad_records_are_named() {
        let bad = LocalZone::build(&LocalZoneConfig {
            name: "office.test".into(),
            records: vec!["printer A 192.168.1.50".into(), "x A not-an-ip".into()],
            ttl: 300,
        })
        .unwrap_err();
        assert!(
            matches!(&bad, ZoneError::BadRecord { index: 1, .. }),
            "{bad}"
        );
        let include = LocalZone::build(&LocalZoneConfig {
            name: "office.test".into(),
            records: vec!["$INCLUDE /etc/passwd".into()],
            ttl: 300,
        });
        assert!(include.is_err());
        let outside = LocalZone::build(&LocalZoneConfig {
            name: "office.test".into(),
            records: vec!["www.example.org. A 10.0.0.1".into()],
            ttl: 300,
        });
        assert!(outside
            .unwrap_err()
            .to_string()
            .contains("outside the zone"));
    }

    #[test]
    fn the_deepest_zone_holds_a_name() {
        let outer = zone(&["x A 10.0.0.1"]);
        let inner = LocalZone::build(&LocalZoneConfig {
            name: "lab.office.test".into(),
            records: vec!["x A 10.0.1.1".into()],
            ttl: 300,
        })
        .unwrap();
        let zones = [outer, inner];
        let held = zone_for(&zones, &name("x.lab.office.test.")).unwrap();
        assert_eq!(held.apex(), &name("lab.office.test."));
        assert!(zone_for(&zones, &name("example.org.")).is_none());
    }
}
