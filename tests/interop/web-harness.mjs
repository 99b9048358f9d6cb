// What the web app's end-to-end scripts share: the real server serving the web build, the
// `parlor` CLI as a participant, and waiting on a page for what it should come to show.
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import readline from 'node:readline';

/** A guard against hangs, never a speed check. */
export const PATIENCE_MS = 60_000;
export const PASSWORD = 'a long password';

export function option(name, fallback) {
  const i = process.argv.indexOf(`--${name}`);
  if (i >= 0 && i + 1 < process.argv.length) return process.argv[i + 1];
  if (fallback === undefined) throw new Error(`--${name} is required`);
  return fallback;
}

/** The server and the CLI runs of one script, all stopped (and their files removed) by `stop`. */
export class Stage {
  constructor({ server, cli, webDir }) {
    this.serverPath = server;
    this.cliPath = cli;
    this.webDir = webDir;
    this.dir = mkdtempSync(join(tmpdir(), 'parlor-web-'));
    this.children = [];
  }

  /** Stops the server (SIGTERM, as an upgrade would) and starts it again on the same address
   * and database; resolves once it listens. */
  async restartServer() {
    const exited = new Promise((r) => this.server.once('exit', r));
    this.server.kill('SIGTERM');
    await exited;
    await this.startServer(this.addr);
  }

  /** Starts the server on `addr` (default: a free port); resolves with its address once it
   * listens. */
  startServer(addr = '127.0.0.1:0') {
    const child = spawn(
      this.serverPath,
      ['--listen', addr, '--database', join(this.dir, 'server.db'), '--web-dir', this.webDir],
      { stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, RUST_LOG: 'parlor_signaling=warn' } },
    );
    this.children.push(child);
    this.server = child;
    return new Promise((resolve, reject) => {
      const lines = readline.createInterface({ input: child.stdout });
      lines.once('line', (line) => {
        const addr = line.replace(/^listening on /, '');
        if (addr === line) reject(new Error(`server said ${line}`));
        else {
          this.addr = addr;
          this.url = `ws://${addr}/ws`;
          this.origin = `http://${addr}`;
          resolve(addr);
        }
      });
      child.once('exit', (code) => reject(new Error(`server exited with ${code}`)));
    });
  }

  /** Runs the CLI (its own account and store) to the end; resolves with its JSON lines. */
  cli(args) {
    return new Promise((resolve, reject) => {
      const child = spawn(this.cliPath, ['--server', this.url, '--data-dir', join(this.dir, 'cli'), '--json', ...args], {
        stdio: ['ignore', 'pipe', 'inherit'],
        env: { ...process.env, PARLOR_PASSWORD: PASSWORD },
      });
      this.children.push(child);
      let out = '';
      child.stdout.on('data', (d) => (out += d));
      child.on('exit', (code) => {
        if (code !== 0) reject(new Error(`parlor ${args.join(' ')} exited with ${code}: ${out}`));
        else resolve(out.split('\n').filter(Boolean).map((l) => JSON.parse(l)));
      });
    });
  }

  /** `parlor call` with the test pattern and a 440 Hz tone; resolves with its report. */
  cliCall(room, seconds) {
    const report = join(this.dir, `call-${Date.now()}.json`);
    return this.cli([
      'call', room, '--video', 'test-pattern', '--audio', 'tone:440', '--duration', String(seconds),
      '--bind', '127.0.0.1', '--stats-json', report,
    ]).then(() => JSON.parse(readFileSync(report, 'utf8')));
  }

  stop() {
    for (const child of this.children) child.kill('SIGTERM');
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** Polls `check` in the page until it returns something truthy; returns that. */
export async function waitInPage(page, what, check, arg) {
  const until = Date.now() + PATIENCE_MS;
  for (;;) {
    const value = await page.evaluate(check, arg);
    if (value) return value;
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** For waitInPage: the selector (its argument) matches something. */
export const exists = () => (s) => document.querySelector(s) !== null;

/** Registers `username` on the page's sign-up form and waits for the signed-in view. */
export async function register(page, origin, username, displayName) {
  await page.goto(`${origin}/`);
  await waitInPage(page, 'the login form', exists(), '[data-testid=login-form]');
  await page.click('[data-testid=toggle-register]');
  await page.type('[data-testid=username]', username);
  await page.type('[data-testid=display-name]', displayName);
  await page.type('[data-testid=password]', PASSWORD);
  await page.click('[data-testid=submit]');
  await waitInPage(page, 'the signed-in view', exists(), '[data-testid=create-room]');
}

/** For waitInPage: frames decoded in each remote tile (tile 0 is the local preview), once at
 * least `{count}` tiles have each shown more than `{frames}`. */
export const remoteTilesPlaying = () => ({ count, frames }) => {
  const tiles = [...document.querySelectorAll('[data-testid=tile]')].filter((t) => t.getAttribute('data-tile') !== '0');
  const shown = tiles.map((t) => Number(t.getAttribute('data-frames') ?? 0));
  return shown.length >= count && shown.every((n) => n > frames) ? shown : null;
};

/** For waitInPage: the loudest frequency, 100 Hz to 2 kHz, in the sound the page receives on
 * remote tile `{tile}` (null: the first), once it is within 20 Hz of `{hz}`. The sound is
 * recorded for a second and decoded offline: headless Firefox has no audio device to run a live
 * AudioContext on. */
export const toneHeard = () => async ({ tile, hz: expected }) => {
  const tiles = [...document.querySelectorAll('[data-testid=tile]')].filter((t) => t.getAttribute('data-tile') !== '0');
  const remote = tile === null ? tiles[0] : tiles.find((t) => t.getAttribute('data-tile') === String(tile));
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
  // The middle half second, scanned with the Goertzel filter.
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
  return Math.abs(best.hz - expected) < 20 ? best.hz : null;
};
