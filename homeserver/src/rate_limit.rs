//! Token-bucket rate limits keyed by a string (an account, an IP address), in memory, and
//! the login throttle built on them.
//!
//! **Logins** ([`LoginThrottle`]) count failures, never successes, and are limited per
//! (account, client network) so that nobody can spend an account's budget from elsewhere:
//! ten wrong passwords from one address used to make the owner's right password from
//! another address answer 429. An account under attack from many addresses is slowed by a
//! second, slower budget of failures per account; once it is spent, only networks that
//! failed for the account within the last hour wait for it. A network that has not failed
//! (the owner's, usually) is never refused by it: what it costs an attacker is a fresh
//! network per guess. All attempts, right or wrong, still count against the per-address
//! budget (`LimitsConfig::login_attempts_per_address_per_minute`), which bounds the
//! password hashing one address can cause.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::config::LimitsConfig;

/// Past this many tracked keys, full buckets are forgotten, bounding memory.
const MAX_TRACKED_KEYS: usize = 100_000;

pub struct RateLimiter {
    capacity: f64,
    per_second: f64,
    buckets: Mutex<HashMap<String, Bucket>>,
}

struct Bucket {
    tokens: f64,
    updated: Instant,
}

impl RateLimiter {
    /// Allows bursts of `per_minute` and refills at `per_minute` a minute.
    pub fn per_minute(per_minute: u32) -> Self {
        Self::refilled(per_minute, Duration::from_secs(60))
    }

    /// Allows bursts of `per_hour` and refills at `per_hour` an hour.
    pub fn per_hour(per_hour: u32) -> Self {
        Self::refilled(per_hour, Duration::from_secs(3600))
    }

    /// Allows bursts of `burst` and refills `burst` tokens every `period`.
    fn refilled(burst: u32, period: Duration) -> Self {
        let capacity = f64::from(burst.max(1));
        Self {
            capacity,
            per_second: capacity / period.as_secs_f64().max(1.0),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one token for `key`, or says how long until one is available.
    pub fn check(&self, key: &str) -> Result<(), Duration> {
        self.with_bucket(key, |bucket, per_second| {
            if bucket.tokens >= 1.0 {
                bucket.tokens -= 1.0;
                Ok(())
            } else {
                Err(Duration::from_secs_f64((1.0 - bucket.tokens) / per_second))
            }
        })
    }

    /// Takes one token for `key` if there is one; never refuses (for events that happened
    /// anyway and only need counting).
    pub fn spend(&self, key: &str) {
        self.with_bucket(key, |bucket, _| bucket.tokens = (bucket.tokens - 1.0).max(0.0));
    }

    /// Gives back a token taken by [`Self::check`] for something that did not count.
    pub fn refund(&self, key: &str) {
        let capacity = self.capacity;
        self.with_bucket(key, |bucket, _| bucket.tokens = (bucket.tokens + 1.0).min(capacity));
    }

    /// Runs `f` on `key`'s bucket, refilled to now.
    fn with_bucket<T>(&self, key: &str, f: impl FnOnce(&mut Bucket, f64) -> T) -> T {
        let now = Instant::now();
        let mut buckets = self.buckets.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if buckets.len() >= MAX_TRACKED_KEYS {
            let (capacity, per_second) = (self.capacity, self.per_second);
            buckets.retain(|_, b| b.tokens + now.duration_since(b.updated).as_secs_f64() * per_second < capacity);
        }
        let bucket = buckets.entry(key.to_owned()).or_insert(Bucket {
            tokens: self.capacity,
            updated: now,
        });
        let refill = now.duration_since(bucket.updated).as_secs_f64() * self.per_second;
        bucket.tokens = (bucket.tokens + refill).min(self.capacity);
        bucket.updated = now;
        f(bucket, self.per_second)
    }
}

/// The network a client address stands for in limits: an IPv4 address, or an IPv6 /64
/// (one subscriber's allocation, in which every address is as cheap as one).
pub fn client_network(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let s = v6.segments();
                format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
        },
    }
}

/// How long a network that failed for an account waits for the account's budget.
const FAILED_NETWORK_MEMORY: Duration = Duration::from_secs(3600);

/// Failed logins, limited per (account, network) and per account (see the module
/// documentation).
pub struct LoginThrottle {
    per_account_and_network: RateLimiter,
    per_account: RateLimiter,
    /// When each network last failed for each account.
    failed: Mutex<HashMap<(String, String), Instant>>,
}

/// How a login attempt ended, for [`LoginThrottle::finish`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginOutcome {
    RightPassword,
    WrongPassword,
    /// The password could not be checked (a fault of this server): nothing is counted.
    NotChecked,
}

/// A login attempt let through [`LoginThrottle::begin`]: its failure is reserved until
/// [`LoginThrottle::finish`] says how it ended.
#[must_use]
pub struct LoginAttempt {
    account: String,
    network: String,
    took_from_account: bool,
}

impl LoginAttempt {
    fn pair_key(&self) -> String {
        format!("{}\n{}", self.account, self.network)
    }
}

impl LoginThrottle {
    pub fn new(limits: &LimitsConfig) -> Self {
        Self {
            per_account_and_network: RateLimiter::per_minute(limits.login_failures_per_account_and_address_per_minute),
            per_account: RateLimiter::per_hour(limits.login_failures_per_account_per_hour),
            failed: Mutex::new(HashMap::new()),
        }
    }

    /// Before a password of `account` is checked for a client at `address` (`None`: not
    /// known, all such clients count as one): whether it may be, or how long to wait.
    /// The attempt's failure is counted in advance, so that concurrent attempts cannot
    /// overrun the budgets; `finish` gives it back if the password was right.
    pub fn begin(&self, account: &str, address: Option<IpAddr>) -> Result<LoginAttempt, Duration> {
        let mut attempt = LoginAttempt {
            account: account.to_owned(),
            network: address.map_or_else(|| "unknown".to_owned(), client_network),
            took_from_account: false,
        };
        let pair = attempt.pair_key();
        self.per_account_and_network.check(&pair)?;
        if self.failed_recently(&attempt) {
            if let Err(wait) = self.per_account.check(&attempt.account) {
                self.per_account_and_network.refund(&pair);
                return Err(wait);
            }
            attempt.took_from_account = true;
        }
        Ok(attempt)
    }

    /// Records how the attempt ended: a right password costs nothing (and clears the
    /// network's failures for the account); a wrong one counts against both budgets.
    pub fn finish(&self, attempt: LoginAttempt, outcome: LoginOutcome) {
        let key = (attempt.account.clone(), attempt.network.clone());
        let mut failed = self.failed.lock().unwrap_or_else(|p| p.into_inner());
        if outcome != LoginOutcome::WrongPassword {
            self.per_account_and_network.refund(&attempt.pair_key());
            if attempt.took_from_account {
                self.per_account.refund(&attempt.account);
            }
            if outcome == LoginOutcome::RightPassword {
                failed.remove(&key);
            }
            return;
        }
        if !attempt.took_from_account {
            self.per_account.spend(&attempt.account);
        }
        let now = Instant::now();
        if failed.len() >= MAX_TRACKED_KEYS {
            failed.retain(|_, at| now.duration_since(*at) < FAILED_NETWORK_MEMORY);
        }
        if failed.len() < MAX_TRACKED_KEYS {
            failed.insert(key, now);
        }
    }

    fn failed_recently(&self, attempt: &LoginAttempt) -> bool {
        let failed = self.failed.lock().unwrap_or_else(|p| p.into_inner());
        failed
            .get(&(attempt.account.clone(), attempt.network.clone()))
            .is_some_and(|at| at.elapsed() < FAILED_NETWORK_MEMORY)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allows_a_burst_then_refuses_with_a_wait() {
        let limiter = RateLimiter::per_minute(3);
        for _ in 0..3 {
            assert!(limiter.check("a").is_ok());
        }
        let wait = limiter.check("a").expect_err("fourth is refused");
        assert!(
            wait > Duration::from_secs(15) && wait <= Duration::from_secs(20),
            "{wait:?}"
        );
        assert!(limiter.check("b").is_ok(), "keys are independent");
        limiter.refund("a");
        assert!(limiter.check("a").is_ok(), "a refunded token");
        limiter.spend("b");
        limiter.spend("b");
        limiter.spend("b");
        assert!(limiter.check("b").is_err(), "spent, never refused");
    }

    #[test]
    fn ipv6_clients_are_counted_by_their_64() {
        let net = |s: &str| client_network(s.parse().unwrap());
        assert_eq!(net("192.0.2.7"), "192.0.2.7");
        assert_eq!(net("2001:db8:1:2:aaaa::1"), net("2001:db8:1:2:bbbb::2"));
        assert_ne!(net("2001:db8:1:2::1"), net("2001:db8:1:3::1"));
        assert_eq!(net("::ffff:192.0.2.7"), "192.0.2.7");
    }

    fn throttle(per_pair: u32, per_account: u32) -> LoginThrottle {
        LoginThrottle::new(&LimitsConfig {
            login_failures_per_account_and_address_per_minute: per_pair,
            login_failures_per_account_per_hour: per_account,
            ..LimitsConfig::default()
        })
    }

    #[test]
    fn only_failures_count_and_only_where_they_happen() {
        let throttle = throttle(3, 1000);
        let (attacker, owner) = (
            Some("192.0.2.1".parse().unwrap()),
            Some("198.51.100.2".parse().unwrap()),
        );
        for _ in 0..10 {
            let attempt = throttle.begin("ann", owner).expect("successes cost nothing");
            throttle.finish(attempt, LoginOutcome::RightPassword);
        }
        for _ in 0..3 {
            let attempt = throttle.begin("ann", attacker).expect("within the budget");
            throttle.finish(attempt, LoginOutcome::WrongPassword);
        }
        assert!(throttle.begin("ann", attacker).is_err(), "the attacker's network waits");
        let attempt = throttle.begin("ann", owner).expect("the owner's does not");
        throttle.finish(attempt, LoginOutcome::RightPassword);
        assert!(throttle.begin("bob", attacker).is_ok(), "nor does another account");
    }

    #[test]
    fn the_account_budget_stops_failed_networks_only() {
        let throttle = throttle(10, 3);
        let network = |i: u8| Some(IpAddr::from([192, 0, 2, i]));
        for i in 1..=3 {
            let attempt = throttle.begin("ann", network(i)).expect("a first failure");
            throttle.finish(attempt, LoginOutcome::WrongPassword);
        }
        // The account's budget is spent: networks that failed wait...
        for i in 1..=3 {
            assert!(throttle.begin("ann", network(i)).is_err(), "network {i}");
        }
        // ...a fresh one gets one guess, and then waits too...
        let attempt = throttle.begin("ann", network(4)).expect("a fresh network");
        throttle.finish(attempt, LoginOutcome::WrongPassword);
        assert!(throttle.begin("ann", network(4)).is_err());
        // ...and the owner's, which has not failed, is never refused by it.
        for _ in 0..5 {
            let attempt = throttle.begin("ann", network(9)).expect("the owner");
            throttle.finish(attempt, LoginOutcome::RightPassword);
        }
    }
}
