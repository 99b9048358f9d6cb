//! Parlor's media engine: frames, capture sources, codecs and playback. Nothing here knows about
//! WebRTC; `parlor-rtc` moves what this crate produces over the network.
//!
//! Sources are pull-based and pace themselves: `next_frame` blocks until the next frame is due
//! (a camera until the device delivers one, a synthetic source until its clock says so), which
//! is why they run on their own threads.

pub mod analysis;
#[cfg(feature = "audio-devices")]
pub mod audio_io;
#[cfg(all(feature = "camera", not(any(target_os = "android", target_os = "ios"))))]
pub mod camera;
pub mod convert;
pub mod devices;
pub mod error;
pub mod frame;
pub mod h264;
pub mod opus_codec;
pub mod pattern;
pub mod playout;
pub mod resample;
pub mod scale;
pub mod source;
pub mod spec;
pub mod tone;
pub mod video_codec;
pub mod voice;
#[cfg(feature = "vp8")]
pub mod vp8;
pub mod wav;
pub mod y4m;

pub use error::MediaError;
pub use frame::{AudioFrame, VideoFrame};
pub use source::{AudioSource, VideoSource};

/// The only audio sample rate on the wire and inside the engine.
pub const SAMPLE_RATE: u32 = 48_000;
