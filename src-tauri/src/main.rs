// The desktop entry point; everything is in the library so Tauri mobile can share it.
#![cfg_attr(not(debug_assertions), windows_subsystem = "windows")]

fn main() {
    parlor_app_lib::run();
}
