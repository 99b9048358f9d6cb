//! When a received Opus stream needs frames made up: lost packets, and silences the sender
//! left out (discontinuous transmission, DTX).
//!
//! A sender using DTX stops sending during silence, apart from a comfort-noise update every
//! 400 ms; the sequence numbers go on without a gap, the timestamps jump. The playout buffer
//! must not run dry meanwhile: to it a dry spell is an underrun, and it answers one by holding
//! 40 ms more of audio from then on, so that a few silences would leave the next words half a
//! second late. So the receiver makes up a frame (Opus's concealment, which after a DTX packet
//! is comfort noise) each time one is due and nothing came, as libwebrtc's NetEq does, and when
//! the stream resumes it makes up only what is still missing. A stream silent for longer than
//! any DTX pause has stopped (the sender muted it, or the link is gone): nothing is made up.
//!
//! No I/O and no clock of its own: the receiving task passes the time in and acts on what
//! this says.
use std::time::{Duration, Instant};

/// Opus frames here are 20 ms: 960 ticks of the 48 kHz RTP clock.
pub(crate) const FRAME: Duration = Duration::from_millis(20);
const FRAME_TICKS: u32 = 960;
/// How late a frame may be before one is made up in its place: the playout buffer holds 60 ms
/// before it plays, so a frame this late would otherwise have left it short.
const SLACK: Duration = Duration::from_millis(60);
/// A silence longer than this is not DTX (which updates every 400 ms): stop making frames up.
const LONGEST_PAUSE: Duration = Duration::from_secs(1);
/// At most this many frames are made up at once when a packet arrives after a gap (100 ms);
/// beyond that, silence is the honest answer.
const MOST_AT_ONCE: u32 = 5;

#[derive(Debug, Default)]
pub(crate) struct AudioGaps {
    /// The sequence number and RTP timestamp the next packet should have.
    expected: Option<(u16, u32)>,
    /// When the last packet came.
    last_arrival: Option<Instant>,
    /// Frames made up since the last packet.
    made_up: u32,
}

impl AudioGaps {
    /// A packet came: how many frames to make up before decoding it (in its place, if it
    /// carries FEC for the last of them), or `None` if it is late or a duplicate (dropped).
    pub(crate) fn packet(&mut self, now: Instant, sequence: u16, timestamp: u32) -> Option<Gap> {
        let mut gap = Gap::default();
        if let Some((next_sequence, next_timestamp)) = self.expected {
            let lost = sequence.wrapping_sub(next_sequence);
            if lost >= 0x8000 {
                return None;
            }
            // Frames missing by the clock (a DTX pause shows only here), and by count.
            let ticks = timestamp.wrapping_sub(next_timestamp);
            let missing = if ticks < 0x8000_0000 {
                (ticks / FRAME_TICKS).max(u32::from(lost))
            } else {
                u32::from(lost)
            };
            gap.lost = u64::from(lost);
            // After a silence longer than any DTX pause the stream starts afresh: nothing is
            // owed for it.
            let stopped = self
                .last_arrival
                .is_some_and(|last| now.duration_since(last) > LONGEST_PAUSE + SLACK);
            if !stopped {
                gap.make_up = missing.saturating_sub(self.made_up).min(MOST_AT_ONCE);
            }
            gap.with_fec = lost > 0 && gap.make_up > 0;
            // Nothing lost: what was missing was silence left out, not audio.
            gap.silence_made_up = if lost == 0 {
                self.made_up + gap.make_up
            } else {
                0
            };
        }
        self.expected = Some((
            sequence.wrapping_add(1),
            timestamp.wrapping_add(FRAME_TICKS),
        ));
        self.last_arrival = Some(now);
        self.made_up = 0;
        Some(gap)
    }

    /// When a frame is next due to be made up if nothing comes first.
    pub(crate) fn timeout(&self) -> Option<Instant> {
        let last = self.last_arrival?;
        let due = last + SLACK + FRAME * (self.made_up + 1);
        (due.duration_since(last) <= LONGEST_PAUSE).then_some(due)
    }

    /// Whether a frame should be made up now (and counts it as made up).
    pub(crate) fn make_up_now(&mut self, now: Instant) -> bool {
        match self.timeout() {
            Some(due) if now >= due => {
                self.made_up += 1;
                true
            }
            _ => false,
        }
    }
}

/// What to make up before decoding a packet.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Gap {
    /// Frames to make up first.
    pub(crate) make_up: u32,
    /// Packets lost before this one (by sequence number).
    pub(crate) lost: u64,
    /// The last frame made up may come from this packet's in-band FEC: packets were lost, and
    /// this one follows the last of them.
    pub(crate) with_fec: bool,
    /// Nothing was lost: the frames made up since the last packet (and now) stood in for
    /// silence the sender left out.
    pub(crate) silence_made_up: u32,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_time::at;

    /// Feeds `gaps` the way the receiving task does, until `until_ms`: returns the times (ms)
    /// frames were made up.
    fn run_until(gaps: &mut AudioGaps, start: Instant, until_ms: u64) -> Vec<u64> {
        let mut made = Vec::new();
        while let Some(due) = gaps.timeout() {
            if due > at(start, until_ms) {
                break;
            }
            assert!(gaps.make_up_now(due));
            made.push(due.duration_since(start).as_millis() as u64);
        }
        made
    }

    #[test]
    fn a_steady_stream_needs_nothing_made_up() {
        let mut gaps = AudioGaps::default();
        let start = Instant::now();
        for i in 0..50u16 {
            let gap = gaps
                .packet(at(start, u64::from(i) * 20), i, u32::from(i) * 960)
                .expect("in order");
            assert_eq!(gap, Gap::default());
            assert!(!gaps.make_up_now(at(start, u64::from(i) * 20 + 19)));
        }
    }

    #[test]
    fn a_dtx_pause_is_filled_in_time_and_not_again_when_the_stream_resumes() {
        let mut gaps = AudioGaps::default();
        let start = Instant::now();
        gaps.packet(start, 100, 0);
        // The sender stops for 400 ms (20 frames' time), then sends its next packet: the
        // sequence goes on, the timestamp jumps by 20 frames.
        let made = run_until(&mut gaps, start, 400);
        assert_eq!(
            made.first(),
            Some(&80),
            "first made up 60 ms after it was due"
        );
        assert_eq!(made.len(), 17, "{made:?}");
        assert!(
            made.windows(2).all(|w| w[1] - w[0] == 20),
            "one every 20 ms"
        );
        let gap = gaps
            .packet(at(start, 400), 101, 20 * 960)
            .expect("in order");
        assert_eq!(gap.lost, 0);
        assert_eq!(gap.make_up, 2, "19 frames were missing, 17 made up already");
        assert!(!gap.with_fec);
        assert_eq!(gap.silence_made_up, 19, "all of it silence left out");
    }

    #[test]
    fn lost_packets_are_made_up_once_with_fec_from_the_next() {
        let mut gaps = AudioGaps::default();
        let start = Instant::now();
        gaps.packet(start, 10, 0);
        // 11 and 12 lost; 13 comes on time, before anything was made up.
        let gap = gaps.packet(at(start, 60), 13, 3 * 960).expect("in order");
        assert_eq!(
            gap,
            Gap {
                make_up: 2,
                lost: 2,
                with_fec: true,
                silence_made_up: 0,
            }
        );
        // A late 12 is dropped.
        assert_eq!(gaps.packet(at(start, 70), 12, 2 * 960), None);
    }

    #[test]
    fn a_long_gap_is_made_up_only_so_far() {
        let mut gaps = AudioGaps::default();
        let start = Instant::now();
        gaps.packet(start, 0, 0);
        // 30 packets lost in a burst, arriving together: at most 100 ms made up at once.
        let gap = gaps.packet(at(start, 20), 31, 31 * 960).expect("in order");
        assert_eq!(gap.make_up, 5);
        assert_eq!(gap.lost, 30);
    }

    #[test]
    fn a_stream_that_stopped_is_not_filled_for_ever() {
        let mut gaps = AudioGaps::default();
        let start = Instant::now();
        gaps.packet(start, 0, 0);
        let made = run_until(&mut gaps, start, 60_000);
        assert_eq!(
            made.last(),
            Some(&1000),
            "filled for a second, then left silent"
        );
        assert_eq!(gaps.timeout(), None);
        // It resumes: nothing is owed for the long silence.
        let gap = gaps
            .packet(at(start, 60_000), 1, 3000 * 960)
            .expect("in order");
        assert_eq!(gap.make_up, 0);
    }

    #[test]
    fn nothing_is_made_up_before_the_first_packet() {
        let mut gaps = AudioGaps::default();
        assert_eq!(gaps.timeout(), None);
        assert!(!gaps.make_up_now(Instant::now()));
    }
}
