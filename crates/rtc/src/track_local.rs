//! Local tracks: a `parlor-media` source, captured once on its own thread and encoded for every
//! peer connection the track is added to (a mesh call sends one camera to several peers).
//! Connections whose links carry about the same share an encoder; a much thinner link gets one
//! of its own, so that it does not hold the others back (`encodings`, `encoder_groups`). Each
//! connection gets its own RTP binding with a unique SSRC and track id; a keyframe request from
//! one of them makes its encoder emit an IDR.
//!
//! Constraints honoured: the source's size and frame rate (the encoder follows the source), the
//! target bitrate and keyframe interval in [`VideoTrackOptions`]; audio is Opus at 48 kHz with
//! the source's channel count, 20 ms frames.
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use parlor_media::opus_codec::OpusEncoder;
use parlor_media::video_codec::{EncodedFrame, EncoderConfig, VideoEncoder};
use parlor_media::{AudioFrame, AudioSource, MediaError, VideoFrame, VideoSource};
use rtc::media::Sample;
use rtc::rtp::packetizer::Packetizer;
use rtc::rtp::sequence::Sequencer;
use rtc::rtp_transceiver::rtp_sender::{
    RTCRtpCodec, RTCRtpCodingParameters, RTCRtpEncodingParameters, RTCRtpRtxParameters,
    RtpCodecKind,
};
use tokio::sync::{broadcast, watch};
use webrtc::media_stream::track_local::static_rtp::TrackLocalStaticRTP;
use webrtc::media_stream::track_local::TrackLocal;
use webrtc::media_stream::{MediaStreamTrack, Track};
use webrtc::rtp_transceiver::RtpSender;

use crate::codecs::{self, MediaKind, VideoCodec};
use crate::counters::{QualityLimitation, SendCounters};
use crate::encoder_groups::Groups;
use crate::encodings::{EncodingKey, LinkState, Planned};
use crate::estimate::Estimate;
use crate::lifecycle::Lifecycle;
use crate::state::ConnectionState;
use crate::stats::StatsRegistry;
use crate::Result;

/// Keyframes answer loss at most this often: an IDR is several times a P-frame's size, and on a
/// thin link a burst of them is what turns a little loss into a freeze.
const MIN_KEYFRAME_INTERVAL: Duration = Duration::from_millis(300);

/// Lets a keyframe request through at most once per interval (the first at once), and after a
/// keyframe, not before the link has had time to carry it several times over: on a thin link
/// an IDR takes long to drain, and IDRs requested faster than that pile up in the pacer.
struct KeyframeGate {
    min_interval: Duration,
    last: Option<Instant>,
    /// The time the last keyframe needs on the link at the current target, times the margin.
    drain: Duration,
}

/// How many times a keyframe's transmission time must pass before the next one.
const KEYFRAME_DRAIN_MARGIN: u32 = 4;

impl KeyframeGate {
    fn new(min_interval: Duration) -> Self {
        KeyframeGate {
            min_interval,
            last: None,
            drain: Duration::ZERO,
        }
    }

    /// Whether a keyframe may be made now; if so, the interval starts again.
    fn open(&mut self, now: Instant) -> bool {
        let wait = self.min_interval.max(self.drain);
        if self
            .last
            .is_some_and(|last| now.duration_since(last) < wait)
        {
            return false;
        }
        self.last = Some(now);
        true
    }

    /// A keyframe was made now without asking (for a link just moved to this encoder): the
    /// next request waits as if it had been let through.
    fn force(&mut self, now: Instant) {
        self.last = Some(now);
    }

    /// A keyframe of `bytes` went out with the encoder aiming at `target_bps`.
    fn sent(&mut self, bytes: usize, target_bps: u32) {
        let seconds = bytes as f64 * 8.0 / target_bps.max(1) as f64;
        self.drain = Duration::from_secs_f64(seconds) * KEYFRAME_DRAIN_MARGIN;
    }
}

/// What sending on one connection needs from it (`peer.rs` assembles it).
pub(crate) struct SendLink {
    pub(crate) keyframe_requests: broadcast::Receiver<u32>,
    pub(crate) lifecycle: Lifecycle,
    /// Bumped after every applied description: negotiated payload types may have changed.
    pub(crate) negotiations: watch::Receiver<u64>,
    /// Whether the far side asked us to leave silence out (Opus DTX).
    pub(crate) far_side_dtx: watch::Receiver<bool>,
    pub(crate) connection: watch::Receiver<ConnectionState>,
    /// The connection's congestion estimate.
    pub(crate) estimate: watch::Receiver<Option<Estimate>>,
    /// What the sent video's next size up needs (0: none), for the connection's prober.
    pub(crate) probe_next_size: watch::Sender<u32>,
    /// Where the connection's congestion controller should start for the sent video's source.
    pub(crate) source_start: watch::Sender<u32>,
    pub(crate) stats: Arc<StatsRegistry>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct VideoTrackOptions {
    /// Target bitrate; default about 0.1 bit per pixel per frame.
    pub bitrate_bps: Option<u32>,
    /// Frames between IDR frames; default none (keyframes when a receiver asks).
    pub keyframe_interval: Option<u32>,
}

struct Encoded {
    /// The video encoder it came from (`None`: audio, in Opus); a link sends only its own
    /// encoder's frames.
    encoding: Option<EncodingKey>,
    keyframe: bool,
    width: u32,
    height: u32,
    quality_limitation: QualityLimitation,
    encode_time: Duration,
    data: bytes::Bytes,
    duration: Duration,
}

/// What a local track's capture thread and its bindings share.
pub(crate) struct Pipeline {
    pub(crate) id: String,
    stream_id: String,
    pub(crate) kind: MediaKind,
    enabled: AtomicBool,
    stop: AtomicBool,
    frames: broadcast::Sender<Arc<Encoded>>,
    /// The whole track's: every frame captured, and every encoder's output.
    counters: Mutex<SendCounters>,
    fps: AtomicU64,
    /// Each binding's connection, by binding number.
    links: Mutex<HashMap<u64, LinkState>>,
    next_link: AtomicU64,
}

impl Pipeline {
    fn new(kind: MediaKind) -> Arc<Self> {
        Arc::new(Pipeline {
            id: format!(
                "{}-{:016x}",
                if kind == MediaKind::Video {
                    "video"
                } else {
                    "audio"
                },
                rand::random::<u64>()
            ),
            stream_id: "parlor".into(),
            kind,
            enabled: AtomicBool::new(true),
            stop: AtomicBool::new(false),
            frames: broadcast::channel(8).0,
            counters: Mutex::new(SendCounters::default()),
            fps: AtomicU64::new(30),
            links: Mutex::default(),
            next_link: AtomicU64::new(0),
        })
    }

    fn links(&self) -> std::sync::MutexGuard<'_, HashMap<u64, LinkState>> {
        self.links.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `change` applied to one link's state (nothing if the link is gone).
    fn with_link<T>(&self, link: u64, change: impl FnOnce(&mut LinkState) -> T) -> Option<T> {
        self.links().get_mut(&link).map(change)
    }

    /// The link's receiver needs a keyframe.
    fn want_keyframe(&self, link: u64) {
        self.with_link(link, |state| state.wants_keyframe = true);
    }

    /// Every link's receiver needs a keyframe (a new source, unmuting).
    fn want_keyframes(&self) {
        for state in self.links().values_mut() {
            state.wants_keyframe = true;
        }
    }

    /// What was sent on one link (default once it is gone).
    fn link_counters(&self, link: u64) -> SendCounters {
        self.with_link(link, |state| state.counters.clone())
            .unwrap_or_default()
    }

    /// The loss the audio encoder should prepare for, in per cent: the worst link's, as its
    /// congestion controller measured it (Opus spends bits on in-band FEC in proportion).
    fn expected_loss_percent(&self) -> Option<u8> {
        self.links()
            .values()
            .filter_map(|state| state.estimate?.loss)
            .map(|loss| (loss * 100.0).round().clamp(0.0, 100.0) as u8)
            .max()
    }

    fn counters(&self) -> std::sync::MutexGuard<'_, SendCounters> {
        self.counters.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Counts a frame the capture thread encoded and hands it to the links.
    fn hand_on(&self, frame: Encoded) {
        count(&mut self.counters(), &frame);
        let _ = self.frames.send(Arc::new(frame));
    }

    /// A new RTP track for one peer connection.
    ///
    /// A video binding names no codec: webrtc-rs offers only the codec a track names, and a
    /// track with none is offered every video codec we have (H.264 first), so a peer without
    /// H.264 can answer VP8. The codec the answer chooses is named before the sender starts
    /// (`PeerConnection::name_answered_codecs`), and frames are packetized per link for it.
    pub(crate) fn binding(&self) -> Result<Arc<TrackLocalStaticRTP>> {
        let (codec, kind) = match self.kind {
            MediaKind::Video => (RTCRtpCodec::default(), RtpCodecKind::Video),
            MediaKind::Audio => (codecs::opus(), RtpCodecKind::Audio),
        };
        let track = MediaStreamTrack::new(
            self.stream_id.clone(),
            // Unique per binding: RTCP is routed to tracks by id.
            format!("{}-{:08x}", self.id, rand::random::<u32>()),
            self.id.clone(),
            kind,
            vec![RTCRtpEncodingParameters {
                rtp_coding_parameters: RTCRtpCodingParameters {
                    ssrc: Some(rand::random::<u32>()),
                    // Used only where the far side takes RTX (the negotiation decides).
                    rtx: (kind == RtpCodecKind::Video).then(|| RTCRtpRtxParameters {
                        ssrc: rand::random::<u32>(),
                    }),
                    ..Default::default()
                },
                codec,
                ..Default::default()
            }],
        );
        Ok(Arc::new(TrackLocalStaticRTP::new(track)))
    }

    /// Forwards encoded frames to one connection until the track stops or the connection
    /// closes. Keyframe requests naming this binding's SSRC reach the encoder its frames come
    /// from.
    pub(crate) fn start_sending(
        self: &Arc<Self>,
        rtp: Arc<TrackLocalStaticRTP>,
        sender: Arc<dyn RtpSender>,
        connection: SendLink,
    ) {
        let pipeline = self.clone();
        let SendLink {
            mut keyframe_requests,
            lifecycle,
            negotiations,
            far_side_dtx,
            connection,
            mut estimate,
            probe_next_size,
            source_start,
            stats,
        } = connection;
        let closed = lifecycle.closed.clone();
        let link = self.next_link.fetch_add(1, Ordering::Relaxed);
        // A new receiver needs a keyframe to start decoding.
        self.links().insert(
            link,
            LinkState {
                wants_keyframe: true,
                ..LinkState::default()
            },
        );
        let guard = lifecycle.tasks.enter();
        let stats_pipeline = self.clone();
        let stats_rtp = rtp.clone();
        tokio::spawn(async move {
            let ssrc = stats_rtp.ssrcs().await.first().copied().unwrap_or_default();
            let track_id = stats_rtp.track_id().await;
            let kind = if stats_pipeline_kind_is_video(&stats_rtp).await {
                "video"
            } else {
                "audio"
            };
            let counters = move || stats_pipeline.link_counters(link);
            stats.add_outbound(crate::stats::OutboundSource {
                ssrc,
                track_id,
                kind,
                counters: Box::new(counters),
            });
        });
        let registered = Registered {
            pipeline: self.clone(),
            link,
        };
        tokio::spawn(async move {
            let _guard = guard;
            let _registered = registered;
            let ssrc = rtp.ssrcs().await.first().copied().unwrap_or_default();
            let mut link_codec = LinkCodec::new(ssrc);
            // The video encoder this link's last frame came from. When the link is moved to
            // another group's encoder, that one's frames are sent from its keyframe on: what
            // comes before refers to pictures this receiver never had. (A new link sends from
            // its first frame, as the receiver expects of a starting stream, keyframe requested:
            // held back until the keyframe, a thin link's congestion controller saw the load
            // later, and measured, its picture froze for a second or two more at the start.)
            let mut sent_from: Option<EncodingKey> = None;
            let mut negotiations = negotiations;
            // Nothing can be sent before DTLS is up; waiting also keeps the encoder from
            // spending a keyframe on packets that would be dropped.
            let mut connection = connection;
            tokio::select! {
                _ = connection.wait_for(|s| *s == crate::ConnectionState::Connected) => {}
                _ = closed.cancelled() => return,
            }
            // Known before the first frame, so that the capture places this link on an
            // encoder for the very next one.
            link_codec.look_up(&sender, &pipeline, link).await;
            // Frames start here, after a keyframe asked for now: what was encoded while
            // connecting is stale, and once more of it came than the queue holds, its keyframe
            // was gone; sent anyway, it came as a burst the receiver could not decode. (Nobody
            // subscribed also means nothing is encoded for this link until it can be sent.)
            let mut frames = pipeline.frames.subscribe();
            pipeline.want_keyframe(link);
            loop {
                tokio::select! {
                    frame = frames.recv() => match frame {
                        Ok(frame) => {
                            if negotiations.has_changed().unwrap_or(false) {
                                negotiations.mark_unchanged();
                                link_codec.renegotiated();
                            }
                            link_codec.look_up(&sender, &pipeline, link).await;
                            let Some((codec, packetizer)) = link_codec.in_use() else {
                                continue;
                            };
                            let (encoding, next_size, start) = pipeline
                                .with_link(link, |state| {
                                    (state.encoding, state.next_size_bps, state.start_bps)
                                })
                                .unwrap_or_default();
                            if frame.encoding != encoding {
                                continue; // another link's encoder
                            }
                            if pipeline.kind == MediaKind::Video {
                                let moved = sent_from.is_some_and(|from| Some(from) != encoding);
                                if moved && !frame.keyframe {
                                    continue; // not decodable here before its keyframe
                                }
                                probe_next_size.send_if_modified(|current| {
                                    std::mem::replace(current, next_size) != next_size
                                });
                                source_start.send_if_modified(|current| {
                                    std::mem::replace(current, start) != start
                                });
                            }
                            if pipeline.kind == MediaKind::Audio
                                && *far_side_dtx.borrow()
                                && parlor_media::opus_codec::is_silence(&frame.data)
                            {
                                // Silence the far side asked us to leave out: the stream's
                                // clock moves on without it (the far side fills it in).
                                packetizer.skip_samples(ticks_of(frame.duration, codec));
                                continue;
                            }
                            let sample = Sample {
                                data: frame.data.clone(),
                                duration: frame.duration,
                                ..Sample::new(Instant::now())
                            };
                            if let Err(e) = write_sample(&rtp, packetizer, codec, &sample).await {
                                // Negotiation may have changed the payload type (the remote
                                // offer's numbering wins): look it up again next time.
                                tracing::debug!("writing a sample: {e}");
                                link_codec.renegotiated();
                                continue;
                            }
                            sent_from = encoding;
                            pipeline.with_link(link, |state| count(&mut state.counters, &frame));
                        }
                        Err(broadcast::error::RecvError::Lagged(_)) => {
                            // Frames were skipped; the far side needs a fresh start.
                            pipeline.want_keyframe(link);
                        }
                        Err(broadcast::error::RecvError::Closed) => break,
                    },
                    request = keyframe_requests.recv() => match keyframe_asked(request, ssrc) {
                        Some(true) => pipeline.want_keyframe(link),
                        Some(false) => {}
                        None => break,
                    },
                    changed = estimate.changed() => {
                        if changed.is_err() {
                            break;
                        }
                        let next = *estimate.borrow_and_update();
                        pipeline.with_link(link, |state| state.estimate = next);
                    }
                    _ = closed.cancelled() => break,
                }
            }
            if pipeline.kind == MediaKind::Video {
                probe_next_size.send_replace(0);
            }
        });
    }
}

/// A link's place in its pipeline, given up however its sending task ends.
struct Registered {
    pipeline: Arc<Pipeline>,
    link: u64,
}

impl Drop for Registered {
    fn drop(&mut self) {
        self.pipeline.links().remove(&self.link);
    }
}

async fn stats_pipeline_kind_is_video(rtp: &Arc<TrackLocalStaticRTP>) -> bool {
    rtp.kind().await == RtpCodecKind::Video
}

/// How often a link whose sender has no negotiated codec (its section was refused) asks again
/// when no renegotiation says it changed.
const NO_CODEC_RECHECK: Duration = Duration::from_secs(1);

/// The codec a link sends in, looked up from its sender, and the packetizer for it.
struct LinkCodec {
    ssrc: u32,
    negotiated: Option<Negotiated>,
    /// When the codec was last looked up and none found (a section the far side refused):
    /// asked again after a renegotiation, or a second later, not every frame.
    none_since: Option<Instant>,
    /// Packetized here for the negotiated codec, and written as RTP: the binding names no
    /// codec when it is made (see `Pipeline::binding`). One sequence for the link's life, and
    /// a packetizer kept until the codec itself changes: a renegotiation (a track added
    /// mid-call) must not restart the stream's sequence numbers and timestamps, which a
    /// receiver takes for a jump, losing what follows.
    sequencer: Box<dyn Sequencer>,
    packetizer: Option<(String, Box<dyn Packetizer>)>,
}

impl LinkCodec {
    fn new(ssrc: u32) -> Self {
        LinkCodec {
            ssrc,
            negotiated: None,
            none_since: None,
            sequencer: Box::new(rtc::rtp::sequence::new_random_sequencer()),
            packetizer: None,
        }
    }

    /// A description was applied (or a write failed): the payload type may have changed.
    fn renegotiated(&mut self) {
        self.negotiated = None;
        self.none_since = None;
    }

    /// Looks the codec up if it is not known (and was not found missing a moment ago), and
    /// tells the pipeline which video codec the link is in.
    async fn look_up(&mut self, sender: &Arc<dyn RtpSender>, pipeline: &Pipeline, link: u64) {
        let asked_lately = self
            .none_since
            .is_some_and(|at| at.elapsed() < NO_CODEC_RECHECK);
        if self.negotiated.is_some() || asked_lately {
            return;
        }
        self.negotiated = negotiated_codec(sender).await;
        self.none_since = self.negotiated.is_none().then(Instant::now);
        if let Some(n) = &self.negotiated {
            let mime = n.codec.rtp_codec.mime_type.to_ascii_lowercase();
            if self.packetizer.as_ref().is_none_or(|(m, _)| *m != mime) {
                self.packetizer = n
                    .packetizer(self.ssrc, self.sequencer.clone())
                    .map(|p| (mime, p));
            }
        }
        if pipeline.kind == MediaKind::Video {
            let video = self.negotiated.as_ref().and_then(|n| n.video);
            pipeline.with_link(link, |state| state.codec = video);
        }
    }

    /// The negotiated codec and its packetizer, once both are known.
    fn in_use(
        &mut self,
    ) -> Option<(
        &rtc::rtp_transceiver::rtp_sender::RTCRtpCodecParameters,
        &mut Box<dyn Packetizer>,
    )> {
        match (&self.negotiated, self.packetizer.as_mut()) {
            (Some(n), Some((_, packetizer))) => Some((&n.codec, packetizer)),
            _ => None,
        }
    }
}

/// What a connection negotiated for a sender: its first codec, with the payload type the
/// connection gave it, and which video codec that is (`None` for audio).
struct Negotiated {
    codec: rtc::rtp_transceiver::rtp_sender::RTCRtpCodecParameters,
    video: Option<VideoCodec>,
}

impl Negotiated {
    /// A packetizer for this codec in the binding's SSRC, numbering from `sequencer`.
    fn packetizer(&self, ssrc: u32, sequencer: Box<dyn Sequencer>) -> Option<Box<dyn Packetizer>> {
        let payloader = match self.codec.rtp_codec.payloader() {
            Ok(payloader) => payloader,
            Err(e) => {
                tracing::warn!(
                    "no RTP payloader for {}: {e}",
                    self.codec.rtp_codec.mime_type
                );
                return None;
            }
        };
        Some(Box::new(rtc::rtp::packetizer::new_packetizer(
            Instant::now(),
            RTP_MTU,
            self.codec.payload_type,
            ssrc,
            payloader,
            sequencer,
            self.codec.rtp_codec.clock_rate,
        )))
    }
}

async fn negotiated_codec(sender: &Arc<dyn RtpSender>) -> Option<Negotiated> {
    let parameters = sender.get_parameters().await.ok()?;
    let codec = parameters.rtp_parameters.codecs.first()?.clone();
    let video = VideoCodec::from_mime(&codec.rtp_codec.mime_type);
    Some(Negotiated { codec, video })
}

/// `track` with its video coded in `codec` (the same stream, track id and SSRCs), or `None`
/// when it already is.
pub(crate) fn coded_as(track: &MediaStreamTrack, codec: VideoCodec) -> Option<MediaStreamTrack> {
    let wanted = codec.rtp_codec();
    let codings = track.codings();
    if codings
        .iter()
        .all(|c| c.codec.mime_type.eq_ignore_ascii_case(&wanted.mime_type))
    {
        return None;
    }
    let codings = codings
        .iter()
        .cloned()
        .map(|mut coding| {
            coding.codec = wanted.clone();
            coding
        })
        .collect();
    Some(MediaStreamTrack::new(
        track.stream_id().clone(),
        track.track_id().clone(),
        track.label().clone(),
        track.kind(),
        codings,
    ))
}

/// Packetizes one encoded frame and writes it to the binding, as webrtc-rs's sample writer does
/// for the codec a track names.
async fn write_sample(
    rtp: &TrackLocalStaticRTP,
    packetizer: &mut Box<dyn Packetizer>,
    codec: &rtc::rtp_transceiver::rtp_sender::RTCRtpCodecParameters,
    sample: &Sample,
) -> std::result::Result<(), webrtc::error::Error> {
    let packets = packetizer
        .packetize(
            sample.timestamp,
            &sample.data,
            ticks_of(sample.duration, codec),
        )
        .map_err(|e| webrtc::error::Error::Other(e.to_string()))?;
    for mut packet in packets {
        // The connection's number for the codec, which a renegotiation may change.
        packet.header.payload_type = codec.payload_type;
        rtp.write_rtp(packet).await?;
    }
    Ok(())
}

/// `duration` in ticks of the codec's RTP clock.
fn ticks_of(
    duration: Duration,
    codec: &rtc::rtp_transceiver::rtp_sender::RTCRtpCodecParameters,
) -> u32 {
    (duration.as_secs_f64() * f64::from(codec.rtp_codec.clock_rate)) as u32
}

/// webrtc-rs's sample writer's packet size, which the rest of the chain assumes.
const RTP_MTU: usize = 1200;

fn set_error(pipeline: &Pipeline, e: &MediaError) {
    tracing::warn!("{} capture stopped: {e}", pipeline.id);
    pipeline.counters().last_error = Some(e.to_string());
}

/// One kind of media's part in the capture loop: where its frames come from, what a new source
/// needs, what to do while nothing is sent, and how a frame is encoded and handed on.
trait Capture: Send + 'static {
    type Source: Send + 'static;
    type Frame;
    /// The capture thread's name.
    const THREAD: &'static str;
    /// Takes `next` as the source (the one in use stays if this fails).
    fn replace(&mut self, pipeline: &Pipeline, next: Self::Source) -> Result<(), MediaError>;
    fn next_frame(&mut self, pipeline: &Pipeline) -> Result<Self::Frame, MediaError>;
    /// Muted, or nobody to send to: nothing is encoded.
    fn idle(&mut self, pipeline: &Pipeline);
    fn encode(&mut self, pipeline: &Pipeline, frame: Self::Frame);
}

/// The one capture loop, for audio and video alike, on a thread of its own: takes a source
/// the user switched to, captures, counts, and encodes only while the track sends to someone.
fn spawn_capture<C: Capture>(
    pipeline: Arc<Pipeline>,
    replacement: Arc<Mutex<Option<C::Source>>>,
    mut capture: C,
) -> Result<()> {
    std::thread::Builder::new()
        .name(C::THREAD.into())
        .spawn(move || {
            while !pipeline.stop.load(Ordering::SeqCst) {
                let next = replacement.lock().unwrap_or_else(|p| p.into_inner()).take();
                if let Some(next) = next {
                    if let Err(e) = capture.replace(&pipeline, next) {
                        set_error(&pipeline, &e);
                        continue;
                    }
                }
                let frame = match capture.next_frame(&pipeline) {
                    Ok(frame) => frame,
                    Err(e) => {
                        set_error(&pipeline, &e);
                        break;
                    }
                };
                pipeline.counters().frames_captured += 1;
                // Muted, or nobody to send to: do not spend CPU encoding.
                if !pipeline.enabled.load(Ordering::SeqCst) || pipeline.frames.receiver_count() == 0
                {
                    capture.idle(&pipeline);
                    continue;
                }
                capture.encode(&pipeline, frame);
            }
        })
        .map(|_| ())
        .map_err(|e| crate::RtcError::Internal(format!("capture thread: {e}")))
}

fn encoder_config(options: &VideoTrackOptions, w: usize, h: usize, fps: u32) -> EncoderConfig {
    let mut config = EncoderConfig::for_size(w, h, fps);
    if let Some(bps) = options.bitrate_bps {
        config.bitrate_bps = bps;
    }
    if let Some(interval) = options.keyframe_interval {
        config.keyframe_interval = interval;
    }
    config
}

/// A video source encoded for every group of links (`encodings::plan`), each encoder at the
/// size and rate its ladder and budget leave room for.
struct VideoCapture {
    source: Box<dyn VideoSource>,
    options: VideoTrackOptions,
    /// The links of each codec, grouped by what they can carry.
    groups: HashMap<VideoCodec, Groups>,
    encoders: Vec<LinkEncoder>,
}

/// One encoder and what paces it: the picture size its links can take, the bits they have
/// room for, and how often it may make a keyframe.
struct LinkEncoder {
    key: EncodingKey,
    /// Built (again) on the first frame and when the picture's size or rate changes.
    encoder: Option<Box<dyn VideoEncoder>>,
    ladder: crate::ladder::Ladder,
    budget: crate::encoder_budget::EncoderBudget,
    keyframe_gate: KeyframeGate,
    frames_seen: u64,
    last_capture: Option<Duration>,
}

impl LinkEncoder {
    fn new(key: EncodingKey, target_bps: u32, source: (usize, usize, u32)) -> Self {
        LinkEncoder {
            key,
            encoder: None,
            ladder: crate::ladder::Ladder::starting_at(target_bps, source),
            budget: crate::encoder_budget::EncoderBudget::new(),
            keyframe_gate: KeyframeGate::new(MIN_KEYFRAME_INTERVAL),
            frames_seen: 0,
            last_capture: None,
        }
    }

    /// Encodes `frame` for `planned`'s links if their link has room for it, and hands it to
    /// them. `None` if the frame was skipped before the ladder was asked.
    fn encode(
        &mut self,
        pipeline: &Pipeline,
        options: &VideoTrackOptions,
        frame: &VideoFrame,
        source_fps: u32,
        planned: &Planned,
        scaled: &mut HashMap<parlor_media::scale::Scale, VideoFrame>,
    ) -> Option<EncodeOutcome> {
        let now = Instant::now();
        let target = planned.target_bps;
        // Skipped before anything is spent on the frame (scaling, encoding).
        if !self.budget.allows(now, target) {
            tracing::trace!(target, "frame skipped: the link has no room");
            pipeline.counters().frames_dropped += 1;
            return None;
        }
        // Below what the source's size needs, the ladder makes the picture smaller, then the
        // frame rate lower.
        let source = (frame.width, frame.height, source_fps);
        let rung = self.ladder.follow(now, target, source);
        let next_size = self.ladder.next_size_bps(source);
        self.frames_seen = self.frames_seen.wrapping_add(1);
        if !self
            .frames_seen
            .is_multiple_of(u64::from(rung.frame_interval))
        {
            return Some(EncodeOutcome {
                next_size_bps: next_size,
                keyframe_due: false,
            });
        }
        // Encoders at the same size share the scaling.
        let frame = match rung.scale {
            parlor_media::scale::Scale::Full => frame,
            scale => &*scaled
                .entry(scale)
                .or_insert_with(|| parlor_media::scale::downscale(frame, scale)),
        };
        let fps = (source_fps / rung.frame_interval).max(1);
        // Requests that come while a keyframe is still young wait for the gate: many PLIs
        // (from several receivers, or one lossy link) make one IDR. A link just moved to this
        // encoder cannot wait: it has nothing to decode until this encoder's first keyframe.
        let keyframe_due = if planned.keyframe_needed {
            self.keyframe_gate.force(now);
            true
        } else {
            planned.keyframe_wanted && self.keyframe_gate.open(now)
        };
        let outcome = EncodeOutcome {
            next_size_bps: next_size,
            keyframe_due,
        };
        let duration = match self.last_capture {
            Some(prev) if frame.captured_at > prev => frame.captured_at - prev,
            _ => Duration::from_secs(1) / fps,
        };
        self.last_capture = Some(frame.captured_at);
        let stale = self.encoder.as_ref().is_none_or(|encoder| {
            let c = encoder.config();
            (frame.width, frame.height, fps) != (c.width, c.height, c.fps)
        });
        if stale {
            match self
                .key
                .codec
                .encoder(encoder_config(options, frame.width, frame.height, fps))
            {
                Ok(e) => self.encoder = Some(e),
                Err(e) => {
                    set_error(pipeline, &e);
                    self.encoder = None;
                    return Some(outcome);
                }
            }
        }
        let encoder = self.encoder.as_mut()?;
        // Small moves are not worth a rate-control reset.
        let current = encoder.config().bitrate_bps;
        if target.abs_diff(current) > current / 20 {
            if let Err(e) = encoder.set_bitrate(target) {
                tracing::debug!("{e}");
            }
        }
        if keyframe_due {
            encoder.request_keyframe();
        }
        let started = Instant::now();
        let encoded = match encoder.encode(frame) {
            Ok(Some(encoded)) => encoded,
            Ok(None) => {
                tracing::trace!("frame skipped by the encoder's rate control");
                pipeline.counters().frames_dropped += 1;
                return Some(outcome);
            }
            Err(e) => {
                set_error(pipeline, &e);
                return Some(outcome);
            }
        };
        let spent = started.elapsed();
        let target_bps = encoder.config().bitrate_bps;
        if encoded.keyframe {
            tracing::debug!(
                encoding = ?self.key,
                bytes = encoded.data.len(),
                target_bps,
                "keyframe"
            );
            self.keyframe_gate.sent(encoded.data.len(), target_bps);
        }
        self.budget.spent(encoded.data.len());
        let quality_limitation =
            QualityLimitation::of_frame(spent, encoder.config().fps, next_size.is_some());
        let EncodedFrame { data, keyframe, .. } = encoded;
        pipeline.hand_on(Encoded {
            encoding: Some(self.key),
            keyframe,
            width: frame.width as u32,
            height: frame.height as u32,
            quality_limitation,
            encode_time: spent,
            data: data.into(),
            duration,
        });
        Some(outcome)
    }
}

/// What encoding one frame means for the links it was for.
struct EncodeOutcome {
    /// What the next size up needs (for the links' probers), `None` at full size.
    next_size_bps: Option<u32>,
    /// A keyframe was due: their requests are served.
    keyframe_due: bool,
}

impl Capture for VideoCapture {
    type Source = Box<dyn VideoSource>;
    type Frame = VideoFrame;
    const THREAD: &'static str = "parlor-video-capture";

    fn replace(&mut self, pipeline: &Pipeline, next: Self::Source) -> Result<(), MediaError> {
        // The encoders follow the new source's size on the next frame, like a ladder step.
        self.source = next;
        pipeline.want_keyframes();
        Ok(())
    }

    fn next_frame(&mut self, pipeline: &Pipeline) -> Result<VideoFrame, MediaError> {
        pipeline
            .fps
            .store(self.source.format().fps as u64, Ordering::Relaxed);
        self.source.next_frame()
    }

    fn idle(&mut self, pipeline: &Pipeline) {
        for encoder in &mut self.encoders {
            encoder.last_capture = None;
        }
        // A camera turned off is not a picture to make room for.
        for state in pipeline.links().values_mut() {
            state.next_size_bps = 0;
        }
    }

    fn encode(&mut self, pipeline: &Pipeline, frame: VideoFrame) {
        let source_fps = self.source.format().fps;
        let planned = crate::encodings::plan(
            Instant::now(),
            &mut pipeline.links(),
            &mut self.groups,
            (frame.width, frame.height, source_fps),
            self.options.bitrate_bps,
        );
        self.encoders
            .retain(|encoder| planned.iter().any(|p| p.key == encoder.key));
        let mut scaled = HashMap::new();
        for planned in &planned {
            let at = match self.encoders.iter().position(|e| e.key == planned.key) {
                Some(at) => at,
                None => {
                    let source = (frame.width, frame.height, source_fps);
                    self.encoders
                        .push(LinkEncoder::new(planned.key, planned.target_bps, source));
                    self.encoders.len() - 1
                }
            };
            let outcome = self.encoders[at].encode(
                pipeline,
                &self.options,
                &frame,
                source_fps,
                planned,
                &mut scaled,
            );
            let Some(outcome) = outcome else {
                continue;
            };
            let mut links = pipeline.links();
            for link in &planned.links {
                if let Some(state) = links.get_mut(link) {
                    state.next_size_bps = outcome.next_size_bps.unwrap_or(0);
                    state.wants_keyframe &= !outcome.keyframe_due;
                }
            }
        }
    }
}

/// Counts an encoded frame: in the track's counters when it is made, in a link's when it is
/// sent on it.
fn count(counters: &mut SendCounters, frame: &Encoded) {
    counters.frames_encoded += 1;
    counters.keyframes_encoded += frame.keyframe as u64;
    counters.bytes_encoded += frame.data.len() as u64;
    counters.width = frame.width;
    counters.height = frame.height;
    counters.encode_time += frame.encode_time;
    counters.quality_limitation = frame.quality_limitation;
}

/// An audio source encoded as Opus, with in-band FEC as the link's loss asks.
struct AudioCapture {
    source: Box<dyn AudioSource>,
    encoder: OpusEncoder,
}

fn opus_bitrate(channels: u16) -> i32 {
    if channels == 2 {
        64_000
    } else {
        32_000
    }
}

impl Capture for AudioCapture {
    type Source = Box<dyn AudioSource>;
    type Frame = AudioFrame;
    const THREAD: &'static str = "parlor-audio-capture";

    fn replace(&mut self, _: &Pipeline, next: Self::Source) -> Result<(), MediaError> {
        if next.channels() != self.source.channels() {
            self.encoder = OpusEncoder::new(next.channels(), opus_bitrate(next.channels()))?;
        }
        self.source = next;
        Ok(())
    }

    fn next_frame(&mut self, _: &Pipeline) -> Result<AudioFrame, MediaError> {
        self.source.next_frame()
    }

    fn idle(&mut self, _: &Pipeline) {}

    fn encode(&mut self, pipeline: &Pipeline, frame: AudioFrame) {
        // In-band FEC in proportion to the loss the link shows.
        let loss = pipeline
            .expected_loss_percent()
            .unwrap_or(parlor_media::opus_codec::DEFAULT_EXPECTED_LOSS_PERCENT);
        if let Err(e) = self.encoder.set_expected_loss(loss) {
            tracing::debug!("{e}");
        }
        let started = Instant::now();
        match self.encoder.encode(&frame) {
            Ok(packet) => pipeline.hand_on(Encoded {
                encoding: None,
                keyframe: false,
                width: 0,
                height: 0,
                quality_limitation: QualityLimitation::None,
                encode_time: started.elapsed(),
                data: packet.into(),
                duration: frame.duration(),
            }),
            Err(e) => set_error(pipeline, &e),
        }
    }
}

/// A camera (or test pattern, or file) sent as H.264 or VP8, whichever each connection chose.
#[derive(Clone)]
pub struct LocalVideoTrack {
    pipeline: Arc<Pipeline>,
    replacement: Arc<Mutex<Option<Box<dyn VideoSource>>>>,
}

impl LocalVideoTrack {
    /// Starts capturing and encoding on a thread of its own.
    pub fn new(source: Box<dyn VideoSource>, options: VideoTrackOptions) -> Result<Self> {
        let pipeline = Pipeline::new(MediaKind::Video);
        let replacement: Arc<Mutex<Option<Box<dyn VideoSource>>>> = Arc::new(Mutex::new(None));
        let format = source.format();
        // Tried here, so a size no encoder takes fails now rather than on the capture thread.
        VideoCodec::H264.encoder(encoder_config(
            &options,
            format.width,
            format.height,
            format.fps,
        ))?;
        let capture = VideoCapture {
            source,
            options,
            groups: HashMap::new(),
            encoders: Vec::new(),
        };
        spawn_capture(pipeline.clone(), replacement.clone(), capture)?;
        Ok(LocalVideoTrack {
            pipeline,
            replacement,
        })
    }

    pub fn id(&self) -> &str {
        &self.pipeline.id
    }

    /// Mute (false) or unmute (true) without renegotiation: while disabled nothing is sent.
    pub fn set_enabled(&self, enabled: bool) {
        if enabled && !self.pipeline.enabled.load(Ordering::SeqCst) {
            self.pipeline.want_keyframes();
        }
        self.pipeline.enabled.store(enabled, Ordering::SeqCst);
    }

    pub fn is_enabled(&self) -> bool {
        self.pipeline.enabled.load(Ordering::SeqCst)
    }

    /// Switches camera (or source) without renegotiation; the next frame is a keyframe.
    pub fn replace_source(&self, source: Box<dyn VideoSource>) {
        *self.replacement.lock().unwrap_or_else(|p| p.into_inner()) = Some(source);
    }

    /// Asks every encoder for an IDR frame now.
    pub fn request_keyframe(&self) {
        self.pipeline.want_keyframes();
    }

    pub fn counters(&self) -> SendCounters {
        self.pipeline.counters().clone()
    }

    /// Stops capturing; every connection stops sending this track.
    pub fn stop(&self) {
        self.pipeline.stop.store(true, Ordering::SeqCst);
    }

    pub(crate) fn pipeline(&self) -> &Arc<Pipeline> {
        &self.pipeline
    }
}

impl Drop for Pipeline {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// A microphone (or tone, or file) sent as Opus.
#[derive(Clone)]
pub struct LocalAudioTrack {
    pipeline: Arc<Pipeline>,
    replacement: Arc<Mutex<Option<Box<dyn AudioSource>>>>,
}

impl LocalAudioTrack {
    pub fn new(source: Box<dyn AudioSource>) -> Result<Self> {
        let pipeline = Pipeline::new(MediaKind::Audio);
        let replacement: Arc<Mutex<Option<Box<dyn AudioSource>>>> = Arc::new(Mutex::new(None));
        let encoder = OpusEncoder::new(source.channels(), opus_bitrate(source.channels()))?;
        spawn_capture(
            pipeline.clone(),
            replacement.clone(),
            AudioCapture { source, encoder },
        )?;
        Ok(LocalAudioTrack {
            pipeline,
            replacement,
        })
    }

    pub fn id(&self) -> &str {
        &self.pipeline.id
    }

    /// Mute (false) or unmute (true) without renegotiation.
    pub fn set_enabled(&self, enabled: bool) {
        self.pipeline.enabled.store(enabled, Ordering::SeqCst);
    }

    pub fn is_enabled(&self) -> bool {
        self.pipeline.enabled.load(Ordering::SeqCst)
    }

    /// Switches microphone (or source) without renegotiation.
    pub fn replace_source(&self, source: Box<dyn AudioSource>) {
        *self.replacement.lock().unwrap_or_else(|p| p.into_inner()) = Some(source);
    }

    pub fn counters(&self) -> SendCounters {
        self.pipeline.counters().clone()
    }

    pub fn stop(&self) {
        self.pipeline.stop.store(true, Ordering::SeqCst);
    }

    pub(crate) fn pipeline(&self) -> &Arc<Pipeline> {
        &self.pipeline
    }
}

/// What one read of the connection's keyframe-request channel means for the stream `ssrc`:
/// `Some(true)` a keyframe, `Some(false)` nothing, `None` the channel is gone. `Lagged` means
/// requests were dropped unread, and this stream's may have been among them: a keyframe too
/// many costs a few kilobytes (the encoder coalesces requests), one too few leaves the far side
/// frozen until it asks again.
fn keyframe_asked(read: Result<u32, broadcast::error::RecvError>, ssrc: u32) -> Option<bool> {
    match read {
        Ok(requested) => Some(requested == ssrc),
        Err(broadcast::error::RecvError::Lagged(_)) => Some(true),
        Err(broadcast::error::RecvError::Closed) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audio_prepares_for_the_worst_links_loss() {
        let pipeline = Pipeline::new(MediaKind::Audio);
        let link = |estimate| LinkState {
            estimate,
            ..LinkState::default()
        };
        assert_eq!(pipeline.expected_loss_percent(), None, "no link yet");
        pipeline
            .links()
            .insert(0, link(Some(estimate(2_000_000, Some(0.01)))));
        pipeline
            .links()
            .insert(1, link(Some(estimate(600_000, Some(0.034)))));
        pipeline.links().insert(2, link(None));
        assert_eq!(
            pipeline.expected_loss_percent(),
            Some(3),
            "the worst link's loss"
        );
        pipeline.links().remove(&1);
        assert_eq!(pipeline.expected_loss_percent(), Some(1));
        pipeline
            .links()
            .insert(0, link(Some(estimate(2_000_000, None))));
        assert_eq!(
            pipeline.expected_loss_percent(),
            None,
            "nothing measured yet"
        );
    }

    fn estimate(target_bps: u32, loss: Option<f64>) -> crate::estimate::Estimate {
        crate::estimate::Estimate {
            target_bps,
            delay_based_bps: None,
            loss_based_bps: None,
            loss,
        }
    }

    #[test]
    fn a_frame_says_what_limited_it() {
        let quick = Duration::from_millis(5);
        assert_eq!(
            QualityLimitation::of_frame(quick, 30, false),
            QualityLimitation::None
        );
        assert_eq!(
            QualityLimitation::of_frame(quick, 30, true),
            QualityLimitation::Bandwidth
        );
        // 40 ms for a frame of a 30 fps source: the encoder cannot keep up.
        let slow = Duration::from_millis(40);
        assert_eq!(
            QualityLimitation::of_frame(slow, 30, true),
            QualityLimitation::Cpu
        );
        assert_eq!(
            QualityLimitation::of_frame(slow, 15, false),
            QualityLimitation::None
        );
    }

    #[test]
    fn requests_lost_to_a_full_channel_count_as_a_request() {
        let (tx, mut rx) = broadcast::channel::<u32>(2);
        // Another stream's request is not ours; ours is.
        tx.send(7).unwrap();
        assert_eq!(
            keyframe_asked(rx.try_recv().map_err(as_recv_error), 42),
            Some(false)
        );
        tx.send(42).unwrap();
        assert_eq!(
            keyframe_asked(rx.try_recv().map_err(as_recv_error), 42),
            Some(true)
        );
        // More requests than the channel holds, ours the first: it was dropped unread.
        for ssrc in [42, 7, 7] {
            tx.send(ssrc).unwrap();
        }
        let read = rx.try_recv().map_err(as_recv_error);
        assert!(
            matches!(read, Err(broadcast::error::RecvError::Lagged(1))),
            "{read:?}"
        );
        assert_eq!(keyframe_asked(read, 42), Some(true));
        drop(tx);
        while rx.try_recv().is_ok() {}
        assert_eq!(
            keyframe_asked(rx.try_recv().map_err(as_recv_error), 42),
            None
        );
    }

    /// `try_recv`'s errors as `recv` reports them (`recv` waits where `try_recv` is `Empty`).
    fn as_recv_error(e: broadcast::error::TryRecvError) -> broadcast::error::RecvError {
        match e {
            broadcast::error::TryRecvError::Lagged(n) => broadcast::error::RecvError::Lagged(n),
            broadcast::error::TryRecvError::Closed => broadcast::error::RecvError::Closed,
            broadcast::error::TryRecvError::Empty => panic!("nothing to read"),
        }
    }

    #[test]
    fn keyframe_requests_are_coalesced_to_one_per_interval() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut gate = KeyframeGate::new(ms(300));
        assert!(gate.open(t0), "the first request is served at once");
        assert!(!gate.open(t0 + ms(10)));
        assert!(!gate.open(t0 + ms(299)));
        assert!(gate.open(t0 + ms(300)));
        assert!(!gate.open(t0 + ms(450)));
        assert!(gate.open(t0 + ms(600)));
        // A 10 kB keyframe at 200 kbit/s takes 0.4 s on the link: the next waits 1.6 s.
        gate.sent(10_000, 200_000);
        assert!(!gate.open(t0 + ms(1_000)));
        assert!(!gate.open(t0 + ms(2_199)));
        assert!(gate.open(t0 + ms(2_200)));
    }
}
