use super::*;
use crate::config::LocalZoneConfig;
use hickory_proto::rr::{Name, RecordType};

fn responder(forwarding: bool) -> Responder {
    let zone = LocalZone::build(&LocalZoneConfig {
        name: "office.test".into(),
        records: vec!["printer A 192.168.1.50".into(), "big TXT \"x\"".into()],
        ttl: 300,
    })
    .unwrap();
    let allow = vec![Cidr::try_from("127.0.0.0/8".to_string()).unwrap()];
    Responder::new(allow, vec![zone], forwarding)
}

fn query(name: &str, kind: RecordType, edns: bool) -> Vec<u8> {
    let mut m = Message::query();
    m.metadata.id = 0x1234;
    m.metadata.recursion_desired = true;
    m.add_query(Query::query(Name::from_ascii(name).unwrap(), kind));
    if edns {
        let mut e = Edns::new();
        e.set_max_payload(4096);
        m.set_edns(e);
    }
    m.to_vec().unwrap()
}

const LOCAL: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

fn reply(outcome: Outcome) -> Message {
    match outcome {
        Outcome::Reply(bytes) => Message::from_vec(&bytes).unwrap(),
        other => panic!("{other:?}"),
    }
}

fn ede(m: &Message) -> Option<u16> {
    m.edns
        .as_ref()?
        .options()
        .as_ref()
        .iter()
        .find_map(|(_, o)| match o {
            EdnsOption::Unknown(15, data) => Some(u16::from_be_bytes([data[0], data[1]])),
            _ => None,
        })
}

#[test]
fn local_names_are_answered_authoritatively() {
    let r = responder(false);
    let m = reply(r.handle(
        &query("printer.office.test.", RecordType::A, true),
        LOCAL,
        Transport::Udp,
    ));
    assert_eq!(m.metadata.id, 0x1234);
    assert!(m.metadata.authoritative);
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert_eq!(m.answers.len(), 1);
    assert_eq!(m.edns.as_ref().unwrap().max_payload(), EDNS_PAYLOAD);
    let nx = reply(r.handle(
        &query("nobody.office.test.", RecordType::A, false),
        LOCAL,
        Transport::Udp,
    ));
    assert_eq!(nx.metadata.response_code, ResponseCode::NXDomain);
    assert_eq!(nx.authorities.len(), 1);
}

#[test]
fn clients_outside_allow_are_refused_with_a_reason() {
    let r = responder(false);
    let other: IpAddr = "192.0.2.9".parse().unwrap();
    for transport in [Transport::Udp, Transport::Tcp] {
        let m = reply(r.handle(
            &query("printer.office.test.", RecordType::A, true),
            other,
            transport,
        ));
        assert_eq!(m.metadata.response_code, ResponseCode::Refused);
        assert!(m.answers.is_empty());
        assert_eq!(ede(&m), Some(EDE_PROHIBITED));
    }
}

#[test]
fn other_names_are_forwarded_or_refused() {
    let q = query("www.example.org.", RecordType::A, true);
    assert!(matches!(
        responder(true).handle(&q, LOCAL, Transport::Udp),
        Outcome::Resolve(_)
    ));
    let m = reply(responder(false).handle(&q, LOCAL, Transport::Udp));
    assert_eq!(m.metadata.response_code, ResponseCode::Refused);
    assert_eq!(ede(&m), Some(EDE_NOT_AUTHORITATIVE));
}

#[test]
fn malformed_packets_get_formerr_or_nothing() {
    let r = responder(true);
    assert!(matches!(
        r.handle(b"\x12\x34", LOCAL, Transport::Udp),
        Outcome::Drop
    ));
    // A header announcing a question that is not there.
    let mut bad = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
    bad.extend_from_slice(b"\x07printer");
    let Outcome::Reply(bytes) = r.handle(&bad, LOCAL, Transport::Udp) else {
        panic!()
    };
    assert_eq!(&bytes[..2], &[0x12, 0x34]);
    assert_eq!(bytes[3] & 0x0f, 1, "FORMERR");
    // Responses are never answered.
    let mut response = query("printer.office.test.", RecordType::A, false);
    response[2] |= 0x80;
    assert!(matches!(
        r.handle(&response, LOCAL, Transport::Udp),
        Outcome::Drop
    ));
    // Two questions.
    let mut two = Message::query();
    two.add_query(Query::query(
        Name::from_ascii("a.office.test.").unwrap(),
        RecordType::A,
    ));
    two.add_query(Query::query(
        Name::from_ascii("b.office.test.").unwrap(),
        RecordType::A,
    ));
    let m = reply(r.handle(&two.to_vec().unwrap(), LOCAL, Transport::Udp));
    assert_eq!(m.metadata.response_code, ResponseCode::FormErr);
}

#[test]
fn unknown_edns_versions_get_badvers() {
    let mut m = Message::from_vec(&query("printer.office.test.", RecordType::A, true)).unwrap();
    m.edns.as_mut().unwrap().set_version(1);
    let out = reply(responder(false).handle(&m.to_vec().unwrap(), LOCAL, Transport::Udp));
    // 16 is both BADVERS and BADSIG (RFC 6891, RFC 8945); hickory decodes it as the latter.
    assert_eq!(u16::from(out.metadata.response_code), 16);
}

#[test]
fn relayed_answers_carry_the_clients_id_and_must_match_the_question() {
    let q = Message::from_vec(&query("www.example.org.", RecordType::A, true)).unwrap();
    let upstream = Message::from_vec(&upstream_query(&q, 77)).unwrap();
    assert_eq!(upstream.metadata.id, 77);
    assert!(upstream.metadata.recursion_desired);
    let mut answer = upstream.clone();
    answer.metadata.message_type = MessageType::Response;
    let out = relay(&q, &answer.to_vec().unwrap(), Transport::Udp).unwrap();
    assert_eq!(Message::from_vec(&out).unwrap().metadata.id, 0x1234);
    let mut wrong = answer.clone();
    wrong.queries[0].name = Name::from_ascii("evil.example.").unwrap();
    assert!(relay(&q, &wrong.to_vec().unwrap(), Transport::Udp).is_none());
    let failed = Message::from_vec(&forwarders_failed(&q, Transport::Udp)).unwrap();
    assert_eq!(failed.metadata.response_code, ResponseCode::ServFail);
    assert_eq!(ede(&failed), Some(EDE_NO_REACHABLE_AUTHORITY));
}
