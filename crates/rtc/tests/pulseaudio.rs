//! Real audio devices: a user-space PulseAudio server with a 440 Hz sine source and a null sink.
//! cpal microphone → Opus → peer → decode → cpal speaker (the null sink), recorded from the
//! sink's monitor with `parecord`, and the frequency checked. Needs `pulseaudio` and
//! `pulseaudio-utils` (the README's test command installs them).
mod common;

use std::process::Command;
use std::time::Duration;

use common::sound::{listed, SoundServer};
use common::*;
use parlor_media::analysis::{dominant_frequency, first_channel, rms};
use parlor_media::audio_io::{microphones, speakers, Microphone, Speaker};
use parlor_rtc::{LocalAudioTrack, PeerEvent, RemoteTrack};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn microphone_to_peer_to_speaker_through_pulseaudio() {
    let _server = SoundServer::start();

    let mic = listed(microphones(), "Sine");
    let speaker = listed(speakers(), "Null");
    assert!(mic.is_default && speaker.is_default);
    assert!(matches!(
        Microphone::open(Some("pulseaudio:no-such-device"), 1),
        Err(parlor_media::MediaError::DeviceNotFound { .. })
    ));

    let microphone = Microphone::open(Some(&mic.id), 1).expect("open the microphone");
    let track = LocalAudioTrack::new(Box::new(microphone)).unwrap();
    let sending = track.clone();
    let (a, mut b) = connected_pair(|a, _b| async move {
        a.add_audio_track(&sending).await.unwrap();
    })
    .await;
    let remote = next_matching(&mut b.events, "remote audio", |e| match e {
        PeerEvent::TrackAdded(RemoteTrack::Audio(t)) => Some(t),
        _ => None,
    })
    .await;

    // Play what arrives into the null sink.
    let speaker = Speaker::open(Some(&speaker.id)).expect("open the speaker");
    let stream = speaker.add_stream();
    let player = tokio::spawn(async move {
        while let Some(frame) = remote.next_frame().await {
            stream.push(&frame);
        }
        stream.counters()
    });

    // Record the sink's monitor with PulseAudio's own tool. The monitor lags, so record long
    // enough and look at the end.
    let dir = std::env::temp_dir().join(format!("parlor-rec-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let recording = dir.join("monitor.wav");
    let mut recorder = Command::new("parecord")
        .args([
            "-d",
            "vspk.monitor",
            "--rate=48000",
            "--channels=1",
            "--format=s16le",
            "--file-format=wav",
        ])
        .arg(&recording)
        .spawn()
        .expect("parecord (apt package pulseaudio-utils)");
    // Eight seconds of sound: the recording's size says when (48 kHz, 16-bit mono).
    let wanted = 8 * 48_000 * 2;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while std::fs::metadata(&recording).map_or(0, |m| m.len()) < wanted {
        assert!(
            tokio::time::Instant::now() < deadline,
            "parecord recorded nothing"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // SIGINT lets parecord finish the WAV header.
    let _ = Command::new("kill")
        .args(["-INT", &recorder.id().to_string()])
        .status();
    let _ = recorder.wait();

    let (samples, channels, rate) = parlor_media::wav::read_all(&recording).expect("a recording");
    assert_eq!(rate, 48_000);
    let mono = first_channel(&samples, channels);
    assert!(mono.len() > 48_000 * 2, "recorded {} samples", mono.len());
    // Playback comes in bursts here (see below), so judge 100 ms windows that carry sound
    // rather than one stretch that may straddle a gap.
    let mut found: Vec<f64> = mono
        .chunks_exact(4_800)
        .filter(|w| rms(w) > 1_000.0)
        .filter_map(|w| dominant_frequency(w, 48_000, 100.0, 4000.0))
        .collect();
    assert!(
        found.len() >= 5,
        "only {} windows with sound were recorded",
        found.len()
    );
    found.sort_by(|a, b| a.total_cmp(b));
    let hz = found[found.len() / 2];
    assert!(
        (hz - 440.0).abs() < 5.0,
        "the speaker played {hz} Hz (windows: {found:?})"
    );
    let _ = std::fs::remove_dir_all(&dir);

    track.stop();
    a.pc.close().await.unwrap();
    b.pc.close().await.unwrap();
    let counters = player.await.unwrap();
    // Known limitation: cpal 0.18's PulseAudio backend hands over this capture in fragments of
    // up to 2 s (fixed fragment sizes fail to start in its record path), so the playout buffer,
    // capped at 0.5 s of adaptation, drops part of each burst. The audio that plays is right.
    // How much plays depends on how the bursts fall (0.94 s was seen on a loaded machine), so
    // this asks for what the recording check above asks for: at least half a second.
    assert!(counters.samples_played >= 24_000, "{counters:?}");
}
