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
