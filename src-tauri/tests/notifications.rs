//! A click on a desktop notification reaches the app: the real notify-rust path, over a real
//! private session bus (`dbus-daemon`), to a **mock** freedesktop Notifications service, since
//! this machine runs no desktop and so no notification daemon. The mock records what it was
//! asked to show and plays the user's click as the daemon would (the `ActionInvoked` signal).
#![cfg(target_os = "linux")]

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

const PATH: &str = "/org/freedesktop/Notifications";

/// What the mock was asked to show: id, summary, body, actions.
type Shown = (u32, String, String, Vec<String>);

struct MockDaemon {
    shown: mpsc::Sender<Shown>,
    next_id: u32,
}

#[zbus::interface(name = "org.freedesktop.Notifications")]
impl MockDaemon {
    #[allow(clippy::too_many_arguments)]
    fn notify(
        &mut self,
        _app_name: String,
        _replaces_id: u32,
        _app_icon: String,
        summary: String,
        body: String,
        actions: Vec<String>,
        _hints: HashMap<String, zbus::zvariant::OwnedValue>,
        _expire_timeout: i32,
    ) -> u32 {
        self.next_id += 1;
        let _ = self.shown.send((self.next_id, summary, body, actions));
        self.next_id
    }

    #[zbus(signal)]
    async fn action_invoked(
        emitter: &zbus::object_server::SignalEmitter<'_>,
        id: u32,
        action_key: &str,
    ) -> zbus::Result<()>;
}

/// A private session bus, stopped when dropped.
struct Bus(std::process::Child);

impl Drop for Bus {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn private_bus() -> (Bus, String) {
    let mut daemon = Command::new("dbus-daemon")
        .args(["--session", "--nofork", "--print-address=1"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("dbus-daemon (scripts/install-deps.sh installs it)");
    let mut address = String::new();
    BufReader::new(daemon.stdout.take().unwrap())
        .read_line(&mut address)
        .unwrap();
    (Bus(daemon), address.trim().to_owned())
}

#[test]
fn clicking_a_notification_runs_its_action_once() {
    let (_bus, address) = private_bus();
    // Only this test's process talks to the bus, and it sets the address before any thread
    // that could read the environment is started.
    std::env::set_var("DBUS_SESSION_BUS_ADDRESS", &address);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (shown_tx, shown) = mpsc::channel();
    let daemon = runtime
        .block_on(async {
            zbus::connection::Builder::session()?
                .name("org.freedesktop.Notifications")?
                .serve_at(
                    PATH,
                    MockDaemon {
                        shown: shown_tx,
                        next_id: 0,
                    },
                )?
                .build()
                .await
        })
        .expect("the mock daemon on the private bus");

    let (clicked_tx, clicked) = mpsc::channel();
    parlor_app_lib::notifications::show("Ann in #launch", "the deploy is green", move || {
        let _ = clicked_tx.send(());
    })
    .expect("shown");
    let (id, summary, body, actions) = shown
        .recv_timeout(Duration::from_secs(30))
        .expect("the daemon was asked to show it");
    assert_eq!(summary, "Ann in #launch");
    assert_eq!(body, "the deploy is green");
    assert!(
        actions.chunks(2).any(|a| a[0] == "default"),
        "a click on the body is reportable only with the `default` action: {actions:?}"
    );

    // The user clicks. The app's thread subscribes to the daemon's signals after `show`
    // returns, so a click sent before that is not heard: click until it is (as a user would),
    // at most 200 times.
    let emit = |key: &'static str| {
        runtime.block_on(async {
            let iface = daemon
                .object_server()
                .interface::<_, MockDaemon>(PATH)
                .await
                .unwrap();
            MockDaemon::action_invoked(iface.signal_emitter(), id, key)
                .await
                .unwrap();
        })
    };
    let mut heard = false;
    for _ in 0..200 {
        emit("default");
        if clicked.recv_timeout(Duration::from_millis(50)).is_ok() {
            heard = true;
            break;
        }
    }
    assert!(heard, "the click never reached the app");
    // The handler ran once and is gone: more clicks on the same notification run nothing.
    emit("default");
    assert!(matches!(
        clicked.recv_timeout(Duration::from_millis(200)),
        Err(mpsc::RecvTimeoutError::Disconnected)
    ));
}
