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
import { exists, option, register, remoteTilesPlaying, PATIENCE_MS, Stage, toneHeard, waitInPage } from './web-harness.mjs';

const browserName = option('browser', 'chromium');
const stage = new Stage({ server: option('server'), cli: option('cli'), webDir: option('web-dir') });
const MARKUP = '<b>bold</b> <img src=x onerror="window.pwned=1"> & <script>window.pwned=2</script>';
const log = (line) => process.stderr.write(`[web-app] ${line}\n`);

let browser;
let exitCode = 0;
try {
  await stage.startServer();
  const origin = stage.origin;
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
  await register(page, origin, 'webby', 'Web User');
  log('registered in the browser');

  // 2. The browser makes a public room; the CLI registers and joins it.
  await page.click('[data-testid=create-room]');
  await page.type('[data-testid=dialog-name]', 'web');
  await page.click('[data-testid=dialog-submit]');
  await waitInPage(page, 'the new room', exists(), '[data-testid=room-title]');
  const room = String(await page.evaluate(() => document.querySelector('[data-testid=room]')?.getAttribute('data-room-id')));
  await stage.cli(['register', 'cli']);
  await stage.cli(['join', room]);
  log(`room ${room} shared`);

  // 3. Chat both ways; markup from the CLI stays text in the page.
  await stage.cli(['send', room, MARKUP]);
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
    cliSaw = (await stage.cli(['history', room])).flatMap((l) => (Array.isArray(l.messages) ? l.messages : [l])).map((m) => m.text ?? m.message?.text);
    if (cliSaw.includes('hello from the browser')) break;
    await new Promise((r) => setTimeout(r, 200));
  }
  log('chatted both ways');

  // Search covers what the page has loaded.
  await page.click('[data-testid=open-search]');
  await page.type('[data-testid=search-input]', 'HELLO from');
  const search = await waitInPage(page, 'a search result', () =>
    [...document.querySelectorAll('[data-testid=search-result]')].map((e) => e.textContent).filter(Boolean).join(' | ') || null,
  );
  await page.click('[data-testid=open-search]');

  // 4. The CLI calls; the browser accepts the ring. Then the browser calls and the CLI joins.
  const calls = [];
  let quality = null;
  const controls = {};
  for (const caller of ['cli', 'browser']) {
    let cliReport;
    if (caller === 'cli') {
      cliReport = stage.cliCall(room, 8);
      await waitInPage(page, 'the ring', exists(), '[data-testid=accept-call]');
      await page.click('[data-testid=accept-call]');
    } else {
      await page.click('[data-testid=start-call]');
      await waitInPage(page, 'the call view', exists(), '[data-testid=call]');
      // Long enough for the quality badge's second reading and the controls.
      cliReport = stage.cliCall(room, 14);
    }
    // The CLI's tile (not the local preview, tile 0) shows decoded frames, and its sound arrives.
    const [frames] = await waitInPage(page, "the CLI's video in the browser", remoteTilesPlaying(), { count: 1, frames: 10 });
    const browserSaw = { frames };
    // Heard: the CLI's 440 Hz tone is the loudest in the sound the page receives from it.
    const heardHz = await waitInPage(page, "the CLI's tone in the browser", toneHeard(), { tile: null, hz: 440 });
    if (caller === 'browser') {
      // The quality badge, from getStats, and the controls: mute, camera off and on again.
      quality = await waitInPage(page, 'the quality badge', () => document.querySelector('[data-testid=quality]')?.textContent || null);
      await page.click('[data-testid=toggle-mic]');
      await page.click('[data-testid=toggle-camera]');
      controls.off = await waitInPage(page, 'mute and camera off', () => {
        const muted = document.querySelector('[data-testid=toggle-mic]')?.getAttribute('aria-pressed') === 'true';
        const local = document.querySelector('[data-tile="0"] video')?.srcObject;
        return muted && local && local.getVideoTracks().length === 0 ? { muted, local_video_tracks: 0 } : null;
      });
      await page.click('[data-testid=toggle-camera]');
      controls.on_again = await waitInPage(page, 'the camera back on', () => {
        const local = document.querySelector('[data-tile="0"] video')?.srcObject;
        return local && local.getVideoTracks().some((t) => t.readyState === 'live') ? { local_video_tracks: local.getVideoTracks().length } : null;
      });
      await page.click('[data-testid=toggle-mic]');
      controls.errors = await page.evaluate(() => document.querySelector('[data-testid=error]')?.textContent ?? null);
    }
    const report = await cliReport;
    calls.push({ caller, browser: { ...browserSaw, heard_hz: heardHz }, cli: report });
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
    const lines = await stage.cli(['history', room]);
    cliSawGuest = JSON.stringify(lines).includes('hello from a guest');
    if (!cliSawGuest) await new Promise((r) => setTimeout(r, 200));
  }
  const guestReport = stage.cliCall(room, 6);
  await waitInPage(page, 'the ring, as a guest', exists(), '[data-testid=accept-call]');
  await page.click('[data-testid=accept-call]');
  const [guestFrames] = await waitInPage(page, "the CLI's video, as a guest", remoteTilesPlaying(), { count: 1, frames: 10 });
  const guestSaw = { frames: guestFrames };
  const guestCall = await guestReport;
  await page.click('[data-testid=hang-up]');
  log('a guest came in, chatted and took a call');

  // 6. The server restarts mid-call (its calls live in memory): once the page is back, the
  //    server did not resume the call, so the page ends it and says so.
  const abandoned = stage.cliCall(room, 30).catch(() => null);
  await waitInPage(page, 'the ring, again', exists(), '[data-testid=accept-call]');
  await page.click('[data-testid=accept-call]');
  await waitInPage(page, 'the call, again', remoteTilesPlaying(), { count: 1, frames: 10 });
  await stage.restartServer();
  const lost = await waitInPage(page, 'the lost call', () =>
    document.querySelector('[data-testid=call]') === null && document.querySelector('[data-testid=connection]')?.classList.contains('connected')
      ? document.querySelector('[data-testid=error]')?.textContent ?? null
      : null,
  );
  void abandoned;
  log('a call lost in a server restart was ended');

  process.stdout.write(
    JSON.stringify({
      browser: browserName,
      served: true,
      chat: { shown, markup_stays_text: markupStaysText, cli_saw: cliSaw },
      calls,
      quality,
      controls,
      search,
      guest: { link, view: guestView, cli_saw: cliSawGuest, browser: guestSaw, cli: guestCall },
      lost,
      csp_violations: csp,
    }) + '\n',
  );
} catch (e) {
  process.stderr.write(`${e.stack ?? e}\n`);
  exitCode = 1;
} finally {
  await browser?.close();
  stage.stop();
}
process.exit(exitCode);
