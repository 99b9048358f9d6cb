import { describe, expect, it } from 'vitest';
import { encodeFrame, HEADER_BYTES, parseFrame, subscription } from './frames';

describe('video frames', () => {
  it('round-trips an odd-sized I420 frame', () => {
    const [w, h] = [5, 3];
    const y = Uint8Array.from({ length: w * h }, (_, i) => i);
    const u = Uint8Array.from({ length: 6 }, (_, i) => 100 + i);
    const v = Uint8Array.from({ length: 6 }, (_, i) => 200 + i);
    const frame = parseFrame(encodeFrame({ tile: 42, width: w, height: h, y, u, v }));
    expect(frame).not.toBeNull();
    expect(frame!.tile).toBe(42);
    expect([...frame!.y]).toEqual([...y]);
    expect([...frame!.v]).toEqual([...v]);
  });

  it('refuses malformed messages instead of throwing', () => {
    const good = encodeFrame({ tile: 0, width: 2, height: 2, y: new Uint8Array(4), u: new Uint8Array(1), v: new Uint8Array(1) });
    expect(parseFrame(new ArrayBuffer(3))).toBeNull();
    expect(parseFrame(good.slice(0, good.byteLength - 1))).toBeNull();
    const wrongVersion = good.slice(0);
    new Uint8Array(wrongVersion)[0] = 9;
    expect(parseFrame(wrongVersion)).toBeNull();
    const zero = new ArrayBuffer(HEADER_BYTES);
    new Uint8Array(zero)[0] = 1;
    expect(parseFrame(zero)).toBeNull();
  });

  it('subscribes to each visible tile once', () => {
    expect(subscription([5, 0, 5, 2])).toBe('{"tiles":[0,2,5]}');
  });
});
