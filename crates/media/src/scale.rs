//! Downscaling I420 frames by powers of two, for sending a smaller picture on a thin link.
//!
//! A 2×2 box filter per halving: cheap (well under a millisecond for 720p → 360p), free of
//! aliasing for the factors a resolution ladder needs, and exact on the flat blocks of the test
//! pattern's stamp, which therefore survives the trip.
use crate::VideoFrame;

/// The size `halvings` halvings give, kept even as I420 needs.
pub fn halved_size(width: usize, height: usize, halvings: u32) -> (usize, usize) {
    let even = |v: usize| (v >> halvings) & !1;
    (even(width), even(height))
}

/// The frame halved `halvings` times in each dimension (a copy of it for zero).
pub fn downscale(frame: &VideoFrame, halvings: u32) -> VideoFrame {
    let mut out = frame.packed();
    for _ in 0..halvings {
        out = halve(&out);
    }
    out
}

fn halve(frame: &VideoFrame) -> VideoFrame {
    let (width, height) = halved_size(frame.width, frame.height, 1);
    let (cw, ch) = (width / 2, height / 2);
    VideoFrame {
        width,
        height,
        y: halve_plane(&frame.y, frame.stride_y, width, height),
        u: halve_plane(&frame.u, frame.stride_uv, cw, ch),
        v: halve_plane(&frame.v, frame.stride_uv, cw, ch),
        stride_y: width,
        stride_uv: cw,
        captured_at: frame.captured_at,
    }
}

/// Each output sample is the rounded mean of the 2×2 block under it.
fn halve_plane(plane: &[u8], stride: usize, width: usize, height: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(width * height);
    for y in 0..height {
        let top = &plane[2 * y * stride..];
        let bottom = &plane[(2 * y + 1) * stride..];
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pattern::{read_stamp, TestPattern};
    use crate::source::{VideoConstraints, VideoSource};
    use std::time::Duration;

    #[test]
    fn sizes_halve_and_stay_even() {
        assert_eq!(halved_size(1280, 720, 0), (1280, 720));
        assert_eq!(halved_size(1280, 720, 1), (640, 360));
        assert_eq!(halved_size(1280, 720, 2), (320, 180));
        assert_eq!(halved_size(640, 480, 2), (160, 120));
        assert_eq!(
            halved_size(1366, 768, 2),
            (340, 192),
            "341 is rounded down to even"
        );
    }

    #[test]
    fn a_halving_averages_each_block() {
        let mut frame = VideoFrame::black(4, 2, Duration::ZERO);
        frame.y = vec![0, 4, 10, 10, 8, 4, 10, 11];
        frame.u = vec![100, 200];
        frame.v = vec![50, 50];
        let half = downscale(&frame, 1);
        assert_eq!(
            (half.width, half.height),
            (2, 0),
            "a 2-row frame halves to zero rows"
        );

        let mut frame = VideoFrame::black(4, 4, Duration::from_millis(7));
        frame.y = vec![0, 4, 10, 10, 8, 4, 10, 11, 1, 1, 1, 1, 1, 1, 1, 1];
        frame.u = vec![100, 200, 100, 200];
        frame.v = vec![50, 51, 52, 53];
        let half = downscale(&frame, 1);
        assert_eq!((half.width, half.height), (2, 2));
        assert_eq!(half.y, vec![4, 10, 1, 1]);
        assert_eq!(half.u, vec![150]);
        assert_eq!(half.v, vec![52]);
        assert_eq!(half.captured_at, Duration::from_millis(7));
    }

    #[test]
    fn the_stamp_survives_the_halvings_a_ladder_makes() {
        for (width, height, halvings) in [(1280, 720, 1), (1280, 720, 2), (640, 480, 1)] {
            let mut pattern = TestPattern::new(VideoConstraints {
                width,
                height,
                fps: 30,
            })
            .unwrap();
            let frame = pattern.next_frame().unwrap();
            let stamp = read_stamp(&frame).expect("stamp at full size");
            let small = downscale(&frame, halvings);
            assert_eq!(
                read_stamp(&small),
                Some(stamp),
                "{width}x{height} halved {halvings} times"
            );
        }
    }
}
