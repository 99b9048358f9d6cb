//! One way to name a media source and open it: `test-pattern`, `camera[:ID]`, `file:PATH.y4m`
//! for video; `tone:HZ`, `test-tone`, `mic[:ID]`, `file:PATH.wav` for sound. The CLI's
//! `--video`/`--audio`, the app's device choices and the tests all go through here, so a name
//! means the same thing everywhere and a bad one gets the same clear error.
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use crate::source::VideoConstraints;
use crate::{AudioSource, MediaError, VideoSource};

/// The tone a `test-tone` plays: A4, easy to find in a spectrum.
pub const TEST_TONE_HZ: f64 = 440.0;

#[derive(Debug, Clone, PartialEq)]
pub enum VideoSpec {
    /// A moving test image with a readable frame stamp.
    TestPattern,
    /// A camera by id; `None`: the first one found.
    Camera(Option<String>),
    /// A Y4M file, looped.
    File(PathBuf),
}

#[derive(Debug, Clone, PartialEq)]
pub enum AudioSpec {
    /// A steady sine tone at this frequency (Hz).
    Tone(f64),
    /// A microphone by id; `None`: the system default.
    Microphone(Option<String>),
    /// A WAV file, looped.
    File(PathBuf),
}

/// A name that is none of the forms above.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{given}` is not a {kind} source: use {forms}")]
pub struct BadSpec {
    pub given: String,
    pub kind: &'static str,
    pub forms: &'static str,
}

const VIDEO_FORMS: &str = "test-pattern, camera, camera:ID or file:PATH.y4m";
const AUDIO_FORMS: &str = "tone:HZ, test-tone, mic, mic:ID or file:PATH.wav";

/// `prefix:rest` with a non-empty rest.
fn tail<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    text.strip_prefix(prefix)
        .and_then(|rest| rest.strip_prefix(':'))
        .filter(|rest| !rest.is_empty())
}

impl FromStr for VideoSpec {
    type Err = BadSpec;

    fn from_str(text: &str) -> Result<Self, BadSpec> {
        let bad = || BadSpec {
            given: text.to_owned(),
            kind: "video",
            forms: VIDEO_FORMS,
        };
        match text.trim() {
            "test-pattern" => Ok(VideoSpec::TestPattern),
            "camera" => Ok(VideoSpec::Camera(None)),
            other => {
                if let Some(id) = tail(other, "camera") {
                    Ok(VideoSpec::Camera(Some(id.to_owned())))
                } else if let Some(path) = tail(other, "file") {
                    Ok(VideoSpec::File(PathBuf::from(path)))
                } else {
                    Err(bad())
                }
            }
        }
    }
}

impl FromStr for AudioSpec {
    type Err = BadSpec;

    fn from_str(text: &str) -> Result<Self, BadSpec> {
        let bad = || BadSpec {
            given: text.to_owned(),
            kind: "audio",
            forms: AUDIO_FORMS,
        };
        match text.trim() {
            "test-tone" => Ok(AudioSpec::Tone(TEST_TONE_HZ)),
            "mic" => Ok(AudioSpec::Microphone(None)),
            other => {
                if let Some(hz) = tail(other, "tone") {
                    match hz.parse::<f64>() {
                        Ok(hz) if hz.is_finite() && hz > 0.0 && hz < 24_000.0 => {
                            Ok(AudioSpec::Tone(hz))
                        }
                        _ => Err(bad()),
                    }
                } else if let Some(id) = tail(other, "mic") {
                    Ok(AudioSpec::Microphone(Some(id.to_owned())))
                } else if let Some(path) = tail(other, "file") {
                    Ok(AudioSpec::File(PathBuf::from(path)))
                } else {
                    Err(bad())
                }
            }
        }
    }
}

impl fmt::Display for VideoSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VideoSpec::TestPattern => f.write_str("test-pattern"),
            VideoSpec::Camera(None) => f.write_str("camera"),
            VideoSpec::Camera(Some(id)) => write!(f, "camera:{id}"),
            VideoSpec::File(path) => write!(f, "file:{}", path.display()),
        }
    }
}

impl fmt::Display for AudioSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AudioSpec::Tone(hz) => write!(f, "tone:{hz}"),
            AudioSpec::Microphone(None) => f.write_str("mic"),
            AudioSpec::Microphone(Some(id)) => write!(f, "mic:{id}"),
            AudioSpec::File(path) => write!(f, "file:{}", path.display()),
        }
    }
}

impl VideoSpec {
    /// Opens the source; frames come at `constraints` where the source can honour them.
    pub fn open(&self, constraints: VideoConstraints) -> Result<Box<dyn VideoSource>, MediaError> {
        match self {
            VideoSpec::TestPattern => Ok(Box::new(crate::pattern::TestPattern::new(constraints)?)),
            VideoSpec::File(path) => Ok(Box::new(crate::y4m::Y4mSource::open(path, true)?)),
            #[cfg(all(feature = "camera", not(any(target_os = "android", target_os = "ios"))))]
            VideoSpec::Camera(id) => {
                let id = match id {
                    Some(id) => id.clone(),
                    None => crate::camera::cameras()
                        .first()
                        .map(|c| c.id.clone())
                        .ok_or_else(|| MediaError::DeviceNotFound {
                            kind: "camera",
                            id: "default".into(),
                        })?,
                };
                Ok(Box::new(crate::camera::Camera::open(&id, constraints)?))
            }
            #[cfg(not(all(
                feature = "camera",
                not(any(target_os = "android", target_os = "ios"))
            )))]
            VideoSpec::Camera(id) => Err(MediaError::DeviceNotFound {
                kind: "camera",
                id: id.clone().unwrap_or_else(|| "default".into()),
            }),
        }
    }
}

impl AudioSpec {
    /// Opens the source, mono in 20 ms frames. A microphone comes as it is: voice processing
    /// (echo cancellation and the rest) is the caller's, who knows what the speaker plays.
    pub fn open(&self) -> Result<Box<dyn AudioSource>, MediaError> {
        match self {
            AudioSpec::Tone(hz) => Ok(Box::new(crate::tone::Tone::new(
                *hz,
                1,
                Duration::from_millis(20),
            )?)),
            AudioSpec::File(path) => Ok(Box::new(crate::wav::WavSource::open(path, true)?)),
            #[cfg(feature = "audio-devices")]
            AudioSpec::Microphone(id) => Ok(Box::new(crate::audio_io::Microphone::open(
                id.as_deref(),
                1,
            )?)),
            #[cfg(not(feature = "audio-devices"))]
            AudioSpec::Microphone(id) => Err(MediaError::DeviceNotFound {
                kind: "microphone",
                id: id.clone().unwrap_or_else(|| "default".into()),
            }),
        }
    }

    /// Whether this is a device with a room and noise around it (what voice processing is for).
    pub fn is_microphone(&self) -> bool {
        matches!(self, AudioSpec::Microphone(_))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_form_is_read_and_written_back_the_same() {
        for text in [
            "test-pattern",
            "camera",
            "camera:usb-0000:00:14.0-1",
            "file:/tmp/in.y4m",
        ] {
            let spec: VideoSpec = text.parse().unwrap();
            assert_eq!(spec.to_string(), text);
        }
        for text in [
            "tone:440",
            "tone:1000.5",
            "mic",
            "mic:alsa_input.pci",
            "file:a b.wav",
        ] {
            let spec: AudioSpec = text.parse().unwrap();
            assert_eq!(spec.to_string(), text);
        }
        assert_eq!("test-tone".parse(), Ok(AudioSpec::Tone(TEST_TONE_HZ)));
        assert_eq!(
            "camera:video0".parse(),
            Ok(VideoSpec::Camera(Some("video0".into())))
        );
    }

    #[test]
    fn a_bad_name_says_what_would_do() {
        for text in [
            "", "none", "camera:", "file:", "pattern", "webcam:1", "tone:440",
        ] {
            let error = text.parse::<VideoSpec>().unwrap_err();
            assert_eq!(error.kind, "video");
            assert!(
                error.to_string().contains("test-pattern, camera"),
                "{error}"
            );
        }
        for text in [
            "tone:",
            "tone:x",
            "tone:-5",
            "tone:inf",
            "tone:30000",
            "mic:",
            "test-pattern",
        ] {
            let error = text.parse::<AudioSpec>().unwrap_err();
            assert!(error.to_string().contains(&format!("`{text}`")), "{error}");
            assert!(error.to_string().contains("tone:HZ"), "{error}");
        }
    }

    #[test]
    fn synthetic_sources_and_files_open() {
        let mut video = VideoSpec::TestPattern
            .open(VideoConstraints {
                width: 320,
                height: 240,
                fps: 30,
            })
            .unwrap();
        assert_eq!(video.format().width, 320);
        assert_eq!(video.next_frame().unwrap().width, 320);
        let mut audio = AudioSpec::Tone(440.0).open().unwrap();
        assert_eq!(audio.channels(), 1);
        assert_eq!(audio.frame_duration(), Duration::from_millis(20));
        audio.next_frame().unwrap();
        assert!(!AudioSpec::Tone(440.0).is_microphone());
        assert!(AudioSpec::Microphone(None).is_microphone());

        // A file that is not there is the file's error, not a panic.
        let missing =
            VideoSpec::File("/nonexistent/in.y4m".into()).open(VideoConstraints::default());
        assert!(missing.is_err());
        let missing = AudioSpec::File("/nonexistent/in.wav".into()).open();
        assert!(missing.is_err());
    }
}
