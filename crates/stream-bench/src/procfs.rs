//! CPU time and resident memory of a process, from Linux `/proc/<pid>/stat` and `status`.
//! Read by hand: the two fields needed are a few lines, not worth a `procfs` dependency.

use std::time::Duration;

/// User + system CPU time of a process and of its waited-for children.
pub fn cpu_time(pid: u32) -> Option<Duration> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    cpu_time_of_stat(&text, clock_ticks_per_second())
}

/// Resident set size in bytes (`VmRSS`).
pub fn rss_bytes(pid: u32) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    rss_of_status(&text)
}

/// Cumulative CPU ticks of the whole machine (first line of `/proc/stat`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MachineTicks {
    pub busy: u64,
    /// Softirq alone: on loopback, packet delivery that may run in `ksoftirqd` rather than
    /// in the server's own system time.
    pub softirq: u64,
    pub total: u64,
}

impl MachineTicks {
    /// Busy and softirq shares of all CPUs between `self` and a later sample, in percent.
    pub fn percent_until(&self, later: &MachineTicks) -> Option<(f64, f64)> {
        let total = later.total.checked_sub(self.total).filter(|&t| t > 0)? as f64;
        let busy = later.busy.saturating_sub(self.busy) as f64;
        let softirq = later.softirq.saturating_sub(self.softirq) as f64;
        Some((busy * 100.0 / total, softirq * 100.0 / total))
    }
}

/// The machine's CPU ticks now.
pub fn machine_ticks() -> Option<MachineTicks> {
    let text = std::fs::read_to_string("/proc/stat").ok()?;
    machine_ticks_of_stat(&text)
}

/// `cpu  user nice system idle iowait irq softirq steal ...`: idle and iowait are not busy.
fn machine_ticks_of_stat(stat: &str) -> Option<MachineTicks> {
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let fields: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .take(8)
        .map(|f| f.parse().ok())
        .collect::<Option<Vec<u64>>>()?;
    let [user, nice, system, idle, iowait, irq, softirq, steal] = fields.as_slice() else {
        return None;
    };
    let busy = user + nice + system + irq + softirq + steal;
    Some(MachineTicks {
        busy,
        softirq: *softirq,
        total: busy + idle + iowait,
    })
}

fn clock_ticks_per_second() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    u64::try_from(ticks).ok().filter(|&t| t > 0).unwrap_or(100)
}

/// Fields 14-17 (utime, stime, cutime, cstime) counted after the `)` that ends the command
/// name, which may itself contain spaces and parentheses.
fn cpu_time_of_stat(stat: &str, ticks_per_second: u64) -> Option<Duration> {
    let after_name = stat.get(stat.rfind(')')? + 1..)?;
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // After the name, field 3 (state) is index 0, so field N is index N - 3.
    let ticks: u64 = fields
        .get(11..15)?
        .iter()
        .map(|f| f.parse::<u64>().ok())
        .sum::<Option<u64>>()?;
    let micros = ticks.checked_mul(1_000_000)? / ticks_per_second.max(1);
    Some(Duration::from_micros(micros))
}

fn rss_of_status(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    kib.checked_mul(1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_after_a_name_with_spaces() {
        let stat = "4242 (my (odd) name) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 50 7 3 20 0 1 0 1000 1000 100";
        assert_eq!(
            cpu_time_of_stat(stat, 100),
            Some(Duration::from_millis(3100))
        );
        assert_eq!(cpu_time_of_stat("garbage", 100), None);
    }

    #[test]
    fn machine_line() {
        let stat = "cpu  100 0 50 800 50 0 25 0 0 0\ncpu0 1 2 3\n";
        let a = machine_ticks_of_stat(stat).unwrap();
        assert_eq!((a.busy, a.softirq, a.total), (175, 25, 1025));
        let b = MachineTicks {
            busy: 275,
            softirq: 75,
            total: 1225,
        };
        assert_eq!(a.percent_until(&b), Some((50.0, 25.0)));
        assert_eq!(machine_ticks_of_stat("cpu 1 2\n"), None);
    }

    #[test]
    fn rss_line() {
        assert_eq!(
            rss_of_status("Name:\tx\nVmRSS:\t  2048 kB\n"),
            Some(2 * 1024 * 1024)
        );
        assert_eq!(rss_of_status("Name:\tx\n"), None);
    }

    #[test]
    fn own_process_is_readable() {
        let pid = std::process::id();
        assert!(cpu_time(pid).is_some());
        assert!(rss_bytes(pid).unwrap_or(0) > 0);
    }
}
