//! One stats schema for every connection, merging what the WebRTC stack measures (packets,
//! loss, jitter, round-trip time, candidate pair) with what Parlor's own pipelines count
//! (frames encoded and decoded, resolution, frame rate).
use std::collections::HashMap;
use std::time::Instant;

use serde::Serialize;
use webrtc::peer_connection::{RTCStatsReportEntry, StatsSelector};

use std::sync::Mutex;

use webrtc::peer_connection::PeerConnection as RawPeerConnection;

use crate::counters::{Counters, ReceiveCounters, SendCounters};
use crate::estimate::Estimate;
use crate::lifecycle::Cancel;

pub(crate) struct OutboundSource {
    pub ssrc: u32,
    pub track_id: String,
    pub kind: &'static str,
    pub counters: Box<dyn Fn() -> SendCounters + Send + Sync>,
}

pub(crate) struct InboundSource {
    pub ssrc: u32,
    pub track_id: String,
    pub kind: &'static str,
    /// The negotiated codec, as getStats' `codec.mimeType` spells it.
    pub mime_type: &'static str,
    pub counters: Counters,
}

/// What the stats read from one connection's own pipelines (by SSRC), and their last readings
/// for rates. The connection owns it; its pipelines register themselves in it.
#[derive(Default)]
pub(crate) struct StatsRegistry {
    outbound: Mutex<Vec<OutboundSource>>,
    inbound: Mutex<Vec<InboundSource>>,
    previous: Mutex<Previous>,
    /// NACKs received, by the SSRC they name: webrtc-rs's NACK responder takes them before its
    /// own stats would count them, so `retransmissions` counts them on their way in.
    nacks_received: Mutex<HashMap<u32, u32>>,
}

impl StatsRegistry {
    pub(crate) fn add_outbound(&self, source: OutboundSource) {
        lock(&self.outbound).push(source);
    }

    pub(crate) fn add_inbound(&self, source: InboundSource) {
        lock(&self.inbound).push(source);
    }

    pub(crate) fn nack_received(&self, ssrc: u32) {
        *lock(&self.nacks_received).entry(ssrc).or_default() += 1;
    }

    /// The remote tracks received so far.
    pub(crate) fn inbound_track_ids(&self) -> Vec<String> {
        lock(&self.inbound)
            .iter()
            .map(|t| t.track_id.clone())
            .collect()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The last snapshot per SSRC, for rates: (when, bytes, frames).
#[derive(Default)]
struct Previous(HashMap<u32, (Instant, u64, u64)>);

impl Previous {
    /// Bits per second and frames per second since the previous call for this SSRC.
    fn rates(&mut self, ssrc: u32, bytes: u64, frames: u64) -> (f64, f64) {
        let now = Instant::now();
        let rates = match self.0.get(&ssrc) {
            Some((then, b, f)) => {
                let secs = now.duration_since(*then).as_secs_f64();
                if secs > 0.05 {
                    (
                        bytes.saturating_sub(*b) as f64 * 8.0 / secs,
                        frames.saturating_sub(*f) as f64 / secs,
                    )
                } else {
                    (0.0, 0.0)
                }
            }
            None => (0.0, 0.0),
        };
        self.0.insert(ssrc, (now, bytes, frames));
        rates
    }
}

type PairStats = rtc::statistics::stats::ice_candidate_pair::RTCIceCandidatePairStats;

/// The pair media flows on: the nominated pair that carried most, else whichever carried most.
fn selected_pair(report: &webrtc::peer_connection::RTCStatsReport) -> Option<&PairStats> {
    let pairs: Vec<&PairStats> = report
        .iter()
        .filter_map(|entry| match entry {
            RTCStatsReportEntry::IceCandidatePair(p) => Some(p),
            _ => None,
        })
        .collect();
    let carried = |p: &&PairStats| p.bytes_received + p.bytes_sent;
    pairs
        .iter()
        .copied()
        .filter(|p| p.nominated)
        .max_by_key(carried)
        .or_else(|| pairs.iter().copied().max_by_key(carried))
}

/// How often the selected pair's round-trip time is read for the receivers.
const ROUND_TRIP_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);

/// Reads the selected pair's round-trip time until the connection closes, and publishes it:
/// receivers wait for retransmissions by it. (The bandwidth estimate needs no polling: the
/// estimator publishes it, see `congestion`.)
pub(crate) async fn follow_round_trip_time(
    raw: std::sync::Weak<dyn RawPeerConnection>,
    closed: Cancel,
    out: tokio::sync::watch::Sender<Option<std::time::Duration>>,
) {
    let mut tick = tokio::time::interval(ROUND_TRIP_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = closed.cancelled() => return,
        }
        let Some(raw) = raw.upgrade() else { return };
        let report = raw.get_stats(Instant::now(), StatsSelector::None).await;
        drop(raw);
        let rtt = selected_pair(&report)
            .map(|p| p.current_round_trip_time)
            .filter(|&rtt| rtt > 0.0);
        if let Some(rtt) = rtt {
            out.send_replace(Some(std::time::Duration::from_secs_f64(rtt)));
        }
    }
}

/// The stats of connection `raw`, whose pipelines are in `registry` and whose congestion
/// controller's latest reading is `estimate`.
pub(crate) async fn collect(
    raw: &dyn RawPeerConnection,
    registry: &StatsRegistry,
    estimate: Option<Estimate>,
) -> CallStats {
    let report = raw.get_stats(Instant::now(), StatsSelector::None).await;
    let mut stats = CallStats {
        timestamp: parlor_media::frame::wall_clock().as_secs_f64(),
        estimate,
        ..CallStats::default()
    };
    let mut remote_inbound: HashMap<u32, (f64, i64)> = HashMap::new();
    let mut candidates: HashMap<String, (String, String, String)> = HashMap::new();
    let mut outbound_rtp: HashMap<u32, (u64, u64, Feedback)> = HashMap::new();
    let mut inbound_rtp: HashMap<u32, (u64, u64, i64, f64)> = HashMap::new();
    for entry in report.iter() {
        match entry {
            RTCStatsReportEntry::OutboundRtp(o) => {
                let sent = &o.sent_rtp_stream_stats;
                let feedback = Feedback {
                    nack_count: 0, // counted by the registry
                    pli_count: o.pli_count,
                    fir_count: o.fir_count,
                    retransmitted_packets_sent: o.retransmitted_packets_sent,
                    retransmitted_bytes_sent: o.retransmitted_bytes_sent,
                };
                outbound_rtp.insert(
                    sent.rtp_stream_stats.ssrc,
                    (sent.packets_sent, sent.bytes_sent, feedback),
                );
            }
            RTCStatsReportEntry::RemoteInboundRtp(r) => {
                let received = &r.received_rtp_stream_stats;
                remote_inbound.insert(
                    received.rtp_stream_stats.ssrc,
                    (r.round_trip_time, received.packets_lost),
                );
            }
            RTCStatsReportEntry::InboundRtp(i) => {
                let received = &i.received_rtp_stream_stats;
                inbound_rtp.insert(
                    received.rtp_stream_stats.ssrc,
                    (
                        received.packets_received,
                        i.bytes_received,
                        received.packets_lost,
                        received.jitter,
                    ),
                );
            }
            RTCStatsReportEntry::LocalCandidate(c) | RTCStatsReportEntry::RemoteCandidate(c) => {
                // Entries are "RTCLocalIceCandidate_<id>"; pairs name candidates by "<id>".
                let id = entry.id();
                let key = id.split_once('_').map_or(id, |(_, rest)| rest).to_owned();
                let side = if matches!(entry, RTCStatsReportEntry::LocalCandidate(_)) {
                    "local"
                } else {
                    "remote"
                };
                candidates.insert(
                    format!("{side}:{key}"),
                    (
                        format!("{}", c.candidate_type),
                        format!("{}:{}", c.address.clone().unwrap_or_default(), c.port),
                        c.protocol.clone(),
                    ),
                );
            }
            _ => {}
        }
    }
    if let Some(pair) = selected_pair(&report) {
        let local = candidates
            .get(&format!("local:{}", pair.local_candidate_id))
            .cloned()
            .unwrap_or_default();
        // A peer-reflexive remote candidate may have no entry; with one remote candidate known,
        // it is that one.
        let remotes: Vec<_> = candidates
            .iter()
            .filter(|(k, _)| k.starts_with("remote:"))
            .collect();
        let remote = candidates
            .get(&format!("remote:{}", pair.remote_candidate_id))
            .cloned()
            .or_else(|| (remotes.len() == 1).then(|| remotes[0].1.clone()))
            .unwrap_or_default();
        stats.selected_pair = Some(CandidatePair {
            local_type: local.0,
            local_address: local.1,
            protocol: local.2,
            remote_type: remote.0,
            remote_address: remote.1,
            round_trip_time_ms: (pair.current_round_trip_time > 0.0)
                .then_some(pair.current_round_trip_time * 1000.0),
            bytes_sent: pair.bytes_sent,
            bytes_received: pair.bytes_received,
        });
    }

    let mut previous = lock(&registry.previous);
    for source in lock(&registry.outbound).iter() {
        let counters = (source.counters)();
        let (packets_sent, bytes_sent, feedback) =
            outbound_rtp.get(&source.ssrc).copied().unwrap_or_default();
        let (rtt, lost) = remote_inbound
            .get(&source.ssrc)
            .copied()
            .unwrap_or_default();
        let (bitrate, fps) = previous.rates(source.ssrc, bytes_sent, counters.frames_encoded);
        stats.outbound.push(OutboundTrack {
            track_id: source.track_id.clone(),
            kind: source.kind.into(),
            ssrc: source.ssrc,
            packets_sent,
            bytes_sent,
            bitrate_bps: bitrate,
            packets_lost_reported: lost,
            round_trip_time_ms: (rtt > 0.0).then_some(rtt * 1000.0),
            frames_encoded: counters.frames_encoded,
            keyframes_encoded: counters.keyframes_encoded,
            frame_width: counters.width,
            frame_height: counters.height,
            frames_per_second: fps,
            target_bitrate_bps: estimate.map(|e| f64::from(e.target_bps)),
            quality_limitation_reason: counters.quality_limitation,
            feedback: Feedback {
                nack_count: lock(&registry.nacks_received)
                    .get(&source.ssrc)
                    .copied()
                    .unwrap_or_default(),
                ..feedback
            },
        });
    }
    for source in lock(&registry.inbound).iter() {
        let counters: ReceiveCounters = source
            .counters
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let (packets, bytes, lost, jitter) = inbound_rtp.get(&source.ssrc).copied().unwrap_or((
            counters.packets,
            counters.bytes,
            counters.packets_lost as i64,
            0.0,
        ));
        let (bitrate, fps) =
            previous.rates(source.ssrc ^ 0x8000_0000, bytes, counters.frames_decoded);
        stats.inbound.push(InboundTrack {
            track_id: source.track_id.clone(),
            kind: source.kind.into(),
            mime_type: source.mime_type.into(),
            ssrc: source.ssrc,
            packets_received: packets.max(counters.packets),
            bytes_received: bytes.max(counters.bytes),
            bitrate_bps: bitrate,
            packets_lost: lost.max(counters.packets_lost as i64),
            // RTCP jitter is in RTP timestamp units.
            jitter_ms: jitter * 1000.0
                / if source.kind == "video" {
                    90_000.0
                } else {
                    48_000.0
                },
            frames_decoded: counters.frames_decoded,
            keyframes_decoded: counters.keyframes_decoded,
            frames_dropped: counters.frames_dropped,
            frame_width: counters.width,
            frame_height: counters.height,
            frames_per_second: if source.kind == "video" { fps } else { 0.0 },
            samples_received: counters.samples_received,
            samples_concealed: counters.samples_concealed,
            silent_concealed_samples: counters.silent_concealed_samples,
            packets_discarded: counters.packets_late,
            fec_packets_received: counters.fec_packets_received,
            plis_sent: counters.plis_sent,
            freeze_count: counters.freezes.count,
            total_freezes_duration: counters.freezes.total.as_secs_f64(),
            jitter_buffer_target_delay: counters.jitter_buffer_target_delay.as_secs_f64(),
            jitter_buffer_emitted_count: counters.jitter_buffer_emitted_count,
        });
    }
    stats
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct CallStats {
    /// Seconds since the Unix epoch when taken.
    pub timestamp: f64,
    pub selected_pair: Option<CandidatePair>,
    /// The send-side congestion controller's estimate for the connection, with its halves.
    pub estimate: Option<crate::Estimate>,
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
    /// The congestion controller's estimate for the connection (all media), bits per second.
    pub target_bitrate_bps: Option<f64>,
    /// getStats' `qualityLimitationReason`: none, bandwidth or cpu (video).
    pub quality_limitation_reason: crate::counters::QualityLimitation,
    /// What the receiver asked of this stream, and the resends it got.
    #[serde(flatten)]
    pub feedback: Feedback,
}

/// getStats' counts of a sent stream's feedback, as webrtc-rs keeps them.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Feedback {
    /// NACK, PLI and FIR packets received for the stream.
    pub nack_count: u32,
    pub pli_count: u32,
    pub fir_count: u32,
    /// Packets and bytes sent in the stream's RTX stream: resends, and the prober's copies of
    /// the latest packet (`probe`), which travel the same way.
    pub retransmitted_packets_sent: u64,
    pub retransmitted_bytes_sent: u64,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct InboundTrack {
    pub track_id: String,
    pub kind: String,
    /// The codec it arrives in: `video/H264`, `video/VP8`, `audio/opus`.
    pub mime_type: String,
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
    /// getStats' `silentConcealedSamples`: made up for silence the sender left out (DTX).
    pub silent_concealed_samples: u64,
    /// getStats' `packetsDiscarded`: packets that came after their time had passed (video: a
    /// frame given up; audio: behind a packet already decoded, or a second copy).
    pub packets_discarded: u64,
    /// getStats' `fecPacketsReceived`: lost audio frames recovered from Opus's in-band FEC.
    pub fec_packets_received: u64,
    pub plis_sent: u64,
    /// getStats' `freezeCount` and `totalFreezesDuration` (seconds), for video.
    pub freeze_count: u64,
    pub total_freezes_duration: f64,
    /// getStats' `jitterBufferTargetDelay` (seconds, summed over frames) and
    /// `jitterBufferEmittedCount`, for video: their ratio is the mean time frames were held
    /// back to be shown evenly (`render_timing`).
    pub jitter_buffer_target_delay: f64,
    pub jitter_buffer_emitted_count: u64,
}
