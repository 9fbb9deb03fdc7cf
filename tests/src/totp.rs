//! TOTP codes as an authenticator app computes them, for tests that log in to accounts
//! with a second factor (the homeserver's own RFC 6238 code, checked against the RFC's
//! vectors there), and a dump of a test database to look for secrets in.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub use parley_homeserver::second_factor::totp::STEP_SECS;
use parley_homeserver::second_factor::totp::{base32_decode, code_at};

/// Seconds since the Unix epoch, now.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_secs()
}

/// The code of the base32 `secret` (as the enrolment returned it) for Unix time `unix_secs`.
pub fn code_at_time(secret: &str, unix_secs: u64) -> String {
    let secret = base32_decode(secret).expect("a base32 secret");
    code_at(&secret, unix_secs)
}

/// The code of `secret` for now plus `offset_steps` steps of 30 s (negative: earlier).
pub fn code_now(secret: &str, offset_steps: i64) -> String {
    let at = unix_now().saturating_add_signed(offset_steps * STEP_SECS as i64);
    code_at_time(secret, at)
}

/// Waits (at most one step) until at least `secs` seconds are left in the current step,
/// so that what a test computes for "now" is still "now" for the server while it runs.
pub async fn with_time_left_in_step(secs: u64) {
    let deadline = std::time::Instant::now() + Duration::from_secs(STEP_SECS + 1);
    while STEP_SECS - unix_now() % STEP_SECS < secs.min(STEP_SECS - 1) {
        assert!(std::time::Instant::now() < deadline, "the clock does not advance");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// `pg_dump --data-only` of the database at `url`, as text.
pub fn dump_database(url: &str) -> String {
    let bin = parley_homeserver::embedded_pg::find_bin_dir()
        .map(|dir| dir.join("pg_dump"))
        .unwrap_or_else(|| "pg_dump".into());
    let out = std::process::Command::new(bin)
        .args(["--data-only", "--no-owner", "--dbname", url])
        .output()
        .expect("run pg_dump");
    assert!(
        out.status.success(),
        "pg_dump: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}
