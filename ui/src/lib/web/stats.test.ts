import { describe, expect, it } from 'vitest';
import { linkQuality, type StatsEntry } from './stats';

const report: StatsEntry[] = [
  { type: 'candidate-pair', nominated: false, state: 'failed', currentRoundTripTime: 9 },
  { type: 'candidate-pair', nominated: true, state: 'succeeded', currentRoundTripTime: 0.042, availableOutgoingBitrate: 1_500_000 },
  { type: 'inbound-rtp', kind: 'audio', bytesReceived: 1000, packetsReceived: 50, packetsLost: 1, jitter: 0.004 },
  {
    type: 'inbound-rtp',
    kind: 'video',
    bytesReceived: 9000,
    packetsReceived: 100,
    packetsLost: 2,
    jitter: 0.011,
    frameWidth: 640,
    frameHeight: 480,
    framesPerSecond: 29,
    freezeCount: 1,
  },
  { type: 'outbound-rtp', kind: 'video', frameWidth: 320, frameHeight: 240, framesPerSecond: 15, qualityLimitationReason: 'bandwidth' },
];

describe('linkQuality', () => {
  it('reads the pair in use, both directions of video and the totals of what came in', () => {
    const { quality } = linkQuality(7, report, null, 1000);
    expect(quality).toEqual({
      user_id: 7,
      rtt_ms: 42,
      packets_lost: 3,
      packets_received: 150,
      jitter_ms: 11,
      received_bps: 0,
      received_video: { width: 640, height: 480, fps: 29 },
      freeze_count: 1,
      sent_video: { width: 320, height: 240, fps: 15 },
      available_bps: 1_500_000,
      limitation: 'bandwidth',
    });
  });

  it('gives the received rate over the time since the reading before', () => {
    const first = linkQuality(7, report, null, 1000);
    const later = report.map((e) => (e.type === 'inbound-rtp' ? { ...e, bytesReceived: (e.bytesReceived ?? 0) + 25_000 } : e));
    // 50 000 more bytes over 2 s: 200 kbit/s.
    expect(linkQuality(7, later, first.reading, 3000).quality.received_bps).toBe(200_000);
  });

  it('says nothing it does not know: no pair yet, no video, a reason browsers add later', () => {
    const { quality } = linkQuality(7, [{ type: 'outbound-rtp', kind: 'video', qualityLimitationReason: 'other' }], null, 0);
    expect(quality.rtt_ms).toBeNull();
    expect(quality.jitter_ms).toBeNull();
    expect(quality.received_video).toBeNull();
    expect(quality.sent_video).toBeNull();
    expect(quality.limitation).toBe('none');
  });
});
