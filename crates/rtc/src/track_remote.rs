//! Remote tracks: RTP in, decoded frames out. Video is reassembled into access units (the RTP
//! marker bit ends one), decoded on a thread of its own and handed out when `render_timing`
//! says (evenly, when repairs made frames come unevenly); a lost packet or a decode error asks
//! the sender for a keyframe (PLI, at most every 300 ms). Audio is decoded as it arrives,
//! with gaps filled by Opus concealment.
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use parlor_media::frame::wall_clock;
use parlor_media::opus_codec::{self, OpusDecoder};
use parlor_media::{AudioFrame, VideoFrame};
use rtc::peer_connection::configuration::media_engine::MIME_TYPE_OPUS;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtcp::transport_feedbacks::transport_layer_nack::{
    nack_pairs_from_sequence_numbers, TransportLayerNack,
};
use rtc::rtp::codec::h264::H264Packet;
use rtc::rtp::codec::vp8::Vp8Packet;
use rtc::rtp::packetizer::Depacketizer;
use rtc::rtp_transceiver::rtp_sender::RtpCodecKind;
use tokio::sync::mpsc;
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};

use crate::audio_gaps::AudioGaps;
use crate::codecs::VideoCodec;
use crate::counters::{Counters, ReceiveCounters};
use crate::jitter::{wait_for_rtt, JitterBuffer, Released};
use crate::lifecycle::Lifecycle;
use crate::render_timing::{RenderTiming, VIDEO_CLOCK_RATE};
use crate::stats::StatsRegistry;
use crate::{Result, RtcError};

/// Decoded frames waiting for the application; more are dropped (and counted), not queued.
const VIDEO_QUEUE: usize = 8;
const AUDIO_QUEUE: usize = 100;
const PLI_INTERVAL: Duration = Duration::from_millis(300);

fn lock(c: &Counters) -> std::sync::MutexGuard<'_, ReceiveCounters> {
    c.lock().unwrap_or_else(|p| p.into_inner())
}

/// What receiving on one connection needs from it (`peer.rs` assembles it).
#[derive(Clone)]
pub(crate) struct ReceiveLink {
    pub(crate) lifecycle: Lifecycle,
    /// The selected pair's round-trip time: how long to wait for a retransmission.
    pub(crate) round_trip_time: tokio::sync::watch::Receiver<Option<Duration>>,
    pub(crate) stats: Arc<StatsRegistry>,
    /// Told the id of a track that ended.
    pub(crate) ended: Arc<dyn Fn(String) + Send + Sync>,
}

#[derive(Debug, Clone)]
pub enum RemoteTrack {
    Video(RemoteVideoTrack),
    Audio(RemoteAudioTrack),
}

impl RemoteTrack {
    pub fn id(&self) -> &str {
        match self {
            RemoteTrack::Video(t) => &t.id,
            RemoteTrack::Audio(t) => &t.id,
        }
    }

    pub(crate) async fn start(
        raw: Arc<dyn TrackRemote>,
        link: &ReceiveLink,
    ) -> Result<RemoteTrack> {
        let kind = raw.kind().await;
        let id = raw.track_id().await;
        let ssrc = raw.ssrcs().await.first().copied().unwrap_or_default();
        let mime = match raw.codec(ssrc).await {
            Some(codec) => codec.mime_type.to_ascii_lowercase(),
            None => String::new(),
        };
        match kind {
            RtpCodecKind::Video
                if mime.is_empty() || crate::codecs::VideoCodec::from_mime(&mime).is_some() =>
            {
                let codec = crate::codecs::VideoCodec::from_mime(&mime)
                    .unwrap_or(crate::codecs::VideoCodec::H264);
                let track = RemoteVideoTrack::start(id.clone(), ssrc, codec, raw, link)?;
                let counters = track.counters.clone();
                register_inbound(link, ssrc, id, "video", codec.mime_type(), counters);
                Ok(RemoteTrack::Video(track))
            }
            RtpCodecKind::Audio if mime.is_empty() || mime == MIME_TYPE_OPUS => {
                let track = RemoteAudioTrack::start(id.clone(), raw, link)?;
                let counters = track.counters.clone();
                register_inbound(link, ssrc, id, "audio", MIME_TYPE_OPUS, counters);
                Ok(RemoteTrack::Audio(track))
            }
            _ => Err(RtcError::Internal(format!(
                "unsupported remote codec {mime:?}"
            ))),
        }
    }
}

fn register_inbound(
    link: &ReceiveLink,
    ssrc: u32,
    track_id: String,
    kind: &'static str,
    mime_type: &'static str,
    counters: Counters,
) {
    link.stats.add_inbound(crate::stats::InboundSource {
        ssrc,
        track_id,
        kind,
        mime_type,
        counters,
    });
}

/// An encoded frame, complete and in order, on its way to the decoder.
struct Unit {
    data: Vec<u8>,
    /// Its RTP timestamp, and when its last packet left the jitter buffer.
    timestamp: u32,
    complete_at: Instant,
}

/// Rebuilds encoded frames (H.264 access units, VP8 frames) from RTP packets in sequence order
/// (the [`JitterBuffer`] restores the order); a packet given up as lost spoils the frame it
/// falls in.
struct AccessUnits {
    codec: VideoCodec,
    depacketizer: Box<dyn Depacketizer + Send>,
    buffer: Vec<u8>,
    broken: bool,
}

fn depacketizer(codec: VideoCodec) -> Box<dyn Depacketizer + Send> {
    match codec {
        VideoCodec::H264 => Box::<H264Packet>::default(),
        VideoCodec::Vp8 => Box::<Vp8Packet>::default(),
    }
}

impl AccessUnits {
    fn new(codec: VideoCodec) -> Self {
        AccessUnits {
            codec,
            depacketizer: depacketizer(codec),
            buffer: Vec::new(),
            broken: false,
        }
    }

    /// The next packet; a complete, unspoiled frame when it carries the marker.
    fn push(&mut self, marker: bool, payload: &Bytes) -> Option<Vec<u8>> {
        match self.depacketizer.depacketize(payload) {
            Ok(data) => self.buffer.extend_from_slice(&data),
            Err(_) => self.broken = true,
        }
        if !marker {
            return None;
        }
        let unit = std::mem::take(&mut self.buffer);
        let broken = std::mem::replace(&mut self.broken, false);
        self.depacketizer = depacketizer(self.codec);
        (!broken && !unit.is_empty()).then_some(unit)
    }

    /// Packets were given up: the frame in progress cannot be decoded.
    fn lost(&mut self) {
        self.broken = true;
        self.buffer.clear();
        self.depacketizer = depacketizer(self.codec);
    }
}

/// Sends the sender feedback about its stream (a NACK, a PLI); a connection closing meanwhile
/// is no error worth more than a debug line.
async fn send_feedback(
    raw: &Arc<dyn TrackRemote>,
    packet: Box<dyn rtc::rtcp::Packet + Send + Sync>,
    what: &str,
) {
    if let Err(e) = raw.write_rtcp(vec![packet]).await {
        tracing::debug!("sending {what}: {e}");
    }
}

/// Sleeps until `deadline`, or forever when there is none.
async fn sleep_until_deadline(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline.into()).await,
        None => std::future::pending().await,
    }
}

#[derive(Debug, Clone)]
pub struct RemoteVideoTrack {
    id: String,
    frames: Arc<tokio::sync::Mutex<mpsc::Receiver<VideoFrame>>>,
    counters: Counters,
    keyframe: mpsc::UnboundedSender<()>,
}

impl RemoteVideoTrack {
    fn start(
        id: String,
        ssrc: u32,
        codec: VideoCodec,
        raw: Arc<dyn TrackRemote>,
        link: &ReceiveLink,
    ) -> Result<Self> {
        let (frames_tx, frames_rx) = mpsc::channel(VIDEO_QUEUE);
        let (units_tx, units_rx) = std::sync::mpsc::channel::<Unit>();
        let (keyframe_tx, mut keyframe_rx) = mpsc::unbounded_channel::<()>();
        let counters: Counters = Arc::default();

        // Decoding thread: ends when the RTP task drops its sender.
        let decode_counters = counters.clone();
        let decode_keyframe = keyframe_tx.clone();
        let decode_guard = link.lifecycle.tasks.enter();
        let mut decoder = codec.decoder()?;
        std::thread::Builder::new()
            .name("parlor-video-decode".into())
            .spawn(move || {
                let _guard = decode_guard;
                let mut timing = RenderTiming::new(VIDEO_CLOCK_RATE);
                while let Ok(unit) = units_rx.recv() {
                    let started = Instant::now();
                    let keyframe = codec.is_keyframe(&unit.data);
                    match decoder.decode(&unit.data, wall_clock()) {
                        Ok(Some(frame)) => {
                            let decode_time = started.elapsed();
                            // Held until its time; the next unit waits in the channel
                            // meanwhile, and is due after this one anyway.
                            let show_at = timing.show_at(unit.complete_at, unit.timestamp);
                            std::thread::sleep(show_at.saturating_duration_since(Instant::now()));
                            let mut c = lock(&decode_counters);
                            c.frames_decoded += 1;
                            c.keyframes_decoded += keyframe as u64;
                            c.decode_time += decode_time;
                            c.width = frame.width as u32;
                            c.height = frame.height as u32;
                            c.jitter_buffer_target_delay += timing.target();
                            c.jitter_buffer_emitted_count += 1;
                            c.first_frame_at.get_or_insert_with(Instant::now);
                            c.freezes.frame(Instant::now());
                            if frames_tx.try_send(frame).is_err() {
                                c.frames_dropped += 1;
                            }
                        }
                        Ok(None) => {}
                        Err(e) => {
                            tracing::debug!("decode error: {e}");
                            lock(&decode_counters).decode_errors += 1;
                            let _ = decode_keyframe.send(());
                        }
                    }
                }
            })
            .map_err(|e| RtcError::Internal(format!("decode thread: {e}")))?;

        // RTP task: reassembles units and sends PLIs.
        let rtp_counters = counters.clone();
        let guard = link.lifecycle.tasks.enter();
        let closed = link.lifecycle.closed.clone();
        let ended = link.ended.clone();
        let track_id = id.clone();
        let mut round_trip_time = link.round_trip_time.clone();
        tokio::spawn(async move {
            let _guard = guard;
            let mut units = AccessUnits::new(codec);
            let mut reorder = JitterBuffer::new(wait_for_rtt(None));
            let mut last_pli: Option<Instant> = None;
            let mut seen_keyframe = false;
            loop {
                let deadline = reorder.deadline();
                let mut want_keyframe = tokio::select! {
                    event = raw.poll() => match event {
                        Some(TrackRemoteEvent::OnRtpPacket(packet)) => {
                            let bytes = packet.payload.len() as u64;
                            let header = &packet.header;
                            let missing = reorder.push(Instant::now(), header.sequence_number, header.marker, header.timestamp, packet.payload);
                            // Asked for at once (see `jitter`: the NACK generator's own
                            // requests follow on its ticks).
                            if !missing.is_empty() {
                                let nack = TransportLayerNack {
                                    sender_ssrc: 0,
                                    media_ssrc: ssrc,
                                    nacks: nack_pairs_from_sequence_numbers(&missing),
                                };
                                send_feedback(&raw, Box::new(nack), "NACK").await;
                            }
                            let mut c = lock(&rtp_counters);
                            c.packets += 1;
                            c.bytes += bytes;
                            c.packets_late = reorder.late;
                            c.packets_duplicated = reorder.duplicates;
                            false
                        }
                        Some(TrackRemoteEvent::OnEnded) | None => {
                            ended(track_id.clone());
                            break;
                        }
                        Some(_) => false,
                    },
                    // A missing packet's wait is over: pop below gives it up.
                    _ = sleep_until_deadline(deadline) => false,
                    request = keyframe_rx.recv() => request.is_some(),
                    _ = closed.cancelled() => break,
                };
                if round_trip_time.has_changed().unwrap_or(false) {
                    reorder.set_max_wait(wait_for_rtt(*round_trip_time.borrow_and_update()));
                }
                let now = Instant::now();
                let mut decoder_gone = false;
                while let Some(released) = reorder.pop(now) {
                    match released {
                        Released::Packet {
                            marker,
                            timestamp,
                            payload,
                        } => {
                            if let Some(data) = units.push(marker, &payload) {
                                seen_keyframe |= codec.is_keyframe(&data);
                                want_keyframe |= !seen_keyframe;
                                let unit = Unit {
                                    data,
                                    timestamp,
                                    complete_at: now,
                                };
                                if units_tx.send(unit).is_err() {
                                    decoder_gone = true;
                                    break;
                                }
                            }
                        }
                        Released::Lost { count } => {
                            units.lost();
                            lock(&rtp_counters).packets_lost += count;
                            want_keyframe = true;
                        }
                    }
                }
                if decoder_gone {
                    break;
                }
                let due = last_pli.is_none_or(|t| t.elapsed() >= PLI_INTERVAL);
                if want_keyframe && due {
                    last_pli = Some(Instant::now());
                    lock(&rtp_counters).plis_sent += 1;
                    let pli = PictureLossIndication {
                        sender_ssrc: 0,
                        media_ssrc: ssrc,
                    };
                    send_feedback(&raw, Box::new(pli), "PLI").await;
                }
            }
        });
        Ok(RemoteVideoTrack {
            id,
            frames: Arc::new(tokio::sync::Mutex::new(frames_rx)),
            counters,
            keyframe: keyframe_tx,
        })
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    /// The next decoded frame; `None` once the track has ended.
    pub async fn next_frame(&self) -> Option<VideoFrame> {
        self.frames.lock().await.recv().await
    }

    /// Asks the sender for a keyframe (a PLI), e.g. when a tile becomes visible again.
    pub fn request_keyframe(&self) {
        let _ = self.keyframe.send(());
    }

    pub fn counters(&self) -> ReceiveCounters {
        lock(&self.counters).clone()
    }
}

#[derive(Debug, Clone)]
pub struct RemoteAudioTrack {
    id: String,
    frames: Arc<tokio::sync::Mutex<mpsc::Receiver<AudioFrame>>>,
    counters: Counters,
}

impl RemoteAudioTrack {
    fn start(id: String, raw: Arc<dyn TrackRemote>, link: &ReceiveLink) -> Result<Self> {
        let (frames_tx, frames_rx) = mpsc::channel(AUDIO_QUEUE);
        let counters: Counters = Arc::default();
        // The RTP description of Opus is always two channels; decode to stereo.
        let mut decoder = OpusDecoder::new(2)?;
        let task_counters = counters.clone();
        let guard = link.lifecycle.tasks.enter();
        let closed = link.lifecycle.closed.clone();
        let ended = link.ended.clone();
        let track_id = id.clone();
        tokio::spawn(async move {
            let _guard = guard;
            // Lost packets and left-out silences (DTX) are made up in time, with Opus's
            // concealment (comfort noise after a DTX packet): see `audio_gaps`.
            let mut gaps = AudioGaps::default();
            loop {
                let due = gaps.timeout();
                let made_up = async {
                    match due {
                        Some(due) => tokio::time::sleep_until(due.into()).await,
                        None => std::future::pending().await,
                    }
                };
                // A packet already here is always taken before a frame is made up in its place:
                // on a busy machine this task wakes late, and finds both ready at once.
                let event = tokio::select! {
                    biased;
                    _ = closed.cancelled() => break,
                    event = raw.poll() => Some(event),
                    _ = made_up => None,
                };
                let mut out = Vec::new();
                match event {
                    None => {
                        if gaps.make_up_now(Instant::now()) {
                            if let Ok(frame) = decoder.conceal(None, wall_clock()) {
                                lock(&task_counters).samples_concealed +=
                                    frame.len_per_channel() as u64;
                                out.push(frame);
                            }
                        }
                    }
                    Some(Some(TrackRemoteEvent::OnRtpPacket(packet))) => {
                        let header = &packet.header;
                        // A malformed packet's length is taken as a usual frame's; decoding it
                        // will fail and be counted.
                        let duration = decoder
                            .samples_in(&packet.payload)
                            .and_then(|n| u32::try_from(n).ok())
                            .unwrap_or(opus_codec::FRAME_SAMPLES as u32);
                        let Some(gap) = gaps.packet(
                            Instant::now(),
                            header.sequence_number,
                            header.timestamp,
                            duration,
                        ) else {
                            lock(&task_counters).packets_late += 1;
                            continue; // behind one already decoded, or a duplicate
                        };
                        {
                            let mut c = lock(&task_counters);
                            c.packets_lost += gap.lost;
                            c.silent_concealed_samples +=
                                u64::from(gap.silence_made_up) * opus_codec::FRAME_SAMPLES as u64;
                        }
                        for i in 0..gap.make_up {
                            // The last frame missing may be in this packet's in-band FEC.
                            let fec = gap.with_fec && i + 1 == gap.make_up;
                            let next = fec.then_some(&packet.payload[..]);
                            if let Ok(frame) = decoder.conceal(next, wall_clock()) {
                                let mut c = lock(&task_counters);
                                c.samples_concealed += frame.len_per_channel() as u64;
                                c.fec_packets_received +=
                                    u64::from(fec && opus_codec::carries_fec(&packet.payload));
                                out.push(frame);
                            }
                        }
                        match decoder.decode(&packet.payload, wall_clock()) {
                            Ok(frame) => out.push(frame),
                            Err(_) => lock(&task_counters).decode_errors += 1,
                        }
                        let mut c = lock(&task_counters);
                        c.packets += 1;
                        c.bytes += packet.payload.len() as u64;
                    }
                    Some(Some(TrackRemoteEvent::OnEnded) | None) => {
                        ended(track_id.clone());
                        break;
                    }
                    Some(Some(_)) => continue,
                }
                let mut c = lock(&task_counters);
                for frame in out {
                    c.frames_decoded += 1;
                    c.samples_received += frame.len_per_channel() as u64;
                    c.first_frame_at.get_or_insert_with(Instant::now);
                    if frames_tx.try_send(frame).is_err() {
                        c.frames_dropped += 1;
                    }
                }
            }
        });
        Ok(RemoteAudioTrack {
            id,
            frames: Arc::new(tokio::sync::Mutex::new(frames_rx)),
            counters,
        })
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    /// The next decoded 20 ms of audio (stereo); `None` once the track has ended.
    pub async fn next_frame(&self) -> Option<AudioFrame> {
        self.frames.lock().await.recv().await
    }

    pub fn counters(&self) -> ReceiveCounters {
        lock(&self.counters).clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn single_nal(marker: bool) -> (bool, Bytes) {
        // A single NAL unit packet: type 1 (non-IDR slice).
        (marker, Bytes::from_static(&[0x41, 0x9a, 0x01, 0x02]))
    }

    #[test]
    fn units_end_at_the_marker_and_losses_spoil_them() {
        let mut units = AccessUnits::new(VideoCodec::H264);
        let (_, payload) = single_nal(false);
        assert!(units.push(false, &payload).is_none());
        let unit = units.push(true, &payload).expect("a unit was complete");
        assert_eq!(unit.iter().filter(|&&b| b == 0x41).count(), 2);
        // A packet given up inside the next unit spoils that unit only.
        assert!(units.push(false, &payload).is_none());
        units.lost();
        assert!(units.push(true, &payload).is_none());
        assert!(units.push(true, &payload).is_some());
    }
}
