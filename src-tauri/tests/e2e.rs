//! The desktop app end to end, in a real window: Xvfb, tauri-driver and WebKitWebDriver drive
//! the built `parlor-app` against the real signaling server on loopback, while the `parlor`
//! CLI plays the other person. Screenshots are kept in `<target>/tmp/e2e-screenshots/`.
//!
//! Needs (installed by `scripts/test.sh`): `xvfb`, `webkit2gtk-driver`, and `tauri-driver`.
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};
use parlor_signaling::config::Settings;

/// Longest wait for anything to appear: a guard against hangs, never a speed check.
const PATIENCE: Duration = Duration::from_secs(30);

/// A child process group, stopped when dropped.
struct Spawned {
    child: Child,
    name: &'static str,
}

impl Spawned {
    fn start(name: &'static str, command: &mut Command) -> Spawned {
        use std::os::unix::process::CommandExt;
        let child = command
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e} (scripts/test.sh installs it)"));
        Spawned { child, name }
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        // The whole group: tauri-driver's WebKitWebDriver and the app with its WebKit helpers.
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill").args(["-TERM", "--", &group]).status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        eprintln!("{} did not stop on TERM; killing it", self.name);
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        let _ = self.child.wait();
    }
}

/// Xvfb on a free display number (it picks one and tells us through -displayfd).
fn start_display() -> (Spawned, String) {
    let mut xvfb = Spawned::start(
        "Xvfb",
        Command::new("Xvfb")
            .args([
                "-displayfd",
                "1",
                "-screen",
                "0",
                "1280x800x24",
                "-nolisten",
                "tcp",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::null()),
    );
    let mut line = String::new();
    BufReader::new(xvfb.child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let display = format!(":{}", line.trim());
    assert!(display.len() > 1, "Xvfb did not report a display");
    (xvfb, display)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn tool(name: &str) -> PathBuf {
    let cargo_bin = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
        .map(|d| d.join("bin").join(name));
    match cargo_bin {
        Some(path) if path.exists() => path,
        _ => PathBuf::from(name),
    }
}

/// The `parlor` CLI built next to this test (the workspace's test run builds it).
fn cli_binary() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let path = exe.parent().unwrap().parent().unwrap().join("parlor");
    assert!(
        path.exists(),
        "{} is missing: run the workspace tests (cargo test --workspace)",
        path.display()
    );
    path
}

struct Cli {
    dir: PathBuf,
    url: String,
    ca_file: PathBuf,
}

impl Cli {
    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(cli_binary());
        command
            .arg("--server")
            .arg(&self.url)
            .arg("--data-dir")
            .arg(&self.dir)
            .arg("--json")
            .args(args)
            .env("PARLOR_PASSWORD", "a long password")
            .env("PARLOR_CA_FILE", &self.ca_file)
            .stdin(Stdio::null());
        command
    }

    fn run(&self, args: &[&str]) -> serde_json::Value {
        let out = self.command(args).output().unwrap();
        assert!(
            out.status.success(),
            "parlor {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8_lossy(&out.stdout);
        serde_json::from_str(text.lines().last().unwrap_or("null")).unwrap_or_default()
    }

    fn history(&self, room: &str) -> Vec<String> {
        let out = self.command(&["history", room]).output().unwrap();
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter_map(|m| m["text"].as_str().map(str::to_owned))
            .collect()
    }
}

async fn find(client: &Client, css: &str) -> Element {
    let started = Instant::now();
    match client
        .wait()
        .at_most(PATIENCE)
        .every(Duration::from_millis(50))
        .for_element(Locator::Css(css))
        .await
    {
        Ok(element) => element,
        Err(e) => {
            let page = client.source().await.unwrap_or_default();
            panic!(
                "no {css} after {:?}: {e}\npage: {}",
                started.elapsed(),
                &page[..page.len().min(3000)]
            )
        }
    }
}

/// Waits until `check` holds, polling every 200 ms (bounded by PATIENCE).
async fn until<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + PATIENCE;
    while Instant::now() < deadline {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("never: {what}");
}

async fn click(client: &Client, testid: &str) {
    let css = format!("[data-testid={testid}]");
    find(client, &css).await.click().await.unwrap();
}

async fn choose(client: &Client, testid: &str, value: &str) {
    let css = format!("[data-testid={testid}]");
    find(client, &css)
        .await
        .select_by_value(value)
        .await
        .unwrap();
}

/// Opens the settings, chooses `values` (select test id, option value), saves and closes.
async fn change_settings(client: &Client, values: &[(&str, &str)]) {
    click(client, "open-settings").await;
    for (testid, value) in values {
        choose(client, testid, value).await;
    }
    click(client, "settings-save").await;
    find(client, "[data-testid=settings-saved]").await;
    click(client, "settings-close").await;
}

async fn texts(client: &Client, css: &str) -> Vec<String> {
    let mut out = Vec::new();
    for element in client.find_all(Locator::Css(css)).await.unwrap_or_default() {
        if let Ok(text) = element.text().await {
            out.push(text);
        }
    }
    out
}

async fn type_into(client: &Client, css: &str, text: &str) {
    let element = find(client, css).await;
    element.clear().await.unwrap();
    element.send_keys(text).await.unwrap();
}

fn decode(png_bytes: &[u8]) -> (Vec<u8>, png::OutputInfo) {
    let decoder = png::Decoder::new(std::io::Cursor::new(png_bytes));
    let mut reader = decoder.read_info().unwrap();
    let mut pixels = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut pixels).unwrap();
    (pixels, info)
}

/// Whether a picture is (nearly) one colour: fewer than 1 % of its values differ from its first
/// pixel's (a blank page, or a black tile).
fn flat(pixels: &[u8], channels: usize) -> bool {
    let first = &pixels[..3.min(pixels.len())];
    let differing = pixels
        .chunks(channels)
        .filter(|p| {
            p.iter()
                .take(3)
                .zip(first)
                .any(|(a, b)| a.abs_diff(*b) > 24)
        })
        .count();
    differing * 100 < pixels.len() / channels
}

/// Waits for the window's first painted picture (a screenshot that is not one flat colour);
/// returns that screenshot.
async fn first_paint(client: &Client) -> Vec<u8> {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let shot = client.screenshot().await.unwrap();
        let (pixels, info) = decode(&shot);
        if !flat(&pixels, info.color_type.samples()) {
            return shot;
        }
        assert!(Instant::now() < deadline, "the window never painted");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A screenshot of one element: the window's screenshot cropped to the element's box, as RGB
/// rows plus a PNG of them. (WebKit's own element screenshots leave WebGL content out on a
/// display without a GPU; the window screenshot has it.)
async fn element_shot(client: &Client, css: &str) -> (Vec<u8>, Vec<u8>) {
    let (x, y, w, h) = find(client, css).await.rectangle().await.unwrap();
    let (pixels, info) = decode(&client.screenshot().await.unwrap());
    let channels = info.color_type.samples();
    let (x0, y0) = (x.round() as usize, y.round() as usize);
    let (x1, y1) = (
        ((x + w).round() as usize).min(info.width as usize),
        ((y + h).round() as usize).min(info.height as usize),
    );
    assert!(
        x1 > x0 + 10 && y1 > y0 + 10,
        "{css} is on screen: {x},{y} {w}x{h}"
    );
    let mut rgb = Vec::with_capacity((x1 - x0) * (y1 - y0) * 3);
    for row in y0..y1 {
        for col in x0..x1 {
            let at = (row * info.width as usize + col) * channels;
            rgb.extend_from_slice(&pixels[at..at + 3]);
        }
    }
    let mut png_bytes = Vec::new();
    {
        let mut encoder = png::Encoder::new(&mut png_bytes, (x1 - x0) as u32, (y1 - y0) as u32);
        encoder.set_color(png::ColorType::Rgb);
        let mut writer = encoder.write_header().unwrap();
        writer.write_image_data(&rgb).unwrap();
    }
    (rgb, png_bytes)
}

fn save(dir: &Path, name: &str, png: &[u8]) {
    std::fs::write(dir.join(name), png).unwrap();
}

/// The app's process and all its descendants (WebKit's web and network processes).
fn app_processes(binary: &Path) -> Vec<u32> {
    let all: Vec<(u32, u32, String)> = std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            let ppid = stat
                .rsplit(')')
                .next()?
                .split_whitespace()
                .nth(1)?
                .parse()
                .ok()?;
            let cmd = std::fs::read_to_string(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            Some((pid, ppid, cmd))
        })
        .collect();
    let binary = binary.to_string_lossy();
    let mut found: Vec<u32> = all
        .iter()
        .filter(|(_, _, cmd)| cmd.split('\0').next() == Some(binary.as_ref()))
        .map(|(pid, _, _)| *pid)
        .collect();
    let mut i = 0;
    while i < found.len() {
        let parent = found[i];
        for (pid, ppid, _) in &all {
            if *ppid == parent && !found.contains(pid) {
                found.push(*pid);
            }
        }
        i += 1;
    }
    found
}

fn total_pss_kib(pids: &[u32]) -> u64 {
    pids.iter()
        .filter_map(|pid| std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).ok())
        .flat_map(|text| {
            text.lines()
                .filter(|l| l.starts_with("Pss:"))
                .filter_map(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
                .collect::<Vec<_>>()
        })
        .sum()
}

/// Seconds since boot when `pid` started.
fn started_at(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let ticks: f64 = stat
        .rsplit(')')
        .next()
        .unwrap()
        .split_whitespace()
        .nth(19)
        .unwrap()
        .parse()
        .unwrap();
    ticks / 100.0
}

fn uptime() -> f64 {
    std::fs::read_to_string("/proc/uptime")
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_desktop_app_chats_calls_and_speaks_japanese_in_a_real_window() {
    let work = tempfile::tempdir().unwrap();
    let shots = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("e2e-screenshots");
    let _ = std::fs::remove_dir_all(&shots);
    std::fs::create_dir_all(&shots).unwrap();

    // The real server, in-process on loopback, serving wss:// with a certificate from a private
    // CA that the app and the CLI are told to trust (PARLOR_CA_FILE), as a self-hoster runs it.
    let pki = parlor_signaling::test_pki::TestPki::new(work.path(), "team");
    let mut settings = Settings::for_database(&work.path().join("server.db"));
    settings.listen = "127.0.0.1:0".parse().unwrap();
    settings.tls = Some((pki.cert.clone(), pki.key.clone()));
    let server = RunningServer::start(settings.clone()).await;
    let url = format!("wss://localhost:{}/ws", server.addr.port());

    let (_xvfb, display) = start_display();
    // PARLOR_E2E_APP runs the same test against another build (say, the release binary, to
    // measure start-up and memory as shipped).
    let app_binary = std::env::var_os("PARLOR_E2E_APP")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_parlor-app")));
    let home = work.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let runtime = work.path().join("runtime");
    std::fs::create_dir_all(&runtime).unwrap();
    std::fs::set_permissions(
        &runtime,
        std::os::unix::fs::PermissionsExt::from_mode(0o700),
    )
    .unwrap();
    let (port, native_port) = (free_port(), free_port());
    let _driver = Spawned::start(
        "tauri-driver",
        Command::new(tool("tauri-driver"))
            .args([
                "--port",
                &port.to_string(),
                "--native-port",
                &native_port.to_string(),
            ])
            .env("DISPLAY", &display)
            .env("HOME", &home)
            .env("XDG_CONFIG_HOME", home.join(".config"))
            .env("XDG_DATA_HOME", home.join(".local/share"))
            .env("XDG_CACHE_HOME", home.join(".cache"))
            .env("XDG_RUNTIME_DIR", &runtime)
            .env("PARLOR_SERVER", &url)
            .env("PARLOR_CA_FILE", &pki.ca)
            // No accessibility bus or session bus in a bare X server; WebGL in software.
            .env("NO_AT_BRIDGE", "1")
            .env("LIBGL_ALWAYS_SOFTWARE", "1")
            .env_remove("DBUS_SESSION_BUS_ADDRESS")
            .stdout(std::fs::File::create(shots.join("driver.log")).unwrap())
            .stderr(std::fs::File::create(shots.join("driver.err.log")).unwrap()),
    );

    let mut capabilities = serde_json::Map::new();
    capabilities.insert("browserName".into(), "wry".into());
    capabilities.insert(
        "tauri:options".into(),
        serde_json::json!({ "application": app_binary }),
    );
    let driver_url = format!("http://127.0.0.1:{port}");
    let client = open_window(&driver_url, &capabilities).await;

    // --- Start-up: the login page painted, then the server's health shown. ---
    find(&client, "[data-testid=login-form]").await;
    let login_page = first_paint(&client).await;
    let painted = uptime();
    let app_pid = app_processes(&app_binary)[0];
    let startup_ms = (painted - started_at(app_pid)) * 1000.0;
    save(&shots, "01-login.png", &login_page);
    find(&client, "[data-testid=server-health].up").await;

    // --- Register. ---
    click(&client, "toggle-register").await;
    type_into(&client, "[data-testid=username]", "ann").await;
    type_into(&client, "[data-testid=display-name]", "Ann").await;
    type_into(&client, "[data-testid=password]", "a long password").await;
    click(&client, "submit").await;
    find(&client, "[data-testid=create-room]").await;

    // --- Create a room. ---
    click(&client, "create-room").await;
    type_into(&client, "[data-testid=dialog-name]", "launch").await;
    click(&client, "dialog-submit").await;
    until("the room opens", || async {
        texts(&client, "[data-testid=room-title]").await == ["launch"]
    })
    .await;
    let room = find(&client, "[data-testid=room].active")
        .await
        .attr("data-room-id")
        .await
        .unwrap()
        .expect("room id");

    // Idle memory: the signed-in app with a room open, after it settles.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let processes = app_processes(&app_binary);
    let pss_mib = total_pss_kib(&processes) as f64 / 1024.0;

    // --- Chat with a CLI client, both ways. ---
    let bob = Cli {
        dir: work.path().join("bob"),
        url: url.clone(),
        ca_file: pki.ca.clone(),
    };
    bob.run(&["register", "bob", "--display-name", "Bob"]);
    bob.run(&["join", &room]);
    bob.run(&["send", &room, "hello from the command line"]);
    until("the CLI's message shows in the window", || async {
        texts(&client, "[data-testid=message-text]")
            .await
            .contains(&"hello from the command line".to_owned())
    })
    .await;
    let composer = find(&client, "[data-testid=composer]").await;
    composer
        .send_keys("hello from the window\u{E007}")
        .await
        .unwrap();
    until("the window's message reaches the CLI", || async {
        bob.history(&room)
            .contains(&"hello from the window".to_owned())
    })
    .await;

    // --- Markup in a message is shown as text, never run. ---
    let hostile = "<img src=x onerror=alert(1)>";
    composer
        .send_keys(&format!("{hostile}\u{E007}"))
        .await
        .unwrap();
    bob.run(&["send", &room, "<b>bold?</b> <script>alert(2)</script>"]);
    until("both hostile messages show", || async {
        let shown = texts(&client, "[data-testid=message-text]").await;
        shown.contains(&hostile.to_owned())
            && shown.contains(&"<b>bold?</b> <script>alert(2)</script>".to_owned())
    })
    .await;
    for css in [
        "[data-testid=messages] img",
        "[data-testid=messages] b",
        "[data-testid=messages] script",
    ] {
        assert!(
            client.find_all(Locator::Css(css)).await.unwrap().is_empty(),
            "message text became markup: {css}"
        );
    }
    save(&shots, "02-chat.png", &client.screenshot().await.unwrap());

    // --- Search: a result opens its message in context, marked. ---
    click(&client, "open-search").await;
    type_into(&client, "[data-testid=search-input]", "command").await;
    click(&client, "search-result").await;
    until("the found message is marked", || async {
        texts(
            &client,
            "[data-testid=message].highlight [data-testid=message-text]",
        )
        .await
            == ["hello from the command line"]
    })
    .await;
    click(&client, "open-search").await;

    // --- A call with the CLI sending the test pattern and a tone; the window sends its
    // test-pattern camera and test-tone microphone (this machine has neither device). ---
    change_settings(
        &client,
        &[
            ("settings-camera", "test-pattern"),
            ("settings-microphone", "test-tone"),
        ],
    )
    .await;

    let bob_report = work.path().join("bob-call.json");
    let mut bob_call = bob
        .command(&[
            "call",
            &room,
            "--video",
            "test-pattern",
            "--audio",
            "tone:440",
            "--duration",
            "25",
            "--bind",
            "127.0.0.1",
            "--stats-json",
            bob_report.to_str().unwrap(),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Bob's call rings in the window: accept it.
    find(&client, "[data-testid=incoming-call]").await;
    save(
        &shots,
        "03-incoming-call.png",
        &client.screenshot().await.unwrap(),
    );
    click(&client, "accept-call").await;
    let remote_tile = "[data-testid=tile]:not([data-tile='0'])";
    until("the remote tile draws frames", || async {
        match client.find(Locator::Css(remote_tile)).await {
            Ok(tile) => tile
                .attr("data-frames")
                .await
                .ok()
                .flatten()
                .and_then(|f| f.parse::<u64>().ok())
                .is_some_and(|f| f > 15),
            Err(_) => false,
        }
    })
    .await;
    // The window's screenshots can lag its canvases a little: wait for a picture in the tile.
    let deadline = Instant::now() + PATIENCE;
    let (first, first_png) = loop {
        let shot = element_shot(&client, remote_tile).await;
        if !flat(&shot.0, 3) {
            break shot;
        }
        assert!(Instant::now() < deadline, "the tile never showed a picture");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    tokio::time::sleep(Duration::from_millis(700)).await;
    let (second, second_png) = element_shot(&client, remote_tile).await;
    save(&shots, "04-remote-tile-a.png", &first_png);
    save(&shots, "05-remote-tile-b.png", &second_png);
    let changed = first.iter().zip(&second).filter(|(a, b)| a != b).count();
    assert!(
        changed > first.len() / 100,
        "the remote video moves ({changed} values changed)"
    );
    save(&shots, "06-call.png", &client.screenshot().await.unwrap());

    // The quality badge's tooltip gives the figures behind it: Bob's picture as it arrives.
    until("the quality badge lists what arrives", || async {
        match client.find(Locator::Css("[data-testid=quality]")).await {
            Ok(badge) => badge
                .attr("title")
                .await
                .ok()
                .flatten()
                .is_some_and(|title| title.contains("Receiving ") && title.contains(" fps, ")),
            Err(_) => false,
        }
    })
    .await;

    // Mute and unmute: the button follows, and no error is shown.
    let mute = find(&client, "[data-testid=toggle-mic]").await;
    let muted_label = mute.text().await.unwrap();
    mute.click().await.unwrap();
    until("muted", || async {
        find(&client, "[data-testid=toggle-mic]")
            .await
            .attr("aria-pressed")
            .await
            .ok()
            .flatten()
            == Some("true".into())
    })
    .await;
    click(&client, "toggle-mic").await;
    until("unmuted", || async {
        find(&client, "[data-testid=toggle-mic]")
            .await
            .text()
            .await
            .ok()
            == Some(muted_label.clone())
    })
    .await;
    assert!(client
        .find_all(Locator::Css("[data-testid=error]"))
        .await
        .unwrap()
        .is_empty());

    // Hang up: the call view goes; Bob received the window's video.
    click(&client, "hang-up").await;
    until("the call view closes", || async {
        client
            .find_all(Locator::Css("[data-testid=call]"))
            .await
            .map(|v| v.is_empty())
            .unwrap_or(false)
    })
    .await;
    let status = tokio::task::spawn_blocking(move || bob_call.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "bob's call failed");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&bob_report).unwrap()).unwrap();
    let from_ann = report["peers"]
        .as_object()
        .and_then(|peers| peers.values().next())
        .cloned()
        .unwrap_or_default();
    assert!(
        from_ann["video_frames"].as_u64().unwrap_or(0) > 15,
        "bob saw the window's camera: {report}"
    );
    let heard = from_ann["audio_hz"].as_f64().unwrap_or(0.0);
    assert!(
        (heard - 440.0).abs() < 5.0,
        "bob heard the window's tone: {report}"
    );

    // --- Japanese. ---
    change_settings(&client, &[("language", "ja")]).await;
    until("the window speaks Japanese", || async {
        texts(&client, "[data-testid=create-room]").await == ["ルームを作成"]
    })
    .await;
    assert_eq!(texts(&client, "[data-testid=logout]").await, ["ログアウト"]);
    save(
        &shots,
        "07-japanese.png",
        &client.screenshot().await.unwrap(),
    );

    // --- Offline-first: the app restarts while the server is down. It opens on its last
    // state, queues what is written, and sends it once the server is back. ---
    client.close().await.unwrap();
    until("the app has exited", || async {
        app_processes(&app_binary).is_empty()
    })
    .await;
    let addr = server.stop().await;
    let client = open_window(&driver_url, &capabilities).await;
    until("the last rooms show without a server", || async {
        texts(&client, "[data-testid=room-title]").await == ["launch"]
    })
    .await;
    until("the history shows without a server", || async {
        texts(&client, "[data-testid=message-text]")
            .await
            .contains(&"hello from the command line".to_owned())
    })
    .await;
    assert_ne!(
        find(&client, "[data-testid=connection]")
            .await
            .attr("class")
            .await
            .unwrap()
            .unwrap_or_default()
            .split_whitespace()
            .find(|c| *c == "connected"),
        Some("connected"),
        "connected to a server that is down"
    );
    let offline_text = "written while the server was down";
    find(&client, "[data-testid=composer]")
        .await
        .send_keys(&format!("{offline_text}\u{E007}"))
        .await
        .unwrap();
    find(&client, "[data-testid=message][data-state=pending]").await;
    save(
        &shots,
        "08-offline.png",
        &client.screenshot().await.unwrap(),
    );
    settings.listen = addr;
    let server = RunningServer::start(settings).await;
    until("the queued message is sent", || async {
        // The backoff may have grown to 30 s while the server was down: press "Retry now"
        // whenever it shows, as a user would.
        if let Ok(retry) = client.find(Locator::Css("[data-testid=retry-now]")).await {
            let _ = retry.click().await;
        }
        client
            .find_all(Locator::Css("[data-testid=message][data-state=pending]"))
            .await
            .map(|pending| pending.is_empty())
            .unwrap_or(false)
    })
    .await;
    let seen = bob.history(&room);
    assert_eq!(
        seen.iter().filter(|t| *t == offline_text).count(),
        1,
        "the queued message arrives exactly once: {seen:?}"
    );

    println!(
        "desktop app: start-up (process start to the login page painted) {startup_ms:.0} ms; idle memory \
         {pss_mib:.0} MiB PSS over {} processes; screenshots in {}",
        processes.len(),
        shots.display()
    );
    client.close().await.unwrap();
    server.stop().await;
}

/// The real server in-process, stopped gracefully on request.
struct RunningServer {
    addr: std::net::SocketAddr,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

impl RunningServer {
    async fn start(settings: Settings) -> RunningServer {
        let server = parlor_signaling::server::Server::bind(settings)
            .await
            .unwrap();
        let addr = server.local_addr();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(server.run(async move {
            let _ = stopped.await;
        }));
        RunningServer { addr, stop, task }
    }

    /// Stops it; returns its address, to start it again where clients expect it.
    async fn stop(self) -> std::net::SocketAddr {
        let _ = self.stop.send(());
        let _ = self.task.await;
        self.addr
    }
}

/// A WebDriver session on a newly started app (tauri-driver starts it).
async fn open_window(
    driver_url: &str,
    capabilities: &serde_json::Map<String, serde_json::Value>,
) -> Client {
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    let deadline = Instant::now() + PATIENCE;
    loop {
        let mut builder = ClientBuilder::new(connector.clone());
        builder.capabilities(capabilities.clone());
        let session = builder.connect(driver_url);
        match tokio::time::timeout(PATIENCE, session)
            .await
            .unwrap_or_else(|_| panic!("the app did not start within {PATIENCE:?}"))
        {
            Ok(client) => return client,
            Err(e) if Instant::now() < deadline => {
                eprintln!("waiting for tauri-driver: {e}");
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
            Err(e) => panic!("no WebDriver session: {e}"),
        }
    }
}
