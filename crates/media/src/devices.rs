//! Every capture and playback device in one list, and a watcher that reports changes (by
//! polling, which is what every platform supports).
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

/// The devices a user can pick from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeviceList {
    #[cfg(feature = "audio-devices")]
    pub microphones: Vec<crate::audio_io::AudioDevice>,
    #[cfg(feature = "audio-devices")]
    pub speakers: Vec<crate::audio_io::AudioDevice>,
    #[cfg(all(feature = "camera", not(any(target_os = "android", target_os = "ios"))))]
    pub cameras: Vec<crate::camera::CameraInfo>,
}

/// One device as a picker shows it (and `parlor devices --json` prints it).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Device {
    /// Pass it back to open the device (`mic:ID`, `camera:ID`).
    pub id: String,
    pub name: String,
    /// The system's default for its kind.
    pub default: bool,
}

/// Every device by kind, in the one shape the app's pickers and the CLI show.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Devices {
    pub microphones: Vec<Device>,
    pub speakers: Vec<Device>,
    pub cameras: Vec<Device>,
}

impl From<&DeviceList> for Devices {
    fn from(list: &DeviceList) -> Devices {
        #[cfg(feature = "audio-devices")]
        let audio = |devices: &[crate::audio_io::AudioDevice]| {
            devices
                .iter()
                .map(|d| Device {
                    id: d.id.clone(),
                    name: d.name.clone(),
                    default: d.is_default,
                })
                .collect::<Vec<_>>()
        };
        // Without device features nothing is filled in.
        #[cfg_attr(
            not(any(feature = "audio-devices", feature = "camera")),
            allow(unused_mut)
        )]
        let mut devices = Devices::default();
        #[cfg(feature = "audio-devices")]
        {
            devices.microphones = audio(&list.microphones);
            devices.speakers = audio(&list.speakers);
        }
        #[cfg(all(feature = "camera", not(any(target_os = "android", target_os = "ios"))))]
        {
            devices.cameras = list
                .cameras
                .iter()
                .map(|c| Device {
                    id: c.id.clone(),
                    name: c.name.clone(),
                    default: false,
                })
                .collect();
        }
        let _ = list;
        devices
    }
}

/// Lists everything now, as pickers show it. Blocking (it asks the sound server).
pub fn devices() -> Devices {
    Devices::from(&list_devices())
}

/// Lists everything now.
pub fn list_devices() -> DeviceList {
    DeviceList {
        #[cfg(feature = "audio-devices")]
        microphones: crate::audio_io::microphones(),
        #[cfg(feature = "audio-devices")]
        speakers: crate::audio_io::speakers(),
        #[cfg(all(feature = "camera", not(any(target_os = "android", target_os = "ios"))))]
        cameras: crate::camera::cameras(),
    }
}

/// Polls the device lists and sends the new list whenever it changes (the first list is sent
/// at once). Stops when dropped or when the receiver goes away.
pub struct DeviceWatcher {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl DeviceWatcher {
    pub fn start(interval: Duration) -> (DeviceWatcher, mpsc::Receiver<DeviceList>) {
        Self::start_with(interval, list_devices)
    }

    /// As [`DeviceWatcher::start`], with the listing function given (tests use a fake one).
    pub fn start_with(
        interval: Duration,
        mut list: impl FnMut() -> DeviceList + Send + 'static,
    ) -> (DeviceWatcher, mpsc::Receiver<DeviceList>) {
        let (tx, rx) = mpsc::channel();
        let stop = Arc::new(AtomicBool::new(false));
        let thread_stop = stop.clone();
        let thread = std::thread::Builder::new()
            .name("parlor-device-watch".into())
            .spawn(move || {
                let mut last: Option<DeviceList> = None;
                while !thread_stop.load(Ordering::SeqCst) {
                    let now = list();
                    if last.as_ref() != Some(&now) {
                        if tx.send(now.clone()).is_err() {
                            break;
                        }
                        last = Some(now);
                    }
                    // Sleep in short steps so that dropping the watcher is prompt.
                    let mut slept = Duration::ZERO;
                    while slept < interval && !thread_stop.load(Ordering::SeqCst) {
                        let step = Duration::from_millis(20).min(interval - slept);
                        std::thread::sleep(step);
                        slept += step;
                    }
                }
            })
            .expect("spawning the device watcher");
        (
            DeviceWatcher {
                stop,
                thread: Some(thread),
            },
            rx,
        )
    }
}

impl Drop for DeviceWatcher {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[cfg(all(test, feature = "audio-devices"))]
mod tests {
    use super::*;
    use crate::audio_io::AudioDevice;
    use std::sync::Mutex;

    #[test]
    fn devices_are_shown_in_one_shape_whatever_their_kind() {
        let list = DeviceList {
            microphones: vec![AudioDevice {
                id: "alsa_input.usb".into(),
                name: "USB mic".into(),
                is_default: true,
            }],
            speakers: vec![AudioDevice {
                id: "alsa_output.hdmi".into(),
                name: "HDMI".into(),
                is_default: false,
            }],
            ..DeviceList::default()
        };
        let shown = serde_json::to_value(Devices::from(&list)).unwrap();
        assert_eq!(
            shown,
            serde_json::json!({
                "microphones": [{"id": "alsa_input.usb", "name": "USB mic", "default": true}],
                "speakers": [{"id": "alsa_output.hdmi", "name": "HDMI", "default": false}],
                "cameras": [],
            })
        );
    }

    #[test]
    fn reports_the_first_list_and_then_only_changes() {
        let script = Arc::new(Mutex::new(vec![0, 0, 0, 1, 1, 2]));
        let feed = script.clone();
        let (watcher, changes) = DeviceWatcher::start_with(Duration::from_millis(5), move || {
            let mut s = feed.lock().unwrap();
            let n = if s.len() > 1 { s.remove(0) } else { s[0] };
            DeviceList {
                microphones: (0..n)
                    .map(|i| AudioDevice {
                        id: format!("mic{i}"),
                        name: format!("Mic {i}"),
                        is_default: i == 0,
                    })
                    .collect(),
                ..DeviceList::default()
            }
        });
        let counts: Vec<usize> = (0..3)
            .map(|_| {
                changes
                    .recv_timeout(Duration::from_secs(5))
                    .unwrap()
                    .microphones
                    .len()
            })
            .collect();
        assert_eq!(counts, vec![0, 1, 2]);
        assert!(
            changes.recv_timeout(Duration::from_millis(100)).is_err(),
            "no change, no report"
        );
        drop(watcher);
    }
}
