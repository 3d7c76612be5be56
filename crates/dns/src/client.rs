//! A one-question client, for `serval dns query`: asks a resolver and reports the answer
//! and what DNSSEC made of it.

use std::net::SocketAddr;
use std::time::Duration;

use hickory_proto::op::{Edns, Message, Query, ResponseCode};
use hickory_proto::rr::{Name, RecordType};

/// What the resolver said.
pub struct Report {
    pub code: ResponseCode,
    /// The answer and authority records, one per line in zone-file form.
    pub records: Vec<String>,
    /// `secure`, `insecure` or `bogus`.
    pub verdict: &'static str,
    /// The Extended DNS Error, as "CODE (NAME): TEXT".
    pub ede: Option<String>,
}

/// Asks `server` (over UDP, TCP if truncated) for `name` `record_type` with DO and AD set.
pub fn query(server: SocketAddr, name: &str, record_type: &str) -> Result<Report, String> {
    let mut qname =
        Name::from_ascii(name).map_err(|e| format!("`{name}` is not a domain name: {e}"))?;
    qname.set_fqdn(true);
    let qtype: RecordType = record_type
        .to_ascii_uppercase()
        .parse()
        .map_err(|_| format!("`{record_type}` is not a record type (A, AAAA, MX, TXT, ...)"))?;
    let id: u16 = rand::random();
    let mut message = Message::query();
    message.metadata.id = id;
    message.metadata.recursion_desired = true;
    message.metadata.authentic_data = true;
    message.add_query(Query::query(qname, qtype));
    let mut edns = Edns::new();
    edns.set_max_payload(crate::server::EDNS_PAYLOAD);
    edns.set_dnssec_ok(true);
    message.set_edns(edns);
    let bytes = message.to_vec().map_err(|e| e.to_string())?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let reply = runtime
        .block_on(crate::recursor::upstream::ask(
            server,
            bytes,
            id,
            Duration::from_secs(12),
        ))
        .map_err(|e| {
            format!("no answer from {server}: {e} (is `serval serve` running with [dns] enabled?)")
        })?;
    let reply = Message::from_vec(&reply).map_err(|e| format!("unreadable answer: {e}"))?;
    let ede = reply.edns.as_ref().and_then(|edns| {
        edns.options().as_ref().iter().find_map(|(_, option)| {
            let hickory_proto::rr::rdata::opt::EdnsOption::Unknown(15, bytes) = option else {
                return None;
            };
            let info = u16::from_be_bytes([*bytes.first()?, *bytes.get(1)?]);
            let text = String::from_utf8_lossy(&bytes[2..]).into_owned();
            Some(format!(
                "{info} ({}): {text}",
                crate::recursor::ede_name(info)
            ))
        })
    });
    let validation_failed = ede.as_ref().is_some_and(|e| {
        e.split(' ')
            .next()
            .and_then(|c| c.parse::<u16>().ok())
            .is_some_and(|c| (1..=12).contains(&c) && c != 3)
    });
    let verdict = if reply.metadata.response_code == ResponseCode::ServFail && validation_failed {
        "bogus"
    } else if reply.metadata.authentic_data {
        "secure"
    } else {
        "insecure"
    };
    let records = reply
        .answers
        .iter()
        .chain(reply.authorities.iter())
        .filter(|r| {
            r.record_type() != RecordType::RRSIG
                && r.record_type() != RecordType::NSEC
                && r.record_type() != RecordType::NSEC3
        })
        .map(|r| r.to_string())
        .collect();
    Ok(Report {
        code: reply.metadata.response_code,
        records,
        verdict,
        ede,
    })
}
