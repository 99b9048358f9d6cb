//! Records a call's incoming media to files: video as Y4M, audio as WAV. A file holds one
//! stream, so each records the first participant whose media arrives.
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use parlor_media::wav::WavRecorder;
use parlor_media::y4m::Y4mWriter;
use parlor_media::{AudioFrame, MediaError, VideoFrame};
use parlor_protocol::UserId;

use crate::call_session::MediaSink;

/// Frames the calls' video tracks run at by default; Y4M needs a rate in its header.
const RECORD_FPS: u32 = 30;

struct Target<W> {
    path: PathBuf,
    from: Option<UserId>,
    writer: Option<W>,
    error: Option<String>,
}

impl<W> Target<W> {
    fn new(path: &Path) -> Self {
        Target {
            path: path.to_owned(),
            from: None,
            writer: None,
            error: None,
        }
    }

    /// Writes `frame` if it comes from the recorded participant (the first one heard).
    fn take<F>(
        &mut self,
        from: UserId,
        frame: &F,
        create: impl FnOnce(&Path, &F) -> Result<W, MediaError>,
        write: impl FnOnce(&mut W, &F) -> Result<(), MediaError>,
    ) {
        if self.error.is_some() || *self.from.get_or_insert(from) != from {
            return;
        }
        if self.writer.is_none() {
            match create(&self.path, frame) {
                Ok(w) => self.writer = Some(w),
                Err(e) => {
                    self.error = Some(e.to_string());
                    return;
                }
            }
        }
        if let Some(w) = self.writer.as_mut() {
            if let Err(e) = write(w, frame) {
                self.error = Some(e.to_string());
            }
        }
    }
}

#[derive(Default)]
pub struct Recorder {
    video: Option<Mutex<Target<Y4mWriter>>>,
    audio: Option<Mutex<Target<WavRecorder>>>,
}

/// What was recorded.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Recorded {
    pub video_from: Option<UserId>,
    pub video_frames: u64,
    pub audio_from: Option<UserId>,
}

impl Recorder {
    pub fn new(video: Option<&Path>, audio: Option<&Path>) -> Recorder {
        Recorder {
            video: video.map(|p| Mutex::new(Target::new(p))),
            audio: audio.map(|p| Mutex::new(Target::new(p))),
        }
    }

    /// Flushes and closes the files; an error names what could not be written.
    pub fn finish(&self) -> Result<Recorded, MediaError> {
        let mut recorded = Recorded::default();
        if let Some(video) = &self.video {
            let mut target = video.lock().map_err(|_| poisoned())?;
            if let Some(e) = target.error.take() {
                return Err(MediaError::Unsupported(format!("recording video: {e}")));
            }
            recorded.video_from = target.from;
            if let Some(writer) = target.writer.take() {
                recorded.video_frames = writer.finish()?;
            }
        }
        if let Some(audio) = &self.audio {
            let mut target = audio.lock().map_err(|_| poisoned())?;
            if let Some(e) = target.error.take() {
                return Err(MediaError::Unsupported(format!("recording audio: {e}")));
            }
            recorded.audio_from = target.from;
            if let Some(writer) = target.writer.take() {
                writer.finish()?;
            }
        }
        Ok(recorded)
    }
}

fn poisoned() -> MediaError {
    MediaError::Unsupported("a recording thread panicked".into())
}

impl MediaSink for Recorder {
    fn video_frame(&self, from: UserId, frame: &VideoFrame) {
        if let Some(Ok(mut target)) = self.video.as_ref().map(|t| t.lock()) {
            target.take(
                from,
                frame,
                |path, _| Y4mWriter::create(path, RECORD_FPS),
                |w, f| w.write(f),
            );
        }
    }

    fn audio_frame(&self, from: UserId, frame: &AudioFrame) {
        if let Some(Ok(mut target)) = self.audio.as_ref().map(|t| t.lock()) {
            target.take(
                from,
                frame,
                |path, f| WavRecorder::create(path, f.channels),
                |w, f| w.write(f),
            );
        }
    }
}
