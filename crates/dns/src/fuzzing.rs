//! Entry points for `cargo fuzz` (see `fuzz/fuzz_targets/dns_query.rs`): untrusted packets
//! through the whole answering core, which must never panic.

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
