//! Voice processing for a microphone: echo cancellation, noise suppression and automatic gain
//! control, through WebRTC's audio processing module (`webrtc-audio-processing`, built from
//! source by its `bundled` feature).
//!
//! Echo cancellation needs the far end: whatever the speaker plays is handed to
//! [`VoiceProcessor::far_end`] as it is mixed, and the microphone's frames pass through
//! [`VoiceProcessor::process`]. The two meet inside the module, which subtracts its estimate
//! of the speaker's sound from the microphone. It must be told how far apart the two are
//! (render → speaker → room → microphone → processing); the module's own delay search only
//! reaches about 100 ms, so the delay is measured from the devices' timestamps instead (what
//! Chromium does) and passed in.

/// The track constraints `echoCancellation`, `noiseSuppression` and `autoGainControl` of
/// WebRTC's `getUserMedia`, each on by default as in the browsers (also when read from saved
/// settings that do not name a part).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct VoiceSettings {
    pub echo_cancellation: bool,
    pub noise_suppression: bool,
    pub auto_gain_control: bool,
}

impl Default for VoiceSettings {
    fn default() -> Self {
        VoiceSettings {
            echo_cancellation: true,
            noise_suppression: true,
            auto_gain_control: true,
        }
    }
}

impl VoiceSettings {
    /// Everything off: the microphone's samples pass untouched.
    pub const OFF: VoiceSettings = VoiceSettings {
        echo_cancellation: false,
        noise_suppression: false,
        auto_gain_control: false,
    };

    pub fn any(&self) -> bool {
        self.echo_cancellation || self.noise_suppression || self.auto_gain_control
    }
}

#[cfg(feature = "voice-processing")]
pub use processing::{ProcessedSource, VoiceProcessor};

#[cfg(feature = "voice-processing")]
mod processing {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use webrtc_audio_processing as apm;

    use super::VoiceSettings;
    use crate::frame::wall_clock;
    use crate::{AudioFrame, AudioSource, MediaError, SAMPLE_RATE};

    /// The module works on 10 ms blocks.
    const BLOCK: usize = apm::NUM_SAMPLES_PER_FRAME as usize;
    const BLOCK_DURATION: Duration = Duration::from_millis(10);
    /// The far end is the speaker's mix, always stereo.
    const RENDER_CHANNELS: usize = 2;
    /// The module refuses delays beyond this (and clamps to it).
    const MAX_STREAM_DELAY_MS: i32 = 500;
    /// A measured delay moves by a few ms from block to block; reconfiguring for each wiggle
    /// would be wasted work, and the (extended) echo filter covers far more than this.
    const DELAY_STEP_MS: i32 = 10;

    /// One processing module shared by a speaker (the far end) and a microphone (the near
    /// end). Cloning shares it.
    #[derive(Clone)]
    pub struct VoiceProcessor {
        shared: Arc<Shared>,
    }

    struct Shared {
        render: Mutex<RenderSide>,
        capture: Mutex<CaptureSide>,
        /// How long the speaker's newest block takes from being mixed to being heard, in µs.
        render_latency_us: AtomicU64,
    }

    struct RenderSide {
        processor: apm::Processor,
        /// Interleaved stereo not yet a whole block.
        pending: Vec<f32>,
        echo_cancellation: bool,
    }

    struct CaptureSide {
        processor: apm::Processor,
        settings: VoiceSettings,
        /// The delay the module was last told, in ms.
        stream_delay_ms: Option<i32>,
        block: Vec<f32>,
    }

    fn module_config(settings: VoiceSettings, stream_delay_ms: Option<i32>) -> apm::Config {
        apm::Config {
            echo_cancellation: settings.echo_cancellation.then_some(apm::EchoCancellation {
                suppression_level: apm::EchoCancellationSuppressionLevel::Moderate,
                // A longer filter is more forgiving of a delay measured a little wrong.
                enable_extended_filter: true,
                enable_delay_agnostic: stream_delay_ms.is_none(),
                stream_delay_ms,
            }),
            noise_suppression: settings.noise_suppression.then_some(apm::NoiseSuppression {
                suppression_level: apm::NoiseSuppressionLevel::Moderate,
            }),
            gain_control: settings.auto_gain_control.then_some(apm::GainControl {
                mode: apm::GainControlMode::AdaptiveDigital,
                target_level_dbfs: 3,
                compression_gain_db: 9,
                enable_limiter: true,
            }),
            voice_detection: None,
            enable_transient_suppressor: false,
            // Hum and DC offset go with any processing, as in Chromium.
            enable_high_pass_filter: settings.any(),
        }
    }

    fn to_float(sample: i16) -> f32 {
        sample as f32 / 32768.0
    }

    fn to_i16(sample: f32) -> i16 {
        (sample * 32768.0)
            .round()
            .clamp(i16::MIN as f32, i16::MAX as f32) as i16
    }

    fn module_error(e: apm::Error) -> MediaError {
        MediaError::Codec(format!("audio processing: {e}"))
    }

    impl VoiceProcessor {
        /// A processor for a mono microphone.
        pub fn new(settings: VoiceSettings) -> Result<Self, MediaError> {
            let processor = apm::Processor::new(&apm::InitializationConfig {
                num_capture_channels: 1,
                num_render_channels: RENDER_CHANNELS as i32,
                enable_experimental_agc: false,
                enable_intelligibility_enhancer: false,
            })
            .map_err(module_error)?;
            let mut capture = processor.clone();
            capture.set_config(module_config(settings, None));
            Ok(VoiceProcessor {
                shared: Arc::new(Shared {
                    render: Mutex::new(RenderSide {
                        processor,
                        pending: Vec::with_capacity(BLOCK * RENDER_CHANNELS * 2),
                        echo_cancellation: settings.echo_cancellation,
                    }),
                    capture: Mutex::new(CaptureSide {
                        processor: capture,
                        settings,
                        stream_delay_ms: None,
                        block: Vec::with_capacity(BLOCK),
                    }),
                    render_latency_us: AtomicU64::new(0),
                }),
            })
        }

        pub fn settings(&self) -> VoiceSettings {
            self.shared
                .capture
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .settings
        }

        /// Turns each part on or off, at once (mid-call too).
        pub fn set_settings(&self, settings: VoiceSettings) {
            let mut capture = self
                .shared
                .capture
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            if capture.settings == settings {
                return;
            }
            capture.settings = settings;
            let delay = capture.stream_delay_ms;
            capture.processor.set_config(module_config(settings, delay));
            drop(capture);
            self.shared
                .render
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .echo_cancellation = settings.echo_cancellation;
        }

        /// The speaker's mix (interleaved stereo), as it is handed to the device; `latency` is
        /// how long until it is heard.
        pub fn far_end(&self, stereo: &[i16], latency: Duration) {
            self.shared
                .render_latency_us
                .store(latency.as_micros() as u64, Ordering::Relaxed);
            let mut render = self.shared.render.lock().unwrap_or_else(|p| p.into_inner());
            if !render.echo_cancellation {
                render.pending.clear();
                return;
            }
            let RenderSide {
                processor, pending, ..
            } = &mut *render;
            pending.extend(stereo.iter().copied().map(to_float));
            let whole = pending.len() / (BLOCK * RENDER_CHANNELS) * (BLOCK * RENDER_CHANNELS);
            for block in pending[..whole].chunks_exact_mut(BLOCK * RENDER_CHANNELS) {
                // A failure here only weakens the echo estimate for 10 ms; the speaker's own
                // output is untouched, so there is nothing to report it to.
                let _ = processor.process_render_frame(block);
            }
            pending.drain(..whole);
        }

        /// Processes a mono microphone frame in place. Its `captured_at` (the capture time of
        /// its first sample) places it against the far end.
        pub fn process(&self, frame: &mut AudioFrame) -> Result<(), MediaError> {
            if frame.channels != 1 {
                return Err(MediaError::Unsupported(format!(
                    "voice processing of {} channels",
                    frame.channels
                )));
            }
            let mut capture = self
                .shared
                .capture
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            if !capture.settings.any() {
                return Ok(());
            }
            let render_latency =
                Duration::from_micros(self.shared.render_latency_us.load(Ordering::Relaxed));
            let CaptureSide {
                processor,
                settings,
                stream_delay_ms,
                block,
            } = &mut *capture;
            let now = wall_clock();
            for (index, samples) in frame.samples.chunks_exact_mut(BLOCK).enumerate() {
                if settings.echo_cancellation {
                    let block_end = frame.captured_at + BLOCK_DURATION * (index as u32 + 1);
                    let delay = render_latency + now.saturating_sub(block_end);
                    let measured = (delay.as_millis() as i32).min(MAX_STREAM_DELAY_MS);
                    if stream_delay_ms.is_none_or(|d| (d - measured).abs() >= DELAY_STEP_MS) {
                        *stream_delay_ms = Some(measured);
                        processor.set_config(module_config(*settings, Some(measured)));
                    }
                }
                block.clear();
                block.extend(samples.iter().copied().map(to_float));
                processor
                    .process_capture_frame(block)
                    .map_err(module_error)?;
                for (out, &processed) in samples.iter_mut().zip(block.iter()) {
                    *out = to_i16(processed);
                }
            }
            Ok(())
        }

        /// A source whose frames pass through this processor.
        pub fn wrap(&self, source: Box<dyn AudioSource>) -> Result<ProcessedSource, MediaError> {
            if source.channels() != 1 {
                return Err(MediaError::Unsupported(format!(
                    "voice processing of {} channels ({})",
                    source.channels(),
                    source.describe()
                )));
            }
            let samples =
                source.frame_duration().as_micros() as u64 * SAMPLE_RATE as u64 / 1_000_000;
            if samples == 0 || !samples.is_multiple_of(BLOCK as u64) {
                return Err(MediaError::Unsupported(format!(
                    "voice processing of {:?} frames",
                    source.frame_duration()
                )));
            }
            Ok(ProcessedSource {
                inner: source,
                processor: self.clone(),
            })
        }
    }

    /// A microphone with voice processing applied.
    pub struct ProcessedSource {
        inner: Box<dyn AudioSource>,
        processor: VoiceProcessor,
    }

    impl AudioSource for ProcessedSource {
        fn channels(&self) -> u16 {
            1
        }

        fn frame_duration(&self) -> Duration {
            self.inner.frame_duration()
        }

        fn next_frame(&mut self) -> Result<AudioFrame, MediaError> {
            let mut frame = self.inner.next_frame()?;
            self.processor.process(&mut frame)?;
            Ok(frame)
        }

        fn describe(&self) -> String {
            let s = self.processor.settings();
            let on: Vec<&str> = [
                (s.echo_cancellation, "echo cancellation"),
                (s.noise_suppression, "noise suppression"),
                (s.auto_gain_control, "gain control"),
            ]
            .into_iter()
            .filter_map(|(on, name)| on.then_some(name))
            .collect();
            if on.is_empty() {
                self.inner.describe()
            } else {
                format!("{} with {}", self.inner.describe(), on.join(", "))
            }
        }
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        /// Deterministic noise, low-passed: a far end with no period, so the echo filter cannot
        /// match it by phase alone the way it could a tone.
        fn noise(len: usize, seed: u32) -> Vec<i16> {
            let (mut state, mut low) = (seed, 0f32);
            (0..len)
                .map(|_| {
                    state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                    let white = (state >> 8) as f32 / 16_777_216.0 - 0.5;
                    low = 0.9 * low + 0.1 * white;
                    (low * 3.0 * 32767.0 * 0.3) as i16
                })
                .collect()
        }

        fn rms_db(samples: &[i16]) -> f64 {
            20.0 * (crate::analysis::rms(samples).max(1e-3) / 32768.0).log10()
        }

        /// Plays `far` through the "speaker" and hears it back `echo_delay` later at half
        /// strength, with time running as fast as the module can go. Returns the processed
        /// near end.
        fn echo_room(
            settings: VoiceSettings,
            far: &[i16],
            echo_delay: Duration,
            render_latency: Duration,
        ) -> Vec<i16> {
            let processor = VoiceProcessor::new(settings).unwrap();
            let delay = (echo_delay.as_micros() as usize * 48) / 1000;
            let mut out = Vec::new();
            let frame = 960;
            // Capture times are set so the measured delay is `echo_delay` (the module's clock
            // is only ever read as "now minus capture time").
            let capture_lag = echo_delay.saturating_sub(render_latency);
            for (n, chunk) in far.chunks_exact(frame).enumerate() {
                let stereo: Vec<i16> = chunk.iter().flat_map(|&s| [s, s]).collect();
                processor.far_end(&stereo, render_latency);
                let start = n * frame;
                let mut near = AudioFrame {
                    channels: 1,
                    samples: (start..start + frame)
                        .map(|i| if i >= delay { far[i - delay] / 2 } else { 0 })
                        .collect(),
                    captured_at: wall_clock()
                        .saturating_sub(capture_lag + Duration::from_millis(20)),
                };
                processor.process(&mut near).unwrap();
                out.extend(near.samples);
            }
            out
        }

        #[test]
        fn echo_cancellation_removes_the_far_end_at_delays_past_its_own_search() {
            let far = noise(48_000 * 6, 7);
            let echo_only = VoiceSettings {
                echo_cancellation: true,
                ..VoiceSettings::OFF
            };
            for delay_ms in [60, 250] {
                let delay = Duration::from_millis(delay_ms);
                let render = Duration::from_millis(40);
                let untouched = echo_room(VoiceSettings::OFF, &far, delay, render);
                let cancelled = echo_room(echo_only, &far, delay, render);
                // Judge the last three seconds, once the filter has converged.
                let tail = 48_000 * 3..;
                let (before, after) = (rms_db(&untouched[tail.clone()]), rms_db(&cancelled[tail]));
                assert!(
                    before - after >= 20.0,
                    "{delay_ms} ms: echo at {before:.1} dBFS without, {after:.1} dBFS with"
                );
            }
        }

        /// Which part of a microphone's recording a sample belongs to.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        enum Part {
            /// Speech: the middle of a made-up syllable (its envelope over half its peak), or a
            /// recorded word's loud part.
            Voice,
            /// The middle of a pause between phrases: only the room.
            Room,
            /// The edges of either, judged as neither.
            Between,
        }

        /// What a laptop's microphone hears while its user talks, made up, since no real one is
        /// at hand here: phrases of 1.6 s (eight 200 ms syllables on four vowels, a voice at
        /// 105-135 Hz) with 0.8 s pauses, over a fan's low rumble ([`noise`]). `voice_db` and
        /// `noise_db` are the RMS of the syllables' middles and of the rumble, in dBFS; no
        /// voice is a room where nobody speaks.
        fn voice_in_a_room(
            seconds: usize,
            voice_db: Option<f64>,
            noise_db: f64,
        ) -> (Vec<i16>, Vec<Part>) {
            let (voice, parts) = made_up_voice(seconds);
            let samples = in_a_room(&voice, &parts, voice_db, noise_db);
            (samples, parts)
        }

        /// The made-up phrases of [`voice_in_a_room`], at no particular level.
        fn made_up_voice(seconds: usize) -> (Vec<f64>, Vec<Part>) {
            use std::f64::consts::{PI, TAU};
            // Formants of /a/, /i/, /u/, /e/ (Hz).
            const VOWELS: [[f64; 3]; 4] = [
                [700.0, 1200.0, 2500.0],
                [300.0, 2200.0, 2900.0],
                [350.0, 800.0, 2400.0],
                [500.0, 1700.0, 2500.0],
            ];
            let len = seconds * 48_000;
            let mut phases = [0f64; 32];
            let (mut voice, mut parts) = (Vec::with_capacity(len), Vec::with_capacity(len));
            for n in 0..len {
                let t = n as f64 / 48_000.0;
                let in_cycle = t % 2.4;
                let envelope = if in_cycle < 1.6 {
                    (PI * (in_cycle % 0.2) / 0.2).sin().powi(2)
                } else {
                    0.0
                };
                parts.push(match in_cycle {
                    _ if envelope > 0.5 => Part::Voice,
                    c if (1.8..2.3).contains(&c) => Part::Room,
                    _ => Part::Between,
                });
                let pitch = 120.0 + 15.0 * (TAU * 0.7 * t).sin();
                let formants = VOWELS[(t / 0.2) as usize % VOWELS.len()];
                let mut sample = 0.0;
                for (k, phase) in phases.iter_mut().enumerate() {
                    let harmonic = pitch * (k + 1) as f64;
                    *phase = (*phase + TAU * harmonic / 48_000.0) % TAU;
                    let peak = |centre: f64, width: f64| {
                        1.0 / (1.0 + ((harmonic - centre) / width).powi(2))
                    };
                    let gain = peak(formants[0], 80.0)
                        + 0.6 * peak(formants[1], 100.0)
                        + 0.3 * peak(formants[2], 120.0)
                        + 0.05;
                    sample += gain / (k + 1) as f64 * phase.sin();
                }
                voice.push(sample * envelope);
            }
            (voice, parts)
        }

        /// The words of a person recorded through a real microphone: the eight channel names
        /// `speaker-test` says (alsa-utils' recordings, "Front Center" to "Side Right", 48 kHz
        /// mono, 1.3-1.6 s each, silent between words), each followed by a 0.8 s pause, at no
        /// particular level. A sample is voice where the 10 ms it falls in is within 12 dB of the
        /// loudest 10 ms of its recording, room in the middle of a pause.
        fn recorded_voice() -> (Vec<f64>, Vec<Part>) {
            const DIR: &str = "/usr/share/sounds/alsa";
            const NAMES: [&str; 8] = [
                "Front_Center",
                "Front_Left",
                "Front_Right",
                "Rear_Center",
                "Rear_Left",
                "Rear_Right",
                "Side_Left",
                "Side_Right",
            ];
            let (mut voice, mut parts) = (Vec::new(), Vec::new());
            for name in NAMES {
                let path = std::path::Path::new(DIR).join(format!("{name}.wav"));
                let (words, channels, rate) = crate::wav::read_all(&path).unwrap_or_else(|e| {
                    panic!(
                        "{}: {e} (the recordings come with alsa-utils, which \
                         scripts/install-deps.sh installs)",
                        path.display()
                    )
                });
                assert_eq!((channels, rate), (1, 48_000), "{}", path.display());
                let windows: Vec<f64> = words.chunks(480).map(crate::analysis::rms).collect();
                let loudest = windows.iter().copied().fold(0.0, f64::max);
                for (n, &sample) in words.iter().enumerate() {
                    voice.push(f64::from(sample));
                    parts.push(if windows[n / 480] >= loudest / 4.0 {
                        Part::Voice
                    } else {
                        Part::Between
                    });
                }
                for n in 0..38_400 {
                    voice.push(0.0);
                    parts.push(if (9_600..33_600).contains(&n) {
                        Part::Room
                    } else {
                        Part::Between
                    });
                }
            }
            (voice, parts)
        }

        /// `voice` over a fan's low rumble ([`noise`]), with the RMS of its [`Part::Voice`]
        /// samples at `voice_db` and that of the rumble at `noise_db`, in dBFS; no voice is a
        /// room where nobody speaks.
        fn in_a_room(
            voice: &[f64],
            parts: &[Part],
            voice_db: Option<f64>,
            noise_db: f64,
        ) -> Vec<i16> {
            let room: Vec<f64> = noise(voice.len(), 12_345)
                .into_iter()
                .map(f64::from)
                .collect();
            let rms = |signal: &[f64], part: Option<Part>| {
                let chosen: Vec<f64> = signal
                    .iter()
                    .zip(parts.iter())
                    .filter(|(_, p)| part.is_none_or(|part| **p == part))
                    .map(|(x, _)| *x)
                    .collect();
                (chosen.iter().map(|x| x * x).sum::<f64>() / chosen.len() as f64).sqrt()
            };
            let scale = |db: f64, rms: f64| 10f64.powf(db / 20.0) * 32768.0 / rms;
            let voice_gain = voice_db.map_or(0.0, |db| scale(db, rms(voice, Some(Part::Voice))));
            let room_gain = scale(noise_db, rms(&room, None));
            voice
                .iter()
                .zip(&room)
                .map(|(v, r)| {
                    (v * voice_gain + r * room_gain)
                        .round()
                        .clamp(-32768.0, 32767.0) as i16
                })
                .collect()
        }

        fn process_all(settings: VoiceSettings, samples: &[i16]) -> Vec<i16> {
            let processor = VoiceProcessor::new(settings).unwrap();
            let mut out = Vec::with_capacity(samples.len());
            for chunk in samples.chunks_exact(960) {
                let mut frame = AudioFrame {
                    channels: 1,
                    samples: chunk.to_vec(),
                    captured_at: wall_clock(),
                };
                processor.process(&mut frame).unwrap();
                out.extend(frame.samples);
            }
            out
        }

        /// The level of one part of `samples` after the first `settle` seconds (the gain
        /// control and the noise estimate adapting), in dBFS.
        fn part_db(samples: &[i16], parts: &[Part], part: Part, settle: usize) -> f64 {
            let chosen: Vec<i16> = samples
                .iter()
                .zip(parts)
                .skip(settle * 48_000)
                .filter(|(_, p)| **p == part)
                .map(|(s, _)| *s)
                .collect();
            rms_db(&chosen)
        }

        /// A call with a microphone must not come out louder or noisier for being processed,
        /// as far as that can be judged without a real microphone: with the default settings
        /// the room between phrases is no louder than unprocessed, the voice stands further
        /// out of it, and nothing reaches full scale; a quiet voice is brought up (gain
        /// control's job) but never the room with it. Gain control alone fails the first:
        /// measured, it raises the room by up to 10.5 dB.
        #[test]
        fn a_voice_in_a_noisy_room_comes_out_clearer_and_the_room_no_louder() {
            let cases = [
                (Some(-40.0), -60.0),
                (Some(-26.0), -50.0),
                (Some(-30.0), -40.0),
                (Some(-12.0), -50.0),
                (None, -40.0),
            ];
            for (voice_db, noise_db) in cases {
                let (samples, parts) = voice_in_a_room(12, voice_db, noise_db);
                let case = format!("voice {voice_db:?} dBFS, room {noise_db} dBFS");
                assert_clearer_and_the_room_no_louder(&samples, &parts, voice_db.is_some(), &case);
            }
        }

        /// The same judged on a person's recorded voice instead of made-up phrases: real
        /// speech, with its own rises and falls, is what the noise suppressor's and the gain
        /// control's voice detectors are built for. The levels: a laptop talked into at arm's
        /// length, a quiet voice far from it, a noisy room, a voice close up.
        #[test]
        fn a_recorded_voice_in_a_noisy_room_comes_out_clearer_and_the_room_no_louder() {
            let (voice, parts) = recorded_voice();
            for (voice_db, noise_db) in [
                (-20.0, -45.0),
                (-35.0, -55.0),
                (-26.0, -40.0),
                (-12.0, -50.0),
            ] {
                let samples = in_a_room(&voice, &parts, Some(voice_db), noise_db);
                let case = format!("recorded voice {voice_db} dBFS, room {noise_db} dBFS");
                assert_clearer_and_the_room_no_louder(&samples, &parts, true, &case);
            }
        }

        /// With the default settings against none: the room between phrases no louder, the
        /// voice not quieter and 6 dB further above the room, nothing at full scale.
        fn assert_clearer_and_the_room_no_louder(
            samples: &[i16],
            parts: &[Part],
            has_voice: bool,
            case: &str,
        ) {
            let off = process_all(VoiceSettings::OFF, samples);
            let on = process_all(VoiceSettings::default(), samples);
            let level = |samples: &[i16], part| part_db(samples, parts, part, 4);
            let (room_off, room_on) = (level(&off, Part::Room), level(&on, Part::Room));
            assert!(
                room_on <= room_off,
                "{case}: the room at {room_on:.1} dBFS processed, {room_off:.1} unprocessed"
            );
            assert!(
                on.iter().all(|&s| s > i16::MIN && s < i16::MAX),
                "{case}: clipped"
            );
            if has_voice {
                let (voice_off, voice_on) = (level(&off, Part::Voice), level(&on, Part::Voice));
                assert!(
                    voice_on >= voice_off - 1.0,
                    "{case}: the voice at {voice_on:.1} dBFS, unprocessed {voice_off:.1}"
                );
                let (clear_off, clear_on) = (voice_off - room_off, voice_on - room_on);
                assert!(
                    clear_on >= clear_off + 6.0,
                    "{case}: voice over room {clear_on:.1} dB, unprocessed {clear_off:.1}"
                );
            }
        }

        #[test]
        fn everything_off_passes_samples_through_unchanged() {
            let processor = VoiceProcessor::new(VoiceSettings::OFF).unwrap();
            let samples = noise(960, 3);
            let mut frame = AudioFrame {
                channels: 1,
                samples: samples.clone(),
                captured_at: wall_clock(),
            };
            processor.process(&mut frame).unwrap();
            assert_eq!(frame.samples, samples);
        }

        #[test]
        fn stereo_is_refused_with_a_reason() {
            let processor = VoiceProcessor::new(VoiceSettings::default()).unwrap();
            let mut stereo = AudioFrame {
                channels: 2,
                samples: vec![0; 1920],
                captured_at: wall_clock(),
            };
            let error = processor.process(&mut stereo).unwrap_err().to_string();
            assert!(error.contains("2 channels"), "{error}");
            let tone = crate::tone::Tone::new(440.0, 2, Duration::from_millis(20)).unwrap();
            let error = processor.wrap(Box::new(tone)).err().unwrap().to_string();
            assert!(error.contains("2 channels"), "{error}");
        }
    }
}
