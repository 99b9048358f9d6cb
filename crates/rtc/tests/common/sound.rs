//! A user-space PulseAudio server for tests with real audio devices: a null sink `vspk` (the
//! speaker; its monitor is a microphone that hears whatever the speaker plays) and a 440 Hz
//! sine source `vmic`. Needs `pulseaudio` and `pulseaudio-utils` (the README's test command
//! installs them). One per test binary: it points this process's environment at itself.
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use parlor_media::audio_io::AudioDevice;

/// The device in `devices` whose name contains `name` (the server's sink, source or monitor).
pub fn listed(devices: Vec<AudioDevice>, name: &str) -> AudioDevice {
    devices
        .into_iter()
        .find(|d| d.name.contains(name))
        .unwrap_or_else(|| panic!("no device named like {name:?} is listed"))
}

pub struct SoundServer {
    child: Child,
    _runtime: tempfile_free::Dir,
}

mod tempfile_free {
    pub struct Dir(pub std::path::PathBuf);
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

impl SoundServer {
    /// Starts PulseAudio in a private runtime directory, which this process then uses.
    pub fn start() -> SoundServer {
        let runtime = std::env::temp_dir().join(format!("parlor-pulse-{}", std::process::id()));
        std::fs::create_dir_all(&runtime).unwrap();
        std::fs::set_permissions(
            &runtime,
            std::os::unix::fs::PermissionsExt::from_mode(0o700),
        )
        .unwrap();
        // Only this test runs in this binary, before any other thread reads the environment.
        std::env::set_var("XDG_RUNTIME_DIR", &runtime);
        std::env::remove_var("PULSE_SERVER");
        let child = Command::new("pulseaudio")
            .args([
                "-n",
                "--daemonize=no",
                "--exit-idle-time=-1",
                "--disallow-exit",
                "-L",
                "module-native-protocol-unix",
                "-L",
                "module-null-sink sink_name=vspk rate=48000 channels=2",
                "-L",
                "module-sine-source source_name=vmic rate=48000 frequency=440",
                "-L",
                "module-always-sink",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("pulseaudio (apt package pulseaudio) must be installed");
        let deadline = Instant::now() + Duration::from_secs(15);
        while !Command::new("pactl")
            .arg("info")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
        {
            assert!(Instant::now() < deadline, "PulseAudio did not come up");
            std::thread::sleep(Duration::from_millis(200));
        }
        SoundServer {
            child,
            _runtime: tempfile_free::Dir(runtime),
        }
    }
}

impl Drop for SoundServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
