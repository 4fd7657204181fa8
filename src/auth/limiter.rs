//! Failed-login rate limiting, per username and per client address.
//!
//! After `max_failures` failures within `window`, a username (or an
//! address) is locked for `lockout`, doubled at each further lockout up to
//! `max_lockout`; a success clears the username's record (never the
//! address's: one good account must not unlock an address that guesses
//! others). Memory is bounded: at most `max_entries` records, expired ones
//! dropped first.
//!
//! This module must never sleep, block on I/O or read the wall clock
//! directly (the [`Clock`] is injected, so tests control time), and never
//! keep a password.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// A source of monotonic time.
pub trait Clock: Send + Sync + std::fmt::Debug {
    fn now(&self) -> Instant;
}

/// The real monotonic clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Instant {
        Instant::now()
    }
}

/// When a locked username or address may try again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("too many failed logins: retry in {} s", .0.as_secs().max(1))]
pub struct RetryAfter(pub Duration);

/// Thresholds of the limiter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimiterConfig {
    /// Failures of one username within `window` that lock it.
    pub max_failures_per_user: u32,
    /// Failures from one address within `window` that lock it (higher:
    /// many people may share an address).
    pub max_failures_per_ip: u32,
    pub window: Duration,
    /// The first lockout; each further one doubles, up to `max_lockout`.
    pub lockout: Duration,
    pub max_lockout: Duration,
    /// Records kept at most (usernames and addresses together).
    pub max_entries: usize,
}

impl Default for LimiterConfig {
    fn default() -> Self {
        LimiterConfig {
            max_failures_per_user: 5,
            max_failures_per_ip: 20,
            window: Duration::from_secs(15 * 60),
            lockout: Duration::from_secs(60),
            max_lockout: Duration::from_secs(60 * 60),
            max_entries: 100_000,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    User(String),
    Address(IpAddr),
}

#[derive(Debug, Default)]
struct Record {
    failures: VecDeque<Instant>,
    locked_until: Option<Instant>,
    lockouts: u32,
    last_seen: Option<Instant>,
}

/// The limiter; share it behind an `Arc`.
#[derive(Debug)]
pub struct LoginLimiter {
    config: LimiterConfig,
    clock: Arc<dyn Clock>,
    records: Mutex<HashMap<Key, Record>>,
}

impl LoginLimiter {
    pub fn new(config: LimiterConfig, clock: Arc<dyn Clock>) -> LoginLimiter {
        LoginLimiter {
            config,
            clock,
            records: Mutex::new(HashMap::new()),
        }
    }

    /// With the system clock.
    pub fn with_system_clock(config: LimiterConfig) -> LoginLimiter {
        LoginLimiter::new(config, Arc::new(SystemClock))
    }

    fn records(&self) -> MutexGuard<'_, HashMap<Key, Record>> {
        // A panic while holding the lock leaves counters, not broken
        // invariants: keep going with them.
        self.records
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Whether a login of `username` from `address` may be tried now.
    /// Call before checking the password.
    pub fn check(&self, username: &str, address: Option<IpAddr>) -> Result<(), RetryAfter> {
        let now = self.clock.now();
        let records = self.records();
        let mut wait = Duration::ZERO;
        for key in keys(username, address) {
            if let Some(until) = records.get(&key).and_then(|record| record.locked_until)
                && until > now
            {
                wait = wait.max(until - now);
            }
        }
        if wait.is_zero() {
            Ok(())
        } else {
            Err(RetryAfter(wait))
        }
    }

    /// Counts a failed login (wrong password, unknown user, disabled).
    pub fn record_failure(&self, username: &str, address: Option<IpAddr>) {
        let now = self.clock.now();
        let mut records = self.records();
        if records.len() >= self.config.max_entries {
            self.prune(&mut records, now);
        }
        for key in keys(username, address) {
            let limit = match key {
                Key::User(_) => self.config.max_failures_per_user,
                Key::Address(_) => self.config.max_failures_per_ip,
            };
            if !records.contains_key(&key) && records.len() >= self.config.max_entries {
                // Full of live records: the oldest one goes.
                if let Some(oldest) = records
                    .iter()
                    .min_by_key(|(_, record)| record.last_seen)
                    .map(|(key, _)| key.clone())
                {
                    records.remove(&oldest);
                }
            }
            let record = records.entry(key).or_default();
            record.last_seen = Some(now);
            if record.locked_until.is_some_and(|until| until > now) {
                continue;
            }
            while record
                .failures
                .front()
                .is_some_and(|&at| now.duration_since(at) >= self.config.window)
            {
                record.failures.pop_front();
            }
            record.failures.push_back(now);
            if record.failures.len() >= limit.max(1) as usize {
                let factor = 1u32 << record.lockouts.min(16);
                let lockout = self
                    .config
                    .lockout
                    .saturating_mul(factor)
                    .min(self.config.max_lockout);
                record.locked_until = Some(now + lockout);
                record.lockouts = record.lockouts.saturating_add(1);
                record.failures.clear();
            }
        }
    }

    /// A successful login clears the username's record.
    pub fn record_success(&self, username: &str, _address: Option<IpAddr>) {
        self.records().remove(&Key::User(normalize(username)));
    }

    /// Drops records that are neither locked nor have a failure in the
    /// window.
    fn prune(&self, records: &mut HashMap<Key, Record>, now: Instant) {
        records.retain(|_, record| {
            record.locked_until.is_some_and(|until| until > now)
                || record
                    .failures
                    .back()
                    .is_some_and(|&at| now.duration_since(at) < self.config.window)
        });
    }

    /// Records held (for metrics and tests).
    pub fn len(&self) -> usize {
        self.records().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn normalize(username: &str) -> String {
    username.trim().to_lowercase()
}

fn keys(username: &str, address: Option<IpAddr>) -> impl Iterator<Item = Key> {
    std::iter::once(Key::User(normalize(username))).chain(address.map(|address| {
        // An IPv6 client controls its whole /64: count it as one address.
        Key::Address(match address {
            IpAddr::V6(v6) => {
                let segments = v6.segments();
                IpAddr::V6(std::net::Ipv6Addr::new(
                    segments[0],
                    segments[1],
                    segments[2],
                    segments[3],
                    0,
                    0,
                    0,
                    0,
                ))
            }
            v4 => v4,
        })
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct ManualClock(Mutex<Instant>);

    impl ManualClock {
        fn advance(&self, by: Duration) {
            let mut now = self.0.lock().expect("clock lock");
            *now += by;
        }
    }

    impl Clock for ManualClock {
        fn now(&self) -> Instant {
            *self.0.lock().expect("clock lock")
        }
    }

    fn limiter(config: LimiterConfig) -> (LoginLimiter, Arc<ManualClock>) {
        let clock = Arc::new(ManualClock(Mutex::new(Instant::now())));
        (LoginLimiter::new(config, clock.clone()), clock)
    }

    fn config() -> LimiterConfig {
        LimiterConfig {
            max_failures_per_user: 3,
            max_failures_per_ip: 5,
            window: Duration::from_secs(60),
            lockout: Duration::from_secs(30),
            max_lockout: Duration::from_secs(100),
            max_entries: 1000,
        }
    }

    fn ip(text: &str) -> Option<IpAddr> {
        Some(text.parse().expect("test address"))
    }

    #[test]
    fn user_is_locked_after_failures_and_unlocked_after_the_lockout() {
        let (limiter, clock) = limiter(config());
        for _ in 0..2 {
            assert_eq!(limiter.check("allen-p", ip("10.0.0.1")), Ok(()));
            limiter.record_failure("allen-p", ip("10.0.0.1"));
        }
        assert_eq!(limiter.check("allen-p", ip("10.0.0.1")), Ok(()));
        limiter.record_failure("Allen-P", ip("10.0.0.1"));
        assert_eq!(
            limiter.check("allen-p", ip("10.0.0.9")),
            Err(RetryAfter(Duration::from_secs(30))),
            "the username is locked from any address, in any case"
        );
        assert_eq!(limiter.check("arnold-j", ip("10.0.0.1")), Ok(()));
        clock.advance(Duration::from_secs(29));
        assert_eq!(
            limiter.check("allen-p", None),
            Err(RetryAfter(Duration::from_secs(1)))
        );
        clock.advance(Duration::from_secs(1));
        assert_eq!(limiter.check("allen-p", None), Ok(()));
    }

    #[test]
    fn failures_outside_the_window_do_not_count() {
        let (limiter, clock) = limiter(config());
        limiter.record_failure("allen-p", None);
        limiter.record_failure("allen-p", None);
        clock.advance(Duration::from_secs(61));
        limiter.record_failure("allen-p", None);
        limiter.record_failure("allen-p", None);
        assert_eq!(limiter.check("allen-p", None), Ok(()));
        limiter.record_failure("allen-p", None);
        assert!(limiter.check("allen-p", None).is_err());
    }

    #[test]
    fn lockouts_double_up_to_the_maximum() {
        let (limiter, clock) = limiter(config());
        let mut expected = [30, 60, 100, 100].into_iter();
        for _ in 0..4 {
            for _ in 0..3 {
                limiter.record_failure("allen-p", None);
            }
            let Err(RetryAfter(wait)) = limiter.check("allen-p", None) else {
                panic!("locked after three failures");
            };
            assert_eq!(
                wait,
                Duration::from_secs(expected.next().expect("four rounds"))
            );
            // Failures while locked do not extend the lock.
            limiter.record_failure("allen-p", None);
            assert_eq!(limiter.check("allen-p", None), Err(RetryAfter(wait)));
            clock.advance(wait);
            assert_eq!(limiter.check("allen-p", None), Ok(()));
        }
    }

    #[test]
    fn an_address_guessing_many_users_is_locked() {
        let (limiter, _clock) = limiter(config());
        for user in ["a", "b", "c", "d", "e"] {
            assert_eq!(limiter.check(user, ip("192.0.2.7")), Ok(()));
            limiter.record_failure(user, ip("192.0.2.7"));
        }
        assert!(limiter.check("f", ip("192.0.2.7")).is_err());
        assert_eq!(limiter.check("f", ip("192.0.2.8")), Ok(()));
        // A success of a real account from the address does not unlock it.
        limiter.record_success("g", ip("192.0.2.7"));
        assert!(limiter.check("g", ip("192.0.2.7")).is_err());
        // IPv6: the whole /64 counts as one client.
        for n in 1..=5 {
            limiter.record_failure(&format!("v6-{n}"), ip(&format!("2001:db8::{n}")));
        }
        assert!(limiter.check("other", ip("2001:db8::ffff")).is_err());
        assert_eq!(limiter.check("other", ip("2001:db8:0:1::1")), Ok(()));
    }

    #[test]
    fn success_clears_the_user_and_memory_is_bounded() {
        let (limiter, clock) = limiter(LimiterConfig {
            max_entries: 4,
            ..config()
        });
        limiter.record_failure("allen-p", None);
        limiter.record_failure("allen-p", None);
        limiter.record_success("ALLEN-P", None);
        limiter.record_failure("allen-p", None);
        limiter.record_failure("allen-p", None);
        assert_eq!(
            limiter.check("allen-p", None),
            Ok(()),
            "the count restarted"
        );
        for n in 0..10 {
            limiter.record_failure(&format!("user-{n}"), None);
            clock.advance(Duration::from_secs(1));
        }
        assert!(limiter.len() <= 4, "{} records", limiter.len());
        assert!(!limiter.is_empty());
    }
}
