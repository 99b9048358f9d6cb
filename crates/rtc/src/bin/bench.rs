//! `parlor-rtc-bench`: prints Parlor's media and RTC figures on this machine. It measures; it
//! never passes or fails on time.
//!
//! * CPU per stream: H.264 encode and decode of the test pattern at 480p30 and 720p30, as the
//!   share of one core a real-time stream needs (thread CPU time, not wall time).
//! * Call setup between two peers on loopback: offer → connected, offer → first decoded frame.
//! * Data-channel throughput on loopback.
//! * Capture → hand-out latency at 720p30 (not glass-to-glass: there is no display): the capture
//!   time stamped into the pattern's pixels versus the wall clock when the receiver hands the
//!   decoded frame out; and the process CPU of that call.
//!
//! * `--link-call SECONDS`: only a 640x480 one-way call, with received frame rate, freezes,
//!   encoder bitrate, losses, PLIs and keyframes; run inside `scripts/shaped-link.sh` for a
//!   lossy or narrow link.
//! * `--mesh-call SECONDS [--receivers N]`: one 640x480 camera sent to N receivers over a
//!   connection each, with each receiver's frame rate, size, bitrate and freezes and what the
//!   sender's encoding cost; `scripts/shaped-link.sh mesh-thin` makes one receiver's link thin.
//!
//! Run it with `cargo run --release -p parlor-rtc --bin parlor-rtc-bench`.
use std::sync::Arc;
use std::time::{Duration, Instant};

use parlor_media::frame::wall_clock;
use parlor_media::h264::{H264Decoder, H264Encoder};
use parlor_media::pattern::{read_stamp, TestPattern};
use parlor_media::source::VideoConstraints;
use parlor_media::spec::VideoSpec;
use parlor_media::video_codec::{EncoderConfig, VideoDecoder, VideoEncoder};
use parlor_rtc::{
    DataChannelEvent, DataChannelOptions, LocalVideoTrack, PeerConnection, PeerEvent, RemoteTrack,
    RtcClient, RtcConfig, VideoTrackOptions,
};
use tokio::sync::mpsc;

fn cpu_time(thread_only: bool) -> Duration {
    #[cfg(unix)]
    {
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        let who = if thread_only {
            libc::RUSAGE_THREAD
        } else {
            libc::RUSAGE_SELF
        };
        // SAFETY: getrusage writes into the struct we own.
        unsafe { libc::getrusage(who, &mut usage) };
        let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
        tv(usage.ru_utime) + tv(usage.ru_stime)
    }
    #[cfg(not(unix))]
    {
        let _ = thread_only;
        Duration::ZERO
    }
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(|a, b| a.total_cmp(b));
    values[values.len() / 2]
}

fn codec_cpu(width: usize, height: usize) {
    let fps = 30;
    let pattern = TestPattern::new(VideoConstraints { width, height, fps }).unwrap();
    // Pre-render so only the codec is measured.
    let frames: Vec<_> = (0..60).map(|n| pattern.render(n, Duration::ZERO)).collect();
    let mut encoder = H264Encoder::new(EncoderConfig::for_size(width, height, fps)).unwrap();
    let n = 300;
    let mut encoded = Vec::with_capacity(n);
    let start = cpu_time(true);
    for i in 0..n {
        if let Some(e) = encoder.encode(&frames[i % frames.len()]).unwrap() {
            encoded.push(e.data);
        }
    }
    let encode = cpu_time(true) - start;
    let mut decoder = H264Decoder::new().unwrap();
    let start = cpu_time(true);
    for unit in &encoded {
        let _ = decoder.decode(unit, Duration::ZERO).unwrap();
    }
    let decode = cpu_time(true) - start;
    let share =
        |cpu: Duration, frames: usize| cpu.as_secs_f64() / frames as f64 * fps as f64 * 100.0;
    let bitrate =
        encoded.iter().map(Vec::len).sum::<usize>() as f64 * 8.0 / (n as f64 / fps as f64) / 1e6;
    println!(
        "  {height}p{fps}: encode {:.1} % of a core ({:.2} ms/frame), decode {:.1} % ({:.2} ms/frame), {:.2} Mbit/s",
        share(encode, n),
        encode.as_secs_f64() * 1000.0 / n as f64,
        share(decode, encoded.len()),
        decode.as_secs_f64() * 1000.0 / encoded.len() as f64,
        bitrate
    );
}

/// What making a smaller picture costs the sender (the ladder's steps, one thread): CPU per
/// 720p frame for each scale.
fn downscale_cpu() {
    use parlor_media::scale::{downscale, Scale};
    let pattern = TestPattern::new(VideoConstraints {
        width: 1280,
        height: 720,
        fps: 30,
    })
    .unwrap();
    let frames: Vec<_> = (0..10).map(|n| pattern.render(n, Duration::ZERO)).collect();
    let n = 200;
    let figures: Vec<String> = [Scale::ThreeQuarters, Scale::Half, Scale::Quarter]
        .into_iter()
        .map(|scale| {
            let start = cpu_time(true);
            for i in 0..n {
                std::hint::black_box(downscale(&frames[i % frames.len()], scale));
            }
            let per_frame = (cpu_time(true) - start).as_secs_f64() * 1000.0 / n as f64;
            format!("{scale:?} {per_frame:.2} ms")
        })
        .collect();
    println!("  720p downscale per frame: {}", figures.join(", "));
}

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

async fn peer() -> (Arc<PeerConnection>, mpsc::UnboundedReceiver<PeerEvent>) {
    peer_on([127, 0, 0, 1]).await
}

/// A peer gathering on `ip` only: a mesh call puts each receiver on a loopback address of its
/// own, so that a shaped link can single one of them out.
async fn peer_on(ip: [u8; 4]) -> (Arc<PeerConnection>, mpsc::UnboundedReceiver<PeerEvent>) {
    let config = RtcConfig {
        udp_addrs: vec![std::net::SocketAddr::from((ip, 0))],
        data_channel_buffer: env_usize(
            "PARLOR_BENCH_DC_BUFFER",
            RtcConfig::loopback().data_channel_buffer,
        ),
        ..RtcConfig::loopback()
    };
    let pc = Arc::new(
        RtcClient::new(config)
            .create_peer_connection()
            .await
            .unwrap(),
    );
    let events = pc.take_events().unwrap();
    (pc, events)
}

/// Relays candidates between the two and forwards the other events.
fn relay(
    mut events: mpsc::UnboundedReceiver<PeerEvent>,
    to: Arc<PeerConnection>,
) -> mpsc::UnboundedReceiver<PeerEvent> {
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Some(event) = events.recv().await {
            match event {
                PeerEvent::IceCandidate(c) => {
                    let _ = to.add_ice_candidate(c).await;
                }
                other => {
                    if tx.send(other).is_err() {
                        break;
                    }
                }
            }
        }
    });
    rx
}

async fn negotiate(a: &PeerConnection, b: &PeerConnection) {
    negotiate_video_in(a, b, VideoChoice::Either).await
}

/// Which video codec a measured call is made in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum VideoChoice {
    /// Whichever the two sides agree on (H.264, ours first).
    Either,
    /// VP8: `b` reads `a`'s offer as a peer without H.264 does (Debian's Firefox).
    Vp8,
}

async fn negotiate_video_in(a: &PeerConnection, b: &PeerConnection, video: VideoChoice) {
    let offer = a.create_offer().await.unwrap();
    a.set_local_description(offer.clone()).await.unwrap();
    let offer = match video {
        VideoChoice::Either => offer,
        VideoChoice::Vp8 => parlor_rtc::without_h264(&offer),
    };
    b.set_remote_description(offer).await.unwrap();
    let answer = b.create_answer().await.unwrap();
    b.set_local_description(answer.clone()).await.unwrap();
    a.set_remote_description(answer).await.unwrap();
}

/// A call in the making: `a` sends a 30 fps test-pattern track of this size to `b`, with
/// candidates relayed both ways. Not negotiated yet: callers time that themselves.
struct PatternCall {
    a: Arc<PeerConnection>,
    b: Arc<PeerConnection>,
    track: LocalVideoTrack,
    /// Kept alive: dropping it would stop `a`'s candidates being relayed.
    a_events: mpsc::UnboundedReceiver<PeerEvent>,
    b_events: mpsc::UnboundedReceiver<PeerEvent>,
}

async fn pattern_call(width: usize, height: usize) -> PatternCall {
    let (a, a_events) = peer().await;
    let (b, b_events) = peer().await;
    let pattern = VideoSpec::TestPattern
        .open(VideoConstraints {
            width,
            height,
            fps: 30,
        })
        .unwrap();
    let track = LocalVideoTrack::new(pattern, VideoTrackOptions::default()).unwrap();
    a.add_video_track(&track).await.unwrap();
    PatternCall {
        a_events: relay(a_events, b.clone()),
        b_events: relay(b_events, a.clone()),
        a,
        b,
        track,
    }
}

/// One call setup: returns (offer → connected, offer → first decoded frame) in ms.
async fn setup_once(width: usize, height: usize) -> (f64, f64) {
    let PatternCall {
        a,
        b,
        track,
        a_events: _a_events,
        mut b_events,
    } = pattern_call(width, height).await;
    let t0 = Instant::now();
    negotiate(&a, &b).await;
    a.wait_connected(Duration::from_secs(20)).await.unwrap();
    let connected = t0.elapsed().as_secs_f64() * 1000.0;
    let remote = loop {
        match b_events.recv().await.expect("events") {
            PeerEvent::TrackAdded(RemoteTrack::Video(v)) => break v,
            _ => continue,
        }
    };
    remote.next_frame().await.expect("a frame");
    let first_frame = t0.elapsed().as_secs_f64() * 1000.0;
    track.stop();
    a.close().await.unwrap();
    b.close().await.unwrap();
    (connected, first_frame)
}

async fn data_channel_throughput() -> f64 {
    let (a, a_events) = peer().await;
    let (b, b_events) = peer().await;
    let channel = a
        .create_data_channel("bulk", DataChannelOptions::default())
        .await
        .unwrap();
    let _a_events = relay(a_events, b.clone());
    let mut b_events = relay(b_events, a.clone());
    negotiate(&a, &b).await;
    let remote = loop {
        if let PeerEvent::DataChannel(dc) = b_events.recv().await.expect("events") {
            break dc;
        }
    };
    channel.wait_open().await.unwrap();
    let chunk = vec![0x5a; env_usize("PARLOR_BENCH_DC_MESSAGE", 64 * 1024)];
    let total_bytes: usize = 256 * 1024 * 1024;
    let receiver = tokio::spawn(async move {
        let mut received = 0usize;
        let mut started = None;
        let deadline = Instant::now() + Duration::from_secs(30);
        while received < total_bytes && Instant::now() < deadline {
            match tokio::time::timeout(Duration::from_secs(5), remote.next_event()).await {
                Ok(Some(DataChannelEvent::Message(parlor_rtc::Message::Binary(data)))) => {
                    started.get_or_insert_with(Instant::now);
                    received += data.len();
                }
                Ok(Some(_)) => {}
                _ => break,
            }
        }
        (received, started.map(|s| s.elapsed()).unwrap_or_default())
    });
    let send_deadline = Instant::now() + Duration::from_secs(30);
    let mut sent = 0;
    while sent < total_bytes && Instant::now() < send_deadline {
        if channel.send_binary(&chunk).await.is_err() {
            break;
        }
        sent += chunk.len();
    }
    let (received, elapsed) = receiver.await.unwrap();
    a.close().await.unwrap();
    b.close().await.unwrap();
    received as f64 * 8.0 / elapsed.as_secs_f64().max(1e-9) / 1e6
}

/// What one one-way test-pattern call delivered, measured at the receiver's decoder output:
/// capture -> hand-out latency (a decoded frame handed to the application, after its render timing) from the pattern's stamps, and the process CPU (both peers).
#[derive(serde::Serialize)]
struct CallFigures {
    /// The codec the video arrived in (`video/H264`, `video/VP8`).
    video_codec: String,
    /// When the measured call began, in seconds since the Unix epoch: the per-second figures
    /// start here, and a shaped link's changes (`PARLOR_LINK_LOG`) are logged on this clock.
    started_at_unix_s: f64,
    latency_p50_ms: f64,
    latency_p95_ms: f64,
    /// Process CPU (sender and receiver) as a share of one core.
    cpu_percent: f64,
    frames: u64,
    fps: f64,
    /// Freezes as Chromium's getStats counts them (`parlor_rtc::freezes`).
    freezes: u64,
    freeze_seconds: f64,
    /// When each freeze ended, in seconds into the call.
    freezes_at: Vec<f64>,
    sent_kbps: f64,
    packets_lost: u64,
    packets_late: u64,
    /// Second copies dropped at the receiver: crossed retransmissions and the sender's probes.
    packets_duplicated: u64,
    plis_sent: u64,
    keyframes_encoded: u64,
    /// The sender's stats of the video's feedback over the whole call (NACKs, PLIs, FIRs
    /// received; packets and bytes sent in its RTX stream).
    sender_feedback: parlor_rtc::stats::Feedback,
    /// At the sender, in the same time: frames the encoder made of those captured (the rest
    /// it skipped to hold the bitrate, or the ladder dropped).
    frames_encoded: u64,
    frames_captured: u64,
    /// Every second: the sender's estimate with its halves, what it sent and what arrived.
    estimates_kbps: Vec<TracePoint>,
    /// Frames decoded in each second of the call.
    frames_per_second: Vec<u32>,
    /// The size of the last frame decoded.
    received_width: u32,
    received_height: u32,
}

/// One reading of the sender, every second: kbit/s, loss in per cent.
#[derive(Clone, Copy, serde::Serialize)]
struct TracePoint {
    estimate: u32,
    delay_based: u32,
    loss_based: u32,
    loss_percent: f64,
    sent: u32,
    width: u32,
    /// RTP payload the receiver got since the last sample, kbit/s.
    received: u32,
}

impl std::fmt::Debug for TracePoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} (delay {} loss {} at {:.1} %) sent {} got {} w{}",
            self.estimate,
            self.delay_based,
            self.loss_based,
            self.loss_percent,
            self.sent,
            self.received,
            self.width
        )
    }
}

/// Takes `remote`'s frames until `end`: when each arrived, and how old it was (capture stamp →
/// hand-out, ms).
async fn receive_until(
    remote: &parlor_rtc::RemoteVideoTrack,
    end: Instant,
    arrivals: &mut Vec<Instant>,
    latencies: &mut Vec<f64>,
) {
    while let Ok(Some(frame)) = tokio::time::timeout_at(end.into(), remote.next_frame()).await {
        arrivals.push(Instant::now());
        if let Some(stamp) = read_stamp(&frame) {
            latencies.push(wall_clock().saturating_sub(stamp.captured_at).as_secs_f64() * 1000.0);
        }
    }
}

/// What a receiver got in a measured call, from its frames' arrival times.
#[derive(serde::Serialize)]
struct Reception {
    frames: u64,
    /// Freezes as Chromium's getStats counts them (`parlor_rtc::freezes`).
    freezes: u64,
    freeze_seconds: f64,
    /// When each freeze ended, in seconds into the call.
    freezes_at: Vec<f64>,
    /// Frames decoded in each second of the call.
    frames_per_second: Vec<u32>,
    latency_p50_ms: f64,
    latency_p95_ms: f64,
}

impl Reception {
    /// `arrivals` starts with the call's start and ends with its end, frames in between.
    fn of(start: Instant, arrivals: &[Instant], mut latencies: Vec<f64>, seconds: u64) -> Self {
        let frames = arrivals.len() as u64 - 2;
        let mut frames_per_second = vec![0u32; seconds as usize];
        for arrival in &arrivals[1..arrivals.len() - 1] {
            if let Some(count) = frames_per_second.get_mut((*arrival - start).as_secs() as usize) {
                *count += 1;
            }
        }
        let mut freezes = parlor_rtc::freezes::FreezeCounter::default();
        let mut freezes_at = Vec::new();
        for &arrival in arrivals {
            let before = freezes.count;
            freezes.frame(arrival);
            if freezes.count > before {
                freezes_at.push((arrival - start).as_secs_f64());
            }
        }
        latencies.sort_by(|x, y| x.total_cmp(y));
        let p = |q: f64| {
            latencies
                .get(((latencies.len() as f64 * q) as usize).min(latencies.len().saturating_sub(1)))
                .copied()
                .unwrap_or(f64::NAN)
        };
        Reception {
            frames,
            freezes: freezes.count,
            freeze_seconds: freezes.total.as_secs_f64(),
            freezes_at,
            frames_per_second,
            latency_p50_ms: p(0.5),
            latency_p95_ms: p(0.95),
        }
    }
}

async fn measure_call(
    width: usize,
    height: usize,
    seconds: u64,
    warm_up: Duration,
    video: VideoChoice,
) -> CallFigures {
    let PatternCall {
        a,
        b,
        track,
        a_events: _a_events,
        mut b_events,
    } = pattern_call(width, height).await;
    negotiate_video_in(&a, &b, video).await;
    let remote = loop {
        if let PeerEvent::TrackAdded(RemoteTrack::Video(v)) = b_events.recv().await.expect("events")
        {
            break v;
        }
    };
    // Warm up (a second unless told), then measure. With no warm-up the figures start when the
    // track is announced, before its first packet: the start of the call is measured too.
    let warm = Instant::now() + warm_up;
    while Instant::now() < warm {
        let _ = tokio::time::timeout_at(warm.into(), remote.next_frame()).await;
    }
    let (sent_before, received_before) = (track.counters(), remote.counters());
    let cpu_start = cpu_time(false);
    let start = Instant::now();
    let started_at_unix_s = wall_clock().as_secs_f64();
    let end = start + Duration::from_secs(seconds);
    let mut latencies = Vec::new();
    let mut arrivals = vec![start];
    // The sender's estimate every second (printed with --link-call).
    let trace_pc = a.clone();
    let trace_log = Arc::new(std::sync::Mutex::new(Vec::new()));
    let estimates = trace_log.clone();
    let trace_remote = remote.clone();
    let trace = tokio::spawn(async move {
        let mut bytes_before = trace_remote.counters().bytes;
        let mut sampled_at = Instant::now();
        while Instant::now() < end {
            tokio::time::sleep(Duration::from_secs(1)).await;
            let stats = trace_pc.stats().await;
            let kbps = |bps: Option<u32>| bps.map_or(0, |bps| bps / 1000);
            let estimate = stats.estimate;
            let sample = TracePoint {
                estimate: kbps(estimate.map(|e| e.target_bps)),
                delay_based: kbps(estimate.and_then(|e| e.delay_based_bps)),
                loss_based: kbps(estimate.and_then(|e| e.loss_based_bps)),
                loss_percent: estimate.and_then(|e| e.loss).unwrap_or(0.0) * 100.0,
                sent: stats
                    .outbound
                    .first()
                    .map_or(0, |o| (o.bitrate_bps / 1000.0) as u32),
                width: stats.outbound.first().map_or(0, |o| o.frame_width),
                // Over the time since the last sample, not a nominal second: on a busy machine
                // the sleep and the stats above take longer, and a "second" that held 1.1 s of
                // arrivals read as 10 % over the link (cap600-loss3, 612 kbit/s on a 600 link).
                received: {
                    let (bytes, now) = (trace_remote.counters().bytes, Instant::now());
                    let seconds = now.duration_since(sampled_at).as_secs_f64().max(1e-3);
                    let kbps = (bytes - bytes_before) as f64 * 8.0 / 1000.0 / seconds;
                    (bytes_before, sampled_at) = (bytes, now);
                    kbps as u32
                },
            };
            estimates
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(sample);
        }
    });
    receive_until(&remote, end, &mut arrivals, &mut latencies).await;
    arrivals.push(end);
    let elapsed = start.elapsed().as_secs_f64();
    // Stopped, not awaited: its last sleep may end after the call, and must not count in it.
    let estimates_kbps = {
        trace.abort();
        let log = trace_log.lock().unwrap_or_else(|p| p.into_inner());
        log.clone()
    };
    let cpu = (cpu_time(false) - cpu_start).as_secs_f64() / elapsed * 100.0;
    let (sent, received) = (track.counters(), remote.counters());
    // Whole-call counts: the warm-up's feedback is in them too.
    let sender_feedback = a
        .stats()
        .await
        .outbound
        .iter()
        .find(|o| o.kind == "video")
        .map(|o| o.feedback)
        .unwrap_or_default();
    let video_codec = b
        .stats()
        .await
        .inbound
        .into_iter()
        .find(|i| i.kind == "video")
        .map(|i| i.mime_type)
        .unwrap_or_default();
    track.stop();
    a.close().await.unwrap();
    b.close().await.unwrap();
    let r = Reception::of(start, &arrivals, latencies, seconds);
    CallFigures {
        video_codec,
        started_at_unix_s,
        latency_p50_ms: r.latency_p50_ms,
        latency_p95_ms: r.latency_p95_ms,
        cpu_percent: cpu,
        frames: r.frames,
        fps: r.frames as f64 / elapsed,
        freezes: r.freezes,
        freeze_seconds: r.freeze_seconds,
        freezes_at: r.freezes_at,
        sent_kbps: (sent.bytes_encoded - sent_before.bytes_encoded) as f64 * 8.0 / elapsed / 1000.0,
        packets_lost: received.packets_lost - received_before.packets_lost,
        packets_late: received.packets_late - received_before.packets_late,
        packets_duplicated: received.packets_duplicated - received_before.packets_duplicated,
        plis_sent: received.plis_sent - received_before.plis_sent,
        keyframes_encoded: sent.keyframes_encoded - sent_before.keyframes_encoded,
        sender_feedback,
        frames_encoded: sent.frames_encoded - sent_before.frames_encoded,
        frames_captured: sent.frames_captured - sent_before.frames_captured,
        estimates_kbps,
        frames_per_second: r.frames_per_second,
        received_width: received.width,
        received_height: received.height,
    }
}

/// `--link-call SECONDS`: a 640x480 one-way call over whatever link this process runs on
/// (`scripts/shaped-link.sh` runs it inside a namespace with a shaped loopback).
async fn link_call(seconds: u64, warm_up: Duration, json: bool, video: VideoChoice) {
    // Bounded: on a link too poor to set the call up, say so instead of waiting forever.
    let limit = Duration::from_secs(seconds + 30);
    let Ok(f) = tokio::time::timeout(limit, measure_call(640, 480, seconds, warm_up, video)).await
    else {
        // A failure, not a figure: scripts and tests must not read it as a measurement.
        eprintln!("640x480 one-way, {seconds} s: the call was not set up within {limit:?}");
        std::process::exit(1);
    };
    if json {
        println!("{}", serde_json::to_string(&f).expect("figures serialize"));
        return;
    }
    println!(
        "640x480 one-way in {}, {seconds} s, measured at the receiver's decoder output: \
         {:.1} fps received ({} frames), {} freezes ({:.1} s frozen), encoder output {:.0} kbit/s, \
         {} packets given up, {} late, {} duplicates, {} PLIs sent, {} keyframes encoded, \
         capture -> hand-out latency p50 {:.0} ms p95 {:.0} ms, CPU {:.0} %, \
         frames each second {:?}, every second, kbit/s: {:?}",
        f.video_codec,
        f.fps,
        f.frames,
        f.freezes,
        f.freeze_seconds,
        f.sent_kbps,
        f.packets_lost,
        f.packets_late,
        f.packets_duplicated,
        f.plis_sent,
        f.keyframes_encoded,
        f.latency_p50_ms,
        f.latency_p95_ms,
        f.cpu_percent,
        f.frames_per_second,
        f.estimates_kbps,
    );
}

/// One receiver's figures in a mesh call.
#[derive(serde::Serialize)]
struct MeshReceiver {
    /// The loopback address it gathered on (a shaped link singles one out by it).
    address: String,
    fps: f64,
    #[serde(flatten)]
    reception: Reception,
    /// RTP payload received, kbit/s.
    received_kbps: f64,
    /// The size of the last frame decoded.
    width: u32,
    height: u32,
    /// The sender's congestion estimate for this link, kbit/s, every second.
    estimates_kbps: Vec<u32>,
    /// Packets given up, PLIs sent and keyframes decoded at the receiver.
    packets_lost: u64,
    plis_sent: u64,
    keyframes_decoded: u64,
}

#[derive(serde::Serialize)]
struct MeshFigures {
    receivers: Vec<MeshReceiver>,
    /// The sender's encoders' time (all of them, every codec and rate) as a share of one core:
    /// what the mesh's encoding costs, apart from capture, packetizing and the receivers.
    encode_cpu_percent: f64,
    /// Process CPU (sender and every receiver) as a share of one core.
    cpu_percent: f64,
    frames_captured: u64,
    frames_encoded: u64,
}

/// `--mesh-call SECONDS [--receivers N]`: one 640x480 camera sent to N receivers (default 2),
/// each over a connection of its own, as a mesh call's sender does. Receiver i gathers on
/// 127.0.0.(2+i), so a shaped link (`scripts/shaped-link.sh mesh-thin`) can make one
/// receiver's link thin and leave the others' alone.
async fn mesh_call(seconds: u64, receivers: usize, json: bool) {
    let limit = Duration::from_secs(seconds + 30);
    let Ok(f) = tokio::time::timeout(limit, measure_mesh(seconds, receivers)).await else {
        eprintln!("mesh call, {seconds} s: not set up within {limit:?}");
        std::process::exit(1);
    };
    if json {
        println!("{}", serde_json::to_string(&f).expect("figures serialize"));
        return;
    }
    println!(
        "640x480 to {receivers} receivers, {seconds} s, measured at each receiver's decoder output:"
    );
    for r in &f.receivers {
        println!(
            "  {}: {:.1} fps, {}x{}, {:.0} kbit/s, {} freezes ({:.1} s frozen), \
             capture -> hand-out p50 {:.0} ms p95 {:.0} ms, frames each second {:?}, \
             the sender's estimate each second {:?}",
            r.address,
            r.fps,
            r.width,
            r.height,
            r.received_kbps,
            r.reception.freezes,
            r.reception.freeze_seconds,
            r.reception.latency_p50_ms,
            r.reception.latency_p95_ms,
            r.reception.frames_per_second,
            r.estimates_kbps,
        );
    }
    println!(
        "  sender: {} frames encoded of {} captured, encoders {:.0} % of one core; \
         process (sender and receivers) {:.0} %",
        f.frames_encoded, f.frames_captured, f.encode_cpu_percent, f.cpu_percent
    );
}

async fn measure_mesh(seconds: u64, receivers: usize) -> MeshFigures {
    let pattern = VideoSpec::TestPattern
        .open(VideoConstraints {
            width: 640,
            height: 480,
            fps: 30,
        })
        .unwrap();
    let track = LocalVideoTrack::new(pattern, VideoTrackOptions::default()).unwrap();
    let mut links = Vec::new();
    for i in 0..receivers {
        let (a, a_events) = peer().await;
        let address = [127, 0, 0, 2 + i as u8];
        let (b, b_events) = peer_on(address).await;
        a.add_video_track(&track).await.unwrap();
        let a_events = relay(a_events, b.clone());
        let mut b_events = relay(b_events, a.clone());
        negotiate(&a, &b).await;
        let remote = loop {
            if let PeerEvent::TrackAdded(RemoteTrack::Video(v)) =
                b_events.recv().await.expect("events")
            {
                break v;
            }
        };
        let address = std::net::Ipv4Addr::from(address).to_string();
        links.push((a, b, a_events, b_events, remote, address));
    }
    // Warm up for a second, then measure every receiver over the same seconds.
    let warm = Instant::now() + Duration::from_secs(1);
    for (.., remote, _) in &links {
        while Instant::now() < warm {
            let _ = tokio::time::timeout_at(warm.into(), remote.next_frame()).await;
        }
    }
    let sent_before = track.counters();
    let cpu_start = cpu_time(false);
    let start = Instant::now();
    let end = start + Duration::from_secs(seconds);
    let (mut receiving, mut estimating) = (Vec::new(), Vec::new());
    for (a, _, _, _, remote, _) in &links {
        let remote = remote.clone();
        receiving.push(tokio::spawn(async move {
            let before = remote.counters();
            let (mut arrivals, mut latencies) = (vec![start], Vec::new());
            receive_until(&remote, end, &mut arrivals, &mut latencies).await;
            arrivals.push(end);
            (arrivals, latencies, before)
        }));
        let sender = a.clone();
        estimating.push(tokio::spawn(async move {
            let mut estimates = Vec::new();
            for second in 1..=seconds {
                tokio::time::sleep_until((start + Duration::from_secs(second)).into()).await;
                let estimate = sender.stats().await.estimate;
                estimates.push(estimate.map_or(0, |e| e.target_bps / 1000));
            }
            estimates
        }));
    }
    let mut results = Vec::new();
    for (task, estimates) in receiving.into_iter().zip(estimating) {
        let (arrivals, latencies, before) = task.await.expect("a receiver's task");
        let estimates = estimates.await.expect("an estimate's task");
        results.push((arrivals, latencies, before, estimates));
    }
    let elapsed = start.elapsed().as_secs_f64();
    let cpu = (cpu_time(false) - cpu_start).as_secs_f64() / elapsed * 100.0;
    let sent = track.counters();
    let mut figures = Vec::new();
    for ((arrivals, latencies, before, estimates_kbps), (.., remote, address)) in
        results.into_iter().zip(&links)
    {
        let reception = Reception::of(start, &arrivals, latencies, seconds);
        let received = remote.counters();
        figures.push(MeshReceiver {
            address: address.clone(),
            fps: reception.frames as f64 / elapsed,
            reception,
            received_kbps: (received.bytes - before.bytes) as f64 * 8.0 / elapsed / 1000.0,
            width: received.width,
            height: received.height,
            estimates_kbps,
            packets_lost: received.packets_lost - before.packets_lost,
            plis_sent: received.plis_sent - before.plis_sent,
            keyframes_decoded: received.keyframes_decoded - before.keyframes_decoded,
        });
    }
    track.stop();
    for (a, b, ..) in &links {
        a.close().await.unwrap();
        b.close().await.unwrap();
    }
    MeshFigures {
        receivers: figures,
        encode_cpu_percent: (sent.encode_time - sent_before.encode_time).as_secs_f64() / elapsed
            * 100.0,
        cpu_percent: cpu,
        frames_captured: sent.frames_captured - sent_before.frames_captured,
        frames_encoded: sent.frames_encoded - sent_before.frames_encoded,
    }
}

/// The value given after `flag` on the command line, if it is there and parses.
fn value_after<T: std::str::FromStr>(args: &[String], flag: &str) -> Option<T> {
    let at = args.iter().position(|a| a == flag)?;
    args.get(at + 1)?.parse().ok()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    // Quiet unless asked: a shaped link's drops are logged by webrtc-rs as errors, once per
    // packet. RUST_LOG=parlor_rtc=debug shows the congestion controller's probes.
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "off".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let args: Vec<String> = std::env::args().collect();
    let has = |flag: &str| args.iter().any(|a| a == flag);
    if has("--link-call") {
        let seconds = value_after(&args, "--link-call").unwrap_or(20);
        let video = if has("--vp8") {
            VideoChoice::Vp8
        } else {
            VideoChoice::Either
        };
        // `--warm-up 0` measures the call's first seconds too.
        let warm_up =
            value_after(&args, "--warm-up").map_or(Duration::from_secs(1), Duration::from_secs_f64);
        link_call(seconds, warm_up, has("--json"), video).await;
        return;
    }
    if has("--mesh-call") {
        let seconds = value_after(&args, "--mesh-call").unwrap_or(20);
        let receivers = value_after(&args, "--receivers").unwrap_or(2);
        mesh_call(seconds, receivers, has("--json")).await;
        return;
    }
    if has("--data-channel-only") {
        println!(
            "data channel: {:.0} Mbit/s",
            data_channel_throughput().await
        );
        return;
    }
    println!("parlor-rtc-bench (release build recommended; figures vary with machine load)");
    println!("H.264 CPU per real-time stream (test pattern, one thread):");
    codec_cpu(640, 480);
    codec_cpu(1280, 720);
    downscale_cpu();

    let mut connected = Vec::new();
    let mut first = Vec::new();
    for _ in 0..5 {
        let (c, f) = setup_once(640, 480).await;
        connected.push(c);
        first.push(f);
    }
    println!(
        "Call setup on loopback, 640x480 (median of 5, trickle ICE, both peers in one process):"
    );
    println!(
        "  offer -> connected:           {:.0} ms",
        median(connected)
    );
    println!("  offer -> first decoded frame: {:.0} ms", median(first));

    let mut runs = Vec::new();
    for _ in 0..3 {
        runs.push(data_channel_throughput().await);
    }
    let best = runs.iter().cloned().fold(0.0, f64::max);
    println!(
        "Data channel on loopback (reliable, ordered, 64 KiB messages, 3 runs): median {:.0} Mbit/s, best {best:.0}",
        median(runs)
    );

    let f = measure_call(1280, 720, 5, Duration::from_secs(1), VideoChoice::Either).await;
    println!("720p30 one-way call, 5 s (capture -> encode -> RTP -> decode, one process):");
    println!(
        "  capture -> hand-out latency: median {:.1} ms, p95 {:.1} ms ({} frames, {:.1} fps \
         received, last at {}x{}, encoder {:.0} kbit/s)",
        f.latency_p50_ms,
        f.latency_p95_ms,
        f.frames,
        f.fps,
        f.received_width,
        f.received_height,
        f.sent_kbps
    );
    println!(
        "  process CPU for the call (sender and receiver): {:.0} % of one core",
        f.cpu_percent
    );
}
