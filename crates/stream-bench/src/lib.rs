//! `serval bench stream`: drives many RTSP sessions against Serval and its peers and reports
//! throughput, loss, lateness, start latency, CPU and memory per step.
//!
//! Start at [`run`]; a step is [`step::run_step`] (ramp, hold, teardown, reduce), a session is
//! `session` (tokio, RTSP control and TCP interleaved RTP), UDP reception is `udp` (receiver
//! threads with epoll and `recvmmsg`), per-packet accounting is [`stats`]. The servers under test
//! are started by [`peers`]; results are written by [`report`].

pub mod args;
pub mod movie;
pub mod peers;
pub mod procfs;
pub mod report;
pub mod rtsp;
mod session;
pub mod stats;
pub mod step;
pub mod udp;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;

pub use args::{PeerKind, StreamBenchArgs, TransportMix};
pub use step::{run_step, StepResult, StepSpec, Target};

/// Pause between steps, so the previous step's sessions are gone from the server.
const BETWEEN_STEPS: Duration = Duration::from_secs(3);

/// Runs the benchmark the arguments describe and writes its results.
pub fn run(args: StreamBenchArgs) -> anyhow::Result<()> {
    raise_open_file_limit();
    let plan = args.plan();
    let started = time::OffsetDateTime::now_utc();
    let out_dir = args.out.clone().unwrap_or_else(|| {
        let stamp = started
            .format(time::macros::format_description!(
                "[year]-[month]-[day]T[hour]-[minute]-[second]Z"
            ))
            .unwrap_or_else(|_| "run".into());
        PathBuf::from("bench-results").join(stamp)
    });
    std::fs::create_dir_all(&out_dir).with_context(|| format!("creating {}", out_dir.display()))?;
    let movie = match &args.movie {
        Some(path) if path.is_file() => path.clone(),
        Some(path) => anyhow::bail!("--movie {} is not a file", path.display()),
        None => movie::benchmark_movie()?,
    };
    let movie_bitrate = movie::bitrate(&movie);
    let serval_bin = args
        .serval_bin
        .clone()
        .unwrap_or_else(peers::default_serval_bin);
    let longest_step = plan.steps.iter().max().copied().unwrap_or(0);
    let ramp = Duration::from_secs_f64(f64::from(longest_step) / f64::from(plan.ramp_rate));
    if args.movie.is_none() && ramp + plan.hold + Duration::from_secs(5) > movie::MOVIE_DURATION {
        eprintln!(
            "warning: ramp ({ramp:?}) plus hold ({:?}) nears the movie's {:?}: sessions may end before the step does",
            plan.hold,
            movie::MOVIE_DURATION
        );
    }
    if let Some(rate) = movie_bitrate {
        eprintln!(
            "movie bitrate {:.2} Mbit/s (deliv% compares each step with sessions x this)",
            rate / 1e6
        );
    }
    eprintln!(
        "movie {}; steps {:?} x {:?}, hold {:?}, ramp {}/s; results in {}",
        movie.display(),
        plan.steps,
        plan.transports
            .iter()
            .map(|t| t.as_str())
            .collect::<Vec<_>>(),
        plan.hold,
        plan.ramp_rate,
        out_dir.display()
    );

    let mut rows = Vec::new();
    for &peer in &plan.peers {
        // A fresh server per transport series, so one series' retained memory does not count
        // as the next one's per-session RSS.
        for &transport in &plan.transports {
            let log_file = out_dir.join(format!("{}-{}.log", peer.as_str(), transport.as_str()));
            let running = match peer {
                PeerKind::Serval => peers::start_serval(&serval_bin, &movie, Some(&log_file)),
                PeerKind::Gst => peers::start_gst(&movie, Some(&log_file)),
            };
            let mut running = match running {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("{}: did not start: {e}", peer.as_str());
                    rows.push(StepResult {
                        peer: peer.as_str().into(),
                        transport: transport.as_str().into(),
                        note: format!("did not start: {}", first_line(&e.to_string())),
                        ..StepResult::default()
                    });
                    continue;
                }
            };
            for &sessions in &plan.steps {
                let largest = plan.steps.iter().max() == Some(&sessions);
                let perf_name = format!("perf-{}-{}-{sessions}", peer.as_str(), transport.as_str());
                let perf_data =
                    (args.perf && largest).then(|| out_dir.join(format!("{perf_name}.data")));
                let spec = StepSpec {
                    sessions,
                    transport,
                    hold: plan.hold,
                    ramp_rate: plan.ramp_rate,
                    receiver_threads: args.receiver_threads,
                    perf_data: perf_data.clone(),
                };
                eprintln!(
                    "{} {} {sessions} sessions...",
                    peer.as_str(),
                    transport.as_str()
                );
                let mut row = run_step(&running.target, &spec)
                    .with_context(|| format!("{} step of {sessions} sessions", peer.as_str()))?;
                row.delivered_pct = movie_bitrate
                    .filter(|_| sessions > 0)
                    .map(|rate| row.delivered_mbit_s * 1e6 * 100.0 / (rate * f64::from(sessions)));
                if let Some(status) = running.exited() {
                    row.note = format!("server exited ({status}); {}", row.note);
                    eprint!("{}", report::table(std::slice::from_ref(&row)));
                    eprintln!("{} log tail:\n{}", peer.as_str(), running.log_tail());
                    rows.push(row);
                    break;
                }
                if let Some(data) = perf_data {
                    let summary = out_dir.join(format!("{perf_name}.txt"));
                    match perf_summary(&data, &summary) {
                        Ok(()) => eprintln!("profile: {}", summary.display()),
                        Err(e) => append_note(&mut row, &format!("perf: {e}")),
                    }
                }
                eprint!("{}", report::table(std::slice::from_ref(&row)));
                rows.push(row);
                std::thread::sleep(BETWEEN_STEPS);
            }
            drop(running);
        }
    }

    let table = report::table(&rows);
    println!("{table}");
    let info = report::RunInfo {
        started_utc: started
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default(),
        movie: movie.display().to_string(),
        movie_bit_rate: movie_bitrate,
        command: std::env::args().collect(),
        cpus: std::thread::available_parallelism().map_or(1, usize::from),
        results: rows.clone(),
    };
    report::write_all(&out_dir, &info)?;
    println!(
        "wrote {0}/table.txt, {0}/results.csv, {0}/results.json, {0}/chart.svg",
        out_dir.display()
    );
    if args.quick {
        let serval_held: u32 = rows
            .iter()
            .filter(|r| r.peer == "serval")
            .map(|r| r.held)
            .sum();
        if plan.peers.contains(&PeerKind::Serval) && serval_held == 0 {
            anyhow::bail!("quick check failed: Serval held no session");
        }
    }
    Ok(())
}

/// Writes where the server's time went: self time by symbol, then inclusive time.
fn perf_summary(data: &std::path::Path, summary: &std::path::Path) -> Result<(), String> {
    if !data.is_file() {
        return Err("no profile recorded (install Debian package linux-perf; perf_event_paranoid may forbid it)".into());
    }
    let mut text = String::new();
    for (title, view) in [
        ("self time", "--no-children"),
        ("inclusive time", "--children"),
    ] {
        let output = std::process::Command::new("perf")
            .args([
                "report",
                "--stdio",
                "-g",
                "none",
                "--percent-limit",
                "1.5",
                "--sort",
                "dso,symbol",
                view,
                "-i",
            ])
            .arg(data)
            .output()
            .map_err(|e| format!("perf report: {e}"))?;
        text.push_str(&format!("## {title}\n"));
        text.push_str(&String::from_utf8_lossy(&output.stdout));
        text.push('\n');
    }
    std::fs::write(summary, text).map_err(|e| format!("{}: {e}", summary.display()))
}

fn append_note(row: &mut StepResult, note: &str) {
    if !row.note.is_empty() {
        row.note.push_str("; ");
    }
    row.note.push_str(note);
}

fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or("")
}

/// A thousand UDP sessions hold four sockets each in this process (RTP and RTCP per track):
/// raise the soft open-file limit to the hard one, which the server started here inherits too.
fn raise_open_file_limit() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit with a valid pointer to an rlimit.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && limit.rlim_cur < limit.rlim_max
        {
            limit.rlim_cur = limit.rlim_max;
            let _ = libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
}
