import { describe, expect, it } from 'vitest';
import { backoffMs, socketUrl } from './socket';
import { offersTo } from './call';

describe('the web app connection', () => {
  it('talks to the server the page came from, over TLS when the page is', () => {
    expect(socketUrl({ protocol: 'https:', host: 'chat.example.org' })).toBe('wss://chat.example.org/ws');
    expect(socketUrl({ protocol: 'http:', host: '127.0.0.1:7700' })).toBe('ws://127.0.0.1:7700/ws');
  });

  it('waits longer after each failed attempt, up to half a minute', () => {
    expect([1, 2, 3, 4, 5, 6, 7, 20].map(backoffMs)).toEqual([1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000]);
  });

  it('lets the lower id of each pair offer', () => {
    expect(offersTo(3, 7)).toBe(true);
    expect(offersTo(7, 3)).toBe(false);
  });
});
