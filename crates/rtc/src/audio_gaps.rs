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
//! A packet that comes after a frame was made up in its time is late, not lost, and is still
//! decoded; it was not silence either. (NetEq drops such a packet, because it decides at the
//! moment of playout that its time has passed; here frames are made up ahead of the playout
//! buffer, on a guess of when it will need them, and dropping on that guess was measured to
//! cost audio on a loaded machine: a far end's steady tone came back through a speaker and a
//! microphone 10 to 27 dB lower than it went out, against 10 to 13 dB when late packets were
//! decoded. Making the guess wait a frame longer after each late packet still measured 10 to
//! 19 dB.)
//!
//! No I/O and no clock of its own: the receiving task passes the time in and acts on what
//! this says.
use std::time::{Duration, Instant};

/// Opus frames are made up 20 ms at a time: 960 ticks of the 48 kHz RTP clock.
const FRAME_TICKS: u32 = 960;
const TICKS_PER_MS: u32 = 48;
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
    /// The sequence number the next packet should have.
    next_sequence: Option<u16>,
    /// The RTP timestamp of the next 20 ms to play, whether a packet brings it or it is made up.
    next_timestamp: u32,
    /// The last packet decoded: when it came, and its timestamp. What follows it is due by the
    /// RTP clock from then.
    anchor: Option<(Instant, u32)>,
    /// Frames made up since the last packet decoded.
    made_up: u32,
}

/// Ticks from `from` to `to` on the RTP clock, if `to` is not behind `from`.
fn ticks_ahead(from: u32, to: u32) -> Option<u32> {
    let ticks = to.wrapping_sub(from);
    (ticks < 0x8000_0000).then_some(ticks)
}

fn ticks(duration: Duration) -> u32 {
    u32::try_from(duration.as_millis()).unwrap_or(u32::MAX / TICKS_PER_MS) * TICKS_PER_MS
}

impl AudioGaps {
    /// A packet came, `sequence` and `timestamp` from its header, `duration` in RTP ticks
    /// (what its frames last: 960 for the usual 20 ms): what to make up before decoding it (in
    /// its place, if it carries FEC for the last of them), or `None` if it comes behind a
    /// packet already decoded (reordered past its time, or a duplicate: dropped).
    pub(crate) fn packet(
        &mut self,
        now: Instant,
        sequence: u16,
        timestamp: u32,
        duration: u32,
    ) -> Option<Gap> {
        let mut gap = Gap::default();
        if let (Some(next_sequence), Some((anchor_at, _))) = (self.next_sequence, self.anchor) {
            let lost = sequence.wrapping_sub(next_sequence);
            if lost >= 0x8000 {
                return None;
            }
            gap.lost = u64::from(lost);
            // After a silence longer than any DTX pause the stream starts afresh: nothing is
            // owed for it, and its timestamps are taken as they come.
            let stopped = now.duration_since(anchor_at) > LONGEST_PAUSE + SLACK;
            if !stopped {
                match ticks_ahead(self.next_timestamp, timestamp) {
                    Some(missing) => {
                        // Frames missing by the clock: a DTX pause shows only here.
                        gap.make_up = (missing / FRAME_TICKS).min(MOST_AT_ONCE);
                        gap.with_fec = lost > 0 && gap.make_up > 0;
                    }
                    None if self.next_timestamp.wrapping_sub(timestamp) <= ticks(LONGEST_PAUSE) => {
                        // A frame was made up in its time: it is late, not lost.
                        gap.late = true;
                    }
                    // Far behind: the sender's clock jumped back. Take it as it comes.
                    None => {}
                }
            }
            // Nothing lost: what was missing was silence left out, not audio (unless it came,
            // late).
            if lost == 0 && !gap.late {
                gap.silence_made_up = self.made_up + gap.make_up;
            }
        }
        self.next_sequence = Some(sequence.wrapping_add(1));
        self.next_timestamp = timestamp.wrapping_add(duration);
        self.anchor = Some((now, timestamp));
        self.made_up = 0;
        Some(gap)
    }

    /// When a frame is next due to be made up if nothing comes first.
    pub(crate) fn timeout(&self) -> Option<Instant> {
        let (anchor_at, anchor_timestamp) = self.anchor?;
        // The next frame is due when what came before it has played, counted on the RTP clock
        // from the last packet decoded, which was due when it came.
        let ahead = self.next_timestamp.wrapping_sub(anchor_timestamp) / TICKS_PER_MS;
        let late = Duration::from_millis(u64::from(ahead)) + SLACK;
        (late <= LONGEST_PAUSE).then_some(anchor_at + late)
    }

    /// Whether a frame should be made up now (and counts it as made up).
    pub(crate) fn make_up_now(&mut self, now: Instant) -> bool {
        match self.timeout() {
            Some(due) if now >= due => {
                self.made_up += 1;
                self.next_timestamp = self.next_timestamp.wrapping_add(FRAME_TICKS);
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
    /// A frame was made up in this packet's time: it came late.
    pub(crate) late: bool,
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

    /// A 20 ms packet, which is expected to be decoded: what to make up first.
    fn decoded(gaps: &mut AudioGaps, now: Instant, sequence: u16, timestamp: u32) -> Gap {
        gaps.packet(now, sequence, timestamp, FRAME_TICKS)
            .unwrap_or_else(|| panic!("packet {sequence} should be decoded"))
    }

    #[test]
    fn a_steady_stream_needs_nothing_made_up() {
        let mut gaps = AudioGaps::default();
        let start = Instant::now();
        for i in 0..50u16 {
            let gap = decoded(
                &mut gaps,
                at(start, u64::from(i) * 20),
                i,
                u32::from(i) * 960,
            );
            assert_eq!(gap, Gap::default());
            assert!(!gaps.make_up_now(at(start, u64::from(i) * 20 + 19)));
        }
    }

    #[test]
    fn packets_of_ten_milliseconds_are_all_decoded() {
        let mut gaps = AudioGaps::default();
        let start = Instant::now();
        for i in 0..100u16 {
            let arrival = gaps.packet(at(start, u64::from(i) * 10), i, u32::from(i) * 480, 480);
            assert_eq!(arrival, Some(Gap::default()), "packet {i}");
        }
    }

    #[test]
    fn a_dtx_pause_is_filled_in_time_and_not_again_when_the_stream_resumes() {
        let mut gaps = AudioGaps::default();
        let start = Instant::now();
        decoded(&mut gaps, start, 100, 0);
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
        let gap = decoded(&mut gaps, at(start, 400), 101, 20 * 960);
        assert_eq!(gap.lost, 0);
        assert_eq!(gap.make_up, 2, "19 frames were missing, 17 made up already");
        assert!(!gap.with_fec);
        assert_eq!(gap.silence_made_up, 19, "all of it silence left out");
    }

    #[test]
    fn lost_packets_are_made_up_once_with_fec_from_the_next() {
        let mut gaps = AudioGaps::default();
        let start = Instant::now();
        decoded(&mut gaps, start, 10, 0);
        // 11 and 12 lost; 13 comes on time, before anything was made up.
        let gap = decoded(&mut gaps, at(start, 60), 13, 3 * 960);
        assert_eq!(
            gap,
            Gap {
                make_up: 2,
                lost: 2,
                with_fec: true,
                ..Gap::default()
            }
        );
        // A late 12 is dropped.
        assert_eq!(gaps.packet(at(start, 70), 12, 2 * 960, FRAME_TICKS), None);
    }

    #[test]
    fn a_packet_that_comes_after_a_frame_was_made_up_in_its_time_is_late_not_lost() {
        let mut gaps = AudioGaps::default();
        let start = Instant::now();
        decoded(&mut gaps, start, 0, 0);
        // Packet 1 is held up on the way: its frame is made up 60 ms after it was due.
        assert_eq!(run_until(&mut gaps, start, 85), vec![80]);
        let gap = decoded(&mut gaps, at(start, 90), 1, 960);
        assert_eq!(
            gap,
            Gap {
                late: true,
                ..Gap::default()
            },
            "nothing lost, nothing left to make up, and what was made up was not silence"
        );
        // Packet 2 follows it in time.
        assert_eq!(
            decoded(&mut gaps, at(start, 95), 2, 2 * 960),
            Gap::default()
        );
    }

    #[test]
    fn a_long_gap_is_made_up_only_so_far() {
        let mut gaps = AudioGaps::default();
        let start = Instant::now();
        decoded(&mut gaps, start, 0, 0);
        // 30 packets lost in a burst, arriving together: at most 100 ms made up at once.
        let gap = decoded(&mut gaps, at(start, 20), 31, 31 * 960);
        assert_eq!(gap.make_up, 5);
        assert_eq!(gap.lost, 30);
    }

    #[test]
    fn a_stream_that_stopped_is_not_filled_for_ever() {
        let mut gaps = AudioGaps::default();
        let start = Instant::now();
        decoded(&mut gaps, start, 0, 0);
        let made = run_until(&mut gaps, start, 60_000);
        assert_eq!(
            made.last(),
            Some(&1000),
            "filled for a second, then left silent"
        );
        assert_eq!(gaps.timeout(), None);
        // It resumes: nothing is owed for the long silence.
        let gap = decoded(&mut gaps, at(start, 60_000), 1, 3000 * 960);
        assert_eq!(gap.make_up, 0);
        // Nor is a sender whose clock jumped far back taken as late.
        let gap = decoded(&mut gaps, at(start, 60_020), 2, 5 * 960);
        assert_eq!(gap.make_up, 0);
    }

    #[test]
    fn nothing_is_made_up_before_the_first_packet() {
        let mut gaps = AudioGaps::default();
        assert_eq!(gaps.timeout(), None);
        assert!(!gaps.make_up_now(Instant::now()));
    }
}
