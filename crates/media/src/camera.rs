//! Cameras through nokhwa (desktop only: nokhwa has no Android backend). Each open camera runs
//! on a thread of its own and hands over I420 frames; MJPEG, YUYV and NV12 are converted.
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use nokhwa::pixel_format::RgbFormat;
use nokhwa::utils::{
    ApiBackend, CameraFormat, CameraIndex, FrameFormat, RequestedFormat, RequestedFormatType,
    Resolution,
};

use crate::convert::{nv12_to_i420, rgb_to_i420, yuyv_to_i420};
use crate::frame::wall_clock;
use crate::source::{VideoConstraints, VideoFormat, VideoSource};
use crate::{MediaError, VideoFrame};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CameraInfo {
    /// Pass this back to [`Camera::open`]. Stable while the device stays plugged in the same way.
    pub id: String,
    pub name: String,
}

/// Cameras on this machine; empty when there are none (or the platform offers no way to list).
pub fn cameras() -> Vec<CameraInfo> {
    match nokhwa::query(ApiBackend::Auto) {
        Ok(list) => list
            .into_iter()
            .map(|info| CameraInfo {
                id: info.index().to_string(),
                name: info.human_name(),
            })
            .collect(),
        Err(_) => Vec::new(),
    }
}

fn index_of(id: &str) -> CameraIndex {
    match id.parse::<u32>() {
        Ok(n) => CameraIndex::Index(n),
        Err(_) => CameraIndex::String(id.to_owned()),
    }
}

/// Converts whatever the camera delivered into I420.
fn to_i420(buffer: &nokhwa::Buffer) -> Result<VideoFrame, MediaError> {
    let resolution = buffer.resolution();
    let (w, h) = (resolution.width() as usize, resolution.height() as usize);
    let now = wall_clock();
    match buffer.source_frame_format() {
        FrameFormat::YUYV => yuyv_to_i420(buffer.buffer(), w, h, now),
        FrameFormat::NV12 => nv12_to_i420(buffer.buffer(), w, h, now),
        FrameFormat::MJPEG | FrameFormat::RAWRGB => {
            let rgb = buffer
                .decode_image::<RgbFormat>()
                .map_err(|e| MediaError::Codec(format!("camera frame: {e}")))?;
            rgb_to_i420(rgb.as_raw(), w, h, now)
        }
        other => Err(MediaError::Unsupported(format!(
            "camera pixel format {other}"
        ))),
    }
}

/// An open camera as a [`VideoSource`].
pub struct Camera {
    frames: mpsc::Receiver<Result<VideoFrame, MediaError>>,
    format: VideoFormat,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
    name: String,
}

impl Camera {
    /// Opens a camera by id, asking for the closest format to `constraints`.
    pub fn open(id: &str, constraints: VideoConstraints) -> Result<Self, MediaError> {
        let known = cameras();
        let Some(info) = known.iter().find(|c| c.id == id).cloned() else {
            return Err(MediaError::DeviceNotFound {
                kind: "camera",
                id: id.to_owned(),
            });
        };
        let (ready_tx, ready_rx) = mpsc::channel::<Result<VideoFormat, MediaError>>();
        let (frames_tx, frames_rx) = mpsc::sync_channel(2);
        let stop = Arc::new(AtomicBool::new(false));
        let thread_stop = stop.clone();
        let thread_id = id.to_owned();
        let thread = std::thread::Builder::new()
            .name("parlor-camera".into())
            .spawn(move || {
                let wanted = CameraFormat::new(
                    Resolution::new(constraints.width as u32, constraints.height as u32),
                    FrameFormat::MJPEG,
                    constraints.fps,
                );
                let requested =
                    RequestedFormat::new::<RgbFormat>(RequestedFormatType::Closest(wanted));
                let busy = |e: nokhwa::NokhwaError| MediaError::DeviceBusy {
                    kind: "camera",
                    id: thread_id.clone(),
                    reason: e.to_string(),
                };
                let mut camera = match nokhwa::Camera::new(index_of(&thread_id), requested)
                    .and_then(|mut c| {
                        c.open_stream()?;
                        Ok(c)
                    }) {
                    Ok(camera) => camera,
                    Err(e) => {
                        let _ = ready_tx.send(Err(busy(e)));
                        return;
                    }
                };
                let format = camera.camera_format();
                let _ = ready_tx.send(Ok(VideoFormat {
                    width: format.resolution().width() as usize & !1,
                    height: format.resolution().height() as usize & !1,
                    fps: format.frame_rate(),
                }));
                while !thread_stop.load(Ordering::SeqCst) {
                    let frame = camera.frame().map_err(busy).and_then(|b| to_i420(&b));
                    let failed = frame.is_err();
                    if frames_tx.send(frame).is_err() || failed {
                        break;
                    }
                }
                let _ = camera.stop_stream();
            })
            .map_err(MediaError::Io)?;
        let format = match ready_rx.recv_timeout(Duration::from_secs(10)) {
            Ok(result) => result?,
            Err(_) => {
                return Err(MediaError::DeviceBusy {
                    kind: "camera",
                    id: id.to_owned(),
                    reason: "did not start".into(),
                })
            }
        };
        Ok(Camera {
            frames: frames_rx,
            format,
            stop,
            thread: Some(thread),
            name: info.name,
        })
    }
}

impl VideoSource for Camera {
    fn format(&self) -> VideoFormat {
        self.format
    }

    fn next_frame(&mut self) -> Result<VideoFrame, MediaError> {
        match self.frames.recv_timeout(Duration::from_secs(3)) {
            Ok(frame) => frame,
            Err(_) => Err(MediaError::DeviceBusy {
                kind: "camera",
                id: self.name.clone(),
                reason: "no frames for 3 s".into(),
            }),
        }
    }

    fn describe(&self) -> String {
        format!("camera {}", self.name)
    }
}

impl Drop for Camera {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Unblock a send that waits for room.
        while self.frames.try_recv().is_ok() {}
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
