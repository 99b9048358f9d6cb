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

/**
 * Most messages the list holds (and renders) at once, whatever the room's size: scrolling past
 * either end loads a page there and drops as many from the other end.
 */
export const WINDOW = 150;

/** `older` put before the window; past `cap`, the newest are dropped (`droppedNewer`). */
export function withOlder(
  window: Message[],
  older: Message[],
  cap = WINDOW,
): { messages: Message[]; droppedNewer: boolean } {
  const merged = mergeMessages(window, older);
  return merged.length > cap
    ? { messages: merged.slice(0, cap), droppedNewer: true }
    : { messages: merged, droppedNewer: false };
}

/** `newer` put after the window; past `cap`, the oldest are dropped (`droppedOlder`). */
export function withNewer(
  window: Message[],
  newer: Message[],
  cap = WINDOW,
): { messages: Message[]; droppedOlder: boolean } {
  const merged = mergeMessages(window, newer);
  return merged.length > cap
    ? { messages: merged.slice(merged.length - cap), droppedOlder: true }
    : { messages: merged, droppedOlder: false };
}

/**
 * A live timeline entry applied to a window that may not reach the newest message: a new
 * message past its end is left for when the reader scrolls there (it is in the store).
 */
export function applyEntryToWindow(messages: Message[], entry: TimelineEntry, reachesEnd: boolean): Message[] {
  if (!reachesEnd && entry.kind === 'message') {
    const last = messages.length > 0 ? messages[messages.length - 1].seq : 0;
    if (entry.message.seq > last) return messages;
  }
  return applyEntry(messages, entry);
}

/** The oldest loaded position, to load the page before it when scrolling up. */
export function oldestSeq(messages: Message[]): Seq | null {
  return messages.length > 0 ? messages[0].seq : null;
}
