//! How much of a voice libopus covers with in-band FEC, and what telling it to expect more loss
//! than the link shows costs and gains. Prints, for a speech-like test signal at the call's
//! 32 kbit/s, with 3 % and 10 % of its packets dropped (a fixed pseudo-random pattern): how many
//! lost frames the next packet's FEC covered, and the log-spectral distance to the source over
//! the active frames, without loss, with it, and over the lost frames alone (lower is closer).
//!
//!   cargo run --release -p parlor-media --example opus_fec
use std::f64::consts::PI;
use std::time::Duration;

use parlor_media::opus_codec::{carries_fec, OpusDecoder, OpusEncoder, FRAME_SAMPLES};
use parlor_media::AudioFrame;

const SECONDS: usize = 30;

/// Harmonics of a voice gliding between 110 and 170 Hz under three formants, in syllables at
/// 4 Hz, with a pause every 2 s: steady enough to measure, voiced enough for Opus's detector.
fn speech_like(i: usize) -> i16 {
    let t = i as f64 / 48_000.0;
    let syllable = (2.0 * PI * 4.0 * t).sin().max(0.0).powf(0.7);
    let pause = if t % 2.0 > 1.6 { 0.0 } else { 1.0 };
    let f0 = 140.0 + 30.0 * (2.0 * PI * 0.7 * t).sin();
    let formant = |f: f64, centre: f64, width: f64| (-((f - centre) / width).powi(2)).exp();
    let voice: f64 = (1..30)
        .map(|h| {
            let f = f0 * h as f64;
            let weight = formant(f, 700.0, 300.0)
                + 0.6 * formant(f, 1200.0, 400.0)
                + 0.3 * formant(f, 2500.0, 500.0);
            weight * (2.0 * PI * f * t + h as f64).sin()
        })
        .sum();
    (0.15 * syllable * pause * voice * 32767.0) as i16
}

/// Root-mean-square difference in dB between two frames' spectra, over 48 bands from 100 Hz to
/// 5 kHz (Hann window, Goertzel).
fn log_spectral_distance(a: &[i16], b: &[i16]) -> f64 {
    let n = a.len();
    let power = |x: &[i16], f: f64| {
        let w = 2.0 * PI * f / 48_000.0;
        let (mut re, mut im) = (0.0, 0.0);
        for (k, &v) in x.iter().enumerate() {
            let hann = 0.5 - 0.5 * (2.0 * PI * k as f64 / n as f64).cos();
            re += hann * v as f64 * (w * k as f64).cos();
            im -= hann * v as f64 * (w * k as f64).sin();
        }
        re * re + im * im + 1e3
    };
    let bands = 48;
    let sum: f64 = (0..bands)
        .map(|b| 100.0 + b as f64 * 4900.0 / bands as f64)
        .map(|f| (10.0 * (power(a, f) / power(b, f)).log10()).powi(2))
        .sum();
    (sum / bands as f64).sqrt()
}

fn main() {
    let frames = SECONDS * 50;
    let source: Vec<i16> = (0..frames * FRAME_SAMPLES).map(speech_like).collect();
    for loss_percent in [3u64, 10] {
        let mut state: u64 = 12_345;
        let lost: Vec<bool> = (0..frames)
            .map(|_| {
                state = state
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                (state >> 33) % 100 < loss_percent
            })
            .collect();
        for told in [0u8, 1, 3, 5, 10, 20] {
            let mut encoder = OpusEncoder::new(1, 32_000).expect("encoder");
            encoder.set_expected_loss(told).expect("expected loss");
            let packets: Vec<Vec<u8>> = source
                .chunks(FRAME_SAMPLES)
                .map(|samples| {
                    let frame = AudioFrame {
                        channels: 1,
                        samples: samples.to_vec(),
                        captured_at: Duration::ZERO,
                    };
                    encoder.encode(&frame).expect("encode")
                })
                .collect();
            let decode = |with_loss: bool| {
                let mut decoder = OpusDecoder::new(1).expect("decoder");
                let (mut out, mut covered) = (Vec::new(), 0);
                for i in 0..frames {
                    let frame = if with_loss && lost[i] {
                        let next = packets
                            .get(i + 1)
                            .filter(|_| !lost.get(i + 1).copied().unwrap_or(true));
                        covered += usize::from(next.is_some_and(|p| carries_fec(p)));
                        decoder.conceal(next.map(Vec::as_slice), Duration::ZERO)
                    } else {
                        decoder.decode(&packets[i], Duration::ZERO)
                    };
                    out.extend(frame.expect("decode").samples);
                }
                (out, covered)
            };
            let (clean, _) = decode(false);
            let (lossy, covered) = decode(true);
            // The codec's delay, found where the decoded signal best matches the source.
            let delay = (0..1000)
                .max_by_key(|&d| {
                    (48_000..96_000)
                        .map(|k| (source[k] as i64 * clean[k + d] as i64) >> 10)
                        .sum::<i64>()
                })
                .unwrap_or(0);
            let distance = |out: &[i16], only_lost: bool| {
                let (mut sum, mut n) = (0.0, 0);
                for i in 1..frames - 1 {
                    let original = &source[i * FRAME_SAMPLES..(i + 1) * FRAME_SAMPLES];
                    let active = original.iter().map(|&v| (v as f64).powi(2)).sum::<f64>()
                        > 1e4 * FRAME_SAMPLES as f64;
                    if !active || (only_lost && !lost[i]) {
                        continue;
                    }
                    let decoded = &out[i * FRAME_SAMPLES + delay..(i + 1) * FRAME_SAMPLES + delay];
                    sum += log_spectral_distance(original, decoded);
                    n += 1;
                }
                sum / n.max(1) as f64
            };
            let kbps =
                packets.iter().map(Vec::len).sum::<usize>() as f64 * 8.0 / SECONDS as f64 / 1000.0;
            println!(
                "{loss_percent:2} % lost, libopus told {told:2} %: FEC covered {covered:3} of {:3} lost frames; \
                 distance {:.2} dB without loss, {:.2} dB with it, {:.2} dB on the lost frames; {kbps:.1} kbit/s",
                lost.iter().filter(|&&l| l).count(),
                distance(&clean, false),
                distance(&lossy, false),
                distance(&lossy, true),
            );
        }
    }
}
