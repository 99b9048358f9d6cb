// Runs Debian's Chromium as a WebRTC peer against parlor-rtc-peer and prints one JSON line:
// {"chromium": {...page stats...}, "ours": {...parlor-rtc-peer result...}}.
//
//   node chromium-peer.mjs --chromium-role offer|answer --peer PATH [--duration SECS]
//                          [--receive-only] [--video-codecs LIST]
//
// --receive-only: Chromium sends nothing (answerer only), for one-way calls into it. The report
// has Chromium's decoded video frames in each second (`frames_per_second`).
// --video-codecs VP8,VP9: Chromium offers and accepts video in these codecs only (with their
// retransmission streams), as Debian's Firefox, which has no H.264, does.
//
// Meant to run inside a loopback-only network namespace (unshare -n); it contacts nothing but
// 127.0.0.1.
import { servePage, launchChromiumPage, launchFirefox } from './browser.mjs';
import { spawn } from 'node:child_process';
import readline from 'node:readline';
import { readFileSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { option } from './web-harness.mjs';

const chromiumRole = option('chromium-role');
const peerPath = option('peer');
const duration = Number(option('duration', '4'));
const receiveOnly = process.argv.includes('--receive-only');
const videoCodecs = option('video-codecs', '') || null;
// --browser firefox: Debian's Firefox ESR instead (no H.264: it calls us in VP8).
const browserName = option('browser', 'chromium');
if (receiveOnly && chromiumRole !== 'answer') throw new Error('--receive-only needs --chromium-role answer');
const ourRole = chromiumRole === 'offer' ? 'answer' : 'offer';
const here = dirname(fileURLToPath(import.meta.url));
const page_html = readFileSync(join(here, 'page.html'));
const deadline = (ms, what) => new Promise((_, reject) => setTimeout(() => reject(new Error(`timed out: ${what}`)), ms));

const { server, url } = await servePage(page_html);
const browser = browserName === 'firefox' ? await launchFirefox(url) : await launchChromiumPage();

let peer;
let exitCode = 0;
try {
  const { page } = browser;
  page.on('console', (m) => process.stderr.write(`[page] ${m.text()}\n`));
  page.on('pageerror', (e) => process.stderr.write(`[page error] ${e}\n`));

  peer = spawn(peerPath, ['--role', ourRole, '--tone', '440', '--duration', String(duration)], {
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  let ours = null;
  let pageReady = false;
  const early = [];
  // One at a time and in order: a candidate must not overtake the description it belongs to.
  let chain = Promise.resolve();
  const deliver = (line) => {
    chain = chain.then(() => page.evaluate((l) => window.onSignal(l), line))
      .catch((e) => process.stderr.write(`signal: ${e}\n`));
  };
  const oursDone = new Promise((resolve) => {
    readline.createInterface({ input: peer.stdout }).on('line', (line) => {
      const value = JSON.parse(line);
      if (value.result) {
        ours = value.result;
        resolve();
      } else if (pageReady) {
        deliver(line);
      } else {
        early.push(line); // the page is not listening yet
      }
    });
    peer.on('exit', () => resolve());
  });
  await page.exposeFunction('sendSignal', (line) => { peer.stdin.write(line + '\n'); });
  await page.goto(url);
  await page.evaluate(
    ([role, only, codecs]) => window.start(role, only, codecs),
    [chromiumRole, receiveOnly, videoCodecs],
  );
  pageReady = true;
  for (const line of early.splice(0)) deliver(line);

  await Promise.race([
    (async () => {
      while (!(await page.evaluate(() => window.isConnected()))) await new Promise((r) => setTimeout(r, 50));
    })(),
    deadline(30000, `${browserName} connecting`),
  ]);
  // Both sides run for `duration` seconds from connecting; read Chromium's view just before
  // ours ends, counting its decoded frames second by second on the way.
  const framesPerSecond = [];
  let decodedBefore = 0;
  const seconds = Math.max(1, Math.floor(duration - 0.8));
  for (let second = 0; second < seconds; second++) {
    await new Promise((r) => setTimeout(r, 1000));
    const decoded = await page.evaluate(() => window.videoFramesDecoded());
    framesPerSecond.push(decoded - decodedBefore);
    decodedBefore = decoded;
  }
  const chromiumReport = await page.evaluate(() => window.report());
  chromiumReport.frames_per_second = framesPerSecond;
  // Our peer stays past its duration until the page's greeting has come over the data
  // channel: if it never ends, say how far the channel got on the page's side.
  const channel = { data_channel_open_ms: chromiumReport.data_channel_open_ms, messages: chromiumReport.messages };
  await Promise.race([oursDone, deadline(30000, `parlor-rtc-peer result (page's data channel: ${JSON.stringify(channel)})`)]);
  process.stdout.write(JSON.stringify({ chromium: chromiumReport, ours }) + '\n');
} catch (e) {
  process.stderr.write(`interop failed: ${e.stack || e}\n`);
  exitCode = 1;
} finally {
  if (peer && peer.exitCode === null) peer.kill();
  await browser.close();
  server.close();
}
process.exit(exitCode);
