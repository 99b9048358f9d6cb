//! Desktop notifications that know when they are clicked. tauri-plugin-notification 2 shows
//! them fire-and-forget on the desktop (its click events exist on mobile only), so clicking
//! "Ann in #launch" did nothing. On Linux and the BSDs this module shows the notification
//! through the freedesktop Notifications service itself, with the spec's `default` action (the
//! one a click on the notification's body invokes), and waits for the click on a thread of its
//! own. Elsewhere [`show`] says it cannot, and the caller uses the plugin.

/// Shows a notification; `on_click` runs (on another thread) if the user clicks it.
#[cfg(all(
    unix,
    not(any(target_os = "macos", target_os = "android", target_os = "ios"))
))]
pub fn show(
    title: &str,
    body: &str,
    on_click: impl FnOnce() + Send + 'static,
) -> Result<(), String> {
    let handle = notify_rust::Notification::new()
        .appname("Parlor")
        .summary(title)
        .body(body)
        .action("default", "Open")
        .show()
        .map_err(|e| e.to_string())?;
    std::thread::spawn(move || {
        // Returns when the notification is clicked, dismissed or expires.
        handle.wait_for_action(|action| {
            if action == "default" {
                on_click();
            }
        });
    });
    Ok(())
}

#[cfg(not(all(
    unix,
    not(any(target_os = "macos", target_os = "android", target_os = "ios"))
)))]
pub fn show(
    _title: &str,
    _body: &str,
    _on_click: impl FnOnce() + Send + 'static,
) -> Result<(), String> {
    Err("clickable notifications are shown by the plugin on this platform".into())
}
