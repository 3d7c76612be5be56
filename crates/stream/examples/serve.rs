//! Serves a folder over RTSP for manual checks and load tests:
//! `cargo run -p serval-stream --example serve -- <media_dir> [listen] [rtp_ports]`.

use std::time::Duration;

use prometheus_client::registry::Registry;
use serval_core::config::{DirectoryConfig, Listen};
use serval_core::service::StartContext;
use serval_core::{Directory, Store};
use serval_stream::config::PortRange;
use serval_stream::StreamConfig;
use tokio_util::sync::CancellationToken;

#[tokio::main]
async fn main() {
    tracing_subscriber_init();
    let args: Vec<String> = std::env::args().collect();
    let media_dir = args
        .get(1)
        .map(std::path::PathBuf::from)
        .expect("usage: serve <media_dir> [listen] [rtp_ports]");
    let listen = args.get(2).map_or("127.0.0.1:8554", String::as_str);
    let rtp_ports: PortRange = args
        .get(3)
        .map_or("6970-6999", String::as_str)
        .to_owned()
        .try_into()
        .expect("rtp_ports");
    let data_dir = tempfile::tempdir().expect("temp dir");
    let store = Store::open(&data_dir.path().join("serval.db")).expect("store");
    let directory = Directory::new(store.clone(), &DirectoryConfig::default());
    let mut registry = Registry::default();
    let shutdown = CancellationToken::new();
    let config = StreamConfig {
        listen: Listen(vec![listen.parse().expect("listen address")]),
        media_dir: std::fs::canonicalize(&media_dir).expect("media dir"),
        rtp_ports,
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
    let service = serval_stream::bind(ctx, config).await.expect("bind");
    println!(
        "serving {} on {:?}; access log in {}",
        media_dir.display(),
        service.listen_addrs(),
        data_dir.path().display()
    );
    let _ = tokio::signal::ctrl_c().await;
    shutdown.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(5), service.wait()).await;
}

fn tracing_subscriber_init() {
    // Logs go to stderr when RUST_LOG is set; the example has no subscriber dependency otherwise.
}
