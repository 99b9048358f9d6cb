import { describe, expect, it } from 'vitest';
import { TYPING_EXPIRES_MS, TypingNotifier, TypingTracker } from './typing';

describe('typing', () => {
  it('shows who types per room, until they stop, send, or go quiet', () => {
    const tracker = new TypingTracker();
    tracker.update(1, 5, true, 0);
    tracker.update(1, 3, true, 0);
    tracker.update(2, 9, true, 0);
    expect(tracker.typing(1, 100)).toEqual([3, 5]);
    tracker.update(1, 5, false, 200);
    expect(tracker.typing(1, 300)).toEqual([3]);
    tracker.stopped(1, 3);
    expect(tracker.typing(1, 300)).toEqual([]);
    expect(tracker.typing(2, TYPING_EXPIRES_MS - 1)).toEqual([9]);
    expect(tracker.typing(2, TYPING_EXPIRES_MS)).toEqual([]);
  });

  it('tells the server at once, then rarely, then when idle or sent', () => {
    const notifier = new TypingNotifier(3000, 4000);
    expect(notifier.keystroke(0)).toBe(true);
    expect(notifier.keystroke(1000)).toBe(false);
    expect(notifier.keystroke(3000)).toBe(true);
    expect(notifier.tick(5000)).toBe(false);
    expect(notifier.tick(7000)).toBe(true);
    expect(notifier.tick(8000)).toBe(false);
    expect(notifier.keystroke(9000)).toBe(true);
    expect(notifier.tick(9001, true)).toBe(true);
  });
});
