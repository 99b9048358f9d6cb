//! Simulated links and calls for the congestion controller's scenario tests: the real estimator,
//! ladder and probe plan, driven on simulated time, so a 30 s call runs in milliseconds and gives
//! the same trajectory every time.
pub(crate) mod bottleneck;
pub(crate) mod call;

use std::time::{Duration, Instant};

use rtc::interceptor::PacketReport;

/// What transport-wide feedback says of packet `id`, of `size` bytes, sent at `departure`:
/// when it reached the far end (on the far end's clock), or that it never did.
pub(crate) fn report(
    id: u64,
    size: usize,
    departure: Instant,
    arrival: Option<Duration>,
) -> PacketReport {
    PacketReport {
        ssrc: 1,
        id,
        rtp_sequence_number: id as u16,
        is_twcc: true,
        twcc_sequence_number: id as u16,
        size,
        arrived: arrival.is_some(),
        departure,
        arrival,
        ecn: Default::default(),
    }
}
