//! Signal checks used by tests, the CLI and benchmarks: what frequency a recording holds, and how
//! loud it is.

/// The dominant frequency of a mono signal, in Hz, found by scanning candidate frequencies with
/// the Goertzel algorithm (coarse 5 Hz steps, then refined by 0.5 Hz around the best). `None`
/// for silence.
pub fn dominant_frequency(samples: &[i16], sample_rate: u32, low: f64, high: f64) -> Option<f64> {
    if samples.len() < 256 || rms(samples) < 50.0 {
        return None;
    }
    let power = |f: f64| goertzel_power(samples, sample_rate, f);
    let scan = |from: f64, to: f64, step: f64| {
        let mut best = (from, f64::MIN);
        let mut f = from;
        while f <= to {
            let p = power(f);
            if p > best.1 {
                best = (f, p);
            }
            f += step;
        }
        best.0
    };
    let coarse = scan(low, high, 5.0);
    Some(scan((coarse - 5.0).max(low), (coarse + 5.0).min(high), 0.5))
}

fn goertzel_power(samples: &[i16], sample_rate: u32, frequency: f64) -> f64 {
    let w = std::f64::consts::TAU * frequency / sample_rate as f64;
    let coeff = 2.0 * w.cos();
    let (mut s1, mut s2) = (0.0f64, 0.0f64);
    for &x in samples {
        let s0 = x as f64 + coeff * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    s1 * s1 + s2 * s2 - coeff * s1 * s2
}

/// How loud the `frequency` component of a mono signal is, in dB relative to a full-scale sine
/// (0 dB: a sine of amplitude 32767). Far below any real signal for silence.
pub fn tone_level_db(samples: &[i16], sample_rate: u32, frequency: f64) -> f64 {
    if samples.is_empty() {
        return f64::NEG_INFINITY;
    }
    // A sine of amplitude A over N samples has Goertzel power (A·N/2)².
    let amplitude = 2.0
        * goertzel_power(samples, sample_rate, frequency)
            .max(0.0)
            .sqrt()
        / samples.len() as f64;
    20.0 * (amplitude.max(1e-6) / i16::MAX as f64).log10()
}

/// Root mean square of a signal.
pub fn rms(samples: &[i16]) -> f64 {
    if samples.is_empty() {
        return 0.0;
    }
    let sum: f64 = samples.iter().map(|&s| (s as f64) * (s as f64)).sum();
    (sum / samples.len() as f64).sqrt()
}

/// The `pct`-th percentile of `values` (the value at rank `len * pct / 100`); `None` when empty.
pub fn percentile(values: &[f64], pct: usize) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(|a, b| a.total_cmp(b));
    Some(sorted[(sorted.len() * pct / 100).min(sorted.len() - 1)])
}

/// Follows a received mono signal and says which tone it carries: it keeps only the last half
/// second (memory stays bounded however long the call) and answers once at least a second has
/// arrived, so the decoder's start-up is not judged.
#[derive(Debug, Clone, Default)]
pub struct ToneMeter {
    recent: std::collections::VecDeque<i16>,
    received: usize,
}

impl ToneMeter {
    const WINDOW: usize = 24_000;
    const WARM_UP: usize = 48_000;

    pub fn push(&mut self, mono: &[i16]) {
        self.received += mono.len();
        self.recent.extend(mono);
        let excess = self.recent.len().saturating_sub(Self::WINDOW);
        self.recent.drain(..excess);
    }

    /// The dominant frequency of the last half second (48 kHz), if enough has arrived.
    pub fn frequency(&self) -> Option<f64> {
        if self.received < Self::WARM_UP {
            return None;
        }
        let window: Vec<i16> = self.recent.iter().copied().collect();
        dominant_frequency(&window, 48_000, 100.0, 4000.0)
    }
}

/// The left channel of interleaved samples.
pub fn first_channel(samples: &[i16], channels: u16) -> Vec<i16> {
    samples
        .iter()
        .step_by(channels.max(1) as usize)
        .copied()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tone::Tone;
    use std::time::Duration;

    #[test]
    fn finds_the_frequency_of_a_tone() {
        for hz in [440.0, 1000.0, 523.0] {
            let mut tone = Tone::unpaced(hz, 1, Duration::from_millis(20)).unwrap();
            let samples: Vec<i16> = (0..25).flat_map(|_| tone.render().samples).collect();
            let found = dominant_frequency(&samples, 48_000, 100.0, 4000.0).unwrap();
            assert!((found - hz).abs() < 2.0, "{hz} Hz found as {found}");
        }
        assert_eq!(dominant_frequency(&[0; 4800], 48_000, 100.0, 4000.0), None);
    }

    #[test]
    fn tone_level_reads_a_sine_s_amplitude_and_ignores_other_frequencies() {
        // Tone plays at 0.3 of full scale: -10.5 dB.
        let mut tone = Tone::unpaced(440.0, 1, Duration::from_millis(20)).unwrap();
        let samples: Vec<i16> = (0..50).flat_map(|_| tone.render().samples).collect();
        let level = tone_level_db(&samples, 48_000, 440.0);
        assert!((level - 20.0 * 0.3f64.log10()).abs() < 0.2, "{level}");
        let half: Vec<i16> = samples.iter().map(|&s| s / 2).collect();
        let drop = level - tone_level_db(&half, 48_000, 440.0);
        assert!((drop - 6.02).abs() < 0.1, "{drop}");
        assert!(tone_level_db(&samples, 48_000, 1000.0) < level - 40.0);
        assert!(tone_level_db(&[0; 960], 48_000, 440.0) < -100.0);
    }

    #[test]
    fn the_tone_meter_waits_a_second_and_keeps_half_of_one() {
        let mut tone = Tone::unpaced(660.0, 1, Duration::from_millis(20)).unwrap();
        let mut meter = ToneMeter::default();
        for _ in 0..49 {
            meter.push(&tone.render().samples);
        }
        assert_eq!(meter.frequency(), None, "less than a second");
        meter.push(&tone.render().samples);
        assert!((meter.frequency().unwrap() - 660.0).abs() < 2.0);
        for _ in 0..500 {
            meter.push(&tone.render().samples);
        }
        assert_eq!(meter.recent.len(), ToneMeter::WINDOW);
    }

    #[test]
    fn percentiles_use_the_rank_below() {
        assert_eq!(percentile(&[], 50), None);
        let values: Vec<f64> = (1..=20).rev().map(f64::from).collect();
        assert_eq!(percentile(&values, 50), Some(11.0));
        assert_eq!(percentile(&values, 95), Some(20.0));
        assert_eq!(percentile(&[3.0], 95), Some(3.0));
    }
}
