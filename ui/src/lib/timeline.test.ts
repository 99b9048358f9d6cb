import { describe, expect, it } from 'vitest';
import { applyEntry, applyOutbox, mergeMessages, oldestSeq, rows } from './timeline';
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
