//! Entry points for `cargo fuzz` (`fuzz/fuzz_targets/dns_query.rs`, `dns_reply.rs`): untrusted
//! packets through the answering core, and untrusted authority replies through the walk's
//! reading of them and the DNSSEC proofs; none may panic.

use crate::config::Cidr;
use crate::server::{Responder, Transport};

/// One packet from anyone, answered by a responder with a local zone and forwarding on.
pub fn dns_query(data: &[u8]) {
    let allow = vec![Cidr::try_from("0.0.0.0/0".to_string()).expect("literal block")];
    let zone = crate::zone::LocalZone::build(&crate::config::LocalZoneConfig {
        name: "office.test".into(),
        records: vec!["printer A 192.168.1.50".into(), "www CNAME printer".into()],
        ttl: 300,
    })
    .expect("literal zone");
    let responder = Responder::new(allow, vec![zone], true);
    for transport in [Transport::Udp, Transport::Tcp] {
        let _ = responder.handle(data, "192.0.2.1".parse().expect("literal"), transport);
    }
}

/// One reply from an authority (anyone can send one): parsed, read by the walk, and its
/// denial records checked as proofs; none of it may panic.
pub fn dns_reply(data: &[u8]) {
    use hickory_proto::op::Message;
    use hickory_proto::rr::{Name, RecordType};
    let Ok(reply) = Message::from_vec(data) else {
        return;
    };
    let Some(question) = reply.queries.first() else {
        return;
    };
    let name = question.name().clone();
    let zone = if name.is_root() {
        Name::root()
    } else {
        name.base_name()
    };
    let _ = crate::recursor::classify::classify(&zone, &name, question.query_type(), &reply);
    let _ = crate::recursor::dnssec::proves_nxdomain(&reply.authorities, &zone, &name);
    let _ =
        crate::recursor::dnssec::proves_nodata(&reply.authorities, &zone, &name, RecordType::DS);
    let _ = crate::recursor::dnssec::root_keys(
        &reply.answers,
        &crate::recursor::dnssec::Anchors::compiled(),
        0,
    );
}

#[cfg(test)]
mod tests {
    /// Not a fuzzer (that is `cargo fuzz run dns_reply`): a quick pass over random packets
    /// and over a real reply with each byte changed, so a panic on the way shows in `cargo test`.
    #[test]
    fn random_and_mutated_packets_do_not_panic() {
        use hickory_proto::op::{Message, Query};
        use hickory_proto::rr::{Name, RecordType};
        use rand::{Rng as _, SeedableRng as _};
        let mut rng = rand::rngs::StdRng::seed_from_u64(15);
        for _ in 0..5000 {
            let len = rng.gen_range(0..300);
            let packet: Vec<u8> = (0..len).map(|_| rng.gen()).collect();
            super::dns_reply(&packet);
            super::dns_query(&packet);
        }
        let mut m = Message::query();
        m.add_query(Query::query(
            Name::from_ascii("www.example.test.").unwrap(),
            RecordType::A,
        ));
        let base = m.to_vec().unwrap();
        for i in 0..base.len() {
            for v in [0u8, 1, 0x3f, 0xc0, 0xff] {
                let mut p = base.clone();
                p[i] = v;
                super::dns_reply(&p);
                super::dns_query(&p);
            }
        }
    }
}
