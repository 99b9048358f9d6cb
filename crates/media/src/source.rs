//! The capture interfaces: one per kind. A camera, a test pattern and a file are interchangeable
//! behind them, which is how tests exercise the real pipeline without hardware.
use std::time::Duration;

use crate::{AudioFrame, MediaError, VideoFrame};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VideoFormat {
    pub width: usize,
    pub height: usize,
    pub fps: u32,
}

/// What a caller asks of a video source; a source honours what it can and reports the result
/// in [`VideoSource::format`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VideoConstraints {
    pub width: usize,
    pub height: usize,
    pub fps: u32,
}

impl Default for VideoConstraints {
    fn default() -> Self {
        VideoConstraints {
            width: 640,
            height: 480,
            fps: 30,
        }
    }
}

pub trait VideoSource: Send {
    /// The format frames come in. Fixed for the source's lifetime.
    fn format(&self) -> VideoFormat;
    /// Blocks until the next frame is due, then returns it. `MediaError::Ended` at the end of a
    /// file that does not loop.
    fn next_frame(&mut self) -> Result<VideoFrame, MediaError>;
    /// A short description for logs and UIs ("test pattern 640x480@30").
    fn describe(&self) -> String;
}

pub trait AudioSource: Send {
    /// Channels of the frames this source yields (1 or 2).
    fn channels(&self) -> u16;
    /// Duration of each frame (10 or 20 ms).
    fn frame_duration(&self) -> Duration;
    /// Blocks until the next frame is due, then returns it.
    fn next_frame(&mut self) -> Result<AudioFrame, MediaError>;
    fn describe(&self) -> String;
}

/// Paces a synthetic source: sleeps until the n-th tick of a fixed period since the start, so
/// errors do not accumulate the way repeated `sleep(period)` would.
#[derive(Debug)]
pub struct Pacer {
    start: std::time::Instant,
    period: Duration,
    ticks: u64,
}

impl Pacer {
    pub fn new(period: Duration) -> Self {
        Pacer {
            start: std::time::Instant::now(),
            period,
            ticks: 0,
        }
    }

    /// Waits for the next tick. If the caller fell far behind, skips ahead rather than bursting.
    pub fn wait(&mut self) {
        let due = self.start + self.period * self.ticks as u32;
        let now = std::time::Instant::now();
        if due > now {
            std::thread::sleep(due - now);
        } else if now - due > self.period * 5 {
            self.ticks = ((now - self.start).as_nanos() / self.period.as_nanos().max(1)) as u64;
        }
        self.ticks += 1;
    }
}
