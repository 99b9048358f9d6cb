// Who is typing where. Typing notices can be lost (a closed laptop never says "stopped"), so
// each one expires on its own; time is passed in, which keeps this testable.
import type { RoomId, UserId } from './types';

export const TYPING_EXPIRES_MS = 6000;

export class TypingTracker {
  private until = new Map<string, { room: RoomId; user: UserId; until: number }>();

  update(room: RoomId, user: UserId, typing: boolean, now: number): void {
    const key = `${room}:${user}`;
    if (typing) this.until.set(key, { room, user, until: now + TYPING_EXPIRES_MS });
    else this.until.delete(key);
  }

  /** A message from a user ends their typing. */
  stopped(room: RoomId, user: UserId): void {
    this.until.delete(`${room}:${user}`);
  }

  typing(room: RoomId, now: number): UserId[] {
    const users: UserId[] = [];
    for (const [key, entry] of this.until) {
      if (entry.until <= now) this.until.delete(key);
      else if (entry.room === room) users.push(entry.user);
    }
    return users.sort((a, b) => a - b);
  }
}

/**
 * Decides when to tell the server "typing" while the user writes: at once, then at most
 * every `resendMs` while keys keep coming, and "stopped" after `idleMs` without keys.
 */
export class TypingNotifier {
  private sentAt = -Infinity;
  private active = false;

  constructor(
    private readonly resendMs = 3000,
    private readonly idleMs = 4000,
  ) {}

  /** Returns true when a "typing" notice should go out now. */
  keystroke(now: number): boolean {
    this.lastKey = now;
    if (!this.active || now - this.sentAt >= this.resendMs) {
      this.active = true;
      this.sentAt = now;
      return true;
    }
    return false;
  }

  /** Returns true when a "stopped" notice should go out now (idle, or the message was sent). */
  tick(now: number, sent = false): boolean {
    if (this.active && (sent || now - this.lastKey >= this.idleMs)) {
      this.active = false;
      return true;
    }
    return false;
  }

  private lastKey = -Infinity;
}
