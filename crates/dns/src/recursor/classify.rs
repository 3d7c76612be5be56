//! What a name server's reply means for the walk: pure, over a parsed message.

use std::net::IpAddr;

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::{Name, RData, Record, RecordType};

/// One reply, read against the zone it was asked in.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    /// The RRset asked for, with its RRSIGs.
    Answer(Vec<Record>),
    /// The name is an alias: its target, and the CNAME record with its RRSIGs.
    Alias {
        target: Name,
        /// The RRset whose signature vouches for the alias: the CNAME itself, or the DNAME a
        /// server synthesized it from (RFC 6672: the CNAME then comes unsigned).
        signed_by: (Name, RecordType),
        signed: Vec<Record>,
    },
    /// A child zone's servers: the NS RRset and the glue addresses found for them.
    Referral {
        child: Name,
        ns: Vec<Record>,
        glue: Vec<(Name, IpAddr, Record)>,
    },
    /// The authority section's SOA, NSEC/NSEC3 and RRSIG records.
    NoData(Vec<Record>),
    NxDomain(Vec<Record>),
    /// Not an answer from an authority for `zone`: server failure, refusal, an upward or
    /// sideways referral, or a non-authoritative reply. The next server is tried.
    Lame(String),
}

/// Reads `reply` to the question (`name`, `record_type`) asked of a server of `zone`.
pub fn classify(zone: &Name, name: &Name, record_type: RecordType, reply: &Message) -> Reply {
    // The proof of a negative answer: the zone's SOA, NSEC/NSEC3 records, their RRSIGs.
    let soa = || -> Vec<Record> {
        reply
            .authorities
            .iter()
            .filter(|r| {
                matches!(
                    r.record_type(),
                    RecordType::SOA | RecordType::NSEC | RecordType::NSEC3 | RecordType::RRSIG
                ) && zone.zone_of(&r.name)
            })
            .cloned()
            .collect()
    };
    let same = |r: &Record, owner: &Name| r.name.to_lowercase() == owner.to_lowercase();
    let covers = |r: &Record, covered: RecordType| {
        super::dnssec::rrsig(r).is_some_and(|sig| sig.input().type_covered == covered)
    };
    match reply.metadata.response_code {
        ResponseCode::NoError => {}
        ResponseCode::NXDomain => return Reply::NxDomain(soa()),
        other => return Reply::Lame(format!("answered {other}")),
    }
    let wanted: Vec<Record> = reply
        .answers
        .iter()
        .filter(|r| same(r, name) && (r.record_type() == record_type || covers(r, record_type)))
        .cloned()
        .collect();
    if wanted.iter().any(|r| r.record_type() == record_type) {
        return Reply::Answer(wanted);
    }
    if record_type != RecordType::CNAME {
        let alias = reply.answers.iter().find(|r| {
            r.record_type() == RecordType::CNAME && r.name.to_lowercase() == name.to_lowercase()
        });
        if let Some(cname) = alias {
            if let RData::CNAME(target) = &cname.data {
                let dname = reply.answers.iter().find(|r| {
                    r.record_type() == RecordType::DNAME
                        && r.name.zone_of(name)
                        && r.name.num_labels() < name.num_labels()
                        && zone.zone_of(&r.name)
                });
                let signed_by = match dname {
                    Some(d) => (d.name.to_lowercase(), RecordType::DNAME),
                    None => (name.to_lowercase(), RecordType::CNAME),
                };
                let signed = reply
                    .answers
                    .iter()
                    .filter(|r| {
                        (same(r, name)
                            && (r.record_type() == RecordType::CNAME
                                || covers(r, RecordType::CNAME)))
                            || (same(r, &signed_by.0)
                                && signed_by.1 == RecordType::DNAME
                                && (r.record_type() == RecordType::DNAME
                                    || covers(r, RecordType::DNAME)))
                    })
                    .cloned()
                    .collect();
                return Reply::Alias {
                    target: target.0.clone(),
                    signed_by,
                    signed,
                };
            }
        }
    }
    // A referral: NS records for a zone strictly below the one asked, above or at the name.
    let ns: Vec<Record> = reply
        .authorities
        .iter()
        .filter(|r| {
            r.record_type() == RecordType::NS
                && zone.zone_of(&r.name)
                && r.name.num_labels() > zone.num_labels()
                && r.name.zone_of(name)
        })
        .cloned()
        .collect();
    if let Some(first) = ns.first() {
        let child = first.name.to_lowercase();
        let ns: Vec<Record> = ns
            .into_iter()
            .filter(|r| r.name.to_lowercase() == child)
            .collect();
        let targets: Vec<Name> = ns
            .iter()
            .filter_map(|r| match &r.data {
                RData::NS(target) => Some(target.0.to_lowercase()),
                _ => None,
            })
            .collect();
        // Glue only from the asked zone's bailiwick: a server of example.test cannot tell us
        // where the servers of other.test live.
        let glue = reply
            .additionals
            .iter()
            .filter(|r| zone.zone_of(&r.name) && targets.contains(&r.name.to_lowercase()))
            .filter_map(|r| match &r.data {
                RData::A(a) => Some((r.name.to_lowercase(), IpAddr::V4(a.0), r.clone())),
                RData::AAAA(a) => Some((r.name.to_lowercase(), IpAddr::V6(a.0), r.clone())),
                _ => None,
            })
            .collect();
        return Reply::Referral { child, ns, glue };
    }
    let proof = soa();
    if reply.metadata.authoritative || proof.iter().any(|r| r.record_type() == RecordType::SOA) {
        return Reply::NoData(proof);
    }
    Reply::Lame("neither an answer nor a referral, and not authoritative".into())
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use hickory_proto::op::{Message, MessageType, OpCode};
    use hickory_proto::rr::rdata::{A, CNAME, NS, SOA};

    use super::*;

    fn name(text: &str) -> Name {
        Name::from_ascii(text).unwrap()
    }

    fn reply() -> Message {
        let mut m = Message::response(1, OpCode::Query);
        m.metadata.message_type = MessageType::Response;
        m
    }

    fn record(owner: &str, data: RData) -> Record {
        Record::from_rdata(name(owner), 300, data)
    }

    fn soa(owner: &str) -> Record {
        record(
            owner,
            RData::SOA(SOA::new(name("ns.test."), name("h.test."), 1, 1, 1, 1, 60)),
        )
    }

    #[test]
    fn a_referral_keeps_only_in_bailiwick_glue() {
        let mut m = reply();
        m.authorities.push(record(
            "example.test.",
            RData::NS(NS(name("ns1.example.test."))),
        ));
        m.authorities.push(record(
            "example.test.",
            RData::NS(NS(name("ns.other.test."))),
        ));
        m.additionals.push(record(
            "ns1.example.test.",
            RData::A(A(Ipv4Addr::new(192, 0, 2, 1))),
        ));
        let root = Name::root();
        let Reply::Referral { child, ns, glue } = classify(
            &name("test."),
            &name("www.example.test."),
            RecordType::A,
            &m,
        ) else {
            panic!()
        };
        assert_eq!(child, name("example.test."));
        assert_eq!(ns.len(), 2);
        assert_eq!(glue.len(), 1);
        // Asked in a zone the glue is not under: no glue.
        let sideways = {
            let mut m = m.clone();
            m.additionals = vec![record(
                "ns1.example.test.",
                RData::A(A(Ipv4Addr::new(192, 0, 2, 9))),
            )];
            classify(
                &name("other.test."),
                &name("www.example.test."),
                RecordType::A,
                &m,
            )
        };
        assert!(matches!(sideways, Reply::Lame(_)), "{sideways:?}");
        let _ = root;
    }

    #[test]
    fn an_upward_referral_is_lame() {
        let mut m = reply();
        m.authorities
            .push(record("test.", RData::NS(NS(name("ns.test.")))));
        let got = classify(
            &name("example.test."),
            &name("www.example.test."),
            RecordType::A,
            &m,
        );
        assert!(matches!(got, Reply::Lame(_)), "{got:?}");
    }

    #[test]
    fn answers_aliases_and_negatives() {
        let mut m = reply();
        m.metadata.authoritative = true;
        m.answers.push(record(
            "www.example.test.",
            RData::CNAME(CNAME(name("web.example.test."))),
        ));
        m.answers.push(record(
            "web.example.test.",
            RData::A(A(Ipv4Addr::new(192, 0, 2, 5))),
        ));
        let zone = name("example.test.");
        let Reply::Alias { target, signed, .. } =
            classify(&zone, &name("WWW.example.test."), RecordType::A, &m)
        else {
            panic!()
        };
        assert_eq!(target, name("web.example.test."));
        assert_eq!(signed.len(), 1);
        let mut empty = reply();
        empty.metadata.authoritative = true;
        empty.authorities.push(soa("example.test."));
        assert!(matches!(
            classify(&zone, &name("www.example.test."), RecordType::MX, &empty),
            Reply::NoData(p) if p.len() == 1
        ));
        empty.metadata.response_code = ResponseCode::NXDomain;
        assert!(matches!(
            classify(&zone, &name("gone.example.test."), RecordType::A, &empty),
            Reply::NxDomain(p) if p.len() == 1
        ));
        empty.metadata.response_code = ResponseCode::ServFail;
        assert!(matches!(
            classify(&zone, &name("gone.example.test."), RecordType::A, &empty),
            Reply::Lame(_)
        ));
    }
}
