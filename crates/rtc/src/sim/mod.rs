//! Simulated links and calls for the congestion controller's scenario tests: the real estimator,
//! ladder and probe plan, driven on simulated time, so a 30 s call runs in milliseconds and gives
//! the same trajectory every time.
pub(crate) mod bottleneck;
pub(crate) mod call;
