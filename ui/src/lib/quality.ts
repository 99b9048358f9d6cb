// Connection quality per call participant, from the stats the Rust side reports.
import type { LinkQuality, VideoFigures } from './types';
import type { MessageKey } from '../i18n';

export type Quality = 'good' | 'fair' | 'poor' | 'unknown';

/** The share of packets lost since the previous reading (or since the start without one). */
export function lossRate(q: LinkQuality, previous?: LinkQuality): number {
  const lost = Math.max(0, q.packets_lost - Math.max(0, previous?.packets_lost ?? 0));
  const received = Math.max(0, q.packets_received - (previous?.packets_received ?? 0));
  return lost + received === 0 ? 0 : lost / (lost + received);
}

/** Graded on the loss since the previous reading, so a bad minute long ago does not linger. */
export function quality(q: LinkQuality | undefined, previous?: LinkQuality): Quality {
  if (!q || q.packets_received === 0) return 'unknown';
  const loss = lossRate(q, previous);
  const rtt = q.rtt_ms ?? 0;
  if (loss < 0.02 && rtt < 150) return 'good';
  if (loss < 0.08 && rtt < 400) return 'fair';
  return 'poor';
}

type Translate = (key: MessageKey, params?: Record<string, string | number>) => string;

const kbps = (bps: number) => Math.round(bps / 1000);
const size = (v: VideoFigures) => `${v.width}×${v.height}`;

/** The figures behind the badge, one line each, for its tooltip. */
export function qualityDetails(q: LinkQuality | undefined, previous: LinkQuality | undefined, t: Translate): string {
  if (!q) return '';
  const lines: string[] = [];
  if (q.rtt_ms !== null) lines.push(t('call.stats.rtt', { ms: Math.round(q.rtt_ms) }));
  lines.push(t('call.stats.loss', { percent: (lossRate(q, previous) * 100).toFixed(1) }));
  if (q.received_video && q.received_video.width > 0) {
    const v = q.received_video;
    lines.push(t('call.stats.receiving', { size: size(v), fps: Math.round(v.fps), kbps: kbps(q.received_bps) }));
  }
  if (q.freeze_count > 0) lines.push(t('call.stats.freezes', { count: q.freeze_count }));
  if (q.sent_video && q.sent_video.width > 0 && q.available_bps !== null) {
    const v = q.sent_video;
    lines.push(t('call.stats.sending', { size: size(v), fps: Math.round(v.fps), kbps: kbps(q.available_bps) }));
  }
  if (q.limitation !== 'none') lines.push(t(`call.stats.limited.${q.limitation}`));
  return lines.join('\n');
}
