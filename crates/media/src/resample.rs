//! Sample-rate conversion to and from the engine's 48 kHz, with rubato's FFT resampler.
use rubato::{FftFixedIn, Resampler as _};

use crate::MediaError;

/// Converts interleaved i16 audio from one rate to another, in whatever sizes it is fed.
pub struct Resampler {
    inner: Option<FftFixedIn<f32>>,
    channels: usize,
    pending: Vec<Vec<f32>>,
}

impl Resampler {
    pub fn new(from_hz: u32, to_hz: u32, channels: u16) -> Result<Self, MediaError> {
        let channels = channels.max(1) as usize;
        let inner = if from_hz == to_hz {
            None
        } else {
            // 10 ms chunks of input.
            let chunk = (from_hz / 100).max(1) as usize;
            Some(
                FftFixedIn::new(from_hz as usize, to_hz as usize, chunk, 2, channels).map_err(
                    |e| MediaError::Unsupported(format!("resampling {from_hz}→{to_hz} Hz: {e}")),
                )?,
            )
        };
        Ok(Resampler {
            inner,
            channels,
            pending: vec![Vec::new(); channels],
        })
    }

    /// Feeds interleaved samples; returns whatever converted output is ready (interleaved).
    pub fn process(&mut self, interleaved: &[i16]) -> Vec<i16> {
        let Some(inner) = self.inner.as_mut() else {
            return interleaved.to_vec();
        };
        for frame in interleaved.chunks_exact(self.channels) {
            for (c, &s) in frame.iter().enumerate() {
                self.pending[c].push(s as f32 / 32768.0);
            }
        }
        let mut out = Vec::new();
        while self.pending[0].len() >= inner.input_frames_next() {
            let need = inner.input_frames_next();
            let chunk: Vec<Vec<f32>> = self
                .pending
                .iter_mut()
                .map(|p| p.drain(..need).collect())
                .collect();
            let Ok(converted) = inner.process(&chunk, None) else {
                break;
            };
            for i in 0..converted[0].len() {
                for channel in &converted {
                    out.push((channel[i] * 32767.0).clamp(-32768.0, 32767.0) as i16);
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::dominant_frequency;

    #[test]
    fn a_tone_keeps_its_pitch_through_44100_to_48000() {
        let input: Vec<i16> = (0..44_100)
            .map(|i| {
                ((i as f64 * std::f64::consts::TAU * 1000.0 / 44_100.0).sin() * 10_000.0) as i16
            })
            .collect();
        let mut resampler = Resampler::new(44_100, 48_000, 1).unwrap();
        let mut out = Vec::new();
        for chunk in input.chunks(1234) {
            out.extend(resampler.process(chunk));
        }
        // About one second at the new rate (less the resampler's latency).
        assert!(
            out.len() > 46_000 && out.len() <= 48_000,
            "{} samples",
            out.len()
        );
        let hz = dominant_frequency(&out[4800..], 48_000, 100.0, 4000.0).unwrap();
        assert!((hz - 1000.0).abs() < 2.0, "{hz}");
        let mut same = Resampler::new(48_000, 48_000, 2).unwrap();
        assert_eq!(same.process(&[1, 2, 3, 4]), vec![1, 2, 3, 4]);
    }
}
