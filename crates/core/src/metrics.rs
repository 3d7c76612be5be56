//! Prometheus metrics: the shared registry every service registers on, plus process metrics read
//! from `/proc` at scrape time.

use std::fmt::Write as _;

use prometheus_client::encoding::text::encode;
use prometheus_client::registry::Registry;

/// Renders the registry and the process metrics in the Prometheus text format.
pub fn render(registry: &Registry) -> String {
    let mut out = String::new();
    if encode(&mut out, registry).is_err() {
        out.clear();
    }
    // `encode` ends with "# EOF" (OpenMetrics); process metrics go before it.
    let eof = out.rfind("# EOF").unwrap_or(out.len());
    let tail = out.split_off(eof);
    write_process_metrics(&mut out);
    out.push_str(&tail);
    out
}

fn write_process_metrics(out: &mut String) {
    let stat = ProcessStat::read();
    let _ = writeln!(
        out,
        "# HELP process_resident_memory_bytes Resident memory size in bytes."
    );
    let _ = writeln!(out, "# TYPE process_resident_memory_bytes gauge");
    let _ = writeln!(out, "process_resident_memory_bytes {}", stat.rss_bytes);
    let _ = writeln!(
        out,
        "# HELP process_cpu_seconds_total Total user and system CPU time spent in seconds."
    );
    let _ = writeln!(out, "# TYPE process_cpu_seconds_total counter");
    let _ = writeln!(out, "process_cpu_seconds_total {:.2}", stat.cpu_seconds);
    let _ = writeln!(
        out,
        "# HELP process_open_fds Number of open file descriptors."
    );
    let _ = writeln!(out, "# TYPE process_open_fds gauge");
    let _ = writeln!(out, "process_open_fds {}", stat.open_fds);
    let _ = writeln!(
        out,
        "# HELP process_start_time_seconds Start time of the process since unix epoch in seconds."
    );
    let _ = writeln!(out, "# TYPE process_start_time_seconds gauge");
    let _ = writeln!(
        out,
        "process_start_time_seconds {}",
        crate::process_start_unix()
    );
}

/// CPU and memory of this process, from `/proc/self`.
#[derive(Debug, Default, Clone, Copy)]
pub struct ProcessStat {
    pub rss_bytes: u64,
    pub cpu_seconds: f64,
    pub open_fds: u64,
}

impl ProcessStat {
    pub fn read() -> ProcessStat {
        let mut s = ProcessStat::default();
        if let Ok(status) = std::fs::read_to_string("/proc/self/status") {
            if let Some(kb) = status.lines().find_map(|l| l.strip_prefix("VmRSS:")) {
                let kb = kb
                    .trim()
                    .trim_end_matches("kB")
                    .trim()
                    .parse::<u64>()
                    .unwrap_or(0);
                s.rss_bytes = kb * 1024;
            }
        }
        if let Ok(stat) = std::fs::read_to_string("/proc/self/stat") {
            // Fields after the parenthesised command name; utime and stime are 14th and 15th.
            if let Some(after) = stat.rsplit_once(')').map(|(_, rest)| rest) {
                let fields: Vec<&str> = after.split_whitespace().collect();
                let ticks = |i: usize| {
                    fields
                        .get(i)
                        .and_then(|v| v.parse::<u64>().ok())
                        .unwrap_or(0)
                };
                // SAFETY: sysconf has no preconditions.
                let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
                s.cpu_seconds = (ticks(11) + ticks(12)) as f64 / hz;
            }
        }
        if let Ok(dir) = std::fs::read_dir("/proc/self/fd") {
            s.open_fds = dir.count() as u64;
        }
        s
    }
}
