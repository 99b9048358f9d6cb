//! One link of a mesh call (the peer connection to one other participant) as the call machine
//! sees it: who offers, whether an offer is out, and when to try an offer again.
use std::time::Instant;

use crate::reconnect::ReconnectPolicy;

/// An offer to make later.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Retry {
    pub at: Instant,
    pub restart_ice: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Link {
    /// This side makes the first offer (and the ICE restarts), and wins offer collisions.
    pub offerer: bool,
    /// An offer of ours is waiting for its answer.
    pub offer_pending: bool,
    /// Offer again once the pending offer is answered (tracks changed meanwhile).
    pub offer_again: bool,
    pub connected: bool,
    /// We answered an offer with no section for one of our tracks: once that answer is in
    /// place, this side offers to add it.
    pub offer_after_answer: bool,
    /// The next offer to try on a timer: an ICE restart (after `disconnected`, or again when
    /// the last restart did not reconnect) or an offer that failed to go out.
    pub retry: Option<Retry>,
    /// Offers tried on a timer since the link last worked (for the backoff).
    pub attempts: u32,
}

impl Link {
    pub fn new(offerer: bool) -> Self {
        Link {
            offerer,
            offer_pending: offerer,
            offer_again: false,
            connected: false,
            offer_after_answer: false,
            retry: None,
            attempts: 0,
        }
    }

    /// Counts one more attempt and schedules the next offer after `policy`'s backoff; false
    /// (and nothing scheduled) once the attempts are used up.
    pub fn retry_later(
        &mut self,
        now: Instant,
        policy: &ReconnectPolicy,
        restart_ice: bool,
    ) -> bool {
        self.attempts += 1;
        self.retry = policy.delay(self.attempts, 1.0).map(|wait| Retry {
            at: now + wait,
            restart_ice,
        });
        self.retry.is_some()
    }

    /// The link works: whatever was scheduled to bring it back is not needed.
    pub fn connected(&mut self) {
        self.connected = true;
        self.attempts = 0;
        if self.retry.is_some_and(|r| r.restart_ice) {
            self.retry = None;
        }
    }
}
