//! How voice processing changes a recording: speech level and noise floor, before and after.
//!
//! ```sh
//! cargo run --release -p parlor-media --example voice_levels -- speech.wav [ec,ns,agc]
//! ```
//! The WAV must be 48 kHz mono. Each 100 ms window is classed by the *unprocessed* level: the
//! loudest third is speech, the quietest third the noise floor; both are reported as median
//! RMS in dBFS, for the raw recording and for it processed (by default with the app's default
//! settings; echo cancellation has no far end here, so it does nothing).
use std::time::Duration;

use parlor_media::analysis::{percentile, rms};
use parlor_media::voice::{VoiceProcessor, VoiceSettings};
use parlor_media::AudioFrame;

fn dbfs(x: f64) -> f64 {
    20.0 * (x.max(1e-3) / 32768.0).log10()
}

fn main() {
    let path = std::env::args()
        .nth(1)
        .expect("usage: voice_levels FILE.wav");
    let (samples, channels, rate) =
        parlor_media::wav::read_all(std::path::Path::new(&path)).expect("a WAV file");
    assert!(channels == 1 && rate == 48_000, "48 kHz mono, please");
    // Which parts to run: a comma list of ec, ns, agc (default: all, the app's default).
    let parts = std::env::args()
        .nth(2)
        .unwrap_or_else(|| "ec,ns,agc".into());
    let has = |part: &str| parts.split(',').any(|p| p == part);
    let settings = VoiceSettings {
        echo_cancellation: has("ec"),
        noise_suppression: has("ns"),
        auto_gain_control: has("agc"),
    };
    let processor = VoiceProcessor::new(settings).expect("processor");
    let mut processed = Vec::with_capacity(samples.len());
    for (n, chunk) in samples.chunks_exact(960).enumerate() {
        let mut frame = AudioFrame {
            channels: 1,
            samples: chunk.to_vec(),
            captured_at: Duration::from_millis(20 * n as u64),
        };
        processor.process(&mut frame).expect("process");
        processed.extend(frame.samples);
    }
    let windows: Vec<(f64, f64)> = samples
        .chunks_exact(4_800)
        .zip(processed.chunks_exact(4_800))
        .map(|(raw, out)| (rms(raw), rms(out)))
        .collect();
    // Skip the first second: the gain control and the noise estimate are still adapting.
    let mut settled: Vec<(f64, f64)> = windows.into_iter().skip(10).collect();
    settled.sort_by(|a, b| a.0.total_cmp(&b.0));
    let third = settled.len() / 3;
    let (quiet, loud) = (&settled[..third], &settled[settled.len() - third..]);
    let median = |set: &[(f64, f64)], pick: fn(&(f64, f64)) -> f64| {
        percentile(&set.iter().map(pick).collect::<Vec<_>>(), 50).unwrap_or(0.0)
    };
    println!(
        "speech: {:.1} dBFS raw, {:.1} dBFS processed",
        dbfs(median(loud, |w| w.0)),
        dbfs(median(loud, |w| w.1))
    );
    println!(
        "noise floor: {:.1} dBFS raw, {:.1} dBFS processed",
        dbfs(median(quiet, |w| w.0)),
        dbfs(median(quiet, |w| w.1))
    );
}
