//! `parlor-rtc-peer`: one side of a call, driven by JSON-line signaling on stdin/stdout, for
//! tests and benchmarks across processes and against browsers.
//!
//! It sends the test pattern and a tone, opens (as offerer) or accepts a data channel, sends a
//! text and a binary message when it opens, and after `--duration` prints one line
//! `{"result":{…}}` with what it received: decoded frames, stamps, latency, the tone's
//! frequency, messages, stats, and setup times.
//!
//! Signaling lines, both ways: `{"description":{"type":"offer","sdp":"…"}}` and
//! `{"candidate":{"candidate":"…","sdpMid":"0","sdpMLineIndex":0}}`.
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use parlor_media::analysis::{first_channel, percentile, ToneMeter};
use parlor_media::frame::wall_clock;
use parlor_media::pattern::read_stamp;
use parlor_media::source::VideoConstraints;
use parlor_media::spec::{AudioSpec, VideoSpec};
use parlor_rtc::{
    DataChannel, DataChannelEvent, DataChannelOptions, IceCandidate, LocalAudioTrack,
    LocalVideoTrack, Message, PeerEvent, RemoteTrack, RtcClient, RtcConfig, SessionDescription,
    VideoTrackOptions,
};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::sync::Mutex;

#[derive(Parser, Debug)]
struct Args {
    /// `offer` creates the offer (and the data channel); `answer` waits for one.
    #[arg(long)]
    role: String,
    /// Frequency of the tone to send, in Hz.
    #[arg(long, default_value_t = 440.0)]
    tone: f64,
    #[arg(long, default_value_t = 640)]
    width: usize,
    #[arg(long, default_value_t = 480)]
    height: usize,
    #[arg(long, default_value_t = 30)]
    fps: u32,
    /// Seconds to run after connecting.
    #[arg(long, default_value_t = 3.0)]
    duration: f64,
    /// Do not send video.
    #[arg(long)]
    no_video: bool,
    /// Do not send audio.
    #[arg(long)]
    no_audio: bool,
    /// Open the data channel with large-message support and send a 1 MiB message too, and
    /// stay past `--duration` until the exchange has settled (see [`Exchange`]) (both
    /// ends must be parlor-rtc-peer: browsers do not speak the chunked sub-protocol).
    #[arg(long)]
    large_messages: bool,
    /// ICE check interval in ms (default: the library's).
    #[arg(long)]
    ice_check_ms: Option<u64>,
    /// Resolve `.local` (mDNS) candidates, as the app does; this needs a multicast-capable
    /// interface.
    #[arg(long)]
    mdns: bool,
}

#[derive(Serialize, Deserialize, Debug)]
#[serde(rename_all = "lowercase")]
enum Signal {
    Description(SessionDescription),
    Candidate(IceCandidate),
}

#[derive(Serialize, Default, Debug)]
struct Outcome {
    connected_ms: Option<f64>,
    first_video_frame_ms: Option<f64>,
    first_audio_ms: Option<f64>,
    data_channel_open_ms: Option<f64>,
    video_frames: u64,
    video_width: usize,
    video_height: usize,
    stamped_frames: u64,
    stamps_in_order: bool,
    latency_ms_median: Option<f64>,
    latency_ms_p95: Option<f64>,
    audio_frames: u64,
    audio_hz: Option<f64>,
    messages: Vec<String>,
    stats: Option<parlor_rtc::stats::CallStats>,
    /// Every second from connecting: the congestion estimate and what was sent, kbit/s.
    per_second: Vec<SecondSent>,
    error: Option<String>,
    /// Raw material for the summaries above, computed once when reporting.
    #[serde(skip)]
    latencies: Vec<f64>,
    #[serde(skip)]
    tone: ToneMeter,
}

#[derive(Serialize, Debug, Clone, Copy)]
struct SecondSent {
    estimate_kbps: Option<u32>,
    /// All media (audio and video), as the senders measured it.
    sent_kbps: u32,
    video_width: u32,
}

type Shared<T> = Arc<Mutex<T>>;

async fn send_signal(out: &Shared<tokio::io::Stdout>, signal: &Signal) {
    let mut line = serde_json::to_string(signal).expect("signal serializes");
    line.push('\n');
    let mut out = out.lock().await;
    let _ = out.write_all(line.as_bytes()).await;
    let _ = out.flush().await;
}

fn ms_since(t0: Instant) -> f64 {
    t0.elapsed().as_secs_f64() * 1000.0
}

#[tokio::main]
async fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let stdout = Arc::new(Mutex::new(tokio::io::stdout()));
    let outcome = Arc::new(Mutex::new(Outcome {
        stamps_in_order: true,
        ..Outcome::default()
    }));
    if let Err(e) = run(&args, stdout.clone(), outcome.clone()).await {
        outcome.lock().await.error = Some(e);
    }
    let mut o = outcome.lock().await;
    o.latency_ms_median = percentile(&o.latencies, 50);
    o.latency_ms_p95 = percentile(&o.latencies, 95);
    o.audio_hz = o.tone.frequency();
    let result = serde_json::json!({ "result": &*o });
    drop(o);
    let mut out = stdout.lock().await;
    let _ = out.write_all(format!("{result}\n").as_bytes()).await;
    let _ = out.flush().await;
    // Done. Exit now rather than let the runtime wait for the blocking stdin reader, which
    // would keep us alive as long as whoever feeds our stdin does.
    std::process::exit(0);
}

async fn run(
    args: &Args,
    stdout: Shared<tokio::io::Stdout>,
    outcome: Shared<Outcome>,
) -> Result<(), String> {
    let offerer = match args.role.as_str() {
        "offer" => true,
        "answer" => false,
        other => return Err(format!("unknown role {other}")),
    };
    let pc = Arc::new(
        RtcClient::new(RtcConfig {
            resolve_mdns: args.mdns,
            ..RtcConfig::loopback()
        })
        .create_peer_connection()
        .await
        .map_err(|e| e.to_string())?,
    );
    let mut events = pc.take_events().ok_or("no events")?;
    let mut tracks = Vec::new();
    if !args.no_video {
        let pattern = VideoSpec::TestPattern
            .open(VideoConstraints {
                width: args.width,
                height: args.height,
                fps: args.fps,
            })
            .map_err(|e| e.to_string())?;
        let video = LocalVideoTrack::new(pattern, VideoTrackOptions::default())
            .map_err(|e| e.to_string())?;
        pc.add_video_track(&video)
            .await
            .map_err(|e| e.to_string())?;
        tracks.push(Box::new(move || video.stop()) as Box<dyn Fn() + Send>);
    }
    if !args.no_audio {
        let tone = AudioSpec::Tone(args.tone)
            .open()
            .map_err(|e| e.to_string())?;
        let audio = LocalAudioTrack::new(tone).map_err(|e| e.to_string())?;
        pc.add_audio_track(&audio)
            .await
            .map_err(|e| e.to_string())?;
        tracks.push(Box::new(move || audio.stop()));
    }
    let mut t0 = Instant::now();
    // Without large messages only the peer's greeting is waited for past the duration.
    let (exchange, mut exchanged) = tokio::sync::watch::channel(Exchange {
        peer_done: !args.large_messages,
        peer_has_ours: !args.large_messages,
        greeted: false,
    });
    let exchange = Arc::new(exchange);
    if offerer {
        let channel = pc
            .create_data_channel(
                "chat",
                DataChannelOptions {
                    large_messages: args.large_messages,
                    ..DataChannelOptions::default()
                },
            )
            .await
            .map_err(|e| e.to_string())?;
        serve_channel(
            channel,
            args.role.clone(),
            args.large_messages,
            t0,
            outcome.clone(),
            exchange.clone(),
        );
        let offer = pc.create_offer().await.map_err(|e| e.to_string())?;
        pc.set_local_description(offer.clone())
            .await
            .map_err(|e| e.to_string())?;
        send_signal(&stdout, &Signal::Description(offer)).await;
    }

    // Signaling in from stdin.
    let reader_pc = pc.clone();
    let reader_out = stdout.clone();
    let (remote_offer_tx, mut remote_offer_rx) = tokio::sync::mpsc::unbounded_channel::<Instant>();
    let stdin_task = tokio::spawn(async move {
        let mut lines = BufReader::new(tokio::io::stdin()).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            let signal: Signal = match serde_json::from_str(&line) {
                Ok(signal) => signal,
                Err(e) => {
                    eprintln!("bad signaling line ({e}): {line}");
                    continue;
                }
            };
            match signal {
                Signal::Description(description) => {
                    let is_offer = description.sdp_type == parlor_rtc::SdpType::Offer;
                    if is_offer {
                        let _ = remote_offer_tx.send(Instant::now());
                    }
                    if let Err(e) = reader_pc.set_remote_description(description).await {
                        eprintln!("remote description refused: {e}");
                        continue;
                    }
                    if is_offer {
                        match reader_pc.create_answer().await {
                            Ok(answer) => {
                                if reader_pc
                                    .set_local_description(answer.clone())
                                    .await
                                    .is_ok()
                                {
                                    send_signal(&reader_out, &Signal::Description(answer)).await;
                                }
                            }
                            Err(e) => eprintln!("no answer: {e}"),
                        }
                    }
                }
                Signal::Candidate(candidate) => {
                    if let Err(e) = reader_pc.add_ice_candidate(candidate).await {
                        eprintln!("candidate refused: {e}");
                    }
                }
            }
        }
    });

    // Events until connected, then for the duration.
    let mut deadline: Option<tokio::time::Instant> = None;
    let hard_stop = tokio::time::Instant::now() + Duration::from_secs(60);
    let mut receivers = Vec::new();
    loop {
        // Past the duration, the window stays open until the data exchange settles.
        let over = deadline.is_some_and(|d| tokio::time::Instant::now() >= d);
        if over && exchanged.borrow().settled() {
            break;
        }
        let until = match deadline {
            Some(d) if !over => d,
            _ => hard_stop,
        };
        let event = tokio::select! {
            event = events.recv() => match event { Some(e) => e, None => break },
            at = remote_offer_rx.recv() => { if let Some(at) = at { t0 = at; } continue; }
            changed = exchanged.changed(), if over => { if changed.is_err() { break; } continue; }
            _ = tokio::time::sleep_until(until) => { if deadline.is_none() || over { break; } continue; }
        };
        match event {
            PeerEvent::IceCandidate(candidate) => {
                send_signal(&stdout, &Signal::Candidate(candidate)).await
            }
            PeerEvent::ConnectionState(state) => {
                if state == parlor_rtc::ConnectionState::Connected && deadline.is_none() {
                    outcome.lock().await.connected_ms = Some(ms_since(t0));
                    deadline =
                        Some(tokio::time::Instant::now() + Duration::from_secs_f64(args.duration));
                    let (trace_pc, trace_outcome) = (pc.clone(), outcome.clone());
                    receivers.push(tokio::spawn(async move {
                        let mut tick = tokio::time::interval(Duration::from_secs(1));
                        tick.tick().await;
                        loop {
                            tick.tick().await;
                            let stats = trace_pc.stats().await;
                            let second = SecondSent {
                                estimate_kbps: stats.estimate.map(|e| e.target_bps / 1000),
                                sent_kbps: (stats
                                    .outbound
                                    .iter()
                                    .map(|o| o.bitrate_bps)
                                    .sum::<f64>()
                                    / 1000.0) as u32,
                                video_width: stats
                                    .outbound
                                    .iter()
                                    .map(|o| o.frame_width)
                                    .max()
                                    .unwrap_or(0),
                            };
                            trace_outcome.lock().await.per_second.push(second);
                        }
                    }));
                }
                if state == parlor_rtc::ConnectionState::Failed {
                    return Err("the connection failed".into());
                }
            }
            PeerEvent::DataChannel(channel) => serve_channel(
                channel,
                args.role.clone(),
                args.large_messages,
                t0,
                outcome.clone(),
                exchange.clone(),
            ),
            PeerEvent::TrackAdded(RemoteTrack::Video(track)) => {
                let outcome = outcome.clone();
                receivers.push(tokio::spawn(async move {
                    let mut last: Option<u32> = None;
                    while let Some(frame) = track.next_frame().await {
                        let mut o = outcome.lock().await;
                        o.video_frames += 1;
                        o.video_width = frame.width;
                        o.video_height = frame.height;
                        o.first_video_frame_ms.get_or_insert_with(|| ms_since(t0));
                        if let Some(stamp) = read_stamp(&frame) {
                            o.stamped_frames += 1;
                            if last.is_some_and(|l| stamp.frame_number <= l) {
                                o.stamps_in_order = false;
                            }
                            last = Some(stamp.frame_number);
                            let age = wall_clock().saturating_sub(stamp.captured_at);
                            o.latencies.push(age.as_secs_f64() * 1000.0);
                        }
                    }
                }));
            }
            PeerEvent::TrackAdded(RemoteTrack::Audio(track)) => {
                let outcome = outcome.clone();
                receivers.push(tokio::spawn(async move {
                    while let Some(frame) = track.next_frame().await {
                        let mut o = outcome.lock().await;
                        o.audio_frames += 1;
                        o.first_audio_ms.get_or_insert_with(|| ms_since(t0));
                        o.tone.push(&first_channel(&frame.samples, frame.channels));
                    }
                }));
            }
            _ => {}
        }
    }
    if deadline.is_none() {
        return Err("not connected within 60 s".into());
    }
    if !exchanged.borrow().settled() {
        return Err(format!(
            "the data exchange did not finish within 60 s: {:?}",
            *exchanged.borrow()
        ));
    }
    outcome.lock().await.stats = Some(pc.stats().await);
    for stop in &tracks {
        stop();
    }
    stdin_task.abort();
    pc.close().await.map_err(|e| e.to_string())?;
    for receiver in receivers {
        receiver.abort();
    }
    Ok(())
}

/// The 1 MiB message: a known pattern, reported by length and checksum on arrival.
fn large_message() -> Vec<u8> {
    (0..1024 * 1024u32).map(|i| (i % 251) as u8).collect()
}

fn checksum(data: &[u8]) -> u32 {
    data.iter()
        .fold(0u32, |acc, &b| acc.wrapping_mul(31).wrapping_add(b as u32))
}

/// Where the data exchange stands with `--large-messages`. The window ends only once both
/// sides have everything: a 1 MiB message on a busy machine can take longer than the media's
/// `--duration`, and a peer that closed on its timer cut it off (a message lost to our own
/// clock, not to the network). The channel is reliable and ordered, so the peer's
/// [`DONE_SENDING`] means its messages arrived, and its [`GOT_EVERYTHING`] (or its closing,
/// which it does only once it has ours) means ours did.
#[derive(Debug, Clone, Copy, Default)]
struct Exchange {
    peer_done: bool,
    peer_has_ours: bool,
    /// The peer's greeting ("hello from …" and a few bytes) arrived: a peer whose data channel
    /// opened late (a browser starting cold under load) had its greeting cut off by the end of
    /// the duration, and the interop test failed now and then.
    greeted: bool,
}

impl Exchange {
    fn settled(self) -> bool {
        self.peer_done && self.peer_has_ours && self.greeted
    }
}

const DONE_SENDING: &str = "parlor-rtc-peer: done sending";
const GOT_EVERYTHING: &str = "parlor-rtc-peer: got everything";

fn serve_channel(
    channel: DataChannel,
    role: String,
    large: bool,
    t0: Instant,
    outcome: Shared<Outcome>,
    exchange: Arc<tokio::sync::watch::Sender<Exchange>>,
) {
    tokio::spawn(async move {
        while let Some(event) = channel.next_event().await {
            match event {
                DataChannelEvent::Open => {
                    outcome.lock().await.data_channel_open_ms = Some(ms_since(t0));
                    let _ = channel.send_text(&format!("hello from {role}")).await;
                    let _ = channel.send_binary(&[1, 2, 3, 255]).await;
                    if large {
                        let _ = channel.send_binary(&large_message()).await;
                        let _ = channel.send_text(DONE_SENDING).await;
                    }
                }
                DataChannelEvent::Message(Message::Text(text)) if text == DONE_SENDING => {
                    let _ = channel.send_text(GOT_EVERYTHING).await;
                    exchange.send_modify(|e| e.peer_done = true);
                }
                DataChannelEvent::Message(Message::Text(text)) if text == GOT_EVERYTHING => {
                    exchange.send_modify(|e| e.peer_has_ours = true);
                }
                DataChannelEvent::Message(Message::Text(text)) => {
                    outcome.lock().await.messages.push(text)
                }
                DataChannelEvent::Message(Message::Binary(data)) if data.len() > 64 => {
                    let line = format!(
                        "binary {} bytes, checksum {:08x}",
                        data.len(),
                        checksum(&data)
                    );
                    outcome.lock().await.messages.push(line)
                }
                DataChannelEvent::Message(Message::Binary(data)) => {
                    outcome
                        .lock()
                        .await
                        .messages
                        .push(format!("binary {data:?}"));
                    // The greeting's last message (its text came first: the channel is ordered).
                    exchange.send_modify(|e| e.greeted = true);
                }
                DataChannelEvent::Closed => {
                    // The peer closes only once it has everything of ours.
                    exchange.send_modify(|e| e.peer_has_ours |= e.peer_done);
                    break;
                }
                _ => {}
            }
        }
    });
}
