//! Playout: a jitter buffer per remote stream and a mixer that sums them into the speaker's
//! output. Pure (no device), so its behaviour is tested directly.
use std::collections::{HashMap, VecDeque};

use crate::AudioFrame;

/// Samples per channel held before a stream starts (or restarts) playing: 60 ms, or one device
/// period if the device asks for more at a time.
pub const TARGET_DELAY: usize = 48_000 * 60 / 1000;
/// More than this (200 ms, or two device periods plus the target) and the oldest audio is
/// dropped to keep latency bounded.
pub const MAX_DELAY: usize = 48_000 * 200 / 1000;

/// The cushion and the cap for a device that asks for `period` samples per channel at a time:
/// a sound server may raise its period after an underrun, and a buffer smaller than one period
/// could then never satisfy a request.
fn limits(period: usize, extra: usize) -> (usize, usize) {
    let target = TARGET_DELAY.max(period) + extra;
    (target, MAX_DELAY.max(2 * period + target) + extra)
}

/// Cushion added after each underrun: audio arriving in bursts (a sound server delivering
/// capture in large fragments, a jittery network) needs a deeper buffer to play smoothly.
const GROW_STEP: usize = 48_000 * 40 / 1000;
const MAX_EXTRA: usize = 48_000 * 500 / 1000;
/// Played this long without an underrun, the cushion shrinks by one step.
const SHRINK_AFTER: u64 = 48_000 * 5;

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PlayoutCounters {
    pub underruns: u64,
    pub samples_dropped: u64,
    pub samples_played: u64,
}

#[derive(Debug, Default)]
struct JitterBuffer {
    /// Interleaved stereo.
    samples: VecDeque<i16>,
    playing: bool,
    counters: PlayoutCounters,
    /// Extra cushion learnt from underruns, in samples per channel.
    extra: usize,
    played_since_underrun: u64,
    /// The lowest level seen since the last shrink decision: the cushion may shrink only if
    /// it was not needed.
    low_water: Option<usize>,
}

impl JitterBuffer {
    fn per_channel(&self) -> usize {
        self.samples.len() / 2
    }

    fn push(&mut self, frame: &AudioFrame, period: usize) {
        let (target, max) = limits(period, self.extra);
        match frame.channels {
            1 => {
                for &s in &frame.samples {
                    self.samples.push_back(s);
                    self.samples.push_back(s);
                }
            }
            _ => {
                for pair in frame.samples.chunks_exact(frame.channels as usize) {
                    self.samples.push_back(pair[0]);
                    self.samples.push_back(pair[1]);
                }
            }
        }
        if self.per_channel() > max {
            let excess = (self.per_channel() - target) * 2;
            self.samples.drain(..excess);
            self.counters.samples_dropped += excess as u64 / 2;
        }
    }

    /// Adds this stream's next samples into `out` (interleaved stereo).
    fn mix_into(&mut self, out: &mut [i32], period: usize) {
        let wanted = out.len() / 2;
        if !self.playing {
            if self.per_channel() < limits(period, self.extra).0 {
                return;
            }
            self.playing = true;
        }
        let available = self.per_channel().min(wanted);
        for (slot, sample) in out.iter_mut().zip(self.samples.drain(..available * 2)) {
            *slot += sample as i32;
        }
        self.counters.samples_played += available as u64;
        self.played_since_underrun += available as u64;
        if available < wanted {
            // Ran dry: go quiet, and rebuild a deeper cushion before playing again.
            self.playing = false;
            self.counters.underruns += 1;
            self.extra = (self.extra + GROW_STEP).min(MAX_EXTRA);
            self.played_since_underrun = 0;
        } else {
            let level = self.per_channel();
            self.low_water = Some(self.low_water.map_or(level, |l| l.min(level)));
            if self.played_since_underrun >= SHRINK_AFTER && self.extra > 0 {
                if self.low_water.unwrap_or(0) >= GROW_STEP {
                    self.extra -= GROW_STEP.min(self.extra);
                }
                self.low_water = None;
                self.played_since_underrun = 0;
            }
        }
    }
}

/// Mixes any number of streams into stereo output.
#[derive(Debug, Default)]
pub struct Mixer {
    streams: HashMap<u64, JitterBuffer>,
    next_id: u64,
    scratch: Vec<i32>,
    /// The largest request the device has made, in samples per channel.
    period: usize,
}

impl Mixer {
    pub fn add_stream(&mut self) -> u64 {
        self.next_id += 1;
        self.streams.insert(self.next_id, JitterBuffer::default());
        self.next_id
    }

    pub fn remove_stream(&mut self, id: u64) {
        self.streams.remove(&id);
    }

    pub fn push(&mut self, id: u64, frame: &AudioFrame) {
        if let Some(stream) = self.streams.get_mut(&id) {
            stream.push(frame, self.period);
        }
    }

    /// Fills `out` (interleaved stereo) with the sum of all streams, clipped.
    pub fn render(&mut self, out: &mut [i16]) {
        self.period = self.period.max(out.len() / 2);
        self.scratch.clear();
        self.scratch.resize(out.len(), 0);
        for stream in self.streams.values_mut() {
            stream.mix_into(&mut self.scratch, self.period);
        }
        for (o, s) in out.iter_mut().zip(&self.scratch) {
            *o = (*s).clamp(i16::MIN as i32, i16::MAX as i32) as i16;
        }
    }

    pub fn counters(&self, id: u64) -> Option<PlayoutCounters> {
        self.streams.get(&id).map(|s| s.counters.clone())
    }

    pub fn buffered_ms(&self, id: u64) -> Option<f64> {
        self.streams.get(&id).map(|s| s.per_channel() as f64 / 48.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn frame(value: i16, channels: u16) -> AudioFrame {
        AudioFrame {
            channels,
            samples: vec![value; 960 * channels as usize],
            captured_at: Duration::ZERO,
        }
    }

    #[test]
    fn streams_wait_for_their_cushion_then_mix() {
        let mut mixer = Mixer::default();
        let a = mixer.add_stream();
        let b = mixer.add_stream();
        let mut out = vec![0i16; 480 * 2];
        mixer.push(a, &frame(1000, 1));
        mixer.render(&mut out);
        assert!(
            out.iter().all(|&s| s == 0),
            "20 ms is below the 60 ms cushion"
        );
        for _ in 0..3 {
            mixer.push(a, &frame(1000, 1));
            mixer.push(b, &frame(-300, 2));
        }
        mixer.render(&mut out);
        assert!(out.iter().all(|&s| s == 700), "both streams summed");
    }

    #[test]
    fn sums_clip_instead_of_wrapping() {
        let mut mixer = Mixer::default();
        let (a, b) = (mixer.add_stream(), mixer.add_stream());
        for _ in 0..3 {
            mixer.push(a, &frame(30_000, 2));
            mixer.push(b, &frame(30_000, 2));
        }
        let mut out = vec![0i16; 100];
        mixer.render(&mut out);
        assert!(out.iter().all(|&s| s == i16::MAX));
    }

    #[test]
    fn underruns_and_overflows_are_counted_and_bounded() {
        let mut mixer = Mixer::default();
        let a = mixer.add_stream();
        let mut out = vec![0i16; 480 * 2]; // a 10 ms device
        for _ in 0..3 {
            mixer.push(a, &frame(5, 1));
        }
        for _ in 0..7 {
            mixer.render(&mut out); // 70 ms asked, 60 ms there
        }
        let c = mixer.counters(a).unwrap();
        assert_eq!(c.underruns, 1);
        assert_eq!(c.samples_played, 2880);
        for _ in 0..20 {
            mixer.push(a, &frame(5, 1)); // 400 ms arrive at once
        }
        // 200 ms, plus the 40 ms the underrun taught it.
        assert!(
            mixer.buffered_ms(a).unwrap() <= 240.0,
            "{:?}",
            mixer.buffered_ms(a)
        );
        assert!(mixer.counters(a).unwrap().samples_dropped > 0);
        mixer.remove_stream(a);
        assert!(mixer.counters(a).is_none());
    }

    #[test]
    fn bursty_arrival_grows_the_cushion_until_playback_is_smooth() {
        let mut mixer = Mixer::default();
        let a = mixer.add_stream();
        let mut out = vec![0i16; 480 * 2]; // 10 ms device
        let mut trouble_per_cycle = Vec::new();
        // 300 ms of audio arrives every 300 ms, in one burst.
        for _ in 0..40 {
            let before = mixer.counters(a).unwrap();
            for _ in 0..15 {
                mixer.push(a, &frame(5, 1));
            }
            for _ in 0..30 {
                mixer.render(&mut out);
            }
            let after = mixer.counters(a).unwrap();
            trouble_per_cycle.push((
                after.underruns - before.underruns,
                after.samples_dropped - before.samples_dropped,
            ));
        }
        let c = mixer.counters(a).unwrap();
        assert!(c.underruns > 0, "bursts do starve a 60 ms cushion at first");
        assert!(
            trouble_per_cycle[10..].iter().all(|&t| t == (0, 0)),
            "then it adapts and plays everything: {trouble_per_cycle:?}"
        );
    }

    #[test]
    fn a_device_with_long_periods_gets_a_deeper_buffer() {
        let mut mixer = Mixer::default();
        let a = mixer.add_stream();
        // The device asks for 500 ms at a time.
        let mut out = vec![0i16; 24_000 * 2];
        mixer.render(&mut out);
        for _ in 0..30 {
            mixer.push(a, &frame(5, 1)); // 600 ms
        }
        assert_eq!(
            mixer.counters(a).unwrap().samples_dropped,
            0,
            "kept, not dropped"
        );
        mixer.render(&mut out);
        let c = mixer.counters(a).unwrap();
        assert_eq!((c.samples_played, c.underruns), (24_000, 0));
    }
}
