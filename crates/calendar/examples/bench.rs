//! Runs the calendar benchmark against a fresh in-process server:
//! `cargo run --release -p serval-calendar --example bench -- 10000`, or against another
//! server: `... --example bench -- 2000 http://127.0.0.1:5232/bench/bench/ bench x`.

use serval_calendar::CalendarConfig;
use serval_core::config::{DirectoryConfig, Listen};
use serval_core::directory::NewUser;
use serval_core::{Directory, Store};

#[tokio::main]
async fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(10_000);
    // `bench N URL USER PASSWORD` measures another server (e.g. Radicale) the same way.
    if let Some(url) = std::env::args().nth(2) {
        let user = std::env::args().nth(3).unwrap_or_default();
        let password = std::env::args().nth(4).unwrap_or_default();
        let report = serval_calendar::bench::bench_collection(&url, &user, &password, n)
            .await
            .expect("bench");
        println!("{report}");
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(&dir.path().join("serval.db")).expect("store");
    let directory = Directory::new(store.clone(), &DirectoryConfig::default());
    directory
        .add_user(&NewUser {
            name: "bench",
            password: Some("bench-password"),
            full_name: "Bench",
            email: "bench@example.com",
            kind: None,
        })
        .expect("user");
    let mut registry = prometheus_client::registry::Registry::default();
    let shutdown = tokio_util::sync::CancellationToken::new();
    let ctx = serval_core::service::StartContext {
        data_dir: dir.path().to_path_buf(),
        engine: serval_core::store::Engine::Sqlite(store),
        directory,
        metrics: &mut registry,
        tls: None,
        tls_not_after: None,
        shutdown: shutdown.clone(),
    };
    let config = CalendarConfig {
        listen: Listen(vec!["127.0.0.1:0".parse().expect("addr")]),
        ..CalendarConfig::default()
    };
    let running = serval_calendar::bind(ctx, config).await.expect("bind");
    let base = format!("http://{}", running.listen_addrs()[0]);
    let report = serval_calendar::bench::bench(&base, "bench", "bench-password", "bench", n)
        .await
        .expect("bench");
    println!("{report}");
    if let Some(rss) = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS"))
                .map(str::to_owned)
        })
    {
        println!("server+client {rss}");
    }
    shutdown.cancel();
    running.wait().await;
}
