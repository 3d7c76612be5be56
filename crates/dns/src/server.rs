//! The sans-IO core: a query's bytes and the client's address in, what to do out.
//!
//! No sockets and no clock here, so every answer is unit-tested as bytes. The driver (`net`)
//! sends [`Outcome::Reply`] back, drops [`Outcome::Drop`], and for [`Outcome::Resolve`] asks a
//! forwarder and hands its reply to [`relay`].

use std::net::IpAddr;

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::opt::{EdnsCode, EdnsOption};
use hickory_proto::rr::RecordType;

use crate::config::Cidr;
use crate::zone::{zone_for, LocalZone};

/// The EDNS payload size offered and the largest UDP answer sent (the DNS Flag Day 2020 value).
pub const EDNS_PAYLOAD: u16 = 1232;
/// RFC 8914 Extended DNS Error option code.
const EDE: u16 = 15;
/// EDE 20, "Not Authoritative".
pub const EDE_NOT_AUTHORITATIVE: u16 = 20;
/// EDE 18, "Prohibited".
pub const EDE_PROHIBITED: u16 = 18;
/// EDE 22, "No Reachable Authority".
pub const EDE_NO_REACHABLE_AUTHORITY: u16 = 22;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Udp,
    Tcp,
}

/// What to do with one incoming packet.
#[derive(Debug)]
pub enum Outcome {
    Reply(Vec<u8>),
    /// Not answered: too short to carry an ID, or itself a response (answering those would
    /// let a spoofed packet start a loop between two servers).
    Drop,
    /// Resolve it (forwarders, else recursion): `query` is the client's question (one, with
    /// its flags), parsed.
    Resolve(Box<Message>),
}

/// The answering policy of one `[dns]` table.
pub struct Responder {
    allow: Vec<Cidr>,
    zones: Vec<LocalZone>,
    forwarding: bool,
}

impl Responder {
    pub fn new(allow: Vec<Cidr>, zones: Vec<LocalZone>, forwarding: bool) -> Responder {
        Responder {
            allow,
            zones,
            forwarding,
        }
    }

    pub fn handle(&self, packet: &[u8], client: IpAddr, transport: Transport) -> Outcome {
        if packet.len() < 12 || packet[2] & 0x80 != 0 {
            return Outcome::Drop;
        }
        let query = match Message::from_vec(packet) {
            Ok(m) => m,
            Err(_) => return Outcome::Reply(format_error(packet)),
        };
        // The common case first, without building a reply it would not use.
        let to_resolve = self.forwarding
            && query.edns.as_ref().is_none_or(|e| e.version() == 0)
            && query.metadata.op_code == OpCode::Query
            && query.queries.len() == 1
            && cidr_allows(&self.allow, client)
            && zone_for(&self.zones, query.queries[0].name()).is_none();
        if to_resolve {
            return Outcome::Resolve(Box::new(query));
        }
        let limit = udp_limit(&query, transport);
        let mut reply = Message::response(query.metadata.id, query.metadata.op_code);
        reply.metadata.recursion_desired = query.metadata.recursion_desired;
        reply.metadata.checking_disabled = query.metadata.checking_disabled;
        reply.metadata.recursion_available = self.forwarding;
        reply.add_queries(query.queries.iter().cloned());
        if let Some(edns) = &query.edns {
            let ours = our_edns(edns.flags().dnssec_ok);
            if edns.version() > 0 {
                // RFC 6891 6.1.3: only version 0 exists.
                reply.set_edns(ours);
                reply.metadata.response_code = ResponseCode::BADVERS;
                return Outcome::Reply(encode(reply, limit));
            }
            reply.set_edns(ours);
        }
        if !cidr_allows(&self.allow, client) {
            reply.metadata.response_code = ResponseCode::Refused;
            add_ede(
                &mut reply,
                EDE_PROHIBITED,
                "this client is not in [dns] allow",
            );
            return Outcome::Reply(encode(reply, limit));
        }
        if query.metadata.op_code != OpCode::Query {
            reply.metadata.response_code = ResponseCode::NotImp;
            return Outcome::Reply(encode(reply, limit));
        }
        let [question] = query.queries.as_slice() else {
            reply.metadata.response_code = ResponseCode::FormErr;
            return Outcome::Reply(encode(reply, limit));
        };
        if let Some(zone) = zone_for(&self.zones, question.name()) {
            let found = zone.lookup(question.name(), question.query_type());
            reply.metadata.authoritative = true;
            reply.metadata.response_code = found.code;
            reply.add_answers(found.answers);
            reply.add_authorities(found.authorities);
            return Outcome::Reply(encode(reply, limit));
        }
        if self.forwarding {
            return Outcome::Resolve(Box::new(query));
        }
        reply.metadata.response_code = ResponseCode::Refused;
        add_ede(
            &mut reply,
            EDE_NOT_AUTHORITATIVE,
            "not a local zone, and no [dns] forwarders are set",
        );
        Outcome::Reply(encode(reply, limit))
    }
}

/// The client's answer from a forwarder's `upstream` reply to `query`: the client's ID and
/// question, the forwarder's flags, code and records. `None` when the reply does not answer
/// the question asked (then the next forwarder is tried).
pub fn relay(query: &Message, upstream: &[u8], transport: Transport) -> Option<Vec<u8>> {
    let mut reply = Message::from_vec(upstream).ok()?;
    if reply.metadata.message_type != MessageType::Response
        || !same_questions(&reply.queries, &query.queries)
    {
        return None;
    }
    reply.metadata.id = query.metadata.id;
    reply.metadata.authoritative = false;
    // The client's spelling of its question (0x20 case randomisation stays ours to do).
    reply.queries = query.queries.clone();
    match &query.edns {
        Some(edns) => {
            let mut ours = our_edns(edns.flags().dnssec_ok);
            if let Some(theirs) = &reply.edns {
                for (code, option) in theirs.options().as_ref() {
                    if u16::from(*code) == EDE {
                        ours.options_mut().insert(option.clone());
                    }
                }
            }
            reply.edns = Some(ours);
        }
        None => reply.edns = None,
    }
    Some(encode(reply, udp_limit(query, transport)))
}

/// The client's answer from a recursive resolution.
///
/// Bogus data is SERVFAIL with its EDE unless the client set CD (then it gets the data, and
/// no AD); secure data gets AD when the client set DO or AD (RFC 6840 5.7). RRSIG and NSEC
/// records go only to clients that set DO (RFC 4035 3.2.1).
pub fn recursed(
    query: &Message,
    resolution: crate::recursor::Resolution,
    transport: Transport,
) -> Vec<u8> {
    use crate::recursor::dnssec::Security;
    let mut reply = Message::response(query.metadata.id, query.metadata.op_code);
    reply.metadata.recursion_desired = query.metadata.recursion_desired;
    reply.metadata.checking_disabled = query.metadata.checking_disabled;
    reply.metadata.recursion_available = true;
    reply.add_queries(query.queries.iter().cloned());
    let dnssec_ok = query.edns.as_ref().is_some_and(|e| e.flags().dnssec_ok);
    if let Some(edns) = &query.edns {
        reply.set_edns(our_edns(edns.flags().dnssec_ok));
    }
    if let Security::Bogus { ede, reason } = &resolution.security {
        if !query.metadata.checking_disabled {
            reply.metadata.response_code = ResponseCode::ServFail;
            add_ede(
                &mut reply,
                *ede,
                &format!("DNSSEC validation failed: {reason}"),
            );
            return encode(reply, udp_limit(query, transport));
        }
    }
    reply.metadata.response_code = resolution.code;
    reply.metadata.authentic_data = resolution.security == Security::Secure
        && (dnssec_ok || query.metadata.authentic_data)
        && !query.metadata.checking_disabled;
    let shown = |r: &hickory_proto::rr::Record| {
        dnssec_ok
            || !matches!(
                r.record_type(),
                RecordType::RRSIG | RecordType::NSEC | RecordType::NSEC3
            )
    };
    if let Some((code, text)) = &resolution.ede {
        add_ede(&mut reply, *code, text);
    }
    reply.answers = resolution
        .answers
        .into_iter()
        .filter(|r| shown(r))
        .collect();
    reply.authorities = resolution
        .authorities
        .into_iter()
        .filter(|r| shown(r))
        .collect();
    encode(reply, udp_limit(query, transport))
}

/// SERVFAIL for `query` when no forwarder answered.
pub fn forwarders_failed(query: &Message, transport: Transport) -> Vec<u8> {
    let mut reply = Message::response(query.metadata.id, query.metadata.op_code);
    reply.metadata.recursion_desired = query.metadata.recursion_desired;
    reply.metadata.recursion_available = true;
    reply.metadata.response_code = ResponseCode::ServFail;
    reply.add_queries(query.queries.iter().cloned());
    if query.edns.is_some() {
        reply.set_edns(our_edns(false));
        add_ede(
            &mut reply,
            EDE_NO_REACHABLE_AUTHORITY,
            "no [dns] forwarder answered in time",
        );
    }
    encode(reply, udp_limit(query, transport))
}

/// The question as sent to a forwarder: a new ID, recursion desired, EDNS with our size.
pub fn upstream_query(query: &Message, id: u16) -> Vec<u8> {
    let mut out = Message::query();
    out.metadata.id = id;
    out.metadata.recursion_desired = true;
    out.metadata.checking_disabled = query.metadata.checking_disabled;
    out.add_queries(query.queries.iter().cloned());
    out.set_edns(our_edns(
        query.edns.as_ref().is_some_and(|e| e.flags().dnssec_ok),
    ));
    out.to_vec().unwrap_or_default()
}

/// The OPT record Serval sends: version 0, its payload size, the DO bit as given.
fn our_edns(dnssec_ok: bool) -> Edns {
    let mut edns = Edns::new();
    edns.set_max_payload(EDNS_PAYLOAD);
    edns.set_dnssec_ok(dnssec_ok);
    edns
}

fn same_questions(a: &[Query], b: &[Query]) -> bool {
    a.len() == b.len()
        && a.iter().zip(b).all(|(x, y)| {
            x.query_type() == y.query_type()
                && x.query_class() == y.query_class()
                && x.name().to_lowercase() == y.name().to_lowercase()
        })
}

fn cidr_allows(allow: &[Cidr], client: IpAddr) -> bool {
    allow.iter().any(|block| block.contains(client))
}

fn add_ede(reply: &mut Message, code: u16, text: &str) {
    let Some(edns) = reply.edns.as_mut() else {
        return;
    };
    // hickory 0.26 has no typed EDE: the option is the info code then UTF-8 text (RFC 8914 2).
    let mut data = code.to_be_bytes().to_vec();
    data.extend_from_slice(text.as_bytes());
    edns.options_mut()
        .insert(EdnsOption::Unknown(EdnsCode::from(EDE).into(), data));
}

/// Largest answer for this client: its EDNS size (at most ours, at least 512) over UDP.
fn udp_limit(query: &Message, transport: Transport) -> usize {
    match transport {
        Transport::Tcp => usize::from(u16::MAX),
        Transport::Udp => match &query.edns {
            Some(e) => usize::from(e.max_payload().clamp(512, EDNS_PAYLOAD)),
            None => 512,
        },
    }
}

/// Encodes `reply`, truncated (TC set, records dropped) when it exceeds `limit`.
fn encode(reply: Message, limit: usize) -> Vec<u8> {
    match reply.to_vec() {
        Ok(bytes) if bytes.len() <= limit => bytes,
        Ok(_) => reply.truncate().to_vec().unwrap_or_default(),
        Err(_) => {
            let mut fail = Message::response(reply.metadata.id, reply.metadata.op_code);
            fail.metadata.response_code = ResponseCode::ServFail;
            fail.to_vec().unwrap_or_default()
        }
    }
}

/// FORMERR for a packet that does not parse: its ID and opcode, no question (RFC 1035 4.1.1).
fn format_error(packet: &[u8]) -> Vec<u8> {
    let mut reply = vec![0u8; 12];
    reply[..2].copy_from_slice(&packet[..2]);
    // QR, the request's opcode and RD; RCODE 1.
    reply[2] = 0x80 | (packet[2] & 0x79);
    reply[3] = 0x01;
    reply
}

#[cfg(test)]
mod tests;
