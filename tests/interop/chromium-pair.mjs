// Two Debian Chromium pages in one headless browser (each in its own context), one-way video:
// the sender's fake camera at 640x480 30 fps, H.264 forced (or VP8, `--codec VP8`), Chromium's own congestion control
// and defaults otherwise; the receiver plays it in a <video> element. Prints one JSON line in the
// shape `parlor-rtc-bench --link-call --json` prints, so scripts/compare-links.sh can put the
// two side by side.
//
//   node chromium-pair.mjs --seconds N [--codec H264|VP8] [--warm-up S]
//
// Meant to run inside a (shaped) loopback-only network namespace; contacts nothing but
// 127.0.0.1.
import { servePage, launchChromium } from './browser.mjs';
import { option } from './web-harness.mjs';

const seconds = Number(option('seconds', '20'));
const forcedCodec = option('codec', 'H264');
// 0 measures from the moment the answer is applied: the call's first seconds too.
const warmUp = Number(option('warm-up', '1'));

const page = `<!doctype html><meta charset="utf-8"><title>pair</title>
<video id="v" autoplay muted playsinline></video>
<script>
  window.pc = new RTCPeerConnection();
  window.gathered = () => new Promise((resolve) => {
    if (pc.iceGatheringState === 'complete') return resolve();
    pc.addEventListener('icegatheringstatechange', () => {
      if (pc.iceGatheringState === 'complete') resolve();
    });
  });
  window.send = async (codec) => {
    const stream = await navigator.mediaDevices.getUserMedia({
      video: { width: 640, height: 480, frameRate: 30 }, audio: false });
    const transceiver = pc.addTransceiver(stream.getVideoTracks()[0], { direction: 'sendonly' });
    const forced = RTCRtpSender.getCapabilities('video').codecs
      .filter((c) => c.mimeType === 'video/' + codec || c.mimeType === 'video/rtx');
    transceiver.setCodecPreferences(forced);
    await pc.setLocalDescription(await pc.createOffer());
    await gathered();
    return pc.localDescription.toJSON();
  };
  // Capture → presentation of each frame the <video> element shows: the sender's capture time
  // (from its RTCP sender reports; both pages share this machine's clock) against the time the
  // compositor presented the frame.
  window.latencies = [];
  const onFrame = (now, frame) => {
    if (frame.captureTime !== undefined) {
      latencies.push(frame.presentationTime - frame.captureTime);
    }
    document.getElementById('v').requestVideoFrameCallback(onFrame);
  };
  window.receive = async (offer) => {
    const video = document.getElementById('v');
    pc.ontrack = (e) => { video.srcObject = new MediaStream([e.track]); };
    video.requestVideoFrameCallback(onFrame);
    await pc.setRemoteDescription(offer);
    await pc.setLocalDescription(await pc.createAnswer());
    await gathered();
    return pc.localDescription.toJSON();
  };
  window.answer = (a) => pc.setRemoteDescription(a);
  window.inbound = async () => {
    let out = null;
    (await pc.getStats()).forEach((s) => {
      if (s.type === 'inbound-rtp' && s.kind === 'video') out = s;
    });
    return out && {
      framesDecoded: out.framesDecoded || 0, freezeCount: out.freezeCount || 0,
      totalFreezesDuration: out.totalFreezesDuration || 0, bytesReceived: out.bytesReceived || 0,
      frameWidth: out.frameWidth || 0, frameHeight: out.frameHeight || 0,
    };
  };
  window.outbound = async () => {
    let estimate = 0, bytes = 0, codec = '';
    const stats = await pc.getStats();
    stats.forEach((s) => {
      if (s.type === 'candidate-pair' && s.nominated && s.availableOutgoingBitrate) {
        estimate = s.availableOutgoingBitrate;
      }
      if (s.type === 'outbound-rtp' && s.kind === 'video') {
        bytes = s.bytesSent;
        const c = stats.get(s.codecId);
        codec = c ? c.mimeType : '';
      }
    });
    return { estimate, bytes, codec };
  };
</script>`;

const { server, url } = await servePage(page);
// The fake camera runs at 20 fps unless told; the Parlor bench sends 30.
const browser = await launchChromium({ fps: 30 });
let exitCode = 0;
try {
  const [sender, receiver] = await Promise.all([0, 1].map(async () => {
    const p = await (await browser.newContext()).newPage();
    p.on('pageerror', (e) => process.stderr.write(`[page error] ${e}\n`));
    await p.goto(url);
    return p;
  }));
  const offer = await sender.evaluate((codec) => window.send(codec), forcedCodec);
  const answer = await receiver.evaluate((o) => window.receive(o), offer);
  await sender.evaluate((a) => window.answer(a), answer);

  // Warm up (a second unless told, as the Parlor bench does), then a reading every second.
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
  await sleep(warmUp * 1000);
  const first = (await receiver.evaluate(() => window.inbound())) || { framesDecoded: 0, freezeCount: 0, totalFreezesDuration: 0, bytesReceived: 0 };
  let previous = first;
  let sentBefore = (await sender.evaluate(() => window.outbound())).bytes;
  const frames = [];
  const trace = [];
  let last = first;
  let codec = '';
  await receiver.evaluate(() => { window.latencies = []; });
  const start = Date.now();
  for (let s = 1; s <= seconds; s++) {
    await sleep(Math.max(0, start + s * 1000 - Date.now()));
    const now = (await receiver.evaluate(() => window.inbound())) || previous;
    const out = await sender.evaluate(() => window.outbound());
    codec = out.codec;
    frames.push(now.framesDecoded - previous.framesDecoded);
    trace.push({
      estimate: Math.round(out.estimate / 1000),
      sent: Math.round(((out.bytes - sentBefore) * 8) / 1000),
      received: Math.round(((now.bytesReceived - previous.bytesReceived) * 8) / 1000),
      width: now.frameWidth || 0,
    });
    sentBefore = out.bytes;
    previous = now;
    last = now;
  }
  const elapsed = (Date.now() - start) / 1000;
  const latencies = (await receiver.evaluate(() => window.latencies)).sort((x, y) => x - y);
  const quantile = (q) => latencies.length
    ? latencies[Math.min(latencies.length - 1, Math.floor(latencies.length * q))]
    : null;
  console.log(JSON.stringify({
    codec,
    fps: (last.framesDecoded - first.framesDecoded) / elapsed,
    frames: last.framesDecoded - first.framesDecoded,
    freezes: last.freezeCount - first.freezeCount,
    freeze_seconds: last.totalFreezesDuration - first.totalFreezesDuration,
    received_width: last.frameWidth || 0,
    received_height: last.frameHeight || 0,
    frames_per_second: frames,
    estimates_kbps: trace,
    latency_p50_ms: quantile(0.5),
    latency_p95_ms: quantile(0.95),
    latency_frames: latencies.length,
  }));
} catch (e) {
  process.stderr.write(`chromium pair: ${e.stack || e}\n`);
  exitCode = 1;
} finally {
  await browser.close();
  server.close();
}
process.exit(exitCode);
