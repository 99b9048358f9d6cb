// Two Debian Chromium pages in a two-way video call (each page's fake camera at 640x480 30 fps,
// H.264 forced, Chromium's defaults otherwise), for scripts/compare-two-way.sh. Prints one JSON
// line: for the offerer and the answerer, what each received from the other (frame rate,
// freezes, last width) and every second what each sent and its estimate. Readings start a second
// after the answer is applied.
//
//   node chromium-two-way.mjs --seconds N
//
// Meant to run inside a (shaped) loopback-only network namespace; contacts nothing but
// 127.0.0.1.
import { servePage, launchChromium } from './browser.mjs';
import { option } from './web-harness.mjs';

const seconds = Number(option('seconds', '20'));

const page = `<!doctype html><meta charset="utf-8"><title>two-way</title>
<video id="v" autoplay muted playsinline></video>
<script>
  window.pc = new RTCPeerConnection();
  const gathered = () => new Promise((resolve) => {
    if (pc.iceGatheringState === 'complete') return resolve();
    pc.addEventListener('icegatheringstatechange', () => {
      if (pc.iceGatheringState === 'complete') resolve();
    });
  });
  const camera = async () => (await navigator.mediaDevices.getUserMedia({
    video: { width: 640, height: 480, frameRate: 30 }, audio: false })).getVideoTracks()[0];
  const h264 = () => RTCRtpSender.getCapabilities('video').codecs
    .filter((c) => c.mimeType === 'video/H264' || c.mimeType === 'video/rtx');
  pc.ontrack = (e) => { document.getElementById('v').srcObject = new MediaStream([e.track]); };
  window.offer = async () => {
    const transceiver = pc.addTransceiver(await camera(), { direction: 'sendrecv' });
    transceiver.setCodecPreferences(h264());
    await pc.setLocalDescription(await pc.createOffer());
    await gathered();
    return pc.localDescription.toJSON();
  };
  window.answer = async (offer) => {
    await pc.setRemoteDescription(offer);
    const [transceiver] = pc.getTransceivers();
    transceiver.direction = 'sendrecv';
    await transceiver.sender.replaceTrack(await camera());
    transceiver.setCodecPreferences(h264());
    await pc.setLocalDescription(await pc.createAnswer());
    await gathered();
    return pc.localDescription.toJSON();
  };
  window.accept = (answer) => pc.setRemoteDescription(answer);
  window.reading = async () => {
    const r = { estimate: 0, bytesSent: 0, framesDecoded: 0, freezeCount: 0, totalFreezesDuration: 0, frameWidth: 0 };
    (await pc.getStats()).forEach((s) => {
      if (s.type === 'candidate-pair' && s.nominated && s.availableOutgoingBitrate) r.estimate = s.availableOutgoingBitrate;
      if (s.type === 'outbound-rtp' && s.kind === 'video') r.bytesSent = s.bytesSent;
      if (s.type === 'inbound-rtp' && s.kind === 'video') {
        r.framesDecoded = s.framesDecoded || 0;
        r.freezeCount = s.freezeCount || 0;
        r.totalFreezesDuration = s.totalFreezesDuration || 0;
        r.frameWidth = s.frameWidth || 0;
      }
    });
    return r;
  };
</script>`;

const { server, url } = await servePage(page);
const browser = await launchChromium({ fps: 30 });
let exitCode = 0;
try {
  const pages = await Promise.all([0, 1].map(async () => {
    const p = await (await browser.newContext()).newPage();
    p.on('pageerror', (e) => process.stderr.write(`[page error] ${e}\n`));
    await p.goto(url);
    return p;
  }));
  const offer = await pages[0].evaluate(() => window.offer());
  const answer = await pages[1].evaluate((o) => window.answer(o), offer);
  await pages[0].evaluate((a) => window.accept(a), answer);
  const read = () => Promise.all(pages.map((p) => p.evaluate(() => window.reading())));
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
  await sleep(1000);
  const first = await read();
  let previous = first;
  const sent = [[], []];
  const start = Date.now();
  for (let s = 1; s <= seconds; s++) {
    await sleep(Math.max(0, start + s * 1000 - Date.now()));
    const now = await read();
    now.forEach((r, i) => sent[i].push({
      estimate: Math.round(r.estimate / 1000),
      sent: Math.round(((r.bytesSent - previous[i].bytesSent) * 8) / 1000),
      // The width this side's picture arrives at, as the far side decodes it.
      width: now[1 - i].frameWidth,
    }));
    previous = now;
  }
  const elapsed = (Date.now() - start) / 1000;
  const side = (i) => ({
    fps: (previous[i].framesDecoded - first[i].framesDecoded) / elapsed,
    freezes: previous[i].freezeCount - first[i].freezeCount,
    freeze_seconds: previous[i].totalFreezesDuration - first[i].totalFreezesDuration,
    received_width: previous[i].frameWidth,
    sent_per_second: sent[i],
  });
  console.log(JSON.stringify({ offerer: side(0), answerer: side(1) }));
} catch (e) {
  console.error(e);
  exitCode = 1;
} finally {
  await browser.close();
  server.close();
}
process.exit(exitCode);
