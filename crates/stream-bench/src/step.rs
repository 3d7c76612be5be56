//! One step of the benchmark: ramp N sessions up against a running server, hold them for the
//! step's duration while sampling the server's CPU and memory, tear them down, and reduce
//! everything the sessions and receivers counted into one [`StepResult`] row.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::{mpsc, watch};

use crate::args::TransportMix;
use crate::procfs;
use crate::session::{run_session, SessionOutcome, SessionPlan, StepClock};
use crate::stats::{quantile_ms, TrackStats};
use crate::udp::{TrackKey, UdpReceivers};

/// A session counts as held when every track got a packet this close to the end of the hold.
pub const HELD_GRACE: Duration = Duration::from_millis(1500);
/// How long sessions may take, beyond the ramp, to reach PLAY before the hold starts anyway.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(30);
/// How long TEARDOWN of all sessions may take.
const TEARDOWN_TIMEOUT: Duration = Duration::from_secs(30);

/// The server being measured.
#[derive(Debug, Clone)]
pub struct Target {
    pub peer: String,
    /// The movie's RTSP URL.
    pub url: String,
    pub server: SocketAddr,
    /// Server process for CPU and RSS; `None` skips those columns.
    pub pid: Option<u32>,
    /// RSS of the idle server, for RSS per session.
    pub idle_rss: Option<u64>,
}

/// What one step does.
#[derive(Debug, Clone)]
pub struct StepSpec {
    pub sessions: u32,
    pub transport: TransportMix,
    pub hold: Duration,
    /// Sessions started per second.
    pub ramp_rate: u32,
    pub receiver_threads: usize,
    /// Where to write a `perf record -g` profile of the server during the hold.
    pub perf_data: Option<std::path::PathBuf>,
}

/// One row of the results.
#[derive(Debug, Clone, Default, Serialize)]
pub struct StepResult {
    pub peer: String,
    pub transport: String,
    pub sessions: u32,
    /// Sessions that played and still received every track at the end of the hold.
    pub held: u32,
    pub failed: u32,
    pub hold_seconds: f64,
    pub delivered_mbit_s: f64,
    /// Delivered rate as a share of sessions x the movie's bitrate (100 = keeping up).
    pub delivered_pct: Option<f64>,
    pub packets: u64,
    pub lost: u64,
    pub loss_pct: f64,
    pub lateness_p50_ms: f64,
    pub lateness_p99_ms: f64,
    pub lateness_max_ms: f64,
    pub first_packet_p50_ms: f64,
    pub first_packet_p99_ms: f64,
    pub server_cpu_pct: Option<f64>,
    /// Server CPU-seconds per delivered Gbit.
    pub cpu_s_per_gbit: Option<f64>,
    pub server_rss_mib: Option<f64>,
    pub rss_per_session_kib: Option<f64>,
    pub client_cpu_pct: Option<f64>,
    /// All CPUs of the machine busy during the hold, % of all (100 = saturated).
    pub machine_busy_pct: Option<f64>,
    /// Softirq share of all CPUs during the hold (loopback packet delivery, partly in ksoftirqd).
    pub softirq_pct: Option<f64>,
    /// Why sessions failed (most common first), or why the peer did not run.
    pub note: String,
}

/// Errors that stop a step from running at all (session failures are counted instead).
#[derive(Debug, thiserror::Error)]
pub enum StepError {
    #[error("cannot start the client runtime or receiver threads: {0}")]
    Setup(#[from] std::io::Error),
}

/// Runs one step against `target` and returns its row.
pub fn run_step(target: &Target, spec: &StepSpec) -> Result<StepResult, StepError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("bench-client")
        .enable_all()
        .build()?;
    runtime.block_on(run_step_async(target, spec))
}

async fn run_step_async(target: &Target, spec: &StepSpec) -> Result<StepResult, StepError> {
    let epoch = Instant::now();
    let delivered = Arc::new(AtomicU64::new(0));
    let receivers = UdpReceivers::start(spec.receiver_threads, epoch, delivered.clone())?;
    let clock = Arc::new(StepClock {
        epoch,
        delivered_bytes: delivered.clone(),
    });
    let (stop_tx, stop_rx) = watch::channel(false);
    let (started_tx, mut started_rx) = mpsc::unbounded_channel();
    let n_sessions = usize::try_from(spec.sessions).unwrap_or(usize::MAX);
    let ramp_interval = Duration::from_secs(1) / spec.ramp_rate.max(1);

    let ramp_start = tokio::time::Instant::now();
    let mut tasks = Vec::with_capacity(n_sessions);
    for index in 0..n_sessions {
        let at = ramp_start + ramp_interval * u32::try_from(index).unwrap_or(u32::MAX);
        tokio::time::sleep_until(at).await;
        let plan = SessionPlan {
            index,
            url: target.url.clone(),
            server: target.server,
            tcp: spec.transport.session_uses_tcp(index),
        };
        tasks.push(tokio::spawn(run_session(
            plan,
            clock.clone(),
            receivers.handle_for(index),
            started_tx.clone(),
            stop_rx.clone(),
        )));
    }
    drop(started_tx);
    let mut settled = 0usize;
    let settle_deadline = tokio::time::Instant::now() + SETTLE_TIMEOUT;
    while settled < n_sessions {
        match tokio::time::timeout_at(settle_deadline, started_rx.recv()).await {
            Ok(Some(_)) => settled += 1,
            Ok(None) | Err(_) => break,
        }
    }

    let hold_start = Instant::now();
    let bytes_start = delivered.load(Ordering::Relaxed);
    let server_cpu_start = target.pid.and_then(procfs::cpu_time);
    let client_cpu_start = procfs::cpu_time(std::process::id());
    let machine_start = procfs::machine_ticks();
    let perf = match (&spec.perf_data, target.pid) {
        (Some(path), Some(pid)) => start_perf(path, pid, spec.hold),
        _ => None,
    };
    tokio::time::sleep(spec.hold).await;
    let hold_end = Instant::now();
    let bytes_end = delivered.load(Ordering::Relaxed);
    let server_cpu_end = target.pid.and_then(procfs::cpu_time);
    let client_cpu_end = procfs::cpu_time(std::process::id());
    let machine = match (machine_start, procfs::machine_ticks()) {
        (Some(a), Some(b)) => a.percent_until(&b),
        _ => None,
    };
    let server_rss = target.pid.and_then(procfs::rss_bytes);

    let _ = stop_tx.send(true);
    if let Some(mut perf) = perf {
        // perf stops by itself when its `sleep` of the hold's length ends.
        let _ = tokio::task::spawn_blocking(move || perf.wait()).await;
    }
    let udp_report = tokio::task::spawn_blocking(move || receivers.finish())
        .await
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    let mut outcomes = Vec::with_capacity(n_sessions);
    let mut unfinished = 0u32;
    let teardown_deadline = tokio::time::Instant::now() + TEARDOWN_TIMEOUT;
    for task in tasks {
        match tokio::time::timeout_at(teardown_deadline, task).await {
            Ok(Ok(outcome)) => outcomes.push(outcome),
            _ => unfinished += 1,
        }
    }

    let hold = hold_end.duration_since(hold_start);
    let mut udp_tracks: HashMap<TrackKey, TrackStats> = udp_report.tracks.into_iter().collect();
    let mut lateness = udp_report.lateness;
    let mut reduced = Reduced::default();
    for mut outcome in outcomes {
        if let Some(h) = outcome.lateness.take() {
            let _ = lateness.add(&h);
        }
        let tracks: Vec<TrackStats> = if outcome.tcp {
            std::mem::take(&mut outcome.tcp_tracks)
        } else {
            (0..outcome.n_tracks)
                .filter_map(|track| {
                    udp_tracks.remove(&TrackKey {
                        session: outcome.index,
                        track,
                    })
                })
                .collect()
        };
        reduced.add(&outcome, &tracks, hold_end);
    }
    if unfinished > 0 {
        *reduced
            .errors
            .entry("session did not finish TEARDOWN in time".into())
            .or_default() += unfinished;
    }

    let hold_secs = hold.as_secs_f64().max(1e-3);
    let delivered_bits = bytes_end.saturating_sub(bytes_start) as f64 * 8.0;
    let server_cpu = match (server_cpu_start, server_cpu_end) {
        (Some(a), Some(b)) => Some(b.saturating_sub(a).as_secs_f64()),
        _ => None,
    };
    let client_cpu = match (client_cpu_start, client_cpu_end) {
        (Some(a), Some(b)) => Some(b.saturating_sub(a).as_secs_f64()),
        _ => None,
    };
    reduced.first_packet_ms.sort_by(f64::total_cmp);
    let held = reduced.held;
    Ok(StepResult {
        peer: target.peer.clone(),
        transport: spec.transport.as_str().to_string(),
        sessions: spec.sessions,
        held,
        failed: spec.sessions.saturating_sub(held),
        hold_seconds: hold_secs,
        delivered_mbit_s: delivered_bits / hold_secs / 1e6,
        // Filled in by the caller, which knows the movie.
        delivered_pct: None,
        packets: reduced.packets,
        lost: reduced.lost,
        loss_pct: if reduced.expected == 0 {
            0.0
        } else {
            reduced.lost as f64 * 100.0 / reduced.expected as f64
        },
        lateness_p50_ms: quantile_ms(&lateness, 0.50),
        lateness_p99_ms: quantile_ms(&lateness, 0.99),
        lateness_max_ms: quantile_ms(&lateness, 1.0),
        first_packet_p50_ms: sorted_quantile(&reduced.first_packet_ms, 0.50),
        first_packet_p99_ms: sorted_quantile(&reduced.first_packet_ms, 0.99),
        server_cpu_pct: server_cpu.map(|s| s * 100.0 / hold_secs),
        cpu_s_per_gbit: server_cpu
            .filter(|_| delivered_bits > 0.0)
            .map(|s| s / (delivered_bits / 1e9)),
        server_rss_mib: server_rss.map(|b| b as f64 / (1024.0 * 1024.0)),
        rss_per_session_kib: match (server_rss, target.idle_rss) {
            (Some(rss), Some(idle)) if held > 0 => {
                Some(rss.saturating_sub(idle) as f64 / 1024.0 / f64::from(held))
            }
            _ => None,
        },
        client_cpu_pct: client_cpu.map(|s| s * 100.0 / hold_secs),
        machine_busy_pct: machine.map(|m| m.0),
        softirq_pct: machine.map(|m| m.1),
        note: reduced.note(),
    })
}

/// `perf record` of `pid` for `hold`, at a sampling rate low enough not to disturb the server.
fn start_perf(path: &std::path::Path, pid: u32, hold: Duration) -> Option<std::process::Child> {
    std::process::Command::new("perf")
        .args(["record", "-F", "499", "-g", "-p", &pid.to_string(), "-o"])
        .arg(path)
        .args(["--", "sleep", &format!("{:.1}", hold.as_secs_f64())])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .ok()
}

/// Sums over sessions.
#[derive(Default)]
struct Reduced {
    held: u32,
    packets: u64,
    lost: u64,
    expected: u64,
    first_packet_ms: Vec<f64>,
    errors: BTreeMap<String, u32>,
}

impl Reduced {
    fn add(&mut self, outcome: &SessionOutcome, tracks: &[TrackStats], hold_end: Instant) {
        for track in tracks {
            self.packets += track.packets;
            self.lost += track.lost();
            self.expected += track.expected();
        }
        if let (Some(play), Some(first)) = (
            outcome.play_sent,
            tracks.iter().filter_map(|t| t.first_arrival).min(),
        ) {
            self.first_packet_ms
                .push(first.saturating_duration_since(play).as_secs_f64() * 1000.0);
        }
        let live_since = hold_end.checked_sub(HELD_GRACE).unwrap_or(hold_end);
        let all_live = outcome.n_tracks > 0
            && tracks.len() == outcome.n_tracks
            && tracks
                .iter()
                .all(|t| t.last_arrival.is_some_and(|at| at >= live_since));
        match &outcome.error {
            Some(error) => *self.errors.entry(error.clone()).or_default() += 1,
            None if all_live => self.held += 1,
            None => {
                *self
                    .errors
                    .entry("stopped receiving before the end of the hold".into())
                    .or_default() += 1
            }
        }
    }

    fn note(&self) -> String {
        let mut errors: Vec<(&String, &u32)> = self.errors.iter().collect();
        errors.sort_by(|a, b| b.1.cmp(a.1));
        errors
            .iter()
            .take(3)
            .map(|(message, count)| format!("{count}x {message}"))
            .collect::<Vec<_>>()
            .join("; ")
    }
}

fn sorted_quantile(sorted: &[f64], quantile: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let last = sorted.len() - 1;
    let rank = ((last as f64) * quantile).round();
    let index = usize::try_from(rank as u64).unwrap_or(last).min(last);
    sorted.get(index).copied().unwrap_or(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_of_sorted_samples() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(sorted_quantile(&v, 0.5), 51.0);
        assert_eq!(sorted_quantile(&v, 0.99), 99.0);
        assert_eq!(sorted_quantile(&v, 1.0), 100.0);
        assert_eq!(sorted_quantile(&[], 0.5), 0.0);
    }
}
