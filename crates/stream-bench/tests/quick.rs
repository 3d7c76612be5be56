//! The load client against a real Serval streaming service started in-process on loopback:
//! ten sessions (five UDP, five TCP interleaved) must all be held with no loss. This is the
//! benchmark's smoke check that needs no `serval` binary; `serval bench stream --quick` runs the
//! same client against the binary.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::registry::Registry;
use serval_core::config::{DirectoryConfig, Listen};
use serval_core::service::{RunningService, StartContext};
use serval_core::{Directory, Store};
use serval_stream::config::PortRange;
use serval_stream::StreamConfig;
use serval_stream_bench::{run_step, StepSpec, Target, TransportMix};
use serval_stream_media::testing;
use tokio_util::sync::CancellationToken;

/// A Serval streaming service with one movie, stopped on drop.
struct InProcessServer {
    addr: SocketAddr,
    service: Arc<dyn RunningService>,
    shutdown: CancellationToken,
    runtime: tokio::runtime::Runtime,
    _data_dir: tempfile::TempDir,
}

impl InProcessServer {
    fn start(movie: &std::path::Path) -> InProcessServer {
        let data_dir = tempfile::tempdir().expect("temp dir");
        let media_dir = data_dir.path().join("media");
        std::fs::create_dir_all(&media_dir).expect("media dir");
        std::fs::copy(movie, media_dir.join("bench.mp4")).expect("copy movie");
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("server runtime");
        let mut registry = Registry::default();
        let shutdown = CancellationToken::new();
        let store = Store::open(&data_dir.path().join("serval.db")).expect("store");
        let directory = Directory::new(store.clone(), &DirectoryConfig::default());
        // Parallel test binaries each need a free RTP pair: bind() walks the range past ports in use.
        let base = 40_000 + 2 * u16::try_from(std::process::id() % 5_000).unwrap_or(0);
        let config = StreamConfig {
            listen: Listen(vec!["127.0.0.1:0".parse().expect("addr")]),
            media_dir: media_dir.clone(),
            rtp_ports: PortRange {
                first: base,
                last: base + 63,
            },
            ..StreamConfig::default()
        };
        let ctx = StartContext {
            data_dir: data_dir.path().to_path_buf(),
            engine: serval_core::store::Engine::Sqlite(store),
            directory,
            metrics: &mut registry,
            tls: None,
            tls_not_after: None,
            shutdown: shutdown.clone(),
        };
        let service = runtime
            .block_on(serval_stream::bind(ctx, config))
            .expect("bind stream service");
        let addr = service.listen_addrs()[0];
        InProcessServer {
            addr,
            service,
            shutdown,
            runtime,
            _data_dir: data_dir,
        }
    }
}

impl Drop for InProcessServer {
    fn drop(&mut self) {
        self.shutdown.cancel();
        let wait = self.service.wait();
        let _ = self
            .runtime
            .block_on(async { tokio::time::timeout(Duration::from_secs(5), wait).await });
    }
}

fn target(server: &InProcessServer) -> Target {
    Target {
        peer: "serval".into(),
        url: format!("rtsp://{}/bench.mp4", server.addr),
        server: server.addr,
        // The server shares this process: CPU and RSS are measured but include the client.
        pid: Some(std::process::id()),
        idle_rss: None,
    }
}

#[test]
fn ten_mixed_sessions_are_held_without_loss() {
    // 6 s movie: a 3 s hold after a 0.1 s ramp ends well before the movie does.
    let movie = testing::H264_AAC.path();
    let server = InProcessServer::start(&movie);
    let spec = StepSpec {
        sessions: 10,
        transport: TransportMix::Mixed,
        hold: Duration::from_secs(3),
        ramp_rate: 100,
        receiver_threads: 1,
        perf_data: None,
    };
    let row = run_step(&target(&server), &spec).expect("step runs");
    assert_eq!(row.held, 10, "{row:?}");
    assert_eq!(row.failed, 0, "{row:?}");
    assert_eq!(row.lost, 0, "{row:?}");
    assert_eq!(row.loss_pct, 0.0, "{row:?}");
    assert!(row.note.is_empty(), "{row:?}");
    // H.264 320x240 + 96 kbit/s AAC: each session delivers well over 50 kbit/s.
    assert!(row.delivered_mbit_s > 10.0 * 0.05, "{row:?}");
    assert!(row.packets > 10 * 2 * 50, "{row:?}");
    assert!(
        row.first_packet_p99_ms > 0.0 && row.first_packet_p99_ms < 2_000.0,
        "{row:?}"
    );
    assert!(
        row.server_cpu_pct.is_some() && row.server_rss_mib.is_some(),
        "{row:?}"
    );
}

#[test]
fn missing_movie_fails_every_session_with_the_status() {
    let movie = testing::H264_AAC.path();
    let server = InProcessServer::start(&movie);
    let mut target = target(&server);
    target.url = format!("rtsp://{}/missing.mp4", server.addr);
    let spec = StepSpec {
        sessions: 3,
        transport: TransportMix::Udp,
        hold: Duration::from_millis(200),
        ramp_rate: 100,
        receiver_threads: 1,
        perf_data: None,
    };
    let row = run_step(&target, &spec).expect("step runs");
    assert_eq!((row.held, row.failed, row.packets), (0, 3, 0), "{row:?}");
    assert_eq!(row.note, "3x DESCRIBE answered 404", "{row:?}");
}

#[test]
fn gst_rtsp_server_peer_serves_the_same_client() {
    // The reference peer must run wherever the benchmark runs: a missing package fails here,
    // naming it, rather than leaving an empty column.
    let movie = testing::H264_AAC.path();
    let peer =
        serval_stream_bench::peers::start_gst(&movie, None).unwrap_or_else(|e| panic!("{e}"));
    assert!(peer.target.idle_rss.is_some());
    let spec = StepSpec {
        sessions: 4,
        transport: TransportMix::Mixed,
        hold: Duration::from_secs(2),
        ramp_rate: 100,
        receiver_threads: 1,
        perf_data: None,
    };
    let row = run_step(&peer.target, &spec).expect("step runs");
    assert_eq!((row.held, row.lost), (4, 0), "{row:?}\n{}", peer.log_tail());
    assert!(row.cpu_s_per_gbit.is_some_and(|c| c > 0.0), "{row:?}");
}
