//! What the send and receive pipelines count as they run, read by the stats.
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Counters kept by the send pipeline, for stats.
#[derive(Debug, Clone, Default)]
pub struct SendCounters {
    pub frames_captured: u64,
    pub frames_encoded: u64,
    pub keyframes_encoded: u64,
    pub frames_dropped: u64,
    pub bytes_encoded: u64,
    pub width: u32,
    pub height: u32,
    pub encode_time: Duration,
    pub last_error: Option<String>,
    /// Why the picture sent is smaller or slower than the source, as of the last frame.
    pub quality_limitation: QualityLimitation,
}

/// getStats' `qualityLimitationReason`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum QualityLimitation {
    #[default]
    None,
    /// The link: the ladder sends a smaller size or fewer frames than the source has.
    Bandwidth,
    /// The encoder took longer than a frame's interval: frames cannot all be encoded.
    Cpu,
}

impl QualityLimitation {
    /// What limited the frame just encoded in `encode_time`, one of `fps` a second, at a size
    /// the ladder reduced (`reduced`) or not.
    pub(crate) fn of_frame(encode_time: Duration, fps: u32, reduced: bool) -> Self {
        if encode_time > Duration::from_secs(1) / fps.max(1) {
            QualityLimitation::Cpu
        } else if reduced {
            QualityLimitation::Bandwidth
        } else {
            QualityLimitation::None
        }
    }
}

/// Counters kept by a receive pipeline, for stats.
#[derive(Debug, Clone, Default)]
pub struct ReceiveCounters {
    pub packets: u64,
    pub bytes: u64,
    pub packets_lost: u64,
    /// Packets that arrived after their place was given up (getStats' `packetsDiscarded`).
    pub packets_late: u64,
    /// Second copies of packets already received (crossed retransmissions, senders' probes).
    pub packets_duplicated: u64,
    pub frames_decoded: u64,
    pub keyframes_decoded: u64,
    pub frames_dropped: u64,
    pub decode_errors: u64,
    pub plis_sent: u64,
    pub width: u32,
    pub height: u32,
    pub samples_received: u64,
    pub samples_concealed: u64,
    /// Of those, the samples made up for silence the sender left out (DTX): getStats'
    /// `silentConcealedSamples`. The rest stood in for lost packets.
    pub silent_concealed_samples: u64,
    /// Lost audio frames recovered from the in-band FEC of the packet after them (getStats'
    /// `fecPacketsReceived`, which the specification lets count FEC carried in media packets,
    /// as Opus's is). Video carries no FEC: its losses are repaired by retransmission.
    pub fec_packets_received: u64,
    pub decode_time: Duration,
    pub first_frame_at: Option<Instant>,
    /// getStats' `jitterBufferTargetDelay` (the sum, over frames handed out, of how long frames
    /// were being held back for smoothness when each was) and `jitterBufferEmittedCount`.
    pub jitter_buffer_target_delay: Duration,
    pub jitter_buffer_emitted_count: u64,
    /// Freezes in the decoded video, as getStats counts them.
    pub freezes: crate::freezes::FreezeCounter,
}

pub(crate) type Counters = Arc<Mutex<ReceiveCounters>>;
