//! A sine tone: the synthetic microphone.
use std::time::Duration;

use crate::frame::wall_clock;
use crate::source::{AudioSource, Pacer};
use crate::{AudioFrame, MediaError, SAMPLE_RATE};

pub struct Tone {
    frequency: f64,
    amplitude: f64,
    channels: u16,
    frame: Duration,
    phase: f64,
    pacer: Option<Pacer>,
}

impl Tone {
    /// A paced tone: `next_frame` returns one frame per `frame` of real time.
    pub fn new(frequency: f64, channels: u16, frame: Duration) -> Result<Self, MediaError> {
        if !(20.0..=20_000.0).contains(&frequency) {
            return Err(MediaError::Unsupported(format!("tone of {frequency} Hz")));
        }
        if !(1..=2).contains(&channels) {
            return Err(MediaError::Unsupported(format!("{channels} channels")));
        }
        if frame != Duration::from_millis(10) && frame != Duration::from_millis(20) {
            return Err(MediaError::Unsupported(format!("{frame:?} frames")));
        }
        Ok(Tone {
            frequency,
            amplitude: 0.3 * i16::MAX as f64,
            channels,
            frame,
            phase: 0.0,
            pacer: Some(Pacer::new(frame)),
        })
    }

    /// An unpaced tone, for generating audio faster than real time.
    pub fn unpaced(frequency: f64, channels: u16, frame: Duration) -> Result<Self, MediaError> {
        let mut tone = Self::new(frequency, channels, frame)?;
        tone.pacer = None;
        Ok(tone)
    }

    pub fn render(&mut self) -> AudioFrame {
        let per_channel = (SAMPLE_RATE as u128 * self.frame.as_micros() / 1_000_000) as usize;
        let step = std::f64::consts::TAU * self.frequency / SAMPLE_RATE as f64;
        let mut samples = Vec::with_capacity(per_channel * self.channels as usize);
        for _ in 0..per_channel {
            let value = (self.phase.sin() * self.amplitude) as i16;
            for _ in 0..self.channels {
                samples.push(value);
            }
            self.phase = (self.phase + step) % std::f64::consts::TAU;
        }
        AudioFrame {
            channels: self.channels,
            samples,
            captured_at: wall_clock(),
        }
    }
}

impl AudioSource for Tone {
    fn channels(&self) -> u16 {
        self.channels
    }

    fn frame_duration(&self) -> Duration {
        self.frame
    }

    fn next_frame(&mut self) -> Result<AudioFrame, MediaError> {
        if let Some(pacer) = self.pacer.as_mut() {
            pacer.wait();
        }
        Ok(self.render())
    }

    fn describe(&self) -> String {
        format!("tone {} Hz", self.frequency)
    }
}
