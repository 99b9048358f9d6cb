// Connection quality per call participant, from the stats the Rust side reports.
import type { LinkQuality } from './types';

export type Quality = 'good' | 'fair' | 'poor' | 'unknown';

export function quality(q: LinkQuality | undefined): Quality {
  if (!q || q.packets_received === 0) return 'unknown';
  const lost = Math.max(0, q.packets_lost);
  const lossRate = lost / (lost + q.packets_received);
  const rtt = q.rtt_ms ?? 0;
  if (lossRate < 0.02 && rtt < 150) return 'good';
  if (lossRate < 0.08 && rtt < 400) return 'fair';
  return 'poor';
}
