//! The standalone binary end to end where no server binary is needed: a peer that cannot start
//! still gets a row saying why, the result files are written, and `--quick` fails when Serval
//! held nothing.

use std::process::Command;

use serval_stream_media::testing;

#[test]
fn a_peer_that_cannot_start_gets_a_row_saying_why() {
    let out = tempfile::tempdir().expect("temp dir");
    let movie = testing::H264_AAC.path();
    let output = Command::new(env!("CARGO_BIN_EXE_serval-stream-bench"))
        .args([
            "--quick",
            "--peers",
            "serval",
            "--serval-bin",
            "/nonexistent/serval",
            "--movie",
        ])
        .arg(&movie)
        .arg("--out")
        .arg(out.path())
        .output()
        .expect("run the benchmark");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !output.status.success(),
        "quick must fail without Serval\n{stdout}\n{stderr}"
    );
    assert!(
        stderr.contains("quick check failed: Serval held no session"),
        "{stderr}"
    );
    assert!(
        stdout.contains("did not start: /nonexistent/serval not found"),
        "{stdout}"
    );
    for file in ["table.txt", "results.csv", "results.json", "chart.svg"] {
        assert!(out.path().join(file).is_file(), "{file} missing");
    }
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.path().join("results.json")).unwrap())
            .unwrap();
    assert_eq!(json["results"][0]["peer"], "serval");
    assert_eq!(json["results"][0]["held"], 0);
}
