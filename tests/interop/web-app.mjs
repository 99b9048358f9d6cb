// The web app end to end: the real parlor-server serving ui/dist-web, a real browser (Debian's
// Chromium or Firefox ESR) using it as a person would, and the `parlor` CLI as the other person.
// Prints one JSON line with what each side saw; the Rust test (crates/client/tests/web_app.rs)
// judges it.
//
//   node web-app.mjs --browser chromium|firefox --server PATH --cli PATH --web-dir DIR
//
// Meant to run inside a loopback-only network namespace (unshare -n); it contacts nothing but
// 127.0.0.1.
import { launchChromiumPage, launchFirefox } from './browser.mjs';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import readline from 'node:readline';

function option(name, fallback) {
  const i = process.argv.indexOf(`--${name}`);
  if (i >= 0 && i + 1 < process.argv.length) return process.argv[i + 1];
  if (fallback === undefined) throw new Error(`--${name} is required`);
  return fallback;
}

const browserName = option('browser', 'chromium');
const serverPath = option('server');
const cliPath = option('cli');
const webDir = option('web-dir');
/** A guard against hangs, never a speed check. */
const PATIENCE_MS = 60_000;
const PASSWORD = 'a long password';
const MARKUP = '<b>bold</b> <img src=x onerror="window.pwned=1"> & <script>window.pwned=2</script>';
const log = (line) => process.stderr.write(`[web-app] ${line}\n`);

const dir = mkdtempSync(join(tmpdir(), 'parlor-web-app-'));
const children = [];

/** Starts the server on a free port; resolves with its address once it listens. */
function startServer() {
  const child = spawn(serverPath, ['--listen', '127.0.0.1:0', '--database', join(dir, 'server.db'), '--web-dir', webDir], {
    stdio: ['ignore', 'pipe', 'inherit'],
    env: { ...process.env, RUST_LOG: 'parlor_signaling=warn' },
  });
  children.push(child);
  return new Promise((resolve, reject) => {
    const lines = readline.createInterface({ input: child.stdout });
    lines.once('line', (line) => {
      const addr = line.replace(/^listening on /, '');
      if (addr === line) reject(new Error(`server said ${line}`));
      else resolve(addr);
    });
    child.once('exit', (code) => reject(new Error(`server exited with ${code}`)));
  });
}

/** Runs the CLI as `cli` to the end; resolves with its JSON lines. */
function cli(url, args) {
  return new Promise((resolve, reject) => {
    const child = spawn(cliPath, ['--server', url, '--data-dir', join(dir, 'cli'), '--json', ...args], {
      stdio: ['ignore', 'pipe', 'inherit'],
      env: { ...process.env, PARLOR_PASSWORD: PASSWORD },
    });
    children.push(child);
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.on('exit', (code) => {
      if (code !== 0) reject(new Error(`parlor ${args.join(' ')} exited with ${code}: ${out}`));
      else resolve(out.split('\n').filter(Boolean).map((l) => JSON.parse(l)));
    });
  });
}

/** `parlor call` with the test pattern and a 440 Hz tone; resolves with its report. */
function cliCall(url, room, seconds) {
  const report = join(dir, `call-${Date.now()}.json`);
  return cli(url, [
    'call', room, '--video', 'test-pattern', '--audio', 'tone:440', '--duration', String(seconds),
    '--bind', '127.0.0.1', '--stats-json', report,
  ]).then(() => JSON.parse(readFileSync(report, 'utf8')));
}

/** Polls `check` in the page until it returns something truthy; returns that. */
async function waitInPage(page, what, check, arg) {
  const until = Date.now() + PATIENCE_MS;
  for (;;) {
    const value = await page.evaluate(check, arg);
    if (value) return value;
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

const exists = (selector) => (s) => document.querySelector(s) !== null;

let browser;
let exitCode = 0;
try {
  const addr = await startServer();
  const origin = `http://${addr}`;
  const url = `ws://${addr}/ws`;
  browser = browserName === 'firefox' ? await launchFirefox(origin) : await launchChromiumPage();
  const { page } = browser;
  const csp = [];
  page.on('console', (m) => {
    const text = m.text();
    if (/Content.Security.Policy|Content-Security-Policy/i.test(text)) csp.push(text);
    process.stderr.write(`[page] ${text}\n`);
  });
  page.on('pageerror', (e) => process.stderr.write(`[page error] ${e}\n`));

  // 1. Register in the browser, from the page the server serves.
  await page.goto(`${origin}/`);
  await waitInPage(page, 'the login form', exists(), '[data-testid=login-form]');
  await page.click('[data-testid=toggle-register]');
  await page.type('[data-testid=username]', 'webby');
  await page.type('[data-testid=display-name]', 'Web User');
  await page.type('[data-testid=password]', PASSWORD);
  await page.click('[data-testid=submit]');
  await waitInPage(page, 'the signed-in view', exists(), '[data-testid=create-room]');
  log('registered in the browser');

  // 2. The browser makes a public room; the CLI registers and joins it.
  await page.click('[data-testid=create-room]');
  await page.type('[data-testid=dialog-name]', 'web');
  await page.click('[data-testid=dialog-submit]');
  await waitInPage(page, 'the new room', exists(), '[data-testid=room-title]');
  const room = String(await page.evaluate(() => document.querySelector('[data-testid=room]')?.getAttribute('data-room-id')));
  await cli(url, ['register', 'cli']);
  await cli(url, ['join', room]);
  log(`room ${room} shared`);

  // 3. Chat both ways; markup from the CLI stays text in the page.
  await cli(url, ['send', room, MARKUP]);
  const shown = await waitInPage(
    page,
    "the CLI's message",
    (markup) => [...document.querySelectorAll('[data-testid=message-text]')].find((e) => e.textContent === markup) !== undefined,
    MARKUP,
  );
  const markupStaysText = await page.evaluate(() => {
    const texts = [...document.querySelectorAll('[data-testid=message-text]')];
    return texts.every((e) => e.querySelector('b, img, script') === null) && window.pwned === undefined;
  });
  await page.type('[data-testid=composer]', 'hello from the browser');
  await page.click('[data-testid=send]');
  let cliSaw = [];
  for (const until = Date.now() + PATIENCE_MS; Date.now() < until; ) {
    cliSaw = (await cli(url, ['history', room])).flatMap((l) => (Array.isArray(l.messages) ? l.messages : [l])).map((m) => m.text ?? m.message?.text);
    if (cliSaw.includes('hello from the browser')) break;
    await new Promise((r) => setTimeout(r, 200));
  }
  log('chatted both ways');

  // 4. The CLI calls; the browser accepts the ring. Then the browser calls and the CLI joins.
  const calls = [];
  for (const caller of ['cli', 'browser']) {
    let cliReport;
    if (caller === 'cli') {
      cliReport = cliCall(url, room, 8);
      await waitInPage(page, 'the ring', exists(), '[data-testid=accept-call]');
      await page.click('[data-testid=accept-call]');
    } else {
      await page.click('[data-testid=start-call]');
      await waitInPage(page, 'the call view', exists(), '[data-testid=call]');
      cliReport = cliCall(url, room, 8);
    }
    // The CLI's tile (not the local preview, tile 0) shows decoded frames, and its sound arrives.
    const browserSaw = await waitInPage(page, "the CLI's video and sound in the browser", () => {
      const remote = [...document.querySelectorAll('[data-testid=tile]')].find((t) => t.getAttribute('data-tile') !== '0');
      const frames = Number(remote?.getAttribute('data-frames') ?? 0);
      const video = remote?.querySelector('video');
      const stream = video?.srcObject;
      const audio = stream ? stream.getAudioTracks().filter((t) => t.readyState === 'live').length : 0;
      return frames > 10 && audio > 0 ? { frames, audio_tracks: audio } : null;
    });
    // Heard: the loudest frequency of the CLI's sound as the page receives it is its 440 Hz
    // tone. Recorded and decoded offline: headless Firefox has no audio device to run a live
    // AudioContext on.
    const heardHz = await waitInPage(page, "the CLI's tone in the browser", async () => {
      const remote = [...document.querySelectorAll('[data-testid=tile]')].find((t) => t.getAttribute('data-tile') !== '0');
      const track = remote?.querySelector('video')?.srcObject?.getAudioTracks()[0];
      if (!track) return null;
      const recorder = new MediaRecorder(new MediaStream([track]));
      const chunks = [];
      recorder.ondataavailable = (e) => chunks.push(e.data);
      const stopped = new Promise((r) => (recorder.onstop = r));
      recorder.start();
      await new Promise((r) => setTimeout(r, 1000));
      recorder.stop();
      await stopped;
      const encoded = await new Blob(chunks, { type: recorder.mimeType }).arrayBuffer();
      const decoded = await new OfflineAudioContext(1, 48000, 48000).decodeAudioData(encoded);
      // The middle half second, scanned with the Goertzel filter from 100 Hz to 2 kHz.
      const all = decoded.getChannelData(0);
      const rate = decoded.sampleRate;
      const samples = all.subarray(Math.floor(all.length / 4), Math.floor(all.length / 4) + Math.floor(rate / 2));
      let best = { hz: 0, power: 0 };
      for (let hz = 100; hz <= 2000; hz += 5) {
        const k = 2 * Math.cos((2 * Math.PI * hz) / rate);
        let s1 = 0;
        let s2 = 0;
        for (const x of samples) {
          const s0 = x + k * s1 - s2;
          s2 = s1;
          s1 = s0;
        }
        const power = s1 * s1 + s2 * s2 - k * s1 * s2;
        if (power > best.power) best = { hz, power };
      }
      return Math.abs(best.hz - 440) < 20 ? best.hz : null;
    });
    const report = await cliReport;
    const quality = await page.evaluate(() => document.querySelector('[data-testid=quality]')?.textContent ?? null);
    calls.push({ caller, browser: { ...browserSaw, heard_hz: heardHz }, cli: report, quality });
    // The CLI left at the end of its duration: the browser hangs up too.
    await page.click('[data-testid=hang-up]');
    await waitInPage(page, 'the call to end', () => document.querySelector('[data-testid=call]') === null);
    log(`call placed by the ${caller} done`);
  }

  // 5. A guest: the owner makes a link in the page, signs out, and the link lets someone in
  //    without an account, into that room only; they chat with the CLI and take its call.
  await page.click('[data-testid=guest-links]');
  await page.click('[data-testid=guest-link-create]');
  const link = await waitInPage(page, 'the guest link', () => document.querySelector('[data-testid=guest-link-url]')?.value || null);
  await page.click('[data-testid=guest-links-close]');
  await page.click('[data-testid=logout]');
  await waitInPage(page, 'the login page', exists(), '[data-testid=login-form]');
  await page.goto(link);
  await waitInPage(page, 'the guest form', exists(), '[data-testid=guest-join-form]');
  await page.type('[data-testid=guest-name]', 'Guest Gus');
  await page.click('[data-testid=guest-join]');
  await waitInPage(page, "the guest's room", () => document.querySelector('[data-testid=room-title]')?.textContent === 'web');
  const guestView = await page.evaluate(() => ({
    note: document.querySelector('[data-testid=guest-note]') !== null,
    can_create_rooms: document.querySelector('[data-testid=create-room]') !== null,
    rooms: document.querySelectorAll('[data-testid=room]').length,
    address: location.pathname,
  }));
  await page.type('[data-testid=composer]', 'hello from a guest');
  await page.click('[data-testid=send]');
  let cliSawGuest = false;
  for (const until = Date.now() + PATIENCE_MS; !cliSawGuest && Date.now() < until; ) {
    const lines = await cli(url, ['history', room]);
    cliSawGuest = JSON.stringify(lines).includes('hello from a guest');
    if (!cliSawGuest) await new Promise((r) => setTimeout(r, 200));
  }
  const guestReport = cliCall(url, room, 6);
  await waitInPage(page, 'the ring, as a guest', exists(), '[data-testid=accept-call]');
  await page.click('[data-testid=accept-call]');
  const guestSaw = await waitInPage(page, "the CLI's video, as a guest", () => {
    const remote = [...document.querySelectorAll('[data-testid=tile]')].find((t) => t.getAttribute('data-tile') !== '0');
    const frames = Number(remote?.getAttribute('data-frames') ?? 0);
    return frames > 10 ? { frames } : null;
  });
  const guestCall = await guestReport;
  await page.click('[data-testid=hang-up]');
  log('a guest came in, chatted and took a call');

  process.stdout.write(
    JSON.stringify({
      browser: browserName,
      served: true,
      chat: { shown, markup_stays_text: markupStaysText, cli_saw: cliSaw },
      calls,
      guest: { link, view: guestView, cli_saw: cliSawGuest, browser: guestSaw, cli: guestCall },
      csp_violations: csp,
    }) + '\n',
  );
} catch (e) {
  process.stderr.write(`${e.stack ?? e}\n`);
  exitCode = 1;
} finally {
  await browser?.close();
  for (const child of children) child.kill('SIGTERM');
  rmSync(dir, { recursive: true, force: true });
}
process.exit(exitCode);
