//! Command-line arguments of `serval bench stream` (and the standalone `serval-stream-bench`),
//! and the plan they resolve to: which peers, which steps, which transports.

use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use clap::Args;

/// Arguments of the streaming load benchmark.
#[derive(Debug, Clone, Args)]
pub struct StreamBenchArgs {
    /// One short step (10 sessions, 5 s, half UDP half TCP): checks that the benchmark runs, not a speed.
    #[arg(long)]
    pub quick: bool,

    /// Concurrent sessions of each step, comma separated.
    #[arg(long, value_delimiter = ',', default_value = "100,250,500,1000")]
    pub sessions: Vec<u32>,

    /// Seconds each step holds all its sessions (after the ramp) before TEARDOWN.
    #[arg(long, default_value_t = 20)]
    pub seconds: u64,

    /// Transports to measure, comma separated: `udp`, `tcp` (interleaved) or `mixed` (half each).
    /// Every step runs once per transport.
    #[arg(long, value_delimiter = ',', default_value = "mixed")]
    pub transport: Vec<TransportMix>,

    /// Sessions started per second during a step's ramp.
    #[arg(long, default_value_t = 100)]
    pub ramp_rate: u32,

    /// Movie to stream; without it a 60 s ~2 Mbit/s H.264+AAC MP4 is generated with ffmpeg and cached.
    #[arg(long)]
    pub movie: Option<PathBuf>,

    /// The `serval` executable; default: `serval` next to the running executable.
    #[arg(long)]
    pub serval_bin: Option<PathBuf>,

    /// Servers to measure, comma separated: `serval`, `gst` (gst-rtsp-server).
    #[arg(long, value_delimiter = ',', default_value = "serval,gst")]
    pub peers: Vec<PeerKind>,

    /// Folder for table.txt, results.csv, results.json and chart.svg; default `bench-results/<timestamp>`.
    #[arg(long)]
    pub out: Option<PathBuf>,

    /// Record the server with `perf record -g` during the hold of each peer's largest step and
    /// write `perf-<peer>-<transport>-<sessions>.txt` (Debian package linux-perf).
    #[arg(long)]
    pub perf: bool,

    /// UDP receiver threads of the load client.
    #[arg(long, default_value_t = 2)]
    pub receiver_threads: usize,
}

/// How a step's sessions receive RTP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TransportMix {
    Udp,
    Tcp,
    /// Even-numbered sessions over UDP, odd ones interleaved over TCP.
    Mixed,
}

impl TransportMix {
    /// Whether session number `index` of a step uses TCP interleaving.
    pub fn session_uses_tcp(self, index: usize) -> bool {
        match self {
            TransportMix::Udp => false,
            TransportMix::Tcp => true,
            TransportMix::Mixed => index % 2 == 1,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            TransportMix::Udp => "udp",
            TransportMix::Tcp => "tcp",
            TransportMix::Mixed => "mixed",
        }
    }
}

impl FromStr for TransportMix {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        match text.trim().to_ascii_lowercase().as_str() {
            "udp" => Ok(TransportMix::Udp),
            "tcp" => Ok(TransportMix::Tcp),
            "mixed" => Ok(TransportMix::Mixed),
            other => Err(format!("`{other}` is not one of udp, tcp, mixed")),
        }
    }
}

/// A server under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PeerKind {
    Serval,
    /// GStreamer's gst-rtsp-server through `peers/gst_rtsp_server.py`.
    Gst,
}

impl PeerKind {
    pub fn as_str(self) -> &'static str {
        match self {
            PeerKind::Serval => "serval",
            PeerKind::Gst => "gst",
        }
    }
}

impl FromStr for PeerKind {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        match text.trim().to_ascii_lowercase().as_str() {
            "serval" => Ok(PeerKind::Serval),
            "gst" | "gst-rtsp-server" => Ok(PeerKind::Gst),
            other => Err(format!("`{other}` is not one of serval, gst")),
        }
    }
}

/// What the arguments mean once `--quick` is applied.
#[derive(Debug, Clone)]
pub struct Plan {
    pub steps: Vec<u32>,
    pub hold: Duration,
    pub transports: Vec<TransportMix>,
    pub peers: Vec<PeerKind>,
    pub ramp_rate: u32,
}

/// Sessions of the `--quick` step: enough for both transports, small enough for CI.
pub const QUICK_SESSIONS: u32 = 10;
/// Hold of the `--quick` step.
pub const QUICK_HOLD: Duration = Duration::from_secs(5);

impl StreamBenchArgs {
    pub fn plan(&self) -> Plan {
        if self.quick {
            return Plan {
                steps: vec![QUICK_SESSIONS],
                hold: QUICK_HOLD,
                transports: vec![TransportMix::Mixed],
                peers: self.peers.clone(),
                ramp_rate: self.ramp_rate.max(1),
            };
        }
        Plan {
            steps: self.sessions.iter().copied().filter(|&n| n > 0).collect(),
            hold: Duration::from_secs(self.seconds.max(1)),
            transports: self.transport.clone(),
            peers: self.peers.clone(),
            ramp_rate: self.ramp_rate.max(1),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: StreamBenchArgs,
    }

    #[test]
    fn defaults_ramp_both_peers_mixed() {
        let cli = Cli::parse_from(["bench"]);
        let plan = cli.args.plan();
        assert_eq!(plan.steps, vec![100, 250, 500, 1000]);
        assert_eq!(plan.transports, vec![TransportMix::Mixed]);
        assert_eq!(plan.peers, vec![PeerKind::Serval, PeerKind::Gst]);
        assert_eq!(plan.hold, Duration::from_secs(20));
    }

    #[test]
    fn lists_parse_and_quick_overrides_steps() {
        let cli = Cli::parse_from([
            "bench",
            "--sessions",
            "5,7",
            "--transport",
            "udp,tcp",
            "--peers",
            "serval",
            "--quick",
        ]);
        assert_eq!(cli.args.sessions, vec![5, 7]);
        assert_eq!(
            cli.args.transport,
            vec![TransportMix::Udp, TransportMix::Tcp]
        );
        let plan = cli.args.plan();
        assert_eq!(plan.steps, vec![QUICK_SESSIONS]);
        assert_eq!(plan.peers, vec![PeerKind::Serval]);
        assert!(Cli::try_parse_from(["bench", "--transport", "sctp"]).is_err());
    }

    #[test]
    fn mixed_alternates_sessions() {
        let tcp: Vec<bool> = (0..4)
            .map(|i| TransportMix::Mixed.session_uses_tcp(i))
            .collect();
        assert_eq!(tcp, vec![false, true, false, true]);
    }
}
