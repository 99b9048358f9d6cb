// The web app's connection to the server: one WebSocket speaking docs/protocol.md, requests
// matched to replies by id, events handed on, and reconnection with backoff. It knows nothing of
// rooms or calls.
import type { CommandError, ConnectionState } from '../types';

/** A reply or event: its `type` and `data` as the server sent them. */
export interface Incoming {
  type: string;
  // The protocol's data objects; backend.ts gives them their types where it reads them.
  data: any;
}

export interface SocketHooks {
  /** A frame without an id. */
  event(event: Incoming): void;
  state(state: ConnectionState): void;
  /** Runs on each new socket before requests queue on it: authentication, re-sync. */
  opened(): Promise<void>;
}

/** The socket's address: the page's own origin, `/ws`. */
export function socketUrl(location: { protocol: string; host: string }): string {
  return `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/ws`;
}

/** Waits before reconnect attempt `attempt` (1, 2, …): doubling from 1 s to 30 s. */
export function backoffMs(attempt: number): number {
  return Math.min(30_000, 1000 * 2 ** Math.max(0, attempt - 1));
}

const REQUEST_TIMEOUT_MS = 20_000;

export class ProtocolSocket {
  private socket: WebSocket | null = null;
  private nextId = 1;
  private pending = new Map<number, { resolve: (r: Incoming) => void; reject: (e: CommandError) => void }>();
  private attempt = 0;
  private retry: ReturnType<typeof setTimeout> | null = null;
  private stopped = true;
  /** Open and through `opened()`: requests may go. */
  private ready = false;

  constructor(
    private readonly url: string,
    private readonly hooks: SocketHooks,
  ) {}

  get connected(): boolean {
    return this.ready;
  }

  /** Opens the socket and keeps it open until `stop()`. Resolves once the first one opened. */
  start(): Promise<void> {
    this.stopped = false;
    return this.connect();
  }

  stop(): void {
    this.stopped = true;
    this.ready = false;
    if (this.retry) clearTimeout(this.retry);
    this.retry = null;
    this.socket?.close(1000);
    this.socket = null;
    this.failPending({ code: 'disconnected', message: 'signed out' });
  }

  /** Reconnects at once, if not connected. */
  retryNow(): void {
    if (this.stopped || this.socket) return;
    if (this.retry) clearTimeout(this.retry);
    this.retry = null;
    void this.connect().catch(() => {});
  }

  /** Sends one request; resolves with the reply, rejects with the error (`disconnected` when
   * there is no socket: nothing was sent). */
  request(type: string, data?: unknown, beforeReady = false): Promise<Incoming> {
    const socket = this.socket;
    if (!socket || socket.readyState !== WebSocket.OPEN || (!this.ready && !beforeReady)) {
      return Promise.reject({ code: 'disconnected', message: 'not connected to the server' });
    }
    const id = this.nextId++;
    return new Promise<Incoming>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject({ code: 'disconnected', message: `no answer to ${type}` });
      }, REQUEST_TIMEOUT_MS);
      this.pending.set(id, {
        resolve: (r) => {
          clearTimeout(timer);
          resolve(r);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      });
      socket.send(JSON.stringify({ v: 1, id, type, data: data ?? {} }));
    });
  }

  private connect(): Promise<void> {
    return new Promise((resolve, reject) => {
      const socket = new WebSocket(this.url);
      this.socket = socket;
      this.hooks.state(this.attempt === 0 ? { state: 'connecting' } : { state: 'reconnecting', attempt: this.attempt });
      let opened = false;
      socket.onopen = async () => {
        opened = true;
        try {
          await this.hooks.opened();
          if (this.socket !== socket) return;
          this.ready = true;
          this.attempt = 0;
          this.hooks.state({ state: 'connected' });
          resolve();
        } catch (e) {
          // Refused (a revoked session, say): the hooks said what happened.
          reject(e);
          socket.close(1000);
        }
      };
      socket.onmessage = (message) => {
        if (typeof message.data !== 'string') return;
        let frame: { id?: number | null; type?: string; data?: unknown };
        try {
          frame = JSON.parse(message.data);
        } catch {
          return;
        }
        if (typeof frame.type !== 'string') return;
        if (frame.type === 'error') {
          const error = frame.data as CommandError;
          if (typeof frame.id === 'number') this.settle(frame.id, null, error);
          return;
        }
        if (typeof frame.id === 'number') this.settle(frame.id, { type: frame.type, data: frame.data ?? {} }, null);
        else this.hooks.event({ type: frame.type, data: frame.data ?? {} });
      };
      socket.onclose = (close) => {
        if (this.socket !== socket) return;
        this.socket = null;
        this.ready = false;
        this.failPending({ code: 'disconnected', message: `connection closed (${close.code})` });
        if (!opened) reject({ code: 'disconnected', message: 'cannot reach the server' });
        // 4001: the session was revoked; the backend has been told by the event before.
        if (this.stopped || close.code === 4001) {
          this.hooks.state({ state: 'offline' });
          return;
        }
        this.attempt++;
        this.hooks.state({ state: 'reconnecting', attempt: this.attempt });
        this.retry = setTimeout(() => {
          this.retry = null;
          void this.connect().catch(() => {});
        }, backoffMs(this.attempt));
      };
    });
  }

  private settle(id: number, reply: Incoming | null, error: CommandError | null): void {
    const waiter = this.pending.get(id);
    if (!waiter) return;
    this.pending.delete(id);
    if (error) waiter.reject(error);
    else if (reply) waiter.resolve(reply);
  }

  private failPending(error: CommandError): void {
    const waiters = [...this.pending.values()];
    this.pending.clear();
    for (const w of waiters) w.reject(error);
  }
}
