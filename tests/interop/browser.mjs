// What the harnesses need: a page served on 127.0.0.1, and Debian's Chromium (through
// Playwright) or Firefox ESR (through Puppeteer and WebDriver BiDi: Playwright drives only its
// own Firefox build) launched as a headless WebRTC peer.
import { chromium } from 'playwright-core';
import puppeteer from 'puppeteer-core';
import http from 'node:http';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/// Serves `html` on a free loopback port; returns the server and its URL.
export async function servePage(html) {
  const server = http.createServer((_, res) => {
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
    res.end(html);
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, url: `http://127.0.0.1:${server.address().port}/` };
}

/// Headless Chromium with a fake camera (at `fps`) and microphone. Playwright gives the browser
/// a fresh temporary profile of its own.
export function launchChromium({ fps } = {}) {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: [
      '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
      fps ? `--use-fake-device-for-media-stream=fps=${fps}` : '--use-fake-device-for-media-stream',
      '--use-fake-ui-for-media-stream',
      '--allow-loopback-in-peer-connection', '--disable-features=WebRtcHideLocalIpsWithMdns',
      '--autoplay-policy=no-user-gesture-required',
      // More switches for a diagnosis, e.g. its SCTP packets and data-channel errors:
      // CHROMIUM_EXTRA_ARGS='--enable-logging=stderr --vmodule=dcsctp_transport=2,text_pcap_packet_observer=2'
      // with DEBUG=pw:browser to see the browser's stderr.
      ...(process.env.CHROMIUM_EXTRA_ARGS || '').split(' ').filter(Boolean),
    ],
  });
}

/// Headless Firefox ESR with a fake camera and microphone, in a fresh profile that already holds
/// camera and microphone permission for `url`'s origin: without a stored permission, Firefox
/// gathers no local ICE candidate in a namespace with no default route. Returns a page and a
/// `close` that also removes the profile.
export async function launchFirefox(url) {
  const profile = mkdtempSync(join(tmpdir(), 'parlor-firefox-'));
  const origin = new URL(url).origin;
  const now = Date.now();
  execFileSync('sqlite3', [join(profile, 'permissions.sqlite'), `
    CREATE TABLE moz_perms (id INTEGER PRIMARY KEY, origin TEXT, type TEXT, permission INTEGER,
      expireType INTEGER, expireTime INTEGER, modificationTime INTEGER);
    CREATE TABLE moz_hosts (id INTEGER PRIMARY KEY, host TEXT, type TEXT, permission INTEGER,
      expireType INTEGER, expireTime INTEGER, modificationTime INTEGER, isInBrowserElement INTEGER);
    INSERT INTO moz_perms (origin, type, permission, expireType, expireTime, modificationTime)
      VALUES ('${origin}', 'camera', 1, 0, 0, ${now}), ('${origin}', 'microphone', 1, 0, 0, ${now});
    PRAGMA user_version = 12;`]);
  const browser = await puppeteer.launch({
    browser: 'firefox',
    executablePath: process.env.FIREFOX || '/usr/bin/firefox-esr',
    headless: true,
    userDataDir: profile,
    extraPrefsFirefox: {
      'media.navigator.streams.fake': true,
      'media.navigator.permission.disabled': true,
      'media.autoplay.default': 0,
      'media.autoplay.block-webaudio': false,
      'media.peerconnection.ice.loopback': true,
    },
  });
  const page = await browser.newPage();
  return {
    page,
    close: async () => {
      await browser.close().catch(() => {});
      rmSync(profile, { recursive: true, force: true });
    },
  };
}

/// Headless Chromium's page, in the shape `launchFirefox` returns.
export async function launchChromiumPage() {
  const browser = await launchChromium();
  const page = await (await browser.newContext()).newPage();
  return { page, close: () => browser.close().catch(() => {}) };
}
