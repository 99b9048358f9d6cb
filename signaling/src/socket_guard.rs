//! The per-socket policy, as a machine with no I/O and the time passed in: the authentication
//! deadline, the idle deadline and the request rate. `connection.rs` asks it what to do with
//! each frame and when to wake up; the unit tests run it on simulated time.
use std::time::{Duration, Instant};

use crate::hub::TokenBucket;

pub const CLOSE_AUTH_TIMEOUT: (u16, &str) = (4002, "authentication timeout");
pub const CLOSE_IDLE: (u16, &str) = (4003, "idle timeout");
pub const CLOSE_RATE_ABUSE: (u16, &str) = (4008, "rate limit exceeded repeatedly");

#[derive(Debug, Clone, Copy)]
pub struct GuardConfig {
    pub auth_timeout: Duration,
    pub idle_timeout: Duration,
    pub rate_burst: u32,
    /// Time to refill one request token.
    pub rate_refill: Duration,
    /// Consecutive refused requests after which the socket is closed.
    pub abuse_limit: u32,
}

/// What to do with a request frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Handle,
    /// Answer `rate_limited`, saying when a request would be taken again, and carry on.
    Refuse {
        retry_after: Duration,
    },
    /// Close the socket with this code and reason.
    Close(u16, &'static str),
}

#[derive(Debug)]
pub struct SocketGuard {
    config: GuardConfig,
    auth_deadline: Option<Instant>,
    idle_deadline: Instant,
    bucket: TokenBucket,
    refused_in_a_row: u32,
}

impl SocketGuard {
    pub fn new(config: GuardConfig, now: Instant) -> SocketGuard {
        SocketGuard {
            config,
            auth_deadline: Some(now + config.auth_timeout),
            idle_deadline: now + config.idle_timeout,
            bucket: TokenBucket::new(config.rate_burst, config.rate_refill, now),
            refused_in_a_row: 0,
        }
    }

    /// The socket signed in: the authentication deadline no longer applies.
    pub fn authenticated(&mut self) {
        self.auth_deadline = None;
    }

    /// Any frame at all (a pong, a binary frame) shows the peer is alive.
    pub fn heard_from(&mut self, now: Instant) {
        self.idle_deadline = now + self.config.idle_timeout;
    }

    /// A request frame arrived. `user_allows` is the signed-in user's own allowance, shared by
    /// all their sockets (true before sign-in); it is only consulted when the socket's bucket
    /// has a token, so a refused frame does not drain the user's.
    pub fn request(&mut self, now: Instant, user_allows: impl FnOnce() -> bool) -> Verdict {
        self.heard_from(now);
        let socket_had_one = self.bucket.try_take(now);
        if socket_had_one && user_allows() {
            self.refused_in_a_row = 0;
            return Verdict::Handle;
        }
        self.refused_in_a_row += 1;
        if self.refused_in_a_row >= self.config.abuse_limit {
            let (code, reason) = CLOSE_RATE_ABUSE;
            return Verdict::Close(code, reason);
        }
        // The socket's own bucket says when its next token comes. When it was the user's
        // allowance (their other sockets) that refused, which refills at the same rate, one
        // token's time is the honest guess.
        let retry_after = match self.bucket.wait(now) {
            Some(wait) if !socket_had_one => wait,
            _ => self.config.rate_refill,
        };
        Verdict::Refuse { retry_after }
    }

    /// When the socket must be closed if nothing arrives, and why.
    pub fn deadline(&self) -> (Instant, (u16, &'static str)) {
        match self.auth_deadline {
            Some(auth) if auth <= self.idle_deadline => (auth, CLOSE_AUTH_TIMEOUT),
            _ => (self.idle_deadline, CLOSE_IDLE),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONFIG: GuardConfig = GuardConfig {
        auth_timeout: Duration::from_secs(10),
        idle_timeout: Duration::from_secs(60),
        rate_burst: 3,
        rate_refill: Duration::from_millis(50),
        abuse_limit: 4,
    };

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn an_unauthenticated_socket_is_closed_at_the_auth_deadline_however_busy() {
        let t0 = Instant::now();
        let mut guard = SocketGuard::new(CONFIG, t0);
        assert_eq!(guard.deadline(), (t0 + secs(10), CLOSE_AUTH_TIMEOUT));
        // Frames keep the socket from idling, not from having to sign in.
        guard.request(t0 + secs(9), || true);
        assert_eq!(guard.deadline(), (t0 + secs(10), CLOSE_AUTH_TIMEOUT));
        guard.authenticated();
        assert_eq!(guard.deadline(), (t0 + secs(69), CLOSE_IDLE));
    }

    #[test]
    fn any_frame_pushes_the_idle_deadline_back() {
        let t0 = Instant::now();
        let mut guard = SocketGuard::new(CONFIG, t0);
        guard.authenticated();
        assert_eq!(guard.deadline(), (t0 + secs(60), CLOSE_IDLE));
        guard.heard_from(t0 + secs(59));
        assert_eq!(guard.deadline(), (t0 + secs(119), CLOSE_IDLE));
        guard.request(t0 + secs(100), || true);
        assert_eq!(guard.deadline(), (t0 + secs(160), CLOSE_IDLE));
    }

    #[test]
    fn a_burst_is_handled_then_refused_then_refilled() {
        let t0 = Instant::now();
        let mut guard = SocketGuard::new(CONFIG, t0);
        for _ in 0..3 {
            assert_eq!(guard.request(t0, || true), Verdict::Handle);
        }
        assert_eq!(
            guard.request(t0, || true),
            Verdict::Refuse {
                retry_after: Duration::from_millis(50)
            }
        );
        // One token every 50 ms, and an allowed request resets the run of refusals.
        let later = t0 + Duration::from_millis(50);
        assert_eq!(guard.request(later, || true), Verdict::Handle);
        for _ in 0..3 {
            assert_eq!(
                guard.request(later, || true),
                Verdict::Refuse {
                    retry_after: Duration::from_millis(50)
                }
            );
        }
        assert_eq!(
            guard.request(later, || true),
            Verdict::Close(4008, "rate limit exceeded repeatedly"),
            "the fourth refusal in a row closes"
        );
    }

    #[test]
    fn the_users_allowance_refuses_too_but_is_not_asked_when_the_socket_has_none() {
        let t0 = Instant::now();
        let mut guard = SocketGuard::new(CONFIG, t0);
        assert_eq!(
            guard.request(t0, || false),
            Verdict::Refuse {
                retry_after: Duration::from_millis(50)
            }
        );
        for _ in 0..2 {
            assert_eq!(guard.request(t0, || true), Verdict::Handle);
        }
        let mut asked = false;
        assert_eq!(
            guard.request(t0, || {
                asked = true;
                true
            }),
            Verdict::Refuse {
                retry_after: Duration::from_millis(50)
            }
        );
        assert!(!asked, "a frame the socket refuses costs the user nothing");
    }
}
