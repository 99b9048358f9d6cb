//! A shaped link's bottleneck, as `scripts/shaped-link.sh` builds one with `tc tbf` and
//! nftables: a token bucket in front of a fixed rate, a tail-drop queue of bounded delay, and
//! random loss before it. Packets from any number of senders share it in the order they reach it.
use std::time::Duration;

use rand::{Rng, SeedableRng};

/// One-way propagation delay, each way.
pub(crate) const PROPAGATION: Duration = Duration::from_millis(10);
/// The longest a packet may wait in the queue before it is dropped (`tbf … latency 300ms`).
pub(crate) const QUEUE: Duration = Duration::from_millis(300);

/// What became of one packet.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Carried {
    /// When it reached the far end; `None` if it was dropped.
    pub(crate) arrival: Option<Duration>,
    /// When the far end can tell: its arrival, or for a lost packet about when it would have
    /// arrived (a later packet shows the gap).
    pub(crate) known_at: Duration,
}

pub(crate) struct Bottleneck {
    pub(crate) capacity_bps: f64,
    pub(crate) random_loss: f64,
    rng: rand::rngs::StdRng,
    /// When the bottleneck sent (or will send) the last packet it took.
    busy_until: Duration,
    /// Bytes that may pass at once after a quiet spell (at least one packet: a plain rate limit).
    bucket_bytes: f64,
    /// The bucket's tokens at `tokens_at`.
    tokens: f64,
    tokens_at: Duration,
    /// (time sent, queueing delay met) for each packet, its own sending aside.
    pub(crate) queued: Vec<(Duration, Duration)>,
}

impl Bottleneck {
    /// A plain rate limit for packets of up to `packet_bytes`.
    pub(crate) fn new(capacity_bps: f64, random_loss: f64, packet_bytes: usize) -> Self {
        Bottleneck {
            capacity_bps,
            random_loss,
            rng: rand::rngs::StdRng::seed_from_u64(7),
            busy_until: Duration::ZERO,
            bucket_bytes: packet_bytes as f64,
            tokens: packet_bytes as f64,
            tokens_at: Duration::ZERO,
            queued: Vec::new(),
        }
    }

    /// A token bucket of `bytes` in front of the link (`tbf … burst`).
    pub(crate) fn with_bucket(mut self, bytes: f64) -> Self {
        self.bucket_bytes = bytes.max(self.bucket_bytes);
        self.tokens = self.bucket_bytes;
        self
    }

    /// A packet of `bytes` put on the wire at `at`. Packets must be given in the order they
    /// were sent.
    pub(crate) fn carry(&mut self, at: Duration, bytes: usize) -> Carried {
        let size = bytes as f64;
        let at_bottleneck = at + PROPAGATION;
        // In order, once the bucket holds enough tokens for the packet.
        let bytes_per_second = self.capacity_bps / 8.0;
        let start = self.busy_until.max(at_bottleneck);
        let tokens = (self.tokens + (start - self.tokens_at).as_secs_f64() * bytes_per_second)
            .min(self.bucket_bytes);
        let wait = Duration::from_secs_f64((size - tokens).max(0.0) / bytes_per_second);
        let leaves = start + wait;
        // What it waits behind, as the plain rate limit measured it: its own sending aside.
        let backlog = leaves
            .saturating_sub(at_bottleneck)
            .saturating_sub(Duration::from_secs_f64(size / bytes_per_second));
        self.queued.push((at, backlog));
        let lost_at_random = self.rng.gen::<f64>() < self.random_loss;
        // tbf's limit is in bytes (the rate times its latency): a packet is dropped when it
        // would not fit whole, so a small one (feedback) still fits where a large one does not.
        let overflows = leaves.saturating_sub(at_bottleneck) > QUEUE;
        let arrival = if lost_at_random || overflows {
            None
        } else {
            self.tokens = tokens + wait.as_secs_f64() * bytes_per_second - size;
            self.tokens_at = leaves;
            self.busy_until = leaves;
            Some(leaves)
        };
        Carried {
            arrival,
            known_at: arrival.unwrap_or(at_bottleneck + backlog.min(QUEUE)),
        }
    }

    /// The total time after `from` during which packets met more than `queue` of queueing.
    pub(crate) fn time_queued_over(&self, queue: Duration, from: Duration) -> Duration {
        self.queued
            .windows(2)
            .filter(|pair| pair[0].0 >= from && pair[0].1 > queue)
            .map(|pair| pair[1].0 - pair[0].0)
            .sum()
    }
}
