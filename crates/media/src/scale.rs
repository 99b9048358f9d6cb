//! Downscaling I420 frames, for sending a smaller picture on a thin link: to three quarters of
//! the source's size, a half, or a quarter, the steps a resolution ladder takes (720p → 540p →
//! 360p → 180p).
//!
//! Box filters: each output sample is the mean of the source area under it. Cheap (well under a
//! millisecond for 720p → 360p), free of aliasing for these factors, and exact inside the flat
//! blocks of the test pattern's stamp, which therefore survives the trip.
use crate::VideoFrame;

/// A picture size relative to the source's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scale {
    Full,
    ThreeQuarters,
    Half,
    Quarter,
}

impl Scale {
    fn quarters(self) -> usize {
        match self {
            Scale::Full => 4,
            Scale::ThreeQuarters => 3,
            Scale::Half => 2,
            Scale::Quarter => 1,
        }
    }
}

/// The size `scale` gives, kept even as I420 needs.
pub fn scaled_size(width: usize, height: usize, scale: Scale) -> (usize, usize) {
    let even = |v: usize| (v * scale.quarters() / 4) & !1;
    (even(width), even(height))
}

/// The frame at `scale` of its size (a packed copy of it at full size). The planes are read
/// through their strides, not copied first.
pub fn downscale(frame: &VideoFrame, scale: Scale) -> VideoFrame {
    match scale {
        Scale::Full => frame.packed(),
        Scale::ThreeQuarters => three_quarters(frame),
        Scale::Half => halve(frame),
        Scale::Quarter => halve(&halve(frame)),
    }
}

/// One plane of a source frame.
#[derive(Clone, Copy)]
struct Plane<'a> {
    samples: &'a [u8],
    stride: usize,
    width: usize,
    height: usize,
}

/// A plane resampled to a `(width, height)`.
type Resample = fn(Plane, (usize, usize)) -> Vec<u8>;

/// `frame`'s planes resampled to `(width, height)` by `resample`.
fn resized(frame: &VideoFrame, (width, height): (usize, usize), resample: Resample) -> VideoFrame {
    let (cw, ch) = (width / 2, height / 2);
    let chroma = |samples| Plane {
        samples,
        stride: frame.stride_uv,
        width: frame.width / 2,
        height: frame.height / 2,
    };
    let luma = Plane {
        samples: &frame.y,
        stride: frame.stride_y,
        width: frame.width,
        height: frame.height,
    };
    VideoFrame {
        width,
        height,
        y: resample(luma, (width, height)),
        u: resample(chroma(&frame.u), (cw, ch)),
        v: resample(chroma(&frame.v), (cw, ch)),
        stride_y: width,
        stride_uv: cw,
        captured_at: frame.captured_at,
    }
}

fn halve(frame: &VideoFrame) -> VideoFrame {
    let size = scaled_size(frame.width, frame.height, Scale::Half);
    resized(frame, size, halve_plane)
}

fn three_quarters(frame: &VideoFrame) -> VideoFrame {
    let size = scaled_size(frame.width, frame.height, Scale::ThreeQuarters);
    resized(frame, size, three_quarters_plane)
}

/// Each output sample is the rounded mean of the 2×2 block under it.
fn halve_plane(plane: Plane, (width, height): (usize, usize)) -> Vec<u8> {
    let mut out = Vec::with_capacity(width * height);
    for y in 0..height {
        let top = &plane.samples[2 * y * plane.stride..];
        let bottom = &plane.samples[(2 * y + 1) * plane.stride..];
        out.extend((0..width).map(|x| {
            let sum = top[2 * x] as u16
                + top[2 * x + 1] as u16
                + bottom[2 * x] as u16
                + bottom[2 * x + 1] as u16;
            ((sum + 2) / 4) as u8
        }));
    }
    out
}

/// The two source samples under output sample `i` of a 4 → 3 resampling and their weights (in
/// quarters): every 3 outputs cover 4 inputs, each output 4/3 of them. Indices past the
/// source's last sample (a size not a multiple of 4) repeat it.
fn three_quarters_taps(i: usize, source_len: usize) -> [(usize, u16); 2] {
    let base = i / 3 * 4;
    let last = source_len.saturating_sub(1);
    let at = |offset: usize| (base + offset).min(last);
    match i % 3 {
        0 => [(at(0), 3), (at(1), 1)],
        1 => [(at(1), 2), (at(2), 2)],
        _ => [(at(2), 1), (at(3), 3)],
    }
}

/// Each output sample is the rounded mean of the 4/3 × 4/3 source area under it.
fn three_quarters_plane(plane: Plane, (width, height): (usize, usize)) -> Vec<u8> {
    // Across first: each source row once (a row feeds one or two output rows), in quarters of a
    // sample. Whole groups of 4 samples → 3 with fixed weights; the columns of a width that is
    // not a multiple of 3 through the taps.
    let whole = (width / 3).min(plane.width / 4);
    let across: Vec<Vec<u16>> = (0..plane.height)
        .map(|y| {
            let row = &plane.samples[y * plane.stride..y * plane.stride + plane.width];
            let mut out = Vec::with_capacity(width);
            for s in row.chunks_exact(4).take(whole) {
                let [a, b, c, d] = [s[0], s[1], s[2], s[3]].map(u16::from);
                out.extend([3 * a + b, 2 * (b + c), c + 3 * d]);
            }
            out.extend((whole * 3..width).map(|x| {
                let [(a, wa), (b, wb)] = three_quarters_taps(x, plane.width);
                row[a] as u16 * wa + row[b] as u16 * wb
            }));
            out
        })
        .collect();
    let mut out = Vec::with_capacity(width * height);
    for y in 0..height {
        let [(a, wa), (b, wb)] = three_quarters_taps(y, plane.height);
        let (wa, wb) = (u32::from(wa), u32::from(wb));
        out.extend(
            across[a]
                .iter()
                .zip(&across[b])
                .map(|(&t, &u)| ((u32::from(t) * wa + u32::from(u) * wb + 8) / 16) as u8),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pattern::{read_stamp, TestPattern};
    use crate::source::{VideoConstraints, VideoSource};
    use std::time::Duration;

    #[test]
    fn sizes_scale_and_stay_even() {
        assert_eq!(scaled_size(1280, 720, Scale::Full), (1280, 720));
        assert_eq!(scaled_size(1280, 720, Scale::ThreeQuarters), (960, 540));
        assert_eq!(scaled_size(1280, 720, Scale::Half), (640, 360));
        assert_eq!(scaled_size(1280, 720, Scale::Quarter), (320, 180));
        assert_eq!(scaled_size(640, 480, Scale::ThreeQuarters), (480, 360));
        assert_eq!(scaled_size(640, 480, Scale::Quarter), (160, 120));
        assert_eq!(
            scaled_size(1366, 768, Scale::Quarter),
            (340, 192),
            "341 is rounded down to even"
        );
        assert_eq!(scaled_size(1920, 1080, Scale::ThreeQuarters), (1440, 810));
    }

    #[test]
    fn three_quarters_averages_the_area_under_each_sample() {
        // 8×4 luma: two 4-wide runs across; chroma 4×2.
        let mut frame = VideoFrame::black(8, 4, Duration::from_millis(3));
        frame.y = [[0u8, 40, 80, 120, 200, 200, 200, 200]; 4].concat();
        frame.u = vec![0, 100, 200, 40, 0, 100, 200, 40];
        frame.v = vec![50; 8];
        let small = downscale(&frame, Scale::ThreeQuarters);
        assert_eq!((small.width, small.height), (6, 2));
        // Outputs cover inputs [0, 4/3), [4/3, 8/3), [8/3, 4): weights 3:1, 2:2, 1:3 quarters.
        assert_eq!(small.y, [[10u8, 60, 110, 200, 200, 200]; 2].concat());
        assert_eq!(small.u, vec![25, 150, 80]);
        assert_eq!(small.v, vec![50; 3]);
        assert_eq!(small.captured_at, Duration::from_millis(3));
    }

    #[test]
    fn a_halving_averages_each_block() {
        let mut frame = VideoFrame::black(4, 2, Duration::ZERO);
        frame.y = vec![0, 4, 10, 10, 8, 4, 10, 11];
        frame.u = vec![100, 200];
        frame.v = vec![50, 50];
        let half = downscale(&frame, Scale::Half);
        assert_eq!(
            (half.width, half.height),
            (2, 0),
            "a 2-row frame halves to zero rows"
        );

        let mut frame = VideoFrame::black(4, 4, Duration::from_millis(7));
        frame.y = vec![0, 4, 10, 10, 8, 4, 10, 11, 1, 1, 1, 1, 1, 1, 1, 1];
        frame.u = vec![100, 200, 100, 200];
        frame.v = vec![50, 51, 52, 53];
        let half = downscale(&frame, Scale::Half);
        assert_eq!((half.width, half.height), (2, 2));
        assert_eq!(half.y, vec![4, 10, 1, 1]);
        assert_eq!(half.u, vec![150]);
        assert_eq!(half.v, vec![52]);
        assert_eq!(half.captured_at, Duration::from_millis(7));
    }

    #[test]
    fn three_quarters_of_a_size_not_a_multiple_of_four_repeats_the_last_sample() {
        // 14×10 luma: 3 whole groups across and a tail of 2 samples; 10 rows → 7, kept at 6.
        let mut frame = VideoFrame::black(14, 10, Duration::ZERO);
        frame.y = (0..140).map(|i| (i * 37 % 251) as u8).collect();
        let small = downscale(&frame, Scale::ThreeQuarters);
        assert_eq!((small.width, small.height), (10, 6));
        // Sample by sample from the taps alone.
        let taps = |i, len| three_quarters_taps(i, len);
        for y in 0..6 {
            for x in 0..10 {
                let mut sum = 0u32;
                for (row, wy) in taps(y, 10) {
                    for (column, wx) in taps(x, 14) {
                        sum += u32::from(frame.y[row * 14 + column]) * u32::from(wx * wy);
                    }
                }
                assert_eq!(u32::from(small.y[y * 10 + x]), (sum + 8) / 16, "({x}, {y})");
            }
        }
        // Output column 9 starts the source's last, partial group: columns 12 and 13 at 3:1.
        assert_eq!(taps(9, 14), [(12, 3), (13, 1)]);
    }

    #[test]
    fn a_frame_with_padded_rows_scales_as_its_packed_copy() {
        let mut pattern = TestPattern::new(VideoConstraints {
            width: 320,
            height: 240,
            fps: 30,
        })
        .unwrap();
        let packed = pattern.next_frame().unwrap();
        // The same picture with 16 bytes of padding after each row, as a decoder hands it out.
        let pad = |plane: &[u8], width: usize| -> Vec<u8> {
            plane
                .chunks(width)
                .flat_map(|row| row.iter().copied().chain([0xAA; 16]))
                .collect()
        };
        let padded = VideoFrame {
            y: pad(&packed.y, 320),
            u: pad(&packed.u, 160),
            v: pad(&packed.v, 160),
            stride_y: 336,
            stride_uv: 176,
            ..packed.clone()
        };
        for scale in [
            Scale::Full,
            Scale::ThreeQuarters,
            Scale::Half,
            Scale::Quarter,
        ] {
            assert_eq!(
                downscale(&padded, scale),
                downscale(&packed, scale),
                "{scale:?}"
            );
        }
    }

    #[test]
    fn the_stamp_survives_the_steps_a_ladder_takes() {
        use Scale::*;
        for (width, height, scale) in [
            (1280, 720, ThreeQuarters),
            (1280, 720, Half),
            (1280, 720, Quarter),
            (640, 480, ThreeQuarters),
            (640, 480, Half),
            (320, 240, ThreeQuarters),
        ] {
            let mut pattern = TestPattern::new(VideoConstraints {
                width,
                height,
                fps: 30,
            })
            .unwrap();
            let frame = pattern.next_frame().unwrap();
            let stamp = read_stamp(&frame).expect("stamp at full size");
            let small = downscale(&frame, scale);
            assert_eq!(
                read_stamp(&small),
                Some(stamp),
                "{width}x{height} at {scale:?}"
            );
        }
    }
}
