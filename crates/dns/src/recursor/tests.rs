//! The walk against a scripted Internet: each server is a function from question to reply.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use hickory_proto::op::{Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::rdata::{A, CNAME, NS, SOA};
use hickory_proto::rr::{Name, RData, Record, RecordType};

use super::roots::RootServer;
use super::upstream::{AskError, Upstream};
use super::{ede, Recursor, RecursorConfig};

type Server = Box<dyn Fn(&Message) -> Message + Send + Sync>;

/// A fake Internet: servers by address, a switch to take any of them down, and a count of
/// questions asked.
#[derive(Default)]
struct World {
    servers: HashMap<IpAddr, Server>,
    down: Mutex<Vec<IpAddr>>,
    asked: AtomicUsize,
    refuse_network: AtomicBool,
}

struct WorldUpstream(Arc<World>);

impl Upstream for WorldUpstream {
    fn ask(
        &self,
        server: SocketAddr,
        query: Vec<u8>,
        _id: u16,
        _t: Duration,
    ) -> BoxFuture<'static, Result<Vec<u8>, AskError>> {
        let world = self.0.clone();
        Box::pin(async move {
            world.asked.fetch_add(1, Ordering::SeqCst);
            if world.refuse_network.load(Ordering::SeqCst) {
                return Err(AskError::Network("connection refused".into()));
            }
            if world.down.lock().unwrap().contains(&server.ip()) {
                return Err(AskError::Timeout);
            }
            let Some(handler) = world.servers.get(&server.ip()) else {
                return Err(AskError::Timeout);
            };
            let query = Message::from_vec(&query).unwrap();
            Ok(handler(&query).to_vec().unwrap())
        })
    }
}

fn name(text: &str) -> Name {
    Name::from_ascii(text).unwrap()
}

fn ip(last: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(192, 0, 2, last))
}

fn a(owner: &str, last: u8, ttl: u32) -> Record {
    Record::from_rdata(
        name(owner),
        ttl,
        RData::A(A(Ipv4Addr::new(192, 0, 2, last))),
    )
}

fn ns(owner: &str, target: &str) -> Record {
    Record::from_rdata(name(owner), 3600, RData::NS(NS(name(target))))
}

fn soa(owner: &str) -> Record {
    Record::from_rdata(
        name(owner),
        300,
        RData::SOA(SOA::new(name("ns.test."), name("h.test."), 1, 1, 1, 1, 60)),
    )
}

fn response(query: &Message) -> Message {
    let mut m = Message::response(query.metadata.id, OpCode::Query);
    m.metadata.message_type = MessageType::Response;
    m.add_queries(query.queries.iter().cloned());
    m
}

/// root (192.0.2.1) -> test. (192.0.2.2) -> example.test. (192.0.2.3, in-zone glue) with
/// www A, alias CNAME www, and nothing else; other.test. is delegated glueless to
/// ns.example.test.
fn world() -> World {
    let mut world = World::default();
    world.servers.insert(
        ip(1),
        Box::new(|q| {
            let mut m = response(q);
            let qname = q.queries[0].name().to_lowercase();
            if qname.is_root() && q.queries[0].query_type() == RecordType::NS {
                m.metadata.authoritative = true;
                m.answers.push(ns(".", "a.root.test."));
                m.additionals.push(a("a.root.test.", 1, 3600));
                return m;
            }
            m.authorities.push(ns("test.", "ns.test."));
            m.additionals.push(a("ns.test.", 2, 3600));
            m
        }),
    );
    world.servers.insert(
        ip(2),
        Box::new(|q| {
            let mut m = response(q);
            let qname = q.queries[0].name().to_lowercase();
            if name("other.test.").zone_of(&qname) {
                m.authorities.push(ns("other.test.", "ns.example.test."));
            } else if name("example.test.").zone_of(&qname) {
                m.authorities.push(ns("example.test.", "ns.example.test."));
                m.additionals.push(a("ns.example.test.", 3, 3600));
            } else {
                m.metadata.authoritative = true;
                m.metadata.response_code = ResponseCode::NXDomain;
                m.authorities.push(soa("test."));
            }
            m
        }),
    );
    world.servers.insert(
        ip(3),
        Box::new(|q| {
            let mut m = response(q);
            m.metadata.authoritative = true;
            let qname = q.queries[0].name().to_lowercase();
            let qtype = q.queries[0].query_type();
            let text = qname.to_ascii();
            match (text.as_str(), qtype) {
                ("www.example.test.", RecordType::A) => {
                    m.answers.push(a("www.example.test.", 80, 60))
                }
                ("ns.example.test.", RecordType::A) => {
                    m.answers.push(a("ns.example.test.", 3, 3600))
                }
                ("alias.example.test.", _) => {
                    m.answers.push(Record::from_rdata(
                        qname.clone(),
                        60,
                        RData::CNAME(CNAME(name("www.example.test."))),
                    ));
                }
                ("www.other.test.", RecordType::A) => m.answers.push(a("www.other.test.", 81, 60)),
                ("example.test." | "www.example.test." | "ns.example.test." | "other.test.", _) => {
                    m.authorities.push(soa("example.test."))
                }
                _ => {
                    m.metadata.response_code = ResponseCode::NXDomain;
                    m.authorities.push(soa("example.test."));
                }
            }
            m
        }),
    );
    world
}

fn recursor(world: World, data_dir: &std::path::Path) -> (Arc<World>, Arc<Recursor>) {
    let world = Arc::new(world);
    let recursor = Recursor::new(
        Arc::new(WorldUpstream(world.clone())),
        RecursorConfig {
            data_dir: data_dir.to_owned(),
            hints: vec![RootServer {
                name: "a.root.test.".into(),
                addresses: vec![ip(1)],
            }],
            serve_stale: true,
            allow_loopback: false,
            port: 53,
            dnssec: false,
            anchors: super::dnssec::Anchors::compiled(),
            cache_bytes: super::CACHE_BYTES,
        },
    );
    (world, Arc::new(recursor))
}

#[tokio::test]
async fn walks_from_the_root_and_then_answers_from_the_cache() {
    let dir = tempfile::tempdir().unwrap();
    let (world, recursor) = recursor(world(), dir.path());
    let got = recursor
        .answer(&name("www.example.test."), RecordType::A)
        .await;
    assert_eq!(got.code, ResponseCode::NoError, "{got:?}");
    assert_eq!(got.answers, vec![a("www.example.test.", 80, 60)]);
    let asked = world.asked.load(Ordering::SeqCst);
    let again = recursor
        .answer(&name("WWW.example.test."), RecordType::A)
        .await;
    assert_eq!(again.answers.len(), 1);
    assert_eq!(
        world.asked.load(Ordering::SeqCst),
        asked,
        "second answer from the cache"
    );
    // A sibling name starts at the cached example.test. servers: one question.
    let missing = recursor
        .answer(&name("nope.example.test."), RecordType::A)
        .await;
    assert_eq!(missing.code, ResponseCode::NXDomain);
    assert_eq!(missing.authorities.len(), 1);
    assert_eq!(world.asked.load(Ordering::SeqCst), asked + 1);
}

#[tokio::test]
async fn follows_cnames_and_glueless_delegations() {
    let dir = tempfile::tempdir().unwrap();
    let (_, recursor) = recursor(world(), dir.path());
    let got = recursor
        .answer(&name("alias.example.test."), RecordType::A)
        .await;
    assert_eq!(got.code, ResponseCode::NoError, "{got:?}");
    assert_eq!(got.answers.len(), 2);
    assert_eq!(got.answers[1], a("www.example.test.", 80, 60));
    let glueless = recursor
        .answer(&name("www.other.test."), RecordType::A)
        .await;
    assert_eq!(
        glueless.answers,
        vec![a("www.other.test.", 81, 60)],
        "{glueless:?}"
    );
    let nodata = recursor
        .answer(&name("www.example.test."), RecordType::MX)
        .await;
    assert_eq!(nodata.code, ResponseCode::NoError);
    assert!(nodata.answers.is_empty());
    assert_eq!(nodata.authorities.len(), 1);
}

#[tokio::test]
async fn a_dead_authority_fails_with_a_reason_and_stale_data_is_served() {
    let dir = tempfile::tempdir().unwrap();
    let (world, recursor) = recursor(world(), dir.path());
    let started = std::time::Instant::now();
    world.down.lock().unwrap().push(ip(3));
    let failed = recursor
        .answer(&name("www.example.test."), RecordType::A)
        .await;
    assert_eq!(failed.code, ResponseCode::ServFail);
    let (code, text) = failed.ede.clone().unwrap();
    assert_eq!(code, ede::NO_REACHABLE_AUTHORITY, "{text}");
    assert!(text.contains("example.test"), "{text}");
    assert!(started.elapsed() < Duration::from_secs(10));
    world.down.lock().unwrap().clear();
    let fresh = recursor
        .answer(&name("www.example.test."), RecordType::A)
        .await;
    assert_eq!(fresh.code, ResponseCode::NoError);
    // Expired (the test moves nothing in time: a TTL of 1 s and a sleep).
    world.down.lock().unwrap().push(ip(3));
    recursor.cache.lock().unwrap().put_records(
        vec![a("www.example.test.", 80, 1)],
        std::time::Instant::now(),
    );
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let stale = recursor
        .answer(&name("www.example.test."), RecordType::A)
        .await;
    assert_eq!(stale.code, ResponseCode::NoError, "{stale:?}");
    assert_eq!(stale.answers[0].ttl, super::cache::STALE_TTL);
    assert_eq!(stale.ede.unwrap().0, ede::STALE_ANSWER);
}

#[tokio::test]
async fn priming_is_kept_and_preferred_at_the_next_start() {
    let dir = tempfile::tempdir().unwrap();
    let (_, recursor) = recursor(world(), dir.path());
    let servers = recursor.prime().await.unwrap();
    assert_eq!(servers[0].name, "a.root.test.");
    // A restart whose hints are all dead still starts from the kept set.
    let world = Arc::new(world());
    let restarted = Recursor::new(
        Arc::new(WorldUpstream(world)),
        RecursorConfig {
            data_dir: dir.path().to_owned(),
            hints: vec![RootServer {
                name: "dead.hint.test.".into(),
                addresses: vec![ip(99)],
            }],
            serve_stale: true,
            allow_loopback: false,
            port: 53,
            dnssec: false,
            anchors: super::dnssec::Anchors::compiled(),
            cache_bytes: super::CACHE_BYTES,
        },
    );
    assert_eq!(restarted.root_servers()[0].addresses, vec![ip(1)]);
    let got = Arc::new(restarted)
        .answer(&name("www.example.test."), RecordType::A)
        .await;
    assert_eq!(got.code, ResponseCode::NoError);
}

#[tokio::test]
async fn refused_connections_are_a_network_error() {
    let dir = tempfile::tempdir().unwrap();
    let (world, recursor) = recursor(world(), dir.path());
    world.refuse_network.store(true, Ordering::SeqCst);
    let failed = recursor
        .answer(&name("www.example.test."), RecordType::A)
        .await;
    assert_eq!(failed.ede.unwrap().0, ede::NETWORK_ERROR);
}
