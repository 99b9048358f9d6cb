//! Sign-in throttles: how many failed sign-ins an address or an account may make, and how many
//! accounts an address may register, before it is told to wait. Pure, on time passed in.
//!
//! Only failures count against sign-ins: fifty colleagues behind one office address, all
//! reconnecting after a Wi-Fi drop, authenticate at once and must not lock each other out; a
//! password guesser fails, and is slowed to the refill rate. Registrations count whether or not
//! they succeed, since each creates an account and costs an argon2 hash.
use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use crate::hub::TokenBucket;

/// Size and refill of one kind of bucket.
#[derive(Debug, Clone, Copy)]
pub struct Allowance {
    pub burst: u32,
    pub refill: Duration,
}

#[derive(Debug, Clone, Copy)]
pub struct ThrottleConfig {
    /// Failed logins and authentications from one address.
    pub failures_per_address: Allowance,
    /// Failed logins to one account, from anywhere.
    pub failures_per_account: Allowance,
    /// Registrations from one address.
    pub registrations_per_address: Allowance,
}

/// Buckets are forgotten once full again; past this many of one kind, full ones are swept out
/// before another is added, so an attacker cycling through names cannot grow memory for ever.
const SWEEP_ABOVE: usize = 10_000;

struct Buckets<K> {
    allowance: Allowance,
    buckets: HashMap<K, TokenBucket>,
}

impl<K: Hash + Eq> Buckets<K> {
    fn new(allowance: Allowance) -> Self {
        Buckets {
            allowance,
            buckets: HashMap::new(),
        }
    }

    fn wait(&mut self, key: &K, now: Instant) -> Option<Duration> {
        self.buckets.get_mut(key).and_then(|b| b.wait(now))
    }

    fn take(&mut self, key: K, now: Instant) {
        if self.buckets.len() >= SWEEP_ABOVE && !self.buckets.contains_key(&key) {
            self.buckets.retain(|_, b| !b.is_full(now));
        }
        let Allowance { burst, refill } = self.allowance;
        self.buckets
            .entry(key)
            .or_insert_with(|| TokenBucket::new(burst, refill, now))
            .try_take(now);
    }
}

pub struct SignInThrottle {
    failures_by_address: Buckets<IpAddr>,
    failures_by_account: Buckets<String>,
    registrations_by_address: Buckets<IpAddr>,
}

/// The key of an account: logins ignore case, so its throttle does too.
fn account(username: &str) -> String {
    username.to_lowercase()
}

impl SignInThrottle {
    pub fn new(config: ThrottleConfig) -> Self {
        SignInThrottle {
            failures_by_address: Buckets::new(config.failures_per_address),
            failures_by_account: Buckets::new(config.failures_per_account),
            registrations_by_address: Buckets::new(config.registrations_per_address),
        }
    }

    /// Before checking a password: how long the address or the account must wait first.
    pub fn login_wait(&mut self, from: IpAddr, username: &str, now: Instant) -> Option<Duration> {
        let by_address = self.failures_by_address.wait(&from, now);
        let by_account = self.failures_by_account.wait(&account(username), now);
        by_address.max(by_account)
    }

    pub fn login_failed(&mut self, from: IpAddr, username: &str, now: Instant) {
        self.failures_by_address.take(from, now);
        self.failures_by_account.take(account(username), now);
    }

    /// Before checking a token.
    pub fn authenticate_wait(&mut self, from: IpAddr, now: Instant) -> Option<Duration> {
        self.failures_by_address.wait(&from, now)
    }

    pub fn authenticate_failed(&mut self, from: IpAddr, now: Instant) {
        self.failures_by_address.take(from, now);
    }

    /// Takes one registration from the address's allowance, or says how long to wait.
    pub fn register(&mut self, from: IpAddr, now: Instant) -> Result<(), Duration> {
        if let Some(wait) = self.registrations_by_address.wait(&from, now) {
            return Err(wait);
        }
        self.registrations_by_address.take(from, now);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINUTE: Duration = Duration::from_secs(60);

    fn throttle() -> SignInThrottle {
        SignInThrottle::new(ThrottleConfig {
            failures_per_address: Allowance {
                burst: 5,
                refill: Duration::from_secs(6),
            },
            failures_per_account: Allowance {
                burst: 3,
                refill: MINUTE,
            },
            registrations_per_address: Allowance {
                burst: 2,
                refill: MINUTE,
            },
        })
    }

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([192, 0, 2, last])
    }

    #[test]
    fn an_account_is_slowed_after_its_failures_from_any_address() {
        let t0 = Instant::now();
        let mut t = throttle();
        for (i, from) in [ip(1), ip(2), ip(3)].into_iter().enumerate() {
            assert_eq!(t.login_wait(from, "Ann", t0), None, "attempt {i}");
            t.login_failed(from, "ann", t0);
        }
        // Case does not give a guesser a second allowance.
        let wait = t.login_wait(ip(4), "ANN", t0).expect("the account waits");
        assert_eq!(wait, MINUTE);
        assert_eq!(
            t.login_wait(ip(4), "bob", t0),
            None,
            "other accounts are free"
        );
        assert_eq!(t.login_wait(ip(4), "ann", t0 + MINUTE), None, "refilled");
    }

    #[test]
    fn an_address_is_slowed_after_its_failures_on_any_account() {
        let t0 = Instant::now();
        let mut t = throttle();
        for name in ["a", "b", "c", "d", "e"] {
            assert_eq!(t.login_wait(ip(1), name, t0), None);
            t.login_failed(ip(1), name, t0);
        }
        assert!(t.login_wait(ip(1), "f", t0).is_some());
        assert!(t.authenticate_wait(ip(1), t0).is_some(), "tokens too");
        assert_eq!(t.authenticate_wait(ip(2), t0), None);
        let later = t0 + Duration::from_secs(6);
        assert_eq!(
            t.login_wait(ip(1), "f", later),
            None,
            "one failure refilled"
        );
    }

    #[test]
    fn successes_cost_nothing() {
        let t0 = Instant::now();
        let mut t = throttle();
        for _ in 0..1000 {
            assert_eq!(t.authenticate_wait(ip(1), t0), None);
            assert_eq!(t.login_wait(ip(1), "ann", t0), None);
        }
    }

    #[test]
    fn registrations_are_counted_per_address() {
        let t0 = Instant::now();
        let mut t = throttle();
        assert_eq!(t.register(ip(1), t0), Ok(()));
        assert_eq!(t.register(ip(1), t0), Ok(()));
        assert_eq!(t.register(ip(1), t0), Err(MINUTE));
        assert_eq!(t.register(ip(2), t0), Ok(()));
        assert_eq!(t.register(ip(1), t0 + MINUTE), Ok(()));
    }

    #[test]
    fn full_buckets_are_swept_so_memory_stays_bounded() {
        let t0 = Instant::now();
        let mut t = throttle();
        for i in 0..SWEEP_ABOVE {
            t.login_failed(ip(1), &format!("user{i}"), t0);
        }
        assert_eq!(t.failures_by_account.buckets.len(), SWEEP_ABOVE);
        // An hour on, every one of them is full again and goes on the next insert.
        t.login_failed(ip(1), "one-more", t0 + 60 * MINUTE);
        assert_eq!(t.failures_by_account.buckets.len(), 1);
    }
}
