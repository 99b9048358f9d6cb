//! One reading of the congestion controller, and how a connection's estimate is shared between
//! its audio and its video.

/// One reading of the congestion controller, bits per second.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Estimate {
    /// What the pacer sends at and the encoders share.
    pub target_bps: u32,
    /// Google Congestion Control's delay-based half (queue growth).
    pub delay_based_bps: Option<u32>,
    /// Its loss-based half.
    pub loss_based_bps: Option<u32>,
    /// The loss fraction the loss-based half is working from.
    pub loss: Option<f64>,
}

/// What the video encoder leaves of a connection's estimate: room for audio (Opus at up to
/// 40 kbit/s with its headers) and a margin for retransmissions and RTP overhead.
pub(crate) fn video_share(estimate_bps: u32) -> u32 {
    ((estimate_bps as f64 * VIDEO_SHARE) as u32).saturating_sub(AUDIO_ROOM_BPS)
}

/// The estimate whose video share is `video_bps` (the inverse of [`video_share`]).
pub(crate) fn estimate_for_video(video_bps: u32) -> u32 {
    ((f64::from(video_bps) + f64::from(AUDIO_ROOM_BPS)) / VIDEO_SHARE).ceil() as u32
}

const VIDEO_SHARE: f64 = 0.85;
const AUDIO_ROOM_BPS: u32 = 40_000;
