use std::time::{Duration, Instant};

/// A token bucket on caller-supplied time: `burst` tokens, one more every `refill`.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    burst: u32,
    refill: Duration,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    pub fn new(burst: u32, refill: Duration, now: Instant) -> Self {
        TokenBucket {
            burst,
            refill,
            tokens: burst as f64,
            last: now,
        }
    }

    fn refill_to(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.last);
        self.last = now.max(self.last);
        if !self.refill.is_zero() {
            self.tokens = (self.tokens + elapsed.as_secs_f64() / self.refill.as_secs_f64())
                .min(self.burst as f64);
        }
    }

    /// How long until a token is available: `None` when one is now. Takes nothing.
    pub fn wait(&mut self, now: Instant) -> Option<Duration> {
        self.refill_to(now);
        (self.tokens < 1.0).then(|| self.refill.mul_f64(1.0 - self.tokens))
    }

    /// True when the bucket is full again, so forgetting it changes nothing.
    pub fn is_full(&mut self, now: Instant) -> bool {
        self.refill_to(now);
        self.tokens >= self.burst as f64
    }

    /// Takes a token if one is available.
    pub fn try_take(&mut self, now: Instant) -> bool {
        self.refill_to(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allows_a_burst_then_refills_over_time() {
        let t0 = Instant::now();
        let mut bucket = TokenBucket::new(3, Duration::from_millis(100), t0);
        assert!(bucket.try_take(t0));
        assert!(bucket.try_take(t0));
        assert!(bucket.try_take(t0));
        assert!(!bucket.try_take(t0), "burst exhausted");
        assert!(!bucket.try_take(t0 + Duration::from_millis(50)));
        assert!(
            bucket.try_take(t0 + Duration::from_millis(110)),
            "one token refilled"
        );
        assert!(!bucket.try_take(t0 + Duration::from_millis(110)));
        // A long pause refills only up to the burst.
        let later = t0 + Duration::from_secs(60);
        for _ in 0..3 {
            assert!(bucket.try_take(later));
        }
        assert!(!bucket.try_take(later));
    }

    #[test]
    fn says_how_long_until_the_next_token() {
        let t0 = Instant::now();
        let mut bucket = TokenBucket::new(1, Duration::from_secs(60), t0);
        assert_eq!(bucket.wait(t0), None);
        assert!(bucket.try_take(t0));
        assert_eq!(bucket.wait(t0), Some(Duration::from_secs(60)));
        let wait = bucket.wait(t0 + Duration::from_secs(45)).unwrap();
        assert!((wait.as_secs_f64() - 15.0).abs() < 1e-6, "{wait:?}");
        assert!(!bucket.is_full(t0 + Duration::from_secs(45)));
        assert_eq!(bucket.wait(t0 + Duration::from_secs(60)), None);
        assert!(bucket.is_full(t0 + Duration::from_secs(60)));
    }
}
