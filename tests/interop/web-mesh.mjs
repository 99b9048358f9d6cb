// Two browsers and the CLI in one call through the web app: Chromium (H.264) and Firefox ESR
// (VP8 only) register on the page the server serves, meet in one room, and hold a three-way
// mesh call with the `parlor` CLI. Prints one JSON line; crates/client/tests/web_app.rs judges.
//
//   node web-mesh.mjs --server PATH --cli PATH --web-dir DIR
//
// Meant to run inside a loopback-only network namespace (unshare -n).
import { launchChromiumPage, launchFirefox } from './browser.mjs';
import { exists, option, register, remoteTilesPlaying, Stage, toneHeard, waitInPage } from './web-harness.mjs';

const stage = new Stage({ server: option('server'), cli: option('cli'), webDir: option('web-dir') });
const log = (line) => process.stderr.write(`[web-mesh] ${line}\n`);
const browsers = [];
let exitCode = 0;
try {
  await stage.startServer();
  const chromium = await launchChromiumPage();
  browsers.push(chromium);
  const firefox = await launchFirefox(stage.origin);
  browsers.push(firefox);
  for (const [name, b] of [['chromium', chromium], ['firefox', firefox]]) {
    b.page.on('console', (m) => process.stderr.write(`[${name}] ${m.text()}\n`));
    b.page.on('pageerror', (e) => process.stderr.write(`[${name} error] ${e}\n`));
  }

  // Ann (Chromium) makes a public room; Bob (Firefox) finds and joins it; the CLI joins too.
  await register(chromium.page, stage.origin, 'ann', 'Ann in Chromium');
  await chromium.page.click('[data-testid=create-room]');
  await chromium.page.type('[data-testid=dialog-name]', 'mesh');
  await chromium.page.click('[data-testid=dialog-submit]');
  await waitInPage(chromium.page, 'the new room', exists(), '[data-testid=room-title]');
  const room = String(await chromium.page.evaluate(() => document.querySelector('[data-testid=room]')?.getAttribute('data-room-id')));
  await register(firefox.page, stage.origin, 'bob', 'Bob in Firefox');
  await firefox.page.click('[data-testid=join-room]');
  await firefox.page.type('[data-testid=dialog-name]', 'mesh');
  await firefox.page.click('[data-testid=dialog-submit]');
  await waitInPage(firefox.page, 'the room found', exists(), '[data-testid=join-found]');
  await firefox.page.click('[data-testid=join-found]');
  await waitInPage(firefox.page, 'the joined room', () => document.querySelector('[data-testid=room-title]')?.textContent === 'mesh');
  const [registered] = await stage.cli(['register', 'cli']);
  const cliId = registered.user.id;
  await stage.cli(['join', room]);
  log(`room ${room}: ann, bob and the CLI (${cliId})`);

  // Ann starts the call, Bob accepts the ring, the CLI joins.
  await chromium.page.click('[data-testid=start-call]');
  await waitInPage(firefox.page, 'the ring in Firefox', exists(), '[data-testid=accept-call]');
  await firefox.page.click('[data-testid=accept-call]');
  const report = stage.cliCall(room, 15);

  const seen = {};
  for (const [name, b] of [['chromium', chromium], ['firefox', firefox]]) {
    seen[name] = {
      frames: await waitInPage(b.page, `two playing remote tiles in ${name}`, remoteTilesPlaying(), { count: 2, frames: 10 }),
      cli_tone_hz: await waitInPage(b.page, `the CLI's tone in ${name}`, toneHeard(), { tile: cliId, hz: 440 }),
    };
  }
  // Firefox's fake microphone is a steady 1 kHz tone (Chromium's beeps now and then).
  const bobTile = await chromium.page.evaluate((cli) =>
    [...document.querySelectorAll('[data-testid=tile]')].map((t) => t.getAttribute('data-tile')).find((id) => id !== '0' && id !== String(cli)), cliId);
  seen.chromium.firefox_tone_hz = await waitInPage(chromium.page, "Firefox's tone in Chromium", toneHeard(), { tile: Number(bobTile), hz: 1000 });
  const cli = await report;
  for (const b of browsers) await b.page.click('[data-testid=hang-up]');
  log('three-way call done');

  process.stdout.write(JSON.stringify({ cli_id: cliId, seen, cli }) + '\n');
} catch (e) {
  process.stderr.write(`${e.stack ?? e}\n`);
  exitCode = 1;
} finally {
  for (const b of browsers) await b.close();
  stage.stop();
}
process.exit(exitCode);
