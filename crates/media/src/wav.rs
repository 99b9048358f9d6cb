//! WAV files: an audio source (48 kHz, 16-bit or float, mono or stereo) and a writer.
use std::path::Path;
use std::time::Duration;

use crate::frame::wall_clock;
use crate::source::{AudioSource, Pacer};
use crate::{AudioFrame, MediaError, SAMPLE_RATE};

fn bad(e: impl std::fmt::Display) -> MediaError {
    MediaError::BadFile(e.to_string())
}

/// Plays a WAV file in real time, 20 ms at a time.
pub struct WavSource {
    samples: Vec<i16>,
    channels: u16,
    position: usize,
    looping: bool,
    pacer: Pacer,
    describe: String,
}

impl WavSource {
    pub fn open(path: &Path, looping: bool) -> Result<Self, MediaError> {
        let reader = hound::WavReader::open(path).map_err(|e| match e {
            hound::Error::IoError(io) => MediaError::Io(io),
            other => bad(other),
        })?;
        let spec = reader.spec();
        if spec.sample_rate != SAMPLE_RATE {
            return Err(MediaError::Unsupported(format!(
                "{} Hz WAV: Parlor plays 48000 Hz files",
                spec.sample_rate
            )));
        }
        if !(1..=2).contains(&spec.channels) {
            return Err(MediaError::Unsupported(format!(
                "{}-channel WAV",
                spec.channels
            )));
        }
        let samples: Vec<i16> = match (spec.sample_format, spec.bits_per_sample) {
            (hound::SampleFormat::Int, 16) => reader
                .into_samples::<i16>()
                .collect::<Result<_, _>>()
                .map_err(bad)?,
            (hound::SampleFormat::Float, 32) => reader
                .into_samples::<f32>()
                .map(|s| s.map(|v| (v.clamp(-1.0, 1.0) * i16::MAX as f32) as i16))
                .collect::<Result<_, _>>()
                .map_err(bad)?,
            (format, bits) => {
                return Err(MediaError::Unsupported(format!(
                    "{bits}-bit {format:?} WAV"
                )))
            }
        };
        if samples.is_empty() {
            return Err(bad("the file has no audio"));
        }
        Ok(WavSource {
            samples,
            channels: spec.channels,
            position: 0,
            looping,
            pacer: Pacer::new(Duration::from_millis(20)),
            describe: format!("file {}", path.display()),
        })
    }
}

impl AudioSource for WavSource {
    fn channels(&self) -> u16 {
        self.channels
    }

    fn frame_duration(&self) -> Duration {
        Duration::from_millis(20)
    }

    fn next_frame(&mut self) -> Result<AudioFrame, MediaError> {
        let want = crate::opus_codec::FRAME_SAMPLES * self.channels as usize;
        if self.position >= self.samples.len() {
            if !self.looping {
                return Err(MediaError::Ended);
            }
            self.position = 0;
        }
        self.pacer.wait();
        let end = (self.position + want).min(self.samples.len());
        let mut samples = self.samples[self.position..end].to_vec();
        samples.resize(want, 0); // the last frame is padded with silence
        self.position = end;
        Ok(AudioFrame {
            channels: self.channels,
            samples,
            captured_at: wall_clock(),
        })
    }

    fn describe(&self) -> String {
        self.describe.clone()
    }
}

/// Records frames to a 48 kHz 16-bit WAV file.
pub struct WavRecorder {
    writer: hound::WavWriter<std::io::BufWriter<std::fs::File>>,
    channels: u16,
}

impl WavRecorder {
    pub fn create(path: &Path, channels: u16) -> Result<Self, MediaError> {
        let spec = hound::WavSpec {
            channels,
            sample_rate: SAMPLE_RATE,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        Ok(WavRecorder {
            writer: hound::WavWriter::create(path, spec).map_err(bad)?,
            channels,
        })
    }

    pub fn write(&mut self, frame: &AudioFrame) -> Result<(), MediaError> {
        if frame.channels != self.channels {
            return Err(MediaError::Unsupported(
                "channel count changed mid-recording".into(),
            ));
        }
        for &s in &frame.samples {
            self.writer.write_sample(s).map_err(bad)?;
        }
        Ok(())
    }

    pub fn finish(self) -> Result<(), MediaError> {
        self.writer.finalize().map_err(bad)
    }
}

/// Reads a whole WAV file (any rate) as interleaved i16 plus its spec, for checks.
pub fn read_all(path: &Path) -> Result<(Vec<i16>, u16, u32), MediaError> {
    let reader = hound::WavReader::open(path).map_err(bad)?;
    let spec = reader.spec();
    let samples = reader
        .into_samples::<i16>()
        .collect::<Result<Vec<_>, _>>()
        .map_err(bad)?;
    Ok((samples, spec.channels, spec.sample_rate))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::dominant_frequency;
    use crate::tone::Tone;

    #[test]
    fn recordings_play_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tone.wav");
        let mut tone = Tone::unpaced(880.0, 1, Duration::from_millis(20)).unwrap();
        let mut recorder = WavRecorder::create(&path, 1).unwrap();
        for _ in 0..5 {
            recorder.write(&tone.render()).unwrap();
        }
        recorder.finish().unwrap();
        let mut source = WavSource::open(&path, false).unwrap();
        let mut all = Vec::new();
        for _ in 0..5 {
            all.extend(source.next_frame().unwrap().samples);
        }
        assert!(matches!(source.next_frame(), Err(MediaError::Ended)));
        let hz = dominant_frequency(&all, 48_000, 100.0, 4000.0).unwrap();
        assert!((hz - 880.0).abs() < 2.0);
    }

    #[test]
    fn other_rates_and_garbage_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.wav");
        let spec = hound::WavSpec {
            channels: 1,
            sample_rate: 44_100,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let mut w = hound::WavWriter::create(&path, spec).unwrap();
        w.write_sample(0i16).unwrap();
        w.finalize().unwrap();
        assert!(matches!(
            WavSource::open(&path, false),
            Err(MediaError::Unsupported(_))
        ));
        std::fs::write(&path, b"RIFF....garbage").unwrap();
        assert!(matches!(
            WavSource::open(&path, false),
            Err(MediaError::BadFile(_))
        ));
    }
}
