//! A moving test pattern that carries its frame number and capture time in its pixels, so a
//! receiver can measure glass-to-glass latency and spot frozen or skipped frames after the
//! picture went through an encoder, the network and a decoder.
//!
//! The stamp is 96 bits drawn as a 24×4 grid of square blocks in the top-left corner (16 px
//! blocks, 8 px below 384 px width): 32 bits frame number, 56 bits capture time in microseconds
//! since the Unix epoch, 8 bits checksum. A block is bright (235) for 1 and dark (16) for 0; the
//! blocks line up with H.264 macroblocks so they survive compression.
use std::time::Duration;

use crate::frame::wall_clock;
use crate::source::{Pacer, VideoConstraints, VideoFormat, VideoSource};
use crate::{MediaError, VideoFrame};

const COLUMNS: usize = 24;
const ROWS: usize = 4;

/// What the pattern says about itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    pub frame_number: u32,
    pub captured_at: Duration,
}

fn block_size(width: usize) -> usize {
    if width >= COLUMNS * 16 {
        16
    } else {
        8
    }
}

/// The smallest frame the stamp fits in.
pub const MIN_WIDTH: usize = COLUMNS * 8;
pub const MIN_HEIGHT: usize = ROWS * 8 * 2;

fn checksum(bytes: &[u8]) -> u8 {
    bytes.iter().fold(0xA5, |acc, b| acc.rotate_left(1) ^ b)
}

fn stamp_bits(stamp: Stamp) -> [bool; COLUMNS * ROWS] {
    let mut bytes = [0u8; 12];
    bytes[..4].copy_from_slice(&stamp.frame_number.to_be_bytes());
    let micros = (stamp.captured_at.as_micros() as u64) & ((1 << 56) - 1);
    bytes[4..11].copy_from_slice(&micros.to_be_bytes()[1..]);
    bytes[11] = checksum(&bytes[..11]);
    let mut bits = [false; COLUMNS * ROWS];
    for (i, bit) in bits.iter_mut().enumerate() {
        *bit = bytes[i / 8] & (0x80 >> (i % 8)) != 0;
    }
    bits
}

/// Draws the stamp into the frame's top-left corner.
pub fn write_stamp(frame: &mut VideoFrame, stamp: Stamp) {
    let b = block_size(frame.width);
    for (i, bit) in stamp_bits(stamp).iter().enumerate() {
        let (bx, by) = ((i % COLUMNS) * b, (i / COLUMNS) * b);
        let value = if *bit { 235 } else { 16 };
        for y in by..by + b {
            let row = y * frame.stride_y;
            frame.y[row + bx..row + bx + b].fill(value);
        }
        for y in by / 2..(by + b) / 2 {
            let row = y * frame.stride_uv;
            frame.u[row + bx / 2..row + (bx + b) / 2].fill(128);
            frame.v[row + bx / 2..row + (bx + b) / 2].fill(128);
        }
    }
}

/// Reads the stamp back, or `None` if the frame carries none (or it was damaged beyond reading).
///
/// A frame the sender scaled down carries the stamp with smaller blocks than its width implies,
/// so every block size the stamp can have is tried (16 or 8 px, halved, or at three quarters:
/// 12 or 6 px); a wrong size averages across block edges and reads as undecided, and the
/// checksum catches the rest.
pub fn read_stamp(frame: &VideoFrame) -> Option<Stamp> {
    let natural = block_size(frame.width);
    std::iter::once(natural)
        .chain([16, 12, 8, 6, 4].into_iter().filter(|&b| b != natural))
        .filter(|&b| COLUMNS * b <= frame.width && ROWS * b <= frame.height)
        .find_map(|b| read_stamp_with_blocks(frame, b))
}

fn read_stamp_with_blocks(frame: &VideoFrame, b: usize) -> Option<Stamp> {
    let mut bytes = [0u8; 12];
    for i in 0..COLUMNS * ROWS {
        let (bx, by) = ((i % COLUMNS) * b, (i / COLUMNS) * b);
        // Average the block's centre, away from edges that compression smears.
        let (from, to) = (b / 4, b - b / 4);
        let mut sum = 0u32;
        let mut n = 0u32;
        for y in by + from..by + to {
            for x in bx + from..bx + to {
                sum += frame.luma(x, y) as u32;
                n += 1;
            }
        }
        let mean = sum / n.max(1);
        // Written as 16 or 235: anything far from both is not a block of this size.
        if (70..=180).contains(&mean) {
            return None;
        }
        if mean > 125 {
            bytes[i / 8] |= 0x80 >> (i % 8);
        }
    }
    if checksum(&bytes[..11]) != bytes[11] {
        return None;
    }
    let frame_number = u32::from_be_bytes(bytes[..4].try_into().ok()?);
    let mut micros = [0u8; 8];
    micros[1..].copy_from_slice(&bytes[4..11]);
    Some(Stamp {
        frame_number,
        captured_at: Duration::from_micros(u64::from_be_bytes(micros)),
    })
}

/// The synthetic camera: a moving picture with a stamp, paced at the asked frame rate.
pub struct TestPattern {
    format: VideoFormat,
    frame_number: u32,
    pacer: Pacer,
}

impl TestPattern {
    pub fn new(constraints: VideoConstraints) -> Result<Self, MediaError> {
        let VideoConstraints { width, height, fps } = constraints;
        if width % 2 != 0 || height % 2 != 0 || width < MIN_WIDTH || height < MIN_HEIGHT {
            return Err(MediaError::Unsupported(format!(
                "test pattern size {width}x{height}: needs even sizes of at least {MIN_WIDTH}x{MIN_HEIGHT}"
            )));
        }
        if fps == 0 || fps > 120 {
            return Err(MediaError::Unsupported(format!("frame rate {fps}")));
        }
        Ok(TestPattern {
            format: VideoFormat { width, height, fps },
            frame_number: 0,
            pacer: Pacer::new(Duration::from_secs(1) / fps),
        })
    }

    /// Renders frame `n` without waiting (for benchmarks and tests).
    pub fn render(&self, n: u32, captured_at: Duration) -> VideoFrame {
        let VideoFormat { width, height, .. } = self.format;
        let mut frame = VideoFrame::black(width, height, captured_at);
        let shift = n as usize * 4;
        for y in 0..height {
            let row = &mut frame.y[y * width..(y + 1) * width];
            for (x, px) in row.iter_mut().enumerate() {
                *px = 16 + (((x + y + shift) & 0xff) * 219 / 255) as u8;
            }
        }
        let (cw, ch) = (width / 2, height / 2);
        for y in 0..ch {
            for x in 0..cw {
                frame.u[y * cw + x] = (64 + (x * 128 / cw)) as u8;
                frame.v[y * cw + x] = (64 + (y * 128 / ch)) as u8;
            }
        }
        // A bright square sweeping across, so motion is obvious to a person too.
        let side = (height / 4).max(16) & !1;
        let span = width.saturating_sub(side).max(1);
        let left = ((n as usize * 8) % span) & !1;
        let top = (height / 2).saturating_sub(side / 2) & !1;
        for y in top..(top + side).min(height) {
            frame.y[y * width + left..y * width + (left + side).min(width)].fill(235);
        }
        write_stamp(
            &mut frame,
            Stamp {
                frame_number: n,
                captured_at,
            },
        );
        frame
    }
}

impl VideoSource for TestPattern {
    fn format(&self) -> VideoFormat {
        self.format
    }

    fn next_frame(&mut self) -> Result<VideoFrame, MediaError> {
        self.pacer.wait();
        let frame = self.render(self.frame_number, wall_clock());
        self.frame_number = self.frame_number.wrapping_add(1);
        Ok(frame)
    }

    fn describe(&self) -> String {
        let f = self.format;
        format!("test pattern {}x{}@{}", f.width, f.height, f.fps)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stamp_reads_back_exactly() {
        let pattern = TestPattern::new(VideoConstraints {
            width: 320,
            height: 240,
            fps: 30,
        })
        .unwrap();
        let at = Duration::from_micros(1_763_751_600_123_456);
        let frame = pattern.render(123_456, at);
        assert_eq!(
            read_stamp(&frame),
            Some(Stamp {
                frame_number: 123_456,
                captured_at: at
            })
        );
    }

    #[test]
    fn a_damaged_stamp_is_rejected_not_misread() {
        let pattern = TestPattern::new(VideoConstraints {
            width: 640,
            height: 480,
            fps: 30,
        })
        .unwrap();
        let mut frame = pattern.render(7, Duration::from_secs(1));
        // Flip one block (bit 40).
        let (bx, by) = ((40 % COLUMNS) * 16, (40 / COLUMNS) * 16);
        for y in by..by + 16 {
            for x in bx..bx + 16 {
                let px = &mut frame.y[y * 640 + x];
                *px = if *px > 128 { 16 } else { 235 };
            }
        }
        assert_eq!(read_stamp(&frame), None);
        assert_eq!(
            read_stamp(&VideoFrame::black(640, 480, Duration::ZERO)),
            None
        );
    }

    #[test]
    fn consecutive_frames_differ_outside_the_stamp() {
        let pattern = TestPattern::new(VideoConstraints {
            width: 320,
            height: 240,
            fps: 30,
        })
        .unwrap();
        let a = pattern.render(1, Duration::ZERO);
        let b = pattern.render(2, Duration::ZERO);
        let below_stamp = 4 * 8 * 320;
        assert_ne!(a.y[below_stamp..], b.y[below_stamp..]);
    }

    #[test]
    fn odd_or_tiny_sizes_are_refused() {
        assert!(TestPattern::new(VideoConstraints {
            width: 321,
            height: 240,
            fps: 30
        })
        .is_err());
        assert!(TestPattern::new(VideoConstraints {
            width: 64,
            height: 64,
            fps: 30
        })
        .is_err());
        assert!(TestPattern::new(VideoConstraints {
            width: 320,
            height: 240,
            fps: 0
        })
        .is_err());
    }
}
