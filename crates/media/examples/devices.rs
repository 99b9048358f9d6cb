//! Lists the audio devices cpal sees: `cargo run -p parlor-media --example devices`.
fn main() {
    for d in parlor_media::audio_io::microphones() {
        println!(
            "microphone {:?} {:?} default={}",
            d.id, d.name, d.is_default
        );
    }
    for d in parlor_media::audio_io::speakers() {
        println!("speaker {:?} {:?} default={}", d.id, d.name, d.is_default);
    }
}
