//! The dependency rules of ARCHITECTURE.md, checked over `cargo metadata`: service crates never
//! depend on each other, core depends on no service, pure media crates pull in no runtime.

use std::collections::HashMap;

fn workspace_deps() -> HashMap<String, Vec<String>> {
    let out = std::process::Command::new(env!("CARGO"))
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo metadata runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    meta["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            let deps = p["dependencies"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|d| d["kind"].is_null())
                .map(|d| d["name"].as_str().unwrap().to_string())
                .collect();
            (p["name"].as_str().unwrap().to_string(), deps)
        })
        .collect()
}

const SERVICES: &[&str] = &[
    "serval-stream",
    "serval-calendar",
    "serval-web",
    "serval-dns",
    "serval-mail",
];

#[test]
fn service_crates_never_depend_on_each_other() {
    let deps = workspace_deps();
    for service in SERVICES {
        let of = &deps[*service];
        for other in SERVICES.iter().filter(|o| *o != service) {
            assert!(
                !of.contains(&other.to_string()),
                "{service} depends on {other}"
            );
        }
    }
}

#[test]
fn core_depends_on_no_service() {
    let deps = workspace_deps();
    for service in SERVICES.iter().chain(&["serval-stream-media"]) {
        assert!(
            !deps["serval-core"].contains(&service.to_string()),
            "core depends on {service}"
        );
    }
}

#[test]
fn media_layer_is_pure() {
    let deps = workspace_deps();
    for forbidden in ["tokio", "serval-core", "rusqlite"] {
        assert!(
            !deps["serval-stream-media"].contains(&forbidden.to_string()),
            "stream-media depends on {forbidden}"
        );
    }
}
