//! CPU time used by processes during a measurement, from /proc: which process (the
//! homeserver, PostgreSQL, the load generator) the 2 cores went to.

use std::path::Path;
use std::time::Duration;

/// Clock ticks per second of /proc's times (USER_HZ, 100 on Linux).
const TICKS_PER_SECOND: f64 = 100.0;

/// User plus system CPU time of one process so far.
pub fn of_process(pid: u32) -> Duration {
    let ticks = fields(pid).and_then(|f| Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?));
    ticks.map_or(Duration::ZERO, |t| Duration::from_secs_f64(t as f64 / TICKS_PER_SECOND))
}

/// CPU time of the PostgreSQL cluster in `data_dir`: its postmaster and the processes
/// it started (backends, WAL writer, checkpointer…) that are still running.
pub fn of_postgres(data_dir: &Path) -> Duration {
    let pids: Vec<u32> = std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .collect();
    let data_dir = data_dir.to_string_lossy();
    let Some(postmaster) = pids.iter().copied().find(|pid| {
        std::fs::read(format!("/proc/{pid}/cmdline"))
            .is_ok_and(|c| String::from_utf8_lossy(&c).contains(data_dir.as_ref()))
            && std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == "postgres")
    }) else {
        return Duration::ZERO;
    };
    pids.into_iter()
        .filter(|&pid| pid == postmaster || parent(pid) == Some(postmaster))
        .map(of_process)
        .sum()
}

/// The fields of /proc/<pid>/stat after the parenthesised command name (which may
/// contain spaces): state, ppid, … utime is the 12th, stime the 13th.
fn fields(pid: u32) -> Option<Vec<String>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    Some(
        stat.get(stat.rfind(')')? + 2..)?
            .split_whitespace()
            .map(str::to_owned)
            .collect(),
    )
}

fn parent(pid: u32) -> Option<u32> {
    fields(pid)?.get(1)?.parse().ok()
}

/// Where CPU time went during a measurement: the homeserver's processes, its PostgreSQL
/// and this load generator.
#[derive(Clone, Copy, Default)]
pub struct Split {
    pub homeserver: Duration,
    pub postgres: Duration,
    pub generator: Duration,
}

impl Split {
    /// What was spent between `earlier` and `self`.
    pub fn since(self, earlier: Split) -> Split {
        Split {
            homeserver: self.homeserver.saturating_sub(earlier.homeserver),
            postgres: self.postgres.saturating_sub(earlier.postgres),
            generator: self.generator.saturating_sub(earlier.generator),
        }
    }

    /// Microseconds per message: homeserver, PostgreSQL, server total, generator.
    pub fn per_message_us(self, messages: usize) -> [f64; 4] {
        let us = |d: Duration| d.as_secs_f64() * 1e6 / messages.max(1) as f64;
        let (homeserver, postgres) = (us(self.homeserver), us(self.postgres));
        [homeserver, postgres, homeserver + postgres, us(self.generator)]
    }

    /// One line: "CPU per message: homeserver H µs + PostgreSQL P µs = S µs; generator G µs".
    pub fn per_message(self, messages: usize) -> String {
        let [homeserver, postgres, server, generator] = self.per_message_us(messages);
        format!(
            "CPU per message: homeserver {homeserver:.0} µs + PostgreSQL {postgres:.0} µs = {server:.0} µs; load generator {generator:.0} µs"
        )
    }
}
