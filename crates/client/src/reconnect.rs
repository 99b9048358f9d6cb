//! How a connection is kept up: when a silent link is pinged and when it counts as dead, and
//! when to try again after it drops (exponential backoff with full jitter, for ever unless
//! bounded). Pure, so its schedule is tested directly.
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReconnectPolicy {
    /// Attempts before giving up (the connection then goes `Offline`); `None` tries for as long
    /// as the connection is open, which is what a chat app wants: the user never has to sign
    /// in again because the server was down for a while.
    pub max_attempts: Option<u32>,
    pub base: Duration,
    pub max_delay: Duration,
    /// With nothing heard from the server for this long, the client pings it.
    pub ping_after: Duration,
    /// With nothing heard for this long (a ping went unanswered), the link is taken for dead
    /// and dropped. A link can die without a FIN or RST reaching us (a laptop changing
    /// networks, a NAT forgetting us); without this the socket would look open for ever.
    pub dead_after: Duration,
}

impl Default for ReconnectPolicy {
    fn default() -> Self {
        ReconnectPolicy {
            max_attempts: None,
            base: Duration::from_millis(250),
            max_delay: Duration::from_secs(30),
            ping_after: Duration::from_secs(10),
            dead_after: Duration::from_secs(25),
        }
    }
}

/// What a connection should do about a quiet link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Silence {
    /// Nothing to do until this much longer has passed.
    Wait(Duration),
    /// Send a ping now (once per silence).
    Ping,
    /// Give the link up.
    Dead,
}

impl ReconnectPolicy {
    /// The wait before attempt `attempt` (1-based), or `None` once attempts are used up.
    /// `unit` is a random number in [0, 1): "full jitter" picks uniformly below the
    /// exponential ceiling, so that many clients dropped together do not return together.
    pub fn delay(&self, attempt: u32, unit: f64) -> Option<Duration> {
        if attempt == 0 || self.max_attempts.is_some_and(|max| attempt > max) {
            return None;
        }
        let exponent = (attempt - 1).min(20);
        let ceiling = self
            .base
            .saturating_mul(1u32 << exponent)
            .min(self.max_delay);
        Some(ceiling.mul_f64(unit.clamp(0.0, 1.0)))
    }

    /// What to do after `quiet` with nothing received, `pinged` saying whether this silence
    /// was already pinged.
    pub fn silence(&self, quiet: Duration, pinged: bool) -> Silence {
        if quiet >= self.dead_after {
            Silence::Dead
        } else if pinged {
            Silence::Wait(self.dead_after - quiet)
        } else if quiet >= self.ping_after {
            Silence::Ping
        } else {
            Silence::Wait(self.ping_after - quiet)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_exponentially_up_to_the_cap_and_stops() {
        let p = ReconnectPolicy {
            max_attempts: Some(8),
            base: Duration::from_millis(100),
            max_delay: Duration::from_secs(2),
            ..ReconnectPolicy::default()
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

    #[test]
    fn the_default_never_gives_up_and_waits_at_most_thirty_seconds() {
        let p = ReconnectPolicy::default();
        for attempt in [1, 10, 1000, u32::MAX] {
            let wait = p.delay(attempt, 0.999_999).expect("never gives up");
            assert!(wait <= Duration::from_secs(30), "{attempt}: {wait:?}");
        }
        assert!(p.delay(1000, 0.999_999).unwrap() > Duration::from_secs(29));
    }

    #[test]
    fn a_silent_link_is_pinged_once_then_given_up() {
        let p = ReconnectPolicy::default();
        let s = Duration::from_secs;
        assert_eq!(p.silence(s(0), false), Silence::Wait(s(10)));
        assert_eq!(p.silence(s(4), false), Silence::Wait(s(6)));
        assert_eq!(p.silence(s(10), false), Silence::Ping);
        assert_eq!(p.silence(s(10), true), Silence::Wait(s(15)));
        assert_eq!(p.silence(s(24), true), Silence::Wait(s(1)));
        assert_eq!(p.silence(s(25), true), Silence::Dead);
        // However it got there, a link quiet for too long is dead, pinged or not.
        assert_eq!(p.silence(s(30), false), Silence::Dead);
    }
}
