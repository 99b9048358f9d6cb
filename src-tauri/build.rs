// The Tauri configuration lives at the repository root (tauri.conf.json). Every command is
// declared here so that the window may call only what its capability grants.
fn main() {
    let commands: &[&str] = &[
        "get_settings",
        "save_settings",
        "server_health",
        "resume",
        "retry_now",
        "show_notification",
        "login",
        "register",
        "logout",
        "rooms",
        "create_room",
        "join_room",
        "leave_room",
        "rename_room",
        "delete_room",
        "find_rooms",
        "open_direct",
        "add_member",
        "create_guest_link",
        "guest_links",
        "revoke_guest_link",
        "members",
        "history",
        "history_after",
        "outbox",
        "send",
        "retry",
        "discard",
        "edit",
        "delete_message",
        "search",
        "mark_read",
        "typing",
        "devices",
        "join_call",
        "decline_call",
        "leave_call",
        "set_microphone",
        "set_camera",
        "use_device",
        "call_quality",
        "video_endpoint",
    ];
    let attributes = tauri_build::Attributes::new()
        .config_path("../tauri.conf.json")
        .app_manifest(tauri_build::AppManifest::new().commands(commands));
    tauri_build::try_build(attributes).expect("tauri build step");
}
