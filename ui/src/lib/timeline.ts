// What the message list shows, as pure functions over plain data: messages from the store,
// timeline entries as they arrive, and outbox messages not yet accepted by the server.
import type { Message, OutboxView, Seq, TimelineEntry } from './types';

/** One row of the message list: a message from the server, or one still in the outbox. */
export type Row =
  | { kind: 'message'; key: string; message: Message }
  | { kind: 'outgoing'; key: string; outgoing: OutboxView };

/** Inserts or replaces `incoming` messages into `messages` (sorted by seq, no duplicates). */
export function mergeMessages(messages: Message[], incoming: Message[]): Message[] {
  if (incoming.length === 0) return messages;
  const bySeq = new Map<Seq, Message>();
  for (const m of messages) bySeq.set(m.seq, m);
  for (const m of incoming) bySeq.set(m.seq, m);
  return [...bySeq.values()].sort((a, b) => a.seq - b.seq);
}

/** Applies one timeline entry of the open room to its loaded messages. */
export function applyEntry(messages: Message[], entry: TimelineEntry): Message[] {
  switch (entry.kind) {
    case 'message':
      return mergeMessages(messages, [entry.message]);
    case 'edit':
      return messages.map((m) =>
        m.seq === entry.target_seq && !m.deleted ? { ...m, text: entry.text, edited_at: entry.at } : m,
      );
    case 'delete':
      return messages.map((m) => (m.seq === entry.target_seq ? { ...m, text: '', deleted: true } : m));
  }
}

export function roomOfEntry(entry: TimelineEntry): number {
  return entry.kind === 'message' ? entry.message.room_id : entry.room_id;
}

/** Keeps the outbox list current from one outbox event: sent messages leave it. */
export function applyOutbox(outbox: OutboxView[], update: OutboxView): OutboxView[] {
  const rest = outbox.filter((o) => o.client_id !== update.client_id);
  if (update.state === 'sent') return rest;
  return [...rest, update].sort((a, b) => a.created_at - b.created_at);
}

/**
 * The rows to show: server messages in order, then outgoing ones not yet among them (a sent
 * message can arrive as a timeline entry before its outbox event; it is shown once).
 */
export function rows(messages: Message[], outbox: OutboxView[]): Row[] {
  const sentIds = new Set(messages.map((m) => m.client_id));
  const list: Row[] = messages.map((m) => ({ kind: 'message', key: `m${m.seq}`, message: m }));
  for (const o of outbox) {
    if (!sentIds.has(o.client_id)) list.push({ kind: 'outgoing', key: `o${o.client_id}`, outgoing: o });
  }
  return list;
}

/** The oldest loaded position, to load the page before it when scrolling up. */
export function oldestSeq(messages: Message[]): Seq | null {
  return messages.length > 0 ? messages[0].seq : null;
}
