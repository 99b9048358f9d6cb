//! The app's media plumbing: sources from the chosen devices (with the local preview tapped
//! off on its way to the encoder), and where decoded media goes (video tiles, the speaker).
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use parlor_client::call_session::{AudioMaker, MediaSink, VideoMaker};
use parlor_media::source::VideoConstraints;
use parlor_media::spec::{AudioSpec, VideoSpec, TEST_TONE_HZ};
use parlor_media::voice::VoiceSettings;
use parlor_media::{AudioFrame, AudioSource, MediaError, VideoFrame, VideoSource};
use parlor_protocol::UserId;

use crate::video::{VideoHub, LOCAL_TILE};

/// The camera choice that means "a moving test image" (for machines without a camera).
pub const TEST_PATTERN: &str = "test-pattern";
/// The microphone choice that means "a steady 440 Hz tone" (for machines without one).
pub const TEST_TONE: &str = "test-tone";

/// Passes frames through to the encoder and shows them in the local preview tile.
struct PreviewTap {
    inner: Box<dyn VideoSource>,
    hub: Arc<VideoHub>,
}

impl VideoSource for PreviewTap {
    fn format(&self) -> parlor_media::source::VideoFormat {
        self.inner.format()
    }

    fn next_frame(&mut self) -> Result<VideoFrame, MediaError> {
        let frame = self.inner.next_frame()?;
        self.hub.publish(LOCAL_TILE, &frame);
        Ok(frame)
    }

    fn describe(&self) -> String {
        self.inner.describe()
    }
}

/// A maker asked a second time: its one source is already in use.
fn no_device(kind: &'static str) -> MediaError {
    MediaError::DeviceNotFound {
        kind,
        id: "default".into(),
    }
}

/// What a camera choice names: `test-pattern`, a camera id, or (none) the first camera found.
fn camera_spec(choice: Option<&str>) -> VideoSpec {
    match choice {
        Some(TEST_PATTERN) => VideoSpec::TestPattern,
        Some(id) => VideoSpec::Camera(Some(id.to_owned())),
        None => VideoSpec::Camera(None),
    }
}

/// What a microphone choice names: `test-tone`, a microphone id, or (none) the default one.
fn microphone_spec(choice: Option<&str>) -> AudioSpec {
    match choice {
        Some(TEST_TONE) => AudioSpec::Tone(TEST_TONE_HZ),
        other => AudioSpec::Microphone(other.map(str::to_owned)),
    }
}

/// Opens the chosen camera.
pub fn open_camera(choice: Option<&str>) -> Result<Box<dyn VideoSource>, MediaError> {
    camera_spec(choice).open(VideoConstraints::default())
}

/// The microphone's voice processing for the whole app: the speaker feeds it what it plays
/// (the echo to cancel) and every microphone opened passes through it. Cloning shares it.
#[derive(Clone, Default)]
pub struct Voice {
    #[cfg(not(any(target_os = "android", target_os = "ios")))]
    processor: Option<parlor_media::voice::VoiceProcessor>,
}

impl Voice {
    pub fn new(settings: VoiceSettings) -> Voice {
        #[cfg(not(any(target_os = "android", target_os = "ios")))]
        {
            let processor = parlor_media::voice::VoiceProcessor::new(settings)
                .map_err(|e| {
                    tracing::warn!("no voice processing ({e}): the microphone is sent as it is")
                })
                .ok();
            Voice { processor }
        }
        #[cfg(any(target_os = "android", target_os = "ios"))]
        {
            let _ = settings;
            Voice {}
        }
    }

    /// Applies changed settings at once, mid-call too.
    pub fn set(&self, settings: VoiceSettings) {
        #[cfg(not(any(target_os = "android", target_os = "ios")))]
        if let Some(processor) = &self.processor {
            processor.set_settings(settings);
        }
        #[cfg(any(target_os = "android", target_os = "ios"))]
        let _ = settings;
    }
}

/// Opens the chosen microphone (none: the system default), through the voice processing.
pub fn open_microphone(
    choice: Option<&str>,
    voice: &Voice,
) -> Result<Box<dyn AudioSource>, MediaError> {
    let spec = microphone_spec(choice);
    let source = spec.open()?;
    // A synthetic tone has no room and no noise; noise suppression would only eat it.
    if !spec.is_microphone() {
        return Ok(source);
    }
    #[cfg(not(any(target_os = "android", target_os = "ios")))]
    {
        Ok(match &voice.processor {
            Some(processor) => Box::new(processor.wrap(source)?),
            None => source,
        })
    }
    #[cfg(any(target_os = "android", target_os = "ios"))]
    {
        let _ = voice;
        Ok(source)
    }
}

/// A maker that hands out an already opened source once (opening first tells whether the
/// device works before the call starts; the call asks its maker exactly once).
pub fn video_once(source: Box<dyn VideoSource>, hub: Arc<VideoHub>) -> VideoMaker {
    let slot = Mutex::new(Some(source));
    Box::new(move || {
        let inner = slot
            .lock()
            .ok()
            .and_then(|mut s| s.take())
            .ok_or(no_device("camera"))?;
        Ok(with_preview(inner, hub.clone()))
    })
}

/// `source`, its frames also shown in the local preview tile.
pub fn with_preview(source: Box<dyn VideoSource>, hub: Arc<VideoHub>) -> Box<dyn VideoSource> {
    Box::new(PreviewTap { inner: source, hub })
}

pub fn audio_once(source: Box<dyn AudioSource>) -> AudioMaker {
    let slot = Mutex::new(Some(source));
    Box::new(move || {
        slot.lock()
            .ok()
            .and_then(|mut s| s.take())
            .ok_or(no_device("microphone"))
    })
}

/// Where a call's decoded media goes: video to the page's tiles, audio to the speaker (one
/// jitter-buffered stream per participant, mixed). Without a speaker, audio is dropped.
pub struct AppSink {
    hub: Arc<VideoHub>,
    playout: Mutex<Playout>,
    voice: Voice,
}

#[derive(Default)]
struct Playout {
    #[cfg(not(any(target_os = "android", target_os = "ios")))]
    speaker: Option<parlor_media::audio_io::Speaker>,
    #[cfg(not(any(target_os = "android", target_os = "ios")))]
    streams: HashMap<UserId, parlor_media::audio_io::PlayoutStream>,
    #[cfg(any(target_os = "android", target_os = "ios"))]
    streams: HashMap<UserId, ()>,
}

impl AppSink {
    /// `voice` hears what the speaker plays, to take it out of the microphone.
    pub fn new(hub: Arc<VideoHub>, speaker: Option<&str>, voice: Voice) -> Arc<AppSink> {
        let sink = Arc::new(AppSink {
            hub,
            playout: Mutex::default(),
            voice,
        });
        sink.use_speaker(speaker);
        sink
    }

    /// Plays from now on through another speaker (none: the system default).
    pub fn use_speaker(&self, choice: Option<&str>) {
        let Ok(mut playout) = self.playout.lock() else {
            return;
        };
        playout.streams.clear();
        #[cfg(not(any(target_os = "android", target_os = "ios")))]
        {
            playout.speaker = match parlor_media::audio_io::Speaker::open(choice) {
                Ok(speaker) => {
                    speaker.set_echo_reference(self.voice.processor.clone());
                    Some(speaker)
                }
                Err(e) => {
                    tracing::warn!("no speaker ({e}): call audio will not be played");
                    None
                }
            };
        }
        #[cfg(any(target_os = "android", target_os = "ios"))]
        let _ = choice;
    }
}

impl MediaSink for AppSink {
    fn video_frame(&self, from: UserId, frame: &VideoFrame) {
        self.hub.publish(from, frame);
    }

    fn audio_frame(&self, from: UserId, frame: &AudioFrame) {
        #[cfg(not(any(target_os = "android", target_os = "ios")))]
        if let Ok(mut playout) = self.playout.lock() {
            let Playout { speaker, streams } = &mut *playout;
            if let Some(speaker) = speaker {
                streams
                    .entry(from)
                    .or_insert_with(|| speaker.add_stream())
                    .push(frame);
            }
        }
        #[cfg(any(target_os = "android", target_os = "ios"))]
        let _ = (from, frame);
    }
}
