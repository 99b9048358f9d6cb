//! When to try again: bounded attempts, exponential backoff, full jitter. Pure, so its schedule
//! is tested directly.
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReconnectPolicy {
    /// Attempts before giving up (after which the caller decides; the UI shows "offline").
    pub max_attempts: u32,
    pub base: Duration,
    pub max_delay: Duration,
}

impl Default for ReconnectPolicy {
    fn default() -> Self {
        ReconnectPolicy {
            max_attempts: 20,
            base: Duration::from_millis(250),
            max_delay: Duration::from_secs(30),
        }
    }
}

impl ReconnectPolicy {
    /// The wait before attempt `attempt` (1-based), or `None` once attempts are used up.
    /// `unit` is a random number in [0, 1): "full jitter" picks uniformly below the
    /// exponential ceiling, so that many clients dropped together do not return together.
    pub fn delay(&self, attempt: u32, unit: f64) -> Option<Duration> {
        if attempt == 0 || attempt > self.max_attempts {
            return None;
        }
        let exponent = (attempt - 1).min(20);
        let ceiling = self
            .base
            .saturating_mul(1u32 << exponent)
            .min(self.max_delay);
        Some(ceiling.mul_f64(unit.clamp(0.0, 1.0)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_exponentially_up_to_the_cap_and_stops() {
        let p = ReconnectPolicy {
            max_attempts: 8,
            base: Duration::from_millis(100),
            max_delay: Duration::from_secs(2),
        };
        let ceilings: Vec<u128> = (1..=8)
            .map(|a| p.delay(a, 0.999_999).unwrap().as_millis())
            .collect();
        assert_eq!(ceilings, vec![99, 199, 399, 799, 1599, 1999, 1999, 1999]);
        assert_eq!(p.delay(9, 0.5), None);
        assert_eq!(p.delay(0, 0.5), None);
        assert_eq!(p.delay(3, 0.0), Some(Duration::ZERO));
        assert_eq!(p.delay(3, 0.5), Some(Duration::from_millis(200)));
    }
}
