//! A throwaway server for manual checks with third-party tools:
//! `cargo run -p serval-calendar --example caldav_serve -- 127.0.0.1:8008` (users ann, bob; password
//! "correct horse"). Data lives in a temp dir removed on exit, or in the directory given as
//! the second argument (kept, so a restart finds it: the kill -9 test uses this).

use serval_calendar::CalendarConfig;
use serval_core::config::{DirectoryConfig, Listen};
use serval_core::directory::NewUser;
use serval_core::{Directory, Store};

#[tokio::main]
async fn main() {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8008".into());
    let temp = tempfile::tempdir().expect("tempdir");
    let data_dir = std::env::args()
        .nth(2)
        .map_or_else(|| temp.path().to_path_buf(), std::path::PathBuf::from);
    let store = Store::open(&data_dir.join("serval.db")).expect("store");
    let directory = Directory::new(store.clone(), &DirectoryConfig::default());
    for (name, email) in [("ann", "ann@example.com"), ("bob", "bob@example.com")] {
        if directory.user(name).ok().flatten().is_some() {
            continue;
        }
        directory
            .add_user(&NewUser {
                name,
                password: Some("correct horse"),
                full_name: name,
                email,
                kind: None,
            })
            .expect("user");
    }
    let mut registry = prometheus_client::registry::Registry::default();
    let shutdown = tokio_util::sync::CancellationToken::new();
    let ctx = serval_core::service::StartContext {
        data_dir: data_dir.clone(),
        engine: serval_core::store::Engine::Sqlite(store),
        directory,
        metrics: &mut registry,
        tls: None,
        tls_not_after: None,
        shutdown: shutdown.clone(),
    };
    let config = CalendarConfig {
        listen: Listen(vec![addr.parse().expect("address")]),
        ..CalendarConfig::default()
    };
    let running = serval_calendar::bind(ctx, config).await.expect("bind");
    println!("listening on http://{}", running.listen_addrs()[0]);
    let _ = tokio::signal::ctrl_c().await;
    shutdown.cancel();
    running.wait().await;
}
