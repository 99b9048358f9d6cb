import { describe, expect, it } from 'vitest';
import { applyEntry, applyEntryToWindow, applyOutbox, mergeMessages, oldestSeq, rows, withNewer, withOlder } from './timeline';
import type { Message, OutboxView } from './types';

const message = (seq: number, text = `m${seq}`, client_id = `c${seq}`): Message => ({
  room_id: 1,
  seq,
  client_id,
  author_id: 7,
  text,
  sent_at: seq * 1000,
  edited_at: null,
  deleted: false,
});

const outgoing = (client_id: string, state: OutboxView['state'] = 'pending'): OutboxView =>
  ({ client_id, room_id: 1, text: 'out', created_at: 5, state, ...(state === 'failed' ? { error: 'no' } : {}) }) as OutboxView;

describe('the message list', () => {
  it('merges pages and live messages in order without duplicates', () => {
    const merged = mergeMessages([message(3), message(4)], [message(1), message(2), message(4, 'newer')]);
    expect(merged.map((m) => m.seq)).toEqual([1, 2, 3, 4]);
    expect(merged[3].text).toBe('newer');
    expect(oldestSeq(merged)).toBe(1);
    expect(oldestSeq([])).toBeNull();
  });

  it('applies edits and deletions to the right message only', () => {
    let list = [message(1), message(2)];
    list = applyEntry(list, { kind: 'edit', room_id: 1, seq: 3, target_seq: 2, author_id: 7, text: 'fixed', at: 9 });
    expect(list.map((m) => m.text)).toEqual(['m1', 'fixed']);
    expect(list[1].edited_at).toBe(9);
    list = applyEntry(list, { kind: 'delete', room_id: 1, seq: 4, target_seq: 1, by: 7, at: 10 });
    expect(list[0]).toMatchObject({ deleted: true, text: '' });
    // An edit after a deletion does not bring the text back.
    list = applyEntry(list, { kind: 'edit', room_id: 1, seq: 5, target_seq: 1, author_id: 7, text: 'back', at: 11 });
    expect(list[0].text).toBe('');
  });

  it('shows outgoing messages until they are sent, and a sent one once', () => {
    let outbox = applyOutbox([], outgoing('a'));
    outbox = applyOutbox(outbox, outgoing('b', 'failed'));
    expect(rows([message(1)], outbox).map((r) => r.kind)).toEqual(['message', 'outgoing', 'outgoing']);
    // The server's copy of "a" arrived before its outbox event: shown once.
    expect(rows([message(1), message(2, 'out', 'a')], outbox).map((r) => r.key)).toEqual(['m1', 'm2', 'ob']);
    outbox = applyOutbox(outbox, { ...outgoing('a'), state: 'sent', seq: 2 } as OutboxView);
    expect(outbox.map((o) => o.client_id)).toEqual(['b']);
  });
});

describe('the window over a large room', () => {
  const range = (from: number, to: number) => Array.from({ length: to - from }, (_, i) => message(from + i));

  it('holds at most its cap, dropping from the far end as pages come in', () => {
    let window = range(900, 1000);
    const older = withOlder(window, range(850, 900), 120);
    expect(older.droppedNewer).toBe(true);
    expect(older.messages.map((m) => m.seq)).toEqual(range(850, 970).map((m) => m.seq));
    window = older.messages;
    const newer = withNewer(window, range(970, 1000), 120);
    expect(newer.droppedOlder).toBe(true);
    expect(newer.messages[0].seq).toBe(880);
    expect(newer.messages.at(-1)?.seq).toBe(999);
    expect(withOlder(range(1, 10), range(0, 1), 120)).toEqual({ messages: range(0, 10), droppedNewer: false });
  });

  it('leaves a new message past the end of a window that does not reach the newest', () => {
    const window = range(10, 20);
    const live = { kind: 'message' as const, message: message(500) };
    expect(applyEntryToWindow(window, live, false)).toBe(window);
    expect(applyEntryToWindow(window, live, true).at(-1)?.seq).toBe(500);
    // An edit inside the window is applied either way.
    const edit = { kind: 'edit' as const, room_id: 1, seq: 501, target_seq: 15, author_id: 7, text: 'fixed', at: 9 };
    expect(applyEntryToWindow(window, edit, false)[5].text).toBe('fixed');
  });
});
