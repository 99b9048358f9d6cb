// The video socket's binary frames. Each message is one I420 picture:
//   bytes 0..16: version u8 (1), reserved u8, width u16, height u16, reserved u16, tile i64
//   then Y (width*height), U and V (each ceil(width/2)*ceil(height/2)), all little-endian.
// Tile 0 is the local preview; any other number is the participant's user id.

export const FRAME_VERSION = 1;
export const HEADER_BYTES = 16;
export const LOCAL_TILE = 0;

export interface Frame {
  tile: number;
  width: number;
  height: number;
  y: Uint8Array;
  u: Uint8Array;
  v: Uint8Array;
}

export function chromaSize(width: number, height: number): [number, number] {
  return [Math.ceil(width / 2), Math.ceil(height / 2)];
}

/** Reads one frame; null (never a throw) for anything malformed. */
export function parseFrame(buffer: ArrayBuffer): Frame | null {
  if (buffer.byteLength < HEADER_BYTES) return null;
  const view = new DataView(buffer);
  if (view.getUint8(0) !== FRAME_VERSION) return null;
  const width = view.getUint16(2, true);
  const height = view.getUint16(4, true);
  const tile = Number(view.getBigInt64(8, true));
  if (width === 0 || height === 0) return null;
  const [cw, ch] = chromaSize(width, height);
  const ySize = width * height;
  const cSize = cw * ch;
  if (buffer.byteLength !== HEADER_BYTES + ySize + 2 * cSize) return null;
  return {
    tile,
    width,
    height,
    y: new Uint8Array(buffer, HEADER_BYTES, ySize),
    u: new Uint8Array(buffer, HEADER_BYTES + ySize, cSize),
    v: new Uint8Array(buffer, HEADER_BYTES + ySize + cSize, cSize),
  };
}

/** Builds a frame message (the Rust side's format), for tests. */
export function encodeFrame(frame: Frame): ArrayBuffer {
  const buffer = new ArrayBuffer(HEADER_BYTES + frame.y.length + frame.u.length + frame.v.length);
  const view = new DataView(buffer);
  view.setUint8(0, FRAME_VERSION);
  view.setUint16(2, frame.width, true);
  view.setUint16(4, frame.height, true);
  view.setBigInt64(8, BigInt(frame.tile), true);
  const bytes = new Uint8Array(buffer);
  bytes.set(frame.y, HEADER_BYTES);
  bytes.set(frame.u, HEADER_BYTES + frame.y.length);
  bytes.set(frame.v, HEADER_BYTES + frame.y.length + frame.u.length);
  return buffer;
}

/** The subscription message: which tiles are visible (only those get frames). */
export function subscription(tiles: Iterable<number>): string {
  return JSON.stringify({ tiles: [...new Set(tiles)].sort((a, b) => a - b) });
}
