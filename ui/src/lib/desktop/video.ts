// The page's end of the video socket: one connection, frames routed to the tiles that are
// on screen. Tiles register while visible; the Rust side sends frames only for those.
import { parseFrame, subscription, type Frame } from '../frames';

type Draw = (frame: Frame) => void;

export class VideoClient {
  private socket: WebSocket | null = null;
  private tiles = new Map<number, Set<Draw>>();
  private closed = false;
  private retry: ReturnType<typeof setTimeout> | null = null;

  constructor(private readonly url: string) {
    this.connect();
  }

  private connect(): void {
    const socket = new WebSocket(this.url);
    socket.binaryType = 'arraybuffer';
    socket.onopen = () => this.sendSubscription();
    socket.onmessage = (event) => {
      if (!(event.data instanceof ArrayBuffer)) return;
      const frame = parseFrame(event.data);
      if (!frame) return;
      for (const draw of this.tiles.get(frame.tile) ?? []) draw(frame);
    };
    socket.onclose = () => {
      this.socket = null;
      if (!this.closed) this.retry = setTimeout(() => this.connect(), 1000);
    };
    this.socket = socket;
  }

  private sendSubscription(): void {
    if (this.socket?.readyState === WebSocket.OPEN) {
      this.socket.send(subscription(this.tiles.keys()));
    }
  }

  /** Starts frames for `tile` to `draw`; the returned function stops them. */
  show(tile: number, draw: Draw): () => void {
    let set = this.tiles.get(tile);
    if (!set) {
      set = new Set();
      this.tiles.set(tile, set);
    }
    set.add(draw);
    this.sendSubscription();
    return () => {
      const current = this.tiles.get(tile);
      current?.delete(draw);
      if (current && current.size === 0) this.tiles.delete(tile);
      this.sendSubscription();
    };
  }

  close(): void {
    this.closed = true;
    if (this.retry) clearTimeout(this.retry);
    this.socket?.close();
  }
}
