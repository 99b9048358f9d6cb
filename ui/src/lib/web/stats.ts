// A link's quality from the browser's getStats, in the shape the desktop's call_quality has, so
// the call view grades both alike. Pure: the report is passed in as the list of its entries.
import type { LinkQuality, UserId, VideoFigures } from '../types';

/** The fields of RTCStats entries read here (each type has some of them). */
export interface StatsEntry {
  type: string;
  kind?: string;
  state?: string;
  nominated?: boolean;
  selected?: boolean;
  currentRoundTripTime?: number;
  availableOutgoingBitrate?: number;
  bytesReceived?: number;
  packetsLost?: number;
  packetsReceived?: number;
  jitter?: number;
  frameWidth?: number;
  frameHeight?: number;
  framesPerSecond?: number;
  freezeCount?: number;
  qualityLimitationReason?: string;
  timestamp?: number;
}

/** What the next reading needs from this one: the byte count and when it was taken. */
export interface Previous {
  bytesReceived: number;
  at: number;
}

function video(entry: StatsEntry | undefined): VideoFigures | null {
  if (!entry || !entry.frameWidth || !entry.frameHeight) return null;
  return { width: entry.frameWidth, height: entry.frameHeight, fps: entry.framesPerSecond ?? 0 };
}

/** One participant's link at time `now` (ms), with the reading before it for rates. */
export function linkQuality(
  user: UserId,
  entries: StatsEntry[],
  previous: Previous | null,
  now: number,
): { quality: LinkQuality; reading: Previous } {
  const inbound = entries.filter((e) => e.type === 'inbound-rtp');
  const inboundVideo = inbound.find((e) => e.kind === 'video');
  const outboundVideo = entries.find((e) => e.type === 'outbound-rtp' && e.kind === 'video');
  // The pair in use: Chromium marks it `selected` on the transport's pair, Firefox `selected`
  // on the pair itself; a nominated, succeeded pair is the same thing where neither says.
  const pair =
    entries.find((e) => e.type === 'candidate-pair' && e.selected) ??
    entries.find((e) => e.type === 'candidate-pair' && e.nominated && e.state === 'succeeded');
  const bytesReceived = inbound.reduce((sum, e) => sum + (e.bytesReceived ?? 0), 0);
  const seconds = previous ? (now - previous.at) / 1000 : 0;
  const receivedBps = previous && seconds > 0 ? Math.max(0, ((bytesReceived - previous.bytesReceived) * 8) / seconds) : 0;
  const jitters = inbound.map((e) => e.jitter).filter((j): j is number => typeof j === 'number');
  const reason = outboundVideo?.qualityLimitationReason;
  return {
    quality: {
      user_id: user,
      rtt_ms: typeof pair?.currentRoundTripTime === 'number' ? pair.currentRoundTripTime * 1000 : null,
      packets_lost: inbound.reduce((sum, e) => sum + Math.max(0, e.packetsLost ?? 0), 0),
      packets_received: inbound.reduce((sum, e) => sum + (e.packetsReceived ?? 0), 0),
      jitter_ms: jitters.length > 0 ? Math.max(...jitters) * 1000 : null,
      received_bps: Math.round(receivedBps),
      received_video: video(inboundVideo),
      freeze_count: inboundVideo?.freezeCount ?? 0,
      sent_video: video(outboundVideo),
      available_bps: typeof pair?.availableOutgoingBitrate === 'number' ? pair.availableOutgoingBitrate : null,
      limitation: reason === 'bandwidth' || reason === 'cpu' ? reason : 'none',
    },
    reading: { bytesReceived, at: now },
  };
}
