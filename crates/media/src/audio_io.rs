//! Microphones and speakers through cpal. The cpal streams live on threads of their own (a
//! stream is not `Send` on every platform); the microphone hands 20 ms frames to whoever pulls
//! them, and the speaker mixes any number of remote streams through [`crate::playout::Mixer`].
//!
//! On Linux cpal talks to PulseAudio when a server is running and to ALSA otherwise. With no
//! device at all, listing returns nothing and opening fails with `DeviceNotFound`.
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Condvar, Mutex};
use std::time::Duration;

use cpal::traits::{DeviceTrait, HostTrait, StreamTrait};
use cpal::{SampleFormat, StreamConfig};

use crate::frame::wall_clock;
use crate::playout::{Mixer, PlayoutCounters};
use crate::resample::Resampler;
use crate::source::AudioSource;
use crate::{AudioFrame, MediaError, SAMPLE_RATE};

/// A microphone or speaker as the UI lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AudioDevice {
    /// Stable across runs where the platform allows; pass it back to open the device.
    pub id: String,
    pub name: String,
    pub is_default: bool,
}

/// ALSA also lists its plugins (rate converters, `null`, `jack`…) as devices; only sound cards
/// and the default device are things a person would call a microphone or a speaker.
fn is_real_device(id: &str) -> bool {
    match id.strip_prefix("alsa:") {
        Some(alsa) => alsa == "default" || alsa.contains("CARD="),
        None => true,
    }
}

fn list(input: bool) -> Vec<AudioDevice> {
    let host = cpal::default_host();
    let default = if input {
        host.default_input_device()
    } else {
        host.default_output_device()
    };
    let default_id = default.and_then(|d| d.id().ok()).map(|id| id.to_string());
    let devices = if input {
        host.input_devices().map(|d| d.collect::<Vec<_>>())
    } else {
        host.output_devices().map(|d| d.collect())
    };
    devices
        .unwrap_or_default()
        .into_iter()
        .filter_map(|d| {
            let id = d.id().ok()?.to_string();
            if !is_real_device(&id) {
                return None;
            }
            Some(AudioDevice {
                is_default: Some(&id) == default_id.as_ref(),
                name: d.to_string(),
                id,
            })
        })
        .collect()
}

/// Microphones on this machine (empty when there are none).
pub fn microphones() -> Vec<AudioDevice> {
    list(true)
}

/// Speakers and other outputs on this machine (empty when there are none).
pub fn speakers() -> Vec<AudioDevice> {
    list(false)
}

fn find(input: bool, id: Option<&str>) -> Result<cpal::Device, MediaError> {
    let kind = if input { "microphone" } else { "speaker" };
    let host = cpal::default_host();
    let not_found = || MediaError::DeviceNotFound {
        kind,
        id: id.unwrap_or("default").to_owned(),
    };
    match id {
        None => if input {
            host.default_input_device()
        } else {
            host.default_output_device()
        }
        .ok_or_else(not_found),
        Some(wanted) => {
            let devices = if input {
                host.input_devices().map(|d| d.collect::<Vec<_>>())
            } else {
                host.output_devices().map(|d| d.collect())
            };
            devices
                .unwrap_or_default()
                .into_iter()
                .find(|d| d.id().map(|i| i.to_string() == wanted).unwrap_or(false))
                .ok_or_else(not_found)
        }
    }
}

fn busy(kind: &'static str, id: &str, reason: impl std::fmt::Display) -> MediaError {
    MediaError::DeviceBusy {
        kind,
        id: id.to_owned(),
        reason: reason.to_string(),
    }
}

/// Microphones record in 20 ms periods: one Opus frame, as soon as it is captured.
const CAPTURE_PERIOD_MS: u32 = 20;
/// Speakers are fed 40 ms at a time, which PulseAudio doubles into an 80 ms buffer. With 20 ms
/// (a 40 ms buffer) a busy machine starved the sound server between two wake-ups of the
/// playback thread, which runs at normal priority: it played gaps and asked for less, and the
/// jitter buffer overflowed and dropped audio (the echo test's far-end tone came back 15-30 dB
/// low, and the echo canceller lost its reference).
const PLAYBACK_PERIOD_MS: u32 = 40;

/// Picks a format the device offers: 48 kHz if it can, f32 or i16 samples, in periods of
/// `period_ms`.
fn choose_config(
    configs: impl Iterator<Item = cpal::SupportedStreamConfigRange>,
    want_channels: u16,
    period_ms: u32,
) -> Option<(StreamConfig, SampleFormat)> {
    let usable: Vec<_> = configs
        .filter(|c| matches!(c.sample_format(), SampleFormat::F32 | SampleFormat::I16))
        .collect();
    let score = |c: &cpal::SupportedStreamConfigRange| {
        let has_48k = c.min_sample_rate() <= SAMPLE_RATE && SAMPLE_RATE <= c.max_sample_rate();
        (
            has_48k,
            c.channels() == want_channels,
            c.sample_format() == SampleFormat::F32,
        )
    };
    let best = usable.into_iter().max_by_key(score)?;
    let rate = if best.min_sample_rate() <= SAMPLE_RATE && SAMPLE_RATE <= best.max_sample_rate() {
        SAMPLE_RATE
    } else {
        best.max_sample_rate()
    };
    let format = best.sample_format();
    let buffer = *best.buffer_size();
    let mut config = best.with_sample_rate(rate).config();
    // A fixed period: a sound server's default can be seconds per request, far more than the
    // jitter buffer holds (output) or a call can wait for (input).
    let period = rate * period_ms / 1000;
    config.buffer_size = match buffer {
        cpal::SupportedBufferSize::Range { min, max } => {
            cpal::BufferSize::Fixed(period.clamp(min, max))
        }
        cpal::SupportedBufferSize::Unknown => cpal::BufferSize::Fixed(period),
    };
    Some((config, format))
}

/// Maps `from` channels to `to` channels (1 or 2).
fn remix(input: &[i16], from: usize, to: usize, out: &mut Vec<i16>) {
    for frame in input.chunks_exact(from.max(1)) {
        match (from, to) {
            (f, t) if f == t => out.extend_from_slice(frame),
            (_, 1) => out.push((frame.iter().map(|&s| s as i32).sum::<i32>() / from as i32) as i16),
            (1, _) => {
                out.push(frame[0]);
                out.push(frame[0]);
            }
            _ => out.extend_from_slice(&frame[..2]),
        }
    }
}

struct Captured {
    samples: VecDeque<i16>,
    /// When the newest queued sample was captured (wall clock): frames are stamped from it,
    /// which is what echo cancellation lines them up with the speaker by.
    newest_captured_at: Duration,
    error: Option<String>,
}

/// Starts a freshly built stream, says whether that worked, and keeps it alive until `stop`:
/// a cpal stream must stay on the thread that built it.
fn keep_running(
    stream: Result<cpal::Stream, cpal::Error>,
    kind: &'static str,
    id: &str,
    ready: &mpsc::Sender<Result<(), MediaError>>,
    stop: &AtomicBool,
) {
    let stream = match stream.and_then(|s| s.play().map(|_| s)) {
        Ok(stream) => stream,
        Err(e) => {
            let _ = ready.send(Err(busy(kind, id, e)));
            return;
        }
    };
    let _ = ready.send(Ok(()));
    while !stop.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(50));
    }
    drop(stream);
}

/// Waits for [`keep_running`]'s verdict.
fn wait_started(
    ready: &mpsc::Receiver<Result<(), MediaError>>,
    kind: &'static str,
    id: &str,
) -> Result<(), MediaError> {
    match ready.recv_timeout(Duration::from_secs(5)) {
        Ok(result) => result,
        Err(_) => Err(busy(kind, id, "the device did not start")),
    }
}

type CaptureShared = Arc<(Mutex<Captured>, Condvar)>;

/// A capture stream running on its own thread.
struct CaptureThread {
    shared: CaptureShared,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl CaptureThread {
    fn start(
        device: cpal::Device,
        config: StreamConfig,
        format: SampleFormat,
        channels: u16,
        device_id: &str,
    ) -> Result<CaptureThread, MediaError> {
        let shared = Arc::new((
            Mutex::new(Captured {
                samples: VecDeque::new(),
                newest_captured_at: wall_clock(),
                error: None,
            }),
            Condvar::new(),
        ));
        let stop = Arc::new(AtomicBool::new(false));
        let (ready_tx, ready_rx) = mpsc::channel::<Result<(), MediaError>>();
        let (thread_shared, thread_stop, thread_id) =
            (shared.clone(), stop.clone(), device_id.to_owned());
        let thread = std::thread::Builder::new()
            .name("parlor-microphone".into())
            .spawn(move || {
                let device_channels = config.channels as usize;
                let mut resampler = match Resampler::new(config.sample_rate, SAMPLE_RATE, channels)
                {
                    Ok(r) => r,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                let data_shared = thread_shared.clone();
                let mut remixed = Vec::new();
                let mut push = move |samples: &[i16], info: &cpal::InputCallbackInfo| {
                    let timestamp = info.timestamp();
                    let newest = wall_clock()
                        .saturating_sub(timestamp.callback.duration_since(timestamp.capture));
                    remixed.clear();
                    remix(samples, device_channels, channels as usize, &mut remixed);
                    let converted = resampler.process(&remixed);
                    let (lock, ready) = &*data_shared;
                    let mut state = lock.lock().unwrap_or_else(|p| p.into_inner());
                    state.samples.extend(converted);
                    state.newest_captured_at = newest;
                    // Keep at most a second: a consumer that stopped pulling must not grow memory.
                    let cap = SAMPLE_RATE as usize * channels as usize;
                    if state.samples.len() > cap {
                        let excess = state.samples.len() - cap;
                        state.samples.drain(..excess);
                    }
                    ready.notify_all();
                };
                let error_shared = thread_shared.clone();
                let on_error = move |e: cpal::Error| {
                    let (lock, ready) = &*error_shared;
                    lock.lock().unwrap_or_else(|p| p.into_inner()).error = Some(e.to_string());
                    ready.notify_all();
                };
                let stream = match format {
                    SampleFormat::F32 => {
                        let mut buffer = Vec::new();
                        device.build_input_stream::<f32, _, _>(
                            config,
                            move |data: &[f32], info: &cpal::InputCallbackInfo| {
                                buffer.clear();
                                buffer.extend(
                                    data.iter().map(|&s| (s.clamp(-1.0, 1.0) * 32767.0) as i16),
                                );
                                push(&buffer, info);
                            },
                            on_error,
                            None,
                        )
                    }
                    _ => device.build_input_stream::<i16, _, _>(
                        config,
                        move |data: &[i16], info: &cpal::InputCallbackInfo| push(data, info),
                        on_error,
                        None,
                    ),
                };
                keep_running(stream, "microphone", &thread_id, &ready_tx, &thread_stop);
            })
            .map_err(MediaError::Io)?;
        let capture = CaptureThread {
            shared,
            stop,
            thread: Some(thread),
        };
        wait_started(&ready_rx, "microphone", device_id)?;
        Ok(capture)
    }

    /// Whether at least `samples` arrived within `wait`.
    fn delivers(&self, samples: usize, wait: Duration) -> bool {
        let (lock, ready) = &*self.shared;
        let state = lock.lock().unwrap_or_else(|p| p.into_inner());
        let (state, _) = ready
            .wait_timeout_while(state, wait, |s| {
                s.samples.len() < samples && s.error.is_none()
            })
            .unwrap_or_else(|p| p.into_inner());
        state.samples.len() >= samples
    }
}

impl Drop for CaptureThread {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A microphone as an [`AudioSource`]: 48 kHz, 20 ms frames, mono or stereo.
pub struct Microphone {
    capture: CaptureThread,
    channels: u16,
    id: String,
    name: String,
}

impl Microphone {
    /// Opens a microphone by id (`None`: the default one).
    ///
    /// It asks for 20 ms periods: left to choose, PulseAudio hands a recording over in
    /// fragments of up to 2 s, which is 2 s added to the call's delay and more than echo
    /// cancellation can line up. A source that will not run that way (PulseAudio's sine
    /// source stalls) is reopened with the server's default.
    pub fn open(id: Option<&str>, channels: u16) -> Result<Self, MediaError> {
        if !(1..=2).contains(&channels) {
            return Err(MediaError::Unsupported(format!("{channels} channels")));
        }
        let device = find(true, id)?;
        let device_id = device.id().map(|i| i.to_string()).unwrap_or_default();
        let name = device.to_string();
        let configs = device
            .supported_input_configs()
            .map_err(|e| busy("microphone", &device_id, e))?;
        let (config, format) = choose_config(configs, channels, CAPTURE_PERIOD_MS)
            .ok_or_else(|| MediaError::Unsupported(format!("no usable input format on {name}")))?;
        let one_frame = crate::opus_codec::FRAME_SAMPLES * channels as usize;
        let low_latency =
            CaptureThread::start(device.clone(), config, format, channels, &device_id)
                .ok()
                .filter(|c| c.delivers(one_frame, Duration::from_secs(1)));
        let capture = match low_latency {
            Some(capture) => capture,
            None => {
                let config = StreamConfig {
                    buffer_size: cpal::BufferSize::Default,
                    ..config
                };
                tracing_free_log(&format!(
                    "{name} does not record in 20 ms periods; using its default buffering"
                ));
                CaptureThread::start(device, config, format, channels, &device_id)?
            }
        };
        Ok(Microphone {
            capture,
            channels,
            id: device_id,
            name,
        })
    }

    pub fn id(&self) -> &str {
        &self.id
    }
}

impl AudioSource for Microphone {
    fn channels(&self) -> u16 {
        self.channels
    }

    fn frame_duration(&self) -> Duration {
        Duration::from_millis(20)
    }

    fn next_frame(&mut self) -> Result<AudioFrame, MediaError> {
        let need = crate::opus_codec::FRAME_SAMPLES * self.channels as usize;
        let (lock, ready) = &*self.capture.shared;
        let mut state = lock.lock().unwrap_or_else(|p| p.into_inner());
        let deadline = std::time::Instant::now() + Duration::from_secs(2);
        while state.samples.len() < need {
            if let Some(error) = state.error.take() {
                return Err(busy("microphone", &self.id, error));
            }
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                return Err(busy("microphone", &self.id, "no audio arrived for 2 s"));
            }
            state = ready
                .wait_timeout(state, left)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        let samples: Vec<i16> = state.samples.drain(..need).collect();
        // The newest sample was captured at `newest_captured_at`; this frame ends where the
        // samples still queued begin.
        let per_second = SAMPLE_RATE as f64 * self.channels as f64;
        let queued = Duration::from_secs_f64(state.samples.len() as f64 / per_second);
        let length = Duration::from_secs_f64(need as f64 / per_second);
        Ok(AudioFrame {
            channels: self.channels,
            samples,
            captured_at: state.newest_captured_at.saturating_sub(queued + length),
        })
    }

    fn describe(&self) -> String {
        format!("microphone {}", self.name)
    }
}

/// A speaker playing the mix of any number of remote streams.
pub struct Speaker {
    mixer: Arc<Mutex<Mixer>>,
    /// Where the mix goes besides the device: the echo canceller's far end.
    #[cfg(feature = "voice-processing")]
    echo_reference: Arc<Mutex<Option<crate::voice::VoiceProcessor>>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
    id: String,
}

/// One remote stream's place in the speaker's mix; dropping it removes the stream.
pub struct PlayoutStream {
    id: u64,
    mixer: Arc<Mutex<Mixer>>,
}

impl PlayoutStream {
    pub fn push(&self, frame: &AudioFrame) {
        self.mixer
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(self.id, frame);
    }

    pub fn counters(&self) -> PlayoutCounters {
        self.mixer
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .counters(self.id)
            .unwrap_or_default()
    }
}

impl Drop for PlayoutStream {
    fn drop(&mut self) {
        self.mixer
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove_stream(self.id);
    }
}

impl Speaker {
    /// Opens a speaker by id (`None`: the default one).
    pub fn open(id: Option<&str>) -> Result<Self, MediaError> {
        let device = find(false, id)?;
        let device_id = device.id().map(|i| i.to_string()).unwrap_or_default();
        let configs = device
            .supported_output_configs()
            .map_err(|e| busy("speaker", &device_id, e))?;
        let (config, format) = choose_config(configs, 2, PLAYBACK_PERIOD_MS).ok_or_else(|| {
            MediaError::Unsupported(format!("no usable output format on {device}"))
        })?;
        if config.sample_rate != SAMPLE_RATE {
            return Err(MediaError::Unsupported(format!(
                "the speaker cannot play 48 kHz ({} Hz only)",
                config.sample_rate
            )));
        }
        let mixer = Arc::new(Mutex::new(Mixer::default()));
        #[cfg(feature = "voice-processing")]
        let echo_reference = Arc::new(Mutex::new(None::<crate::voice::VoiceProcessor>));
        let stop = Arc::new(AtomicBool::new(false));
        let (ready_tx, ready_rx) = mpsc::channel::<Result<(), MediaError>>();
        let (thread_mixer, thread_stop, thread_id) =
            (mixer.clone(), stop.clone(), device_id.clone());
        #[cfg(feature = "voice-processing")]
        let thread_reference = echo_reference.clone();
        let thread = std::thread::Builder::new()
            .name("parlor-speaker".into())
            .spawn(move || {
                let channels = config.channels as usize;
                let mut stereo: Vec<i16> = Vec::new();
                let mut render = move |frames: usize, latency: Duration| -> Vec<i16> {
                    stereo.resize(frames * 2, 0);
                    thread_mixer
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .render(&mut stereo);
                    #[cfg(feature = "voice-processing")]
                    if let Some(reference) =
                        &*thread_reference.lock().unwrap_or_else(|p| p.into_inner())
                    {
                        reference.far_end(&stereo, latency);
                    }
                    #[cfg(not(feature = "voice-processing"))]
                    let _ = latency;
                    let mut out = Vec::with_capacity(frames * channels);
                    remix(&stereo, 2, channels.min(2), &mut out);
                    if channels > 2 {
                        // Extra channels stay silent.
                        out = out
                            .chunks_exact(2)
                            .flat_map(|p| {
                                p.iter()
                                    .copied()
                                    .chain(std::iter::repeat_n(0, channels - 2))
                            })
                            .collect();
                    }
                    out
                };
                let on_error = |e: cpal::Error| tracing_free_log(&format!("speaker error: {e}"));
                let stream = match format {
                    SampleFormat::F32 => device.build_output_stream::<f32, _, _>(
                        config,
                        move |data: &mut [f32], info: &cpal::OutputCallbackInfo| {
                            let mixed = render(data.len() / channels, output_latency(info));
                            for (o, s) in data.iter_mut().zip(mixed) {
                                *o = s as f32 / 32768.0;
                            }
                        },
                        on_error,
                        None,
                    ),
                    _ => device.build_output_stream::<i16, _, _>(
                        config,
                        move |data: &mut [i16], info: &cpal::OutputCallbackInfo| {
                            let mixed = render(data.len() / channels, output_latency(info));
                            data.copy_from_slice(&mixed[..data.len()]);
                        },
                        on_error,
                        None,
                    ),
                };
                keep_running(stream, "speaker", &thread_id, &ready_tx, &thread_stop);
            })
            .map_err(MediaError::Io)?;
        wait_started(&ready_rx, "speaker", &device_id)?;
        Ok(Speaker {
            mixer,
            #[cfg(feature = "voice-processing")]
            echo_reference,
            stop,
            thread: Some(thread),
            id: device_id,
        })
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    /// Hands everything this speaker plays to `processor` as its echo reference (none: stop).
    #[cfg(feature = "voice-processing")]
    pub fn set_echo_reference(&self, processor: Option<crate::voice::VoiceProcessor>) {
        *self
            .echo_reference
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = processor;
    }

    /// A new stream in the mix, e.g. one per remote participant.
    pub fn add_stream(&self) -> PlayoutStream {
        let id = self
            .mixer
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .add_stream();
        PlayoutStream {
            id,
            mixer: self.mixer.clone(),
        }
    }
}

impl Drop for Speaker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// How long until what this callback writes is heard.
fn output_latency(info: &cpal::OutputCallbackInfo) -> Duration {
    let timestamp = info.timestamp();
    timestamp.playback.duration_since(timestamp.callback)
}

/// This crate does not log through a framework; device errors on the audio thread go to stderr.
fn tracing_free_log(message: &str) {
    eprintln!("parlor-media: {message}");
}

#[cfg(test)]
mod tests {
    use super::remix;

    #[test]
    fn remixing_maps_channels() {
        let mut out = Vec::new();
        remix(&[100, 300, -50, 50], 2, 1, &mut out);
        assert_eq!(out, vec![200, 0]);
        out.clear();
        remix(&[7, 8], 1, 2, &mut out);
        assert_eq!(out, vec![7, 7, 8, 8]);
        out.clear();
        remix(&[1, 2, 3, 4, 5, 6], 3, 2, &mut out);
        assert_eq!(out, vec![1, 2, 4, 5]);
    }
}
