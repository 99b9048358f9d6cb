import { describe, expect, it } from 'vitest';
import { formatTime, guestCode, healthUrl, initials, unreadBadge, validServer } from './format';
import { quality, qualityDetails } from './quality';
import { translate, type MessageKey } from '../i18n';
import type { LinkQuality } from './types';

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

  const base: LinkQuality = {
    user_id: 1,
    packets_lost: 0,
    packets_received: 1000,
    rtt_ms: 20,
    jitter_ms: 1,
    received_bps: 850_000,
    received_video: { width: 640, height: 480, fps: 29.6 },
    freeze_count: 0,
    sent_video: { width: 320, height: 240, fps: 30 },
    available_bps: 412_000,
    limitation: 'none',
  };

  it('grades connection quality from loss and round-trip time', () => {
    expect(quality(undefined)).toBe('unknown');
    expect(quality({ ...base, packets_received: 0 })).toBe('unknown');
    expect(quality(base)).toBe('good');
    expect(quality({ ...base, packets_lost: 50 })).toBe('fair');
    expect(quality({ ...base, rtt_ms: 600 })).toBe('poor');
  });

  it('grades loss over the last interval, not since the start', () => {
    // 50 lost long ago, none since: good again.
    const earlier = { ...base, packets_lost: 50, packets_received: 1000 };
    expect(quality({ ...base, packets_lost: 50, packets_received: 2000 }, earlier)).toBe('good');
    // 30 of the last 130 lost: poor, though 3 % of all.
    expect(quality({ ...base, packets_lost: 80, packets_received: 1100 }, earlier)).toBe('poor');
  });

  it('lists the figures behind the badge', () => {
    const t = (key: MessageKey, params?: Record<string, string | number>) => translate('en', key, params);
    const details = qualityDetails({ ...base, limitation: 'bandwidth', freeze_count: 2 }, undefined, t);
    expect(details.split('\n')).toEqual([
      'Round trip 20 ms',
      'Packets lost 0.0 %',
      'Receiving 640×480 at 30 fps, 850 kbit/s',
      'Picture froze 2 times',
      'Sending 320×240 at 30 fps, room for 412 kbit/s',
      'Your picture is reduced: not enough bandwidth',
    ]);
    expect(qualityDetails(undefined, undefined, t)).toBe('');
  });
});

describe('guestCode', () => {
  it('reads the code of a guest link', () => {
    expect(guestCode('/join/Hk3_-x')).toBe('Hk3_-x');
    expect(guestCode('/join/Hk3_-x/')).toBe('Hk3_-x');
    expect(guestCode('/join/a%2Bb')).toBe('a+b');
  });

  it('is null anywhere else, and for an empty or broken code', () => {
    for (const path of ['/', '/join', '/join/', '/join/a/b', '/joins/a', '/x/join/a', '/join/%E0%A4%A']) {
      expect(guestCode(path)).toBeNull();
    }
  });
});
