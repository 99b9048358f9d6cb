//! Pixel-format conversions to I420, for what cameras deliver: packed YUYV, semi-planar NV12,
//! and RGB (what an MJPEG frame decodes to). BT.601 limited range, as cameras and H.264 use.
use std::time::Duration;

use crate::{MediaError, VideoFrame};

fn check(
    data: &[u8],
    width: usize,
    height: usize,
    bytes_per_frame: usize,
    what: &str,
) -> Result<(), MediaError> {
    if width == 0 || height == 0 || !width.is_multiple_of(2) || !height.is_multiple_of(2) {
        return Err(MediaError::Unsupported(format!(
            "{what} frame of {width}x{height}"
        )));
    }
    if data.len() < bytes_per_frame {
        return Err(MediaError::Unsupported(format!(
            "{what} frame of {width}x{height} needs {bytes_per_frame} bytes, got {}",
            data.len()
        )));
    }
    Ok(())
}

/// YUYV 4:2:2 (Y0 U Y1 V for each pixel pair) to I420, averaging chroma over row pairs.
pub fn yuyv_to_i420(
    data: &[u8],
    width: usize,
    height: usize,
    captured_at: Duration,
) -> Result<VideoFrame, MediaError> {
    check(data, width, height, width * height * 2, "YUYV")?;
    let mut frame = VideoFrame::black(width, height, captured_at);
    let stride = width * 2;
    for y in 0..height {
        let row = &data[y * stride..(y + 1) * stride];
        for x in 0..width {
            frame.y[y * width + x] = row[x * 2];
        }
    }
    let cw = width / 2;
    for cy in 0..height / 2 {
        let (top, bottom) = (&data[2 * cy * stride..], &data[(2 * cy + 1) * stride..]);
        for cx in 0..cw {
            let i = cx * 4;
            frame.u[cy * cw + cx] = (top[i + 1] as u16 + bottom[i + 1] as u16).div_ceil(2) as u8;
            frame.v[cy * cw + cx] = (top[i + 3] as u16 + bottom[i + 3] as u16).div_ceil(2) as u8;
        }
    }
    Ok(frame)
}

/// NV12 (Y plane, then interleaved U/V at quarter resolution) to I420.
pub fn nv12_to_i420(
    data: &[u8],
    width: usize,
    height: usize,
    captured_at: Duration,
) -> Result<VideoFrame, MediaError> {
    check(data, width, height, width * height * 3 / 2, "NV12")?;
    let mut frame = VideoFrame::black(width, height, captured_at);
    frame.y.copy_from_slice(&data[..width * height]);
    let uv = &data[width * height..width * height * 3 / 2];
    for (i, pair) in uv.chunks_exact(2).enumerate() {
        frame.u[i] = pair[0];
        frame.v[i] = pair[1];
    }
    Ok(frame)
}

/// Packed RGB24 to I420.
pub fn rgb_to_i420(
    data: &[u8],
    width: usize,
    height: usize,
    captured_at: Duration,
) -> Result<VideoFrame, MediaError> {
    check(data, width, height, width * height * 3, "RGB")?;
    let mut frame = VideoFrame::black(width, height, captured_at);
    let px = |x: usize, y: usize| {
        let i = (y * width + x) * 3;
        (data[i] as i32, data[i + 1] as i32, data[i + 2] as i32)
    };
    for y in 0..height {
        for x in 0..width {
            let (r, g, b) = px(x, y);
            frame.y[y * width + x] =
                (((66 * r + 129 * g + 25 * b + 128) >> 8) + 16).clamp(0, 255) as u8;
        }
    }
    let cw = width / 2;
    for cy in 0..height / 2 {
        for cx in 0..cw {
            let (mut r, mut g, mut b) = (0, 0, 0);
            for (dx, dy) in [(0, 0), (1, 0), (0, 1), (1, 1)] {
                let p = px(2 * cx + dx, 2 * cy + dy);
                r += p.0;
                g += p.1;
                b += p.2;
            }
            let (r, g, b) = (r / 4, g / 4, b / 4);
            frame.u[cy * cw + cx] =
                (((-38 * r - 74 * g + 112 * b + 128) >> 8) + 128).clamp(0, 255) as u8;
            frame.v[cy * cw + cx] =
                (((112 * r - 94 * g - 18 * b + 128) >> 8) + 128).clamp(0, 255) as u8;
        }
    }
    Ok(frame)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yuyv_keeps_luma_and_averages_chroma() {
        // 2x2: row 0 = Y 10,20 U 100 V 200; row 1 = Y 30,40 U 110 V 210.
        let data = [10, 100, 20, 200, 30, 110, 40, 210];
        let f = yuyv_to_i420(&data, 2, 2, Duration::ZERO).unwrap();
        assert_eq!(f.y, vec![10, 20, 30, 40]);
        assert_eq!((f.u[0], f.v[0]), (105, 205));
    }

    #[test]
    fn nv12_splits_the_chroma_plane() {
        let data = [1, 2, 3, 4, 90, 160];
        let f = nv12_to_i420(&data, 2, 2, Duration::ZERO).unwrap();
        assert_eq!(f.y, vec![1, 2, 3, 4]);
        assert_eq!((f.u[0], f.v[0]), (90, 160));
    }

    #[test]
    fn rgb_matches_bt601_reference_colours() {
        let white = [255u8; 12];
        let f = rgb_to_i420(&white, 2, 2, Duration::ZERO).unwrap();
        assert_eq!((f.y[0], f.u[0], f.v[0]), (235, 128, 128));
        let red: Vec<u8> = [255, 0, 0].repeat(4);
        let f = rgb_to_i420(&red, 2, 2, Duration::ZERO).unwrap();
        assert_eq!((f.y[0], f.u[0], f.v[0]), (82, 90, 240));
    }

    #[test]
    fn short_or_odd_buffers_are_errors() {
        assert!(yuyv_to_i420(&[0; 7], 2, 2, Duration::ZERO).is_err());
        assert!(nv12_to_i420(&[0; 6], 3, 2, Duration::ZERO).is_err());
        assert!(rgb_to_i420(&[0; 5], 2, 2, Duration::ZERO).is_err());
    }
}
