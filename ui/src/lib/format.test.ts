import { describe, expect, it } from 'vitest';
import { formatTime, healthUrl, initials, unreadBadge, validServer } from './format';
import { quality } from './quality';

describe('display rules', () => {
  it('writes times in the chosen language, not the system one', () => {
    // 17:09 local time on some day; the hour is the same in every language.
    const at = new Date(2026, 11, 2, 17, 9).getTime();
    expect(formatTime(at, 'en')).toMatch(/05:09\s?PM/);
    expect(formatTime(at, 'ja')).toBe('17:09');
  });

  it('badges unread counts', () => {
    expect(unreadBadge(0)).toBe('');
    expect(unreadBadge(7)).toBe('7');
    expect(unreadBadge(100)).toBe('99+');
  });

  it('finds the health endpoint of a server address', () => {
    expect(healthUrl('ws://127.0.0.1:7700/ws')).toBe('http://127.0.0.1:7700/healthz');
    expect(healthUrl(' wss://chat.example.org/ws?x=1 ')).toBe('https://chat.example.org/healthz');
    expect(healthUrl('http://127.0.0.1:7700')).toBeNull();
    expect(validServer('not a url')).toBe(false);
  });

  it('makes initials', () => {
    expect(initials('ann lee')).toBe('AL');
    expect(initials('山田 太郎')).toBe('山太');
    expect(initials('  ')).toBe('?');
  });

  it('grades connection quality from loss and round-trip time', () => {
    const base = { user_id: 1, packets_lost: 0, packets_received: 1000, rtt_ms: 20, jitter_ms: 1 };
    expect(quality(undefined)).toBe('unknown');
    expect(quality({ ...base, packets_received: 0 })).toBe('unknown');
    expect(quality(base)).toBe('good');
    expect(quality({ ...base, packets_lost: 50 })).toBe('fair');
    expect(quality({ ...base, rtt_ms: 600 })).toBe('poor');
  });
});
