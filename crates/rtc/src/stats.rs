//! One stats schema for every connection, merging what the WebRTC stack measures (packets,
//! loss, jitter, round-trip time, candidate pair) with what Parlor's own pipelines count
//! (frames encoded and decoded, resolution, frame rate).
use serde::Serialize;

#[derive(Debug, Clone, Default, Serialize)]
pub struct CallStats {
    /// Seconds since the Unix epoch when taken.
    pub timestamp: f64,
    pub selected_pair: Option<CandidatePair>,
    pub outbound: Vec<OutboundTrack>,
    pub inbound: Vec<InboundTrack>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct CandidatePair {
    pub local_type: String,
    pub local_address: String,
    pub remote_type: String,
    pub remote_address: String,
    pub protocol: String,
    pub round_trip_time_ms: Option<f64>,
    pub bytes_sent: u64,
    pub bytes_received: u64,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct OutboundTrack {
    pub track_id: String,
    pub kind: String,
    pub ssrc: u32,
    pub packets_sent: u64,
    pub bytes_sent: u64,
    pub bitrate_bps: f64,
    pub packets_lost_reported: i64,
    pub round_trip_time_ms: Option<f64>,
    pub frames_encoded: u64,
    pub keyframes_encoded: u64,
    pub frame_width: u32,
    pub frame_height: u32,
    pub frames_per_second: f64,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct InboundTrack {
    pub track_id: String,
    pub kind: String,
    pub ssrc: u32,
    pub packets_received: u64,
    pub bytes_received: u64,
    pub bitrate_bps: f64,
    pub packets_lost: i64,
    pub jitter_ms: f64,
    pub frames_decoded: u64,
    pub keyframes_decoded: u64,
    pub frames_dropped: u64,
    pub frame_width: u32,
    pub frame_height: u32,
    pub frames_per_second: f64,
    pub samples_received: u64,
    pub samples_concealed: u64,
    pub plis_sent: u64,
}
