// Two parlor-rtc-peer processes (the engine of `parlor call` and the app) in a two-way call,
// each sending its 640x480 30 fps test pattern (no audio: the Chromium pair sends none), signaling
// relayed line by line, for
// scripts/compare-two-way.sh. Prints one JSON line in chromium-two-way.mjs's shape: for the
// offerer and the answerer, what each received from the other and every second what each sent
// and its estimate (parlor-rtc-peer counts from the moment it connected).
//
//   node parlor-two-way.mjs --peer PATH --seconds N
//
// Meant to run inside a (shaped) loopback-only network namespace.
import { spawn } from 'node:child_process';
import readline from 'node:readline';
import { option } from './web-harness.mjs';

const peer = option('peer');
const seconds = Number(option('seconds', '20'));

const peers = ['offer', 'answer'].map((role) =>
  spawn(peer, ['--role', role, '--no-audio', '--duration', String(seconds)], {
    stdio: ['pipe', 'pipe', 'inherit'],
  }));
const results = [null, null];
peers.forEach((p, i) => {
  readline.createInterface({ input: p.stdout }).on('line', (line) => {
    if (line.startsWith('{"result"')) results[i] = JSON.parse(line).result;
    else peers[1 - i].stdin.write(`${line}\n`);
  });
});
// Bounded: a call that never ends is a failure, not a figure.
const limit = setTimeout(() => peers.forEach((p) => p.kill()), (seconds + 60) * 1000);
await Promise.all(peers.map((p) => new Promise((resolve) => p.on('exit', resolve))));
clearTimeout(limit);
if (results.some((r) => !r || r.error)) {
  console.error(`a peer failed: ${JSON.stringify(results.map((r) => r?.error ?? (r ? null : 'no result')))}`);
  process.exit(1);
}
const side = (i) => {
  const r = results[i];
  const video = (r.stats?.inbound ?? []).find((s) => s.kind === 'video') ?? {};
  return {
    fps: r.video_frames / seconds,
    freezes: video.freeze_count ?? 0,
    freeze_seconds: video.total_freezes_duration ?? 0,
    received_width: r.video_width,
    sent_per_second: r.per_second.map((s) => ({
      estimate: s.estimate_kbps ?? 0, sent: s.sent_kbps, width: s.video_width,
    })),
  };
};
console.log(JSON.stringify({ offerer: side(0), answerer: side(1) }));
