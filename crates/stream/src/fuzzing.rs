//! Entry points for `cargo fuzz` (`fuzz/fuzz_targets/{rtsp_request,http_tunnel,qtaccess,qtusers}.rs`)
//! and for the unit tests that run the same bodies over seed inputs. Not an API: hidden from the
//! docs.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use crate::library::{Catalog, CatalogError, Presentation};
use crate::rtp::rtcp;
use crate::rtsp::framing::{decode, Decoded};
use crate::rtsp::handler::{response_bytes, Connection, RtspServer, ServerSettings};
use crate::rtsp::range::NptRange;
use crate::rtsp::transport::requested_transport;

/// Units decoded from one input at most; the input is small, this bounds pathological loops.
const MAX_UNITS: usize = 1024;

struct NoMovies;

impl Catalog for NoMovies {
    fn open(&self, url_path: &str) -> Result<Arc<dyn Presentation>, CatalogError> {
        Err(CatalogError::NotFound(url_path.chars().take(64).collect()))
    }
}

/// An access gate over a throwaway directory, so `Authorization` headers and rule matching
/// are fuzzed too: `/private/` needs a valid user by Digest (Basic would run argon2 on every
/// input and slow the fuzzer to a crawl). `None` if the directory cannot be created.
fn fuzz_gate() -> Option<crate::access::gate::AccessGate> {
    use crate::access::policy::{AccessPolicy, AccessRuleConfig};
    static DIRECTORY: std::sync::OnceLock<Option<serval_core::Directory>> =
        std::sync::OnceLock::new();
    let directory = DIRECTORY
        .get_or_init(|| {
            // One fixed folder, reused by every run, so fuzzing and unit tests leave no litter.
            let dir = std::env::temp_dir().join("serval-fuzz-directory");
            std::fs::create_dir_all(&dir).ok()?;
            let store = serval_core::Store::open(&dir.join("directory.db")).ok()?;
            Some(serval_core::Directory::new(
                store,
                &serval_core::config::DirectoryConfig::default(),
            ))
        })
        .clone()?;
    let rules = vec![AccessRuleConfig {
        path: "private/".into(),
        require: vec!["valid-user".into()],
        ..AccessRuleConfig::default()
    }];
    let policy = AccessPolicy::new(
        std::path::Path::new("/nonexistent/serval-fuzz-media"),
        rules,
        crate::access::AuthScheme::Digest,
    );
    Some(crate::access::gate::AccessGate::new(
        policy,
        directory,
        Vec::new(),
        Vec::new(),
    ))
}

/// Frames `data` as one connection's byte stream and serves every request it holds.
/// Must never panic, whatever the bytes.
pub fn rtsp_request(data: &[u8]) {
    let settings = ServerSettings {
        session_timeout: Duration::from_secs(60),
        unplayed_session_timeout: Duration::from_secs(20),
        max_bandwidth_bps: 1_000_000,
        udp_ports: Some((6970, 6971)),
    };
    let mut server = RtspServer::new(settings, Arc::new(NoMovies), 1);
    if let Some(gate) = fuzz_gate() {
        server = server.with_access(gate);
    }
    let peer = SocketAddr::from(([127, 0, 0, 1], 40000));
    let mut connection = Connection::new(1, peer, SocketAddr::from(([127, 0, 0, 1], 554)));
    let now = Instant::now();
    let mut rest = data;
    for _ in 0..MAX_UNITS {
        let Ok(decoded) = decode(rest) else { return };
        let consumed = decoded.consumed();
        match decoded {
            Decoded::NeedMore => return,
            Decoded::Request { request, .. } => {
                let _ = requested_transport(&request);
                if let Some(range) = request.header(&rtsp_types::headers::RANGE) {
                    let _ = NptRange::parse(range.as_str());
                }
                let (response, _) =
                    server.handle_request(&mut connection, now, SystemTime::UNIX_EPOCH, &request);
                let _ = response_bytes(&response);
            }
            Decoded::Interleaved {
                channel, payload, ..
            } => {
                let _ = rtcp::report_blocks(payload);
                server.interleaved(&connection, now, channel, payload);
            }
            Decoded::Rejected { .. } | Decoded::Skip { .. } => {}
        }
        if consumed == 0 {
            return;
        }
        rest = rest.get(consumed..).unwrap_or_default();
    }
}

/// Classifies `data` as a connection's first bytes and, for a tunnel POST, decodes the rest as
/// its base64 body in two pieces split at the first input byte's value. Must never panic.
pub fn http_tunnel(data: &[u8]) {
    use crate::tunnel::{classify, Base64Stream, Classified};
    let body = match classify(data) {
        Ok(Classified::Tunnel { consumed, .. }) => data.get(consumed..).unwrap_or_default(),
        Ok(_) | Err(_) => data,
    };
    let split = usize::from(data.first().copied().unwrap_or(0)).min(body.len());
    let (first, second) = body.split_at(split);
    let mut decoder = Base64Stream::new();
    let mut out = bytes::BytesMut::new();
    if decoder.push(first, &mut out).is_ok() {
        let _ = decoder.push(second, &mut out);
    }
    // Four base64 characters make at most three bytes.
    assert!(out.len() <= body.len());
}

/// Parses `data` as a `qtaccess` rule file. Must never panic.
pub fn qtaccess(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    if let Ok(rules) = crate::access::qtaccess::parse_qtaccess(&text) {
        assert!(
            rules.read.len() + rules.write.len() <= 2 * crate::access::qtaccess::MAX_PRINCIPALS
        );
    }
}

/// Parses `data` as a `qtusers` file and as a `qtgroups` file. Must never panic.
pub fn qtusers(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    if let Ok(file) = crate::access::qtusers::parse_qtusers(&text) {
        assert!(file.users.iter().all(|u| u.md5_ha1.len() == 32));
    }
    let _ = crate::access::qtusers::parse_qtgroups(&text);
}

#[cfg(test)]
mod access_seed_tests {
    use super::*;

    const TUNNEL_SEEDS: &[&[u8]] = &[
        b"GET /a.mp4 HTTP/1.0\r\nx-sessioncookie: 6b8b4567\r\nAccept: application/x-rtsp-tunnelled\r\n\r\n",
        b"POST /a.mp4 HTTP/1.0\r\nx-sessioncookie: 6b8b4567\r\nContent-Length: 32767\r\n\r\nT1BUSU9OUyAqIFJUU1AvMS4wDQoNCg==",
        b"POST / HTTP/1.1\r\nx-sessioncookie: a\r\n\r\n====AAAA\r\nA=A=",
        b"GET_PARAMETER rtsp://h/a RTSP/1.0\r\n",
        b"GET / HTTP/1.0\r\nx-sessioncookie: \xff\r\n\r\n",
    ];
    const QTACCESS_SEEDS: &[&[u8]] = &[
        b"AuthName \"Staff\"\nAuthScheme digest\nAuthUserFile /x\nrequire group staff\n<Limit WRITE>\nrequire user bob\n</Limit>\n",
        b"<Limit READ WRITE>\nrequire valid-user\n</Limit>\nrequire any-user\n",
        b"<><Limit>\n</Limit\nrequire  \t user\n\xff\xfe",
    ];
    const QTUSERS_SEEDS: &[&[u8]] = &[
        b"realm Streaming Server\nbob:AbCdEfGhIjKlM:0123456789abcdef0123456789abcdef\n",
        b"staff: alice bob\nbroadcaster:\n",
        b"realm \"x\"\n::::\n\xc3\x28:x:0123456789abcdef0123456789abcdeF\n",
    ];

    fn each_prefix(seeds: &[&[u8]], body: fn(&[u8])) {
        for seed in seeds {
            for end in 0..=seed.len() {
                body(&seed[..end]);
            }
        }
    }

    #[test]
    fn access_and_tunnel_seeds_do_not_panic() {
        each_prefix(TUNNEL_SEEDS, http_tunnel);
        each_prefix(QTACCESS_SEEDS, qtaccess);
        each_prefix(QTUSERS_SEEDS, qtusers);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Seeds: real client requests and known-nasty inputs. The fuzzer's findings join this list.
    const SEEDS: &[&[u8]] = &[
        b"OPTIONS rtsp://127.0.0.1:8554/movie.mp4 RTSP/1.0\r\nCSeq: 1\r\nUser-Agent: Lavf59.27.100\r\n\r\n",
        b"DESCRIBE rtsp://h/movie.mp4 RTSP/1.0\r\nAccept: application/sdp\r\nCSeq: 2\r\n\r\n",
        b"SETUP rtsp://h/movie.mp4/trackID=1 RTSP/1.0\r\nTransport: RTP/AVP/UDP;unicast;client_port=35000-35001\r\nCSeq: 3\r\n\r\n",
        b"SETUP rtsp://h/m/trackID=1 RTSP/1.0\r\nCSeq: 3\r\nTransport: RTP/AVP/TCP;unicast;interleaved=255-255\r\n\r\n",
        b"PLAY rtsp://h/m/ RTSP/1.0\r\nCSeq: 4\r\nSession: 1\r\nRange: npt=99999999999999999999.5-\r\nScale: nan\r\n\r\n",
        b"$\x01\x00\x08\x81\xc9\x00\x07\x00\x00\x00\x00",
        b"$\x00\xff\xff",
        b"SET_PARAMETER * RTSP/1.0\r\nCSeq: 5\r\nContent-Length: 3\r\n\r\nabc",
        b"SET_PARAMETER * RTSP/1.0\r\nCSeq: 5\r\nContent-Length: 18446744073709551616\r\n\r\n",
        b"\r\n\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n",
        b"OPTIONS * RTSP/1.0\r\nCSeq: \xff\xfe\r\nSession: \xc3\x28;timeout=-1\r\n\r\n",
        b"TEARDOWN rtsp://h/m RTSP/1.0\r\nCSeq: 1\r\nSession: ;;;\r\n\r\n",
        b"PLAY rtsp://[::1 RTSP/1.0\r\nCSeq: 1\r\n\r\n",
        b"SETUP rtsp://h/m/trackID=4294967296 RTSP/1.0\r\nCSeq: 1\r\nTransport: RTP/AVP;unicast;client_port=0-0\r\n\r\n",
        b"DESCRIBE rtsp://h/private/m.mp4 RTSP/1.0\r\nCSeq: 2\r\n\r\n",
        b"DESCRIBE rtsp://h/private/m.mp4 RTSP/1.0\r\nCSeq: 3\r\nAuthorization: Digest username=\"bob\", realm=\"Serval\", nonce=\"6560a1b2.00112233445566778899aabbccddeeff\", uri=\"rtsp://h/private/m.mp4\", response=\"0123456789abcdef0123456789abcdef\"\r\n\r\n",
        b"PLAY rtsp://h/private/%2e%2e/m.mp4/ RTSP/1.0\r\nCSeq: 4\r\nSession: 1\r\nAuthorization: Basic Ym9iOnNlY3JldA==\r\n\r\n",
        b"SETUP rtsp://h/private/m/trackID=1 RTSP/1.0\r\nCSeq: 5\r\nAuthorization: Digest username=\"\\\", nonce=\"\r\n\r\n",
    ];

    #[test]
    fn seeds_do_not_panic() {
        for seed in SEEDS {
            rtsp_request(seed);
            // Every prefix too: a connection may stop anywhere.
            for end in 0..seed.len() {
                rtsp_request(&seed[..end]);
            }
        }
    }

    #[test]
    fn arbitrary_bytes_do_not_panic() {
        // A cheap stand-in for the fuzzer in `cargo test`: deterministic pseudo-random mutations
        // of the seeds (xorshift), thousands of inputs in well under a second.
        let mut state = 0x2545_F491_4F6C_DD1Du64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for round in 0..3000 {
            let seed = SEEDS[round % SEEDS.len()];
            let mut input = seed.to_vec();
            for _ in 0..(next() % 8) {
                let len = input.len().max(1);
                let at = usize::try_from(next() % u64::try_from(len).unwrap()).unwrap();
                match next() % 3 {
                    0 if at < input.len() => input[at] = next().to_le_bytes()[0],
                    1 => input.insert(at.min(input.len()), next().to_le_bytes()[0]),
                    _ if at < input.len() => {
                        input.remove(at);
                    }
                    _ => {}
                }
            }
            rtsp_request(&input);
        }
    }
}
