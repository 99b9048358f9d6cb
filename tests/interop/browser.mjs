// What both harnesses need: a page served on 127.0.0.1, and Debian's Chromium launched as a
// headless WebRTC peer.
import { chromium } from 'playwright-core';
import http from 'node:http';

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
    ],
  });
}
