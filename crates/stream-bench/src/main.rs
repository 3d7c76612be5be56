//! Standalone `serval-stream-bench` for development; `serval bench stream` runs the same code.

use std::process::ExitCode;

use clap::Parser;
use serval_stream_bench::StreamBenchArgs;

#[derive(Parser)]
#[command(
    name = "serval-stream-bench",
    about = "Streaming load benchmark: Serval and gst-rtsp-server side by side"
)]
struct Cli {
    #[command(flatten)]
    args: StreamBenchArgs,
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    match serval_stream_bench::run(Cli::parse().args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
