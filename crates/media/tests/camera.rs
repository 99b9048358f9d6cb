//! Cameras. These machines have none (no /dev/video*, and no way to add a kernel device), so
//! what is checked here is the no-camera path: an empty list and a clear error on open. On a
//! machine with cameras the list must not be empty.
#![cfg(all(feature = "camera", target_os = "linux"))]

use parlor_media::camera::{cameras, Camera};
use parlor_media::source::VideoConstraints;
use parlor_media::MediaError;

fn has_video_devices() -> bool {
    std::fs::read_dir("/dev")
        .map(|entries| {
            entries
                .flatten()
                .any(|e| e.file_name().to_string_lossy().starts_with("video"))
        })
        .unwrap_or(false)
}

#[test]
fn without_a_camera_the_list_is_empty_and_opening_fails_clearly() {
    let list = cameras();
    if has_video_devices() {
        assert!(
            !list.is_empty(),
            "/dev/video* exists but no camera was listed"
        );
        return;
    }
    assert!(list.is_empty(), "{list:?}");
    for id in ["0", "/dev/video0", "usb-camera-1"] {
        match Camera::open(id, VideoConstraints::default()) {
            Err(MediaError::DeviceNotFound {
                kind: "camera",
                id: got,
            }) => assert_eq!(got, id),
            Err(other) => panic!("expected DeviceNotFound for {id}, got {other}"),
            Ok(_) => panic!("opened a camera that does not exist"),
        }
    }
}
