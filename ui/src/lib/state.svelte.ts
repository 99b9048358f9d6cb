// The app's state and what changes it: events from the Rust side come in here, components
// read from here and call the actions below.
import { api, asCommandError, onCallEvent, onClientEvent, onNotificationOpened, type Session } from './api';
import { t, useLanguage } from './locale.svelte';
import type { MessageKey } from '../i18n';
import { errorMessage, type ErrorContext } from './errors';
import { TypingTracker } from './typing';
import { applyEntryToWindow, applyOutbox, mergeMessages, roomOfEntry, withNewer, withOlder } from './timeline';
import type {
  CallEvent,
  CallInfo,
  ClientEvent,
  ConnectionState,
  EndReason,
  LinkQuality,
  LinkState,
  Member,
  Message,
  OutboxView,
  Presence,
  RoomId,
  RoomView,
  Seq,
  Settings,
  User,
  UserId,
} from './types';

export const PAGE = 50;

export interface CallView {
  room: RoomId;
  microphone: boolean;
  camera: boolean;
  participants: UserId[];
  links: Record<UserId, LinkState>;
  quality: Record<UserId, LinkQuality>;
  notices: string[];
}

export type Dialog = 'create' | 'join' | 'direct' | 'settings' | 'rename' | 'add_member' | 'guest_links';

export const app = $state({
  ready: false,
  session: null as Session | null,
  settings: {
    server: null,
    language: null,
    microphone: null,
    speaker: null,
    camera: null,
    voice: { echo_cancellation: true, noise_suppression: true, auto_gain_control: true },
  } as Settings,
  connection: { state: 'connecting' } as ConnectionState,
  rooms: [] as RoomView[],
  current: null as RoomId | null,
  messages: [] as Message[],
  outbox: [] as OutboxView[],
  reachedBeginning: false,
  /** The loaded window reaches the room's newest message (false after scrolling far back, or
   * after jumping to an old search result). */
  reachedEnd: true,
  /** A message to bring into view and mark (a search result that was opened). */
  highlight: null as Seq | null,
  members: [] as Member[],
  users: {} as Record<UserId, User>,
  presence: {} as Record<UserId, Presence>,
  typingVersion: 0,
  call: null as CallView | null,
  incoming: null as { room: RoomId; by: UserId } | null,
  ongoing: {} as Record<RoomId, CallInfo>,
  error: null as string | null,
  panel: null as 'members' | 'search' | null,
  dialog: null as Dialog | null,
});

export const typing = new TypingTracker();

/** A command error in the user's language. */
export function errorText(e: unknown, context?: ErrorContext): string {
  const { key, params } = errorMessage(asCommandError(e), context);
  return t(key, params);
}

export function showError(e: unknown, context?: ErrorContext): void {
  app.error = errorText(e, context);
}

export function userName(id: UserId): string {
  if (app.session && id === app.session.user.id) return app.session.user.display_name;
  return app.users[id]?.display_name ?? `#${id}`;
}

/** Signed in as a guest (web app): only their one room, nothing of the account's. */
export function isGuest(): boolean {
  return app.session?.guest_room != null;
}

export function roomName(id: RoomId): string {
  return app.rooms.find((r) => r.room.id === id)?.room.name ?? `#${id}`;
}

/** Called once at start: settings, language, events, and a saved session if any. */
export async function start(): Promise<void> {
  try {
    app.settings = await api.settings();
  } catch (e) {
    showError(e);
  }
  useLanguage(app.settings.language);
  await onClientEvent(handleClientEvent);
  await onCallEvent(handleCallEvent);
  // A clicked notification opens the room it was about (the window is raised by then).
  await onNotificationOpened((room) => {
    if (room !== null && app.session && app.rooms.some((r) => r.room.id === room)) void openRoom(room);
  });
  // The system says the network is back: try at once rather than wait out the backoff.
  window.addEventListener('online', () => void retryNow());
  try {
    const session = await api.resume();
    if (session) await signedIn(session);
  } catch {
    // A session that cannot be resumed just shows the login page.
  }
  app.ready = true;
}

export async function signedIn(session: Session): Promise<void> {
  app.session = session;
  // The state at sign-in (a resume may start offline); later changes arrive as events.
  app.connection = session.connection;
  app.users[session.user.id] = session.user;
  app.rooms = await api.rooms();
  if (app.current === null && app.rooms.length > 0) await openRoom(app.rooms[0].room.id);
}

/** Reconnects now, if signed in and not connected. */
export async function retryNow(): Promise<void> {
  if (!app.session || app.connection.state === 'connected') return;
  try {
    await api.retryNow();
  } catch (e) {
    showError(e);
  }
}

export async function signOut(): Promise<void> {
  try {
    if (app.call) await api.leaveCall();
    await api.logout();
  } catch (e) {
    showError(e);
  }
  Object.assign(app, {
    session: null,
    rooms: [],
    current: null,
    messages: [],
    outbox: [],
    members: [],
    call: null,
    incoming: null,
    ongoing: {},
    panel: null,
    dialog: null,
  });
}

export async function openRoom(room: RoomId, at: Seq | null = null): Promise<void> {
  app.current = room;
  app.messages = [];
  app.outbox = [];
  app.reachedBeginning = false;
  app.reachedEnd = true;
  app.highlight = at;
  try {
    // The local copy first, at once; then members (names and presence). Opened at a message
    // (a search result), the window is that message in its context: half a page either side.
    const half = PAGE / 2;
    const upTo = at === null ? null : at + 1;
    const beforeLimit = at === null ? PAGE : half + 1;
    const [before, after, outbox] = await Promise.all([
      api.history(room, upTo, beforeLimit),
      at === null ? Promise.resolve([]) : api.historyAfter(room, at, half),
      api.outbox(room),
    ]);
    if (app.current !== room) return;
    app.messages = mergeMessages(before, after);
    app.outbox = outbox;
    app.reachedBeginning = before.length < beforeLimit;
    app.reachedEnd = at === null || after.length < half;
    await markRead(room);
    const members = await api.members(room);
    if (app.current !== room) return;
    app.members = members;
    for (const m of members) {
      app.users[m.user.id] = m.user;
      app.presence[m.user.id] = m.presence;
    }
  } catch (e) {
    showError(e);
  }
}

/** Loads the page before the oldest loaded message; false when there is nothing older. */
export async function loadOlder(): Promise<boolean> {
  const room = app.current;
  if (room === null || app.reachedBeginning || app.messages.length === 0) return false;
  const older = await api.history(room, app.messages[0].seq, PAGE);
  if (app.current !== room) return false;
  if (older.length < PAGE) app.reachedBeginning = true;
  const window = withOlder(app.messages, older);
  app.messages = window.messages;
  if (window.droppedNewer) app.reachedEnd = false;
  return older.length > 0;
}

/** Loads the page after the newest loaded message, when the window does not reach the end. */
export async function loadNewer(): Promise<boolean> {
  const room = app.current;
  if (room === null || app.reachedEnd || app.messages.length === 0) return false;
  const newer = await api.historyAfter(room, app.messages[app.messages.length - 1].seq, PAGE);
  if (app.current !== room) return false;
  if (newer.length < PAGE) app.reachedEnd = true;
  const window = withNewer(app.messages, newer);
  app.messages = window.messages;
  if (window.droppedOlder) app.reachedBeginning = false;
  return newer.length > 0;
}

async function markRead(room: RoomId): Promise<void> {
  const view = app.rooms.find((r) => r.room.id === room);
  if (view && view.unread > 0 && document.hasFocus()) {
    try {
      await api.markRead(room);
    } catch {
      // Offline: the marker moves next time.
    }
  }
}

function upsertRoom(view: RoomView): void {
  const index = app.rooms.findIndex((r) => r.room.id === view.room.id);
  if (index >= 0) app.rooms[index] = view;
  else app.rooms = [view, ...app.rooms];
}

async function notify(title: string, body: string, room: RoomId): Promise<void> {
  try {
    await api.notify(title, body, room);
  } catch {
    // No notification service (a bare test display): the badge still shows.
  }
}

function handleClientEvent(event: ClientEvent): void {
  switch (event.type) {
    case 'connection':
      app.connection = event.data;
      break;
    case 'rooms':
      app.rooms = event.data.rooms;
      break;
    case 'room':
      upsertRoom(event.data.room);
      if (event.data.room.room.id === app.current && event.data.room.unread > 0) {
        void markRead(event.data.room.room.id);
      }
      break;
    case 'room_removed':
      app.rooms = app.rooms.filter((r) => r.room.id !== event.data.room_id);
      if (app.current === event.data.room_id) {
        app.current = null;
        app.messages = [];
      }
      break;
    case 'timeline': {
      const entry = event.data.entry;
      const room = roomOfEntry(entry);
      if (room === app.current) app.messages = applyEntryToWindow(app.messages, entry, app.reachedEnd);
      if (entry.kind === 'message') {
        const author = entry.message.author_id;
        typing.stopped(room, author);
        app.typingVersion++;
        const mine = author === app.session?.user.id;
        if (!mine && (room !== app.current || !document.hasFocus())) {
          void notify(t('notify.message', { name: userName(author), room: roomName(room) }), entry.message.text, room);
        }
      }
      break;
    }
    case 'outbox':
      if (event.data.message.room_id === app.current) {
        app.outbox = applyOutbox(app.outbox, event.data.message);
      }
      break;
    case 'member_joined':
      app.users[event.data.user.id] = event.data.user;
      if (event.data.room_id === app.current) void refreshMembers();
      break;
    case 'member_left':
      if (event.data.room_id === app.current) void refreshMembers();
      break;
    case 'presence':
      app.presence[event.data.user_id] = event.data.presence;
      break;
    case 'typing':
      typing.update(event.data.room_id, event.data.user_id, event.data.typing, Date.now());
      app.typingVersion++;
      break;
    case 'incoming_call':
      app.ongoing[event.data.call.room_id] = event.data.call;
      if (!app.call) {
        app.incoming = { room: event.data.call.room_id, by: event.data.by };
        void notify(t('incoming.title'), t('notify.call', { name: userName(event.data.by) }), event.data.call.room_id);
      }
      break;
    case 'call_ongoing':
      app.ongoing[event.data.call.room_id] = event.data.call;
      break;
    case 'call_ended':
      delete app.ongoing[event.data.room_id];
      break;
    case 'ring_stopped':
      if (app.incoming?.room === event.data.room_id) {
        if (event.data.missed) app.error = t('incoming.missed', { name: userName(app.incoming.by) });
        app.incoming = null;
      }
      break;
    case 'synced':
      if (app.current !== null) void refreshCurrent();
      break;
    case 'session_ended':
      app.error = t('session.ended', { reason: event.data.reason });
      void signOut();
      break;
  }
}

async function refreshMembers(): Promise<void> {
  if (app.current === null) return;
  const room = app.current;
  try {
    const members = await api.members(room);
    if (app.current === room) app.members = members;
    for (const m of members) app.users[m.user.id] = m.user;
  } catch {
    // Kept as it was.
  }
}

/** After a re-sync, newer messages may be in the store: take the latest page again. */
async function refreshCurrent(): Promise<void> {
  const room = app.current;
  if (room === null) return;
  const [latest, outbox] = await Promise.all([api.history(room, null, PAGE), api.outbox(room)]);
  if (app.current !== room) return;
  // A window far back keeps its place; the newest page is loaded when the reader gets there.
  if (app.reachedEnd) app.messages = withNewer(app.messages, latest).messages;
  app.outbox = outbox;
}

/** What ending a call tells the user, by why it ended (nothing when they chose it). */
const END_NOTICE: Partial<Record<EndReason, MessageKey>> = {
  no_answer: 'call.ended.no_answer',
  declined: 'call.ended.declined',
  busy: 'call.ended.busy',
  lost: 'call.lost',
};

function handleCallEvent(event: CallEvent): void {
  const call = app.call;
  if (!call) return;
  const notice = (text: string) => (call.notices = [...call.notices, text]);
  switch (event.type) {
    case 'joined':
      call.participants = event.data.call.participants
        .map((p) => p.user_id)
        .filter((u) => u !== app.session?.user.id);
      break;
    case 'participant_joined':
      if (!call.participants.includes(event.data.user_id)) call.participants.push(event.data.user_id);
      break;
    case 'participant_left':
      call.participants = call.participants.filter((u) => u !== event.data.user_id);
      delete call.links[event.data.user_id];
      break;
    case 'link':
      call.links[event.data.user_id] = event.data.state;
      if (!call.participants.includes(event.data.user_id)) call.participants.push(event.data.user_id);
      break;
    case 'remote_track':
      if (!call.participants.includes(event.data.user_id)) call.participants.push(event.data.user_id);
      break;
    case 'media_refused': {
      const key = event.data.kind === 'video' ? 'call.no_common_video' : 'call.no_common_audio';
      const codecs = event.data.offered.join(', ') || '—';
      notice(t(key, { name: userName(event.data.user_id), codecs }));
      break;
    }
    case 'busy':
      notice(t('call.busy', { name: userName(event.data.user_id) }));
      break;
    case 'declined':
      notice(t('call.declined', { name: userName(event.data.user_id) }));
      break;
    case 'failed': {
      // The library's own words stay in the log; the notice says what it means to the user.
      const who = event.data.user_id;
      notice(who === null ? t('call.failed') : t('call.link_failed', { name: userName(who) }));
      break;
    }
    case 'media':
      call.microphone = event.data.microphone;
      call.camera = event.data.camera;
      break;
    case 'participant_away':
      notice(t('call.away', { name: userName(event.data.user_id) }));
      break;
    case 'participant_back':
      notice(t('call.back', { name: userName(event.data.user_id) }));
      break;
    case 'signaling_lost':
      notice(t('call.signaling_lost'));
      break;
    case 'resumed':
      notice(t('call.resumed'));
      break;
    case 'ended': {
      app.call = null;
      const key = END_NOTICE[event.data.reason];
      if (key) app.error = t(key);
      break;
    }
  }
}

export async function startCall(room: RoomId): Promise<void> {
  // The call is shown (calling…) before the server has let us in, so that nothing it says
  // meanwhile is lost; the join's reply fills in the rest.
  app.incoming = null;
  app.call = {
    room,
    microphone: false,
    camera: false,
    participants: [],
    links: {},
    quality: {},
    notices: [],
  };
  try {
    const status = await api.joinCall(room);
    if (app.call?.room !== room) return;
    app.call.microphone = status.microphone;
    app.call.camera = status.camera;
    for (const u of status.participants) {
      if (u !== app.session?.user.id && !app.call.participants.includes(u)) app.call.participants.push(u);
    }
  } catch (e) {
    if (app.call?.room === room) app.call = null;
    showError(e, 'call');
  }
}

/** Hangs up; the call's own `ended` event takes it off the screen. */
export async function hangUp(): Promise<void> {
  try {
    await api.leaveCall();
  } catch (e) {
    // Nothing left to hang up (it ended meanwhile): nothing more will be said of it.
    app.call = null;
    showError(e, 'call');
  }
}

export async function declineIncoming(): Promise<void> {
  const incoming = app.incoming;
  app.incoming = null;
  if (incoming) {
    try {
      await api.declineCall(incoming.room);
    } catch (e) {
      showError(e, 'call');
    }
  }
}
