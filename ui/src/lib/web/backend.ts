// The web app's backend: what the desktop app's Rust side does, done in the page over the
// protocol. It keeps in memory only what the open page needs (rooms, the loaded messages for
// search, the outbox); the session token is kept in localStorage so a reload stays signed in.
import type { Api, Backend, Session, Unlisten } from '../api';
import type {
  CallEvent,
  CallInfo,
  ClientEvent,
  ConnectionState,
  Devices,
  GuestLink,
  Member,
  Message,
  OutboxView,
  Room,
  RoomId,
  RoomInvite,
  RoomView,
  Seq,
  Settings,
  TimelineEntry,
  User,
  UserId,
} from '../types';
import { applyEntry } from '../timeline';
import { WebCall } from './call';
import { ProtocolSocket, socketUrl, type Incoming } from './socket';

const SESSION_KEY = 'parlor.session';
const SETTINGS_KEY = 'parlor.settings';
/** Most loaded messages kept for search. */
const SEARCHABLE = 5000;

const DEFAULT_SETTINGS: Settings = {
  server: null,
  ca_file: null,
  language: null,
  microphone: null,
  speaker: null,
  camera: null,
  voice: { echo_cancellation: true, noise_suppression: true, auto_gain_control: true },
};

interface Saved {
  token: string;
  user: User;
  /** For a guest, their room. */
  guest_room: RoomId | null;
}

/** A room as list_rooms gives it: the view, and the room's newest seq for the read marker. */
interface RoomState {
  view: RoomView;
  lastSeq: Seq;
}

class Listeners<T> {
  private handlers = new Set<(value: T) => void>();
  add(handler: (value: T) => void): Promise<Unlisten> {
    this.handlers.add(handler);
    return Promise.resolve(() => this.handlers.delete(handler));
  }
  emit(value: T): void {
    for (const h of this.handlers) h(value);
  }
}

/** A client id for a message: random, as the protocol asks (crypto.randomUUID needs HTTPS). */
function clientId(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}

function load<T>(key: string): T | null {
  try {
    const text = localStorage.getItem(key);
    return text ? (JSON.parse(text) as T) : null;
  } catch {
    return null;
  }
}

export function web(): Backend {
  const clientEvents = new Listeners<ClientEvent>();
  const callEvents = new Listeners<CallEvent>();
  const opened = new Listeners<RoomId | null>();
  const rooms = new Map<RoomId, RoomState>();
  const loaded = new Map<string, Message>();
  const outbox = new Map<string, OutboxView>();
  let saved: Saved | null = null;
  let call: WebCall | null = null;
  let connection: ConnectionState = { state: 'offline' };
  let synced = false;
  /** The room of the `call_resumed` this socket got, if any. */
  let resumedRoom: RoomId | null = null;

  const emit = (event: ClientEvent) => clientEvents.emit(event);
  const me = (): UserId => saved?.user.id ?? -1;

  const socket = new ProtocolSocket(socketUrl(location), {
    event: onEvent,
    state: (state) => {
      connection = state;
      emit({ type: 'connection', data: state });
      if (state.state === 'connected' && synced) void resync();
    },
    opened: async () => {
      resumedRoom = null;
      if (!saved) return;
      try {
        await socket.request('authenticate', { token: saved.token }, true);
      } catch (e) {
        if ((e as { code?: string }).code === 'unauthorized') endSession('expired');
        throw e;
      }
    },
  });

  function remember(messages: Message[]): void {
    for (const m of messages) loaded.set(`${m.room_id}:${m.seq}`, m);
    // Oldest first in insertion order: trim from the front past the cap.
    while (loaded.size > SEARCHABLE) {
      const first = loaded.keys().next().value;
      if (first === undefined) break;
      loaded.delete(first);
    }
  }

  function endSession(reason: string): void {
    localStorage.removeItem(SESSION_KEY);
    saved = null;
    synced = false;
    socket.stop();
    emit({ type: 'session_ended', data: { reason } });
  }

  function upsert(room: Room): RoomView {
    const current = rooms.get(room.id);
    const view: RoomView = current ? { ...current.view, room } : { room, unread: 0, last_read_seq: 0, last_message: null };
    rooms.set(room.id, { view, lastSeq: current?.lastSeq ?? 0 });
    emit({ type: 'room', data: { room: view } });
    return view;
  }

  function removeRoom(room: RoomId): void {
    if (rooms.delete(room)) emit({ type: 'room_removed', data: { room_id: room } });
  }

  async function listRooms(): Promise<RoomView[]> {
    const reply = await socket.request('list_rooms');
    rooms.clear();
    const views: RoomView[] = [];
    for (const r of reply.data.rooms as (RoomView & { last_seq: Seq })[]) {
      const view: RoomView = { room: r.room, unread: r.unread, last_read_seq: r.last_read_seq, last_message: r.last_message };
      rooms.set(r.room.id, { view, lastSeq: r.last_seq });
      views.push(view);
    }
    return views;
  }

  /** After a reconnect: the rooms again, the open room re-read, unsent messages resent. A
   * call goes on only if the server resumed it (it says so before it answers anything). */
  async function resync(): Promise<void> {
    try {
      const views = await listRooms();
      if (call && resumedRoom !== call.room) {
        const lost = call;
        call = null;
        lost.end('lost');
      }
      emit({ type: 'rooms', data: { rooms: views } });
      emit({ type: 'synced' });
      for (const o of outbox.values()) if (o.state === 'pending') void deliver(o);
    } catch {
      // The next reconnect tries again.
    }
  }

  function applyTimeline(entry: TimelineEntry): void {
    if (entry.kind === 'message') {
      const m = entry.message;
      remember([m]);
      const state = rooms.get(m.room_id);
      if (state) {
        const unread = m.author_id !== me() ? state.view.unread + 1 : state.view.unread;
        state.view = { ...state.view, unread, last_message: m };
        state.lastSeq = Math.max(state.lastSeq, m.seq);
        emit({ type: 'room', data: { room: state.view } });
      }
    } else {
      const key = `${entry.room_id}:${entry.target_seq}`;
      const m = loaded.get(key);
      // The same rule the message list applies (an edit does not bring a deleted one back).
      if (m) loaded.set(key, applyEntry([m], entry)[0]);
      const state = rooms.get(entry.room_id);
      if (state) state.lastSeq = Math.max(state.lastSeq, entry.seq);
    }
    emit({ type: 'timeline', data: { entry } });
  }

  function onEvent(event: Incoming): void {
    const data = event.data;
    switch (event.type) {
      case 'timeline':
        applyTimeline(data.entry as TimelineEntry);
        break;
      case 'room_updated':
        upsert(data.room as Room);
        break;
      case 'room_deleted':
        removeRoom(data.room_id);
        break;
      case 'member_joined':
        if ((data.user as User).id === me() && !rooms.has(data.room_id)) {
          void listRooms().then((views) => emit({ type: 'rooms', data: { rooms: views } }));
        }
        emit({ type: 'member_joined', data: { room_id: data.room_id, user: data.user } });
        break;
      case 'member_left':
        if (data.user_id === me()) removeRoom(data.room_id);
        else emit({ type: 'member_left', data: { room_id: data.room_id, user_id: data.user_id } });
        break;
      case 'presence':
      case 'typing':
        emit({ type: event.type, data } as ClientEvent);
        break;
      case 'read_marker': {
        const state = rooms.get(data.room_id);
        if (state) {
          state.view = { ...state.view, last_read_seq: data.seq, unread: data.seq >= state.lastSeq ? 0 : state.view.unread };
          emit({ type: 'room', data: { room: state.view } });
        }
        break;
      }
      case 'call_started':
        // Our own call, started in another tab, does not ring here.
        if (data.by === me()) emit({ type: 'call_ongoing', data: { call: data.call as CallInfo } });
        else emit({ type: 'incoming_call', data: { call: data.call as CallInfo, by: data.by } });
        break;
      case 'call_resumed':
        resumedRoom = (data.call as CallInfo).room_id;
        emit({ type: 'call_ongoing', data: { call: data.call as CallInfo } });
        break;
      case 'call_ongoing':
        emit({ type: 'call_ongoing', data: { call: data.call as CallInfo } });
        break;
      case 'call_ended':
        emit({ type: 'call_ended', data: { room_id: data.room_id } });
        // A call that ends while it rings here was missed.
        emit({ type: 'ring_stopped', data: { room_id: data.room_id, missed: true } });
        void call?.handle(event.type, data);
        break;
      case 'session_revoked':
        endSession('revoked');
        break;
      default:
        if (event.type.startsWith('call_')) void call?.handle(event.type, data);
    }
  }

  async function signIn(type: 'login' | 'register' | 'guest_join', data: object): Promise<Session> {
    saved = null;
    socket.stop();
    try {
      await socket.start();
      const reply = await socket.request(type, data);
      saved = { token: reply.data.token, user: reply.data.user, guest_room: reply.data.guest_room_id ?? null };
      localStorage.setItem(SESSION_KEY, JSON.stringify(saved));
      synced = true;
      return { user: saved.user, server: socketUrl(location), connection, guest_room: saved.guest_room };
    } catch (e) {
      socket.stop();
      throw e;
    }
  }

  async function deliver(o: OutboxView): Promise<void> {
    try {
      const reply = await socket.request('send_message', { room_id: o.room_id, client_id: o.client_id, text: o.text });
      const message = reply.data.message as Message;
      outbox.delete(o.client_id);
      applyTimeline({ kind: 'message', message });
      emit({ type: 'outbox', data: { message: { ...o, state: 'sent', seq: message.seq } } });
    } catch (e) {
      const error = e as { code?: string; message?: string };
      // Offline: it stays pending and goes when the socket is back, with the same client id.
      if (error.code === 'disconnected' || !outbox.has(o.client_id)) return;
      const failed: OutboxView = { ...o, state: 'failed', error: error.message ?? String(e) };
      outbox.set(o.client_id, failed);
      emit({ type: 'outbox', data: { message: failed } });
    }
  }

  function currentCall(): WebCall {
    if (!call) throw { code: 'call_ended', message: 'not in a call' };
    return call;
  }

  const settings = (): Settings => ({ ...DEFAULT_SETTINGS, ...(load<Settings>(SETTINGS_KEY) ?? {}) });

  const api: Api = {
    settings: () => Promise.resolve(settings()),
    saveSettings: (s) => {
      localStorage.setItem(SETTINGS_KEY, JSON.stringify(s));
      return Promise.resolve();
    },
    health: async () => {
      try {
        return (await fetch('/healthz', { cache: 'no-store' })).ok ? 'up' : 'down';
      } catch {
        return 'down';
      }
    },
    resume: async () => {
      saved = load<Saved>(SESSION_KEY);
      if (!saved) return null;
      const user = saved.user;
      const guestRoom = saved.guest_room ?? null;
      try {
        await socket.start();
      } catch {
        // Refused: the session is over. Unreachable: signed in from what was saved, and the
        // socket keeps trying.
        if (!saved) return null;
      }
      synced = true;
      return { user, server: socketUrl(location), connection, guest_room: guestRoom };
    },
    login: (_server, username, password) => signIn('login', { username, password }),
    register: (_server, username, displayName, password, invite) =>
      signIn('register', { username, display_name: displayName, password, invite }),
    logout: async () => {
      if (call) await call.leave().catch(() => {});
      call = null;
      await socket.request('logout').catch(() => {});
      socket.stop();
      saved = null;
      synced = false;
      localStorage.removeItem(SESSION_KEY);
      rooms.clear();
      loaded.clear();
      outbox.clear();
    },
    retryNow: () => {
      socket.retryNow();
      return Promise.resolve();
    },
    notify: async (title, body, roomId) => {
      if (typeof Notification === 'undefined') return;
      if (Notification.permission === 'default') await Notification.requestPermission();
      if (Notification.permission !== 'granted') return;
      const n = new Notification(title, { body });
      n.onclick = () => {
        window.focus();
        opened.emit(roomId);
      };
    },
    rooms: async () => [...(rooms.size > 0 ? [...rooms.values()].map((r) => r.view) : await listRooms())],
    createRoom: async (name, isPublic) => {
      const room = (await socket.request('create_room', { name, public: isPublic })).data.room as Room;
      upsert(room);
      return room;
    },
    joinRoom: async (roomId) => {
      const room = (await socket.request('join_room', { room_id: roomId })).data.room as Room;
      upsert(room);
      return room;
    },
    leaveRoom: async (roomId) => {
      await socket.request('leave_room', { room_id: roomId });
      removeRoom(roomId);
    },
    renameRoom: async (roomId, name) => {
      const room = (await socket.request('rename_room', { room_id: roomId, name })).data.room as Room;
      upsert(room);
      return room;
    },
    deleteRoom: async (roomId) => {
      await socket.request('delete_room', { room_id: roomId });
      removeRoom(roomId);
    },
    findRooms: async (query) => (await socket.request('find_rooms', { query })).data.rooms as Room[],
    openDirect: async (username) => {
      const room = (await socket.request('open_direct', { username })).data.room as Room;
      upsert(room);
      return room;
    },
    addMember: async (roomId, username) => {
      await socket.request('add_member', { room_id: roomId, username });
    },
    createGuestLink: async (roomId, hours, uses) => {
      const reply = await socket.request('create_room_invite', { room_id: roomId, expires_in_hours: hours, uses });
      const invite = reply.data.invite as RoomInvite;
      const link: GuestLink = { invite, url: `${location.origin}/join/${encodeURIComponent(invite.code ?? '')}` };
      return link;
    },
    guestLinks: async (roomId) => (await socket.request('list_room_invites', { room_id: roomId })).data.invites as RoomInvite[],
    revokeGuestLink: async (roomId, inviteId) => {
      await socket.request('revoke_room_invite', { room_id: roomId, invite_id: inviteId });
    },
    guestJoin: (code, displayName) => signIn('guest_join', { code, display_name: displayName }),
    members: async (roomId) => (await socket.request('list_members', { room_id: roomId })).data.members as Member[],
    history: async (roomId, before, limit) => {
      const reply = await socket.request('history', { room_id: roomId, before_seq: before, limit });
      const messages = reply.data.messages as Message[];
      remember(messages);
      return messages;
    },
    historyAfter: async (roomId, after, limit) => {
      // sync replays entries; its message entries are the messages in their current state.
      const messages: Message[] = [];
      let since = after;
      for (;;) {
        const reply = await socket.request('sync', { room_id: roomId, since_seq: since });
        const entries = reply.data.entries as TimelineEntry[];
        for (const e of entries) if (e.kind === 'message') messages.push(e.message);
        if (!reply.data.has_more || entries.length === 0 || messages.length >= limit) break;
        const last = entries[entries.length - 1];
        since = last.kind === 'message' ? last.message.seq : last.seq;
      }
      const page = messages.slice(0, limit);
      remember(page);
      return page;
    },
    outbox: (roomId) => Promise.resolve([...outbox.values()].filter((o) => o.room_id === roomId)),
    send: (roomId, text) => {
      const o: OutboxView = { client_id: clientId(), room_id: roomId, text, created_at: Date.now(), state: 'pending' };
      outbox.set(o.client_id, o);
      emit({ type: 'outbox', data: { message: o } });
      void deliver(o);
      return Promise.resolve(o);
    },
    retry: (id) => {
      const o = outbox.get(id);
      if (o) {
        const pending: OutboxView = { client_id: o.client_id, room_id: o.room_id, text: o.text, created_at: o.created_at, state: 'pending' };
        outbox.set(id, pending);
        emit({ type: 'outbox', data: { message: pending } });
        void deliver(pending);
      }
      return Promise.resolve();
    },
    discard: (id) => {
      outbox.delete(id);
      return Promise.resolve();
    },
    edit: async (roomId, seq, text) => {
      const reply = await socket.request('edit_message', { room_id: roomId, seq, text });
      applyTimeline(reply.data.entry as TimelineEntry);
    },
    remove: async (roomId, seq) => {
      const reply = await socket.request('delete_message', { room_id: roomId, seq });
      applyTimeline(reply.data.entry as TimelineEntry);
    },
    search: (query) => {
      // What this page has loaded: the browser keeps no store of its own (see the README).
      const needle = query.trim().toLowerCase();
      if (!needle) return Promise.resolve([]);
      const found = [...loaded.values()]
        .filter((m) => !m.deleted && m.text.toLowerCase().includes(needle))
        .sort((a, b) => b.sent_at - a.sent_at)
        .slice(0, 50);
      return Promise.resolve(found);
    },
    markRead: async (roomId) => {
      const state = rooms.get(roomId);
      if (!state || state.lastSeq === 0) return;
      await socket.request('mark_read', { room_id: roomId, seq: state.lastSeq });
      state.view = { ...state.view, unread: 0, last_read_seq: state.lastSeq };
      emit({ type: 'room', data: { room: state.view } });
    },
    typing: async (roomId, typing) => {
      await socket.request('typing', { room_id: roomId, typing });
    },
    devices: async () => {
      const all = await navigator.mediaDevices.enumerateDevices();
      const list = (kind: MediaDeviceKind, name: string) =>
        all
          .filter((d) => d.kind === kind && d.deviceId && d.deviceId !== 'default')
          .map((d, i) => ({ id: d.deviceId, name: d.label || `${name} ${i + 1}` }));
      const devices: Devices = {
        microphones: list('audioinput', 'Microphone'),
        speakers: list('audiooutput', 'Speaker'),
        cameras: list('videoinput', 'Camera'),
      };
      return devices;
    },
    joinCall: async (roomId) => {
      if (call) throw { code: 'conflict', message: 'already in a call' };
      const s = settings();
      const joined = await WebCall.join(roomId, me(), socket, (e) => {
        if (e.type === 'ended') call = null;
        callEvents.emit(e);
      }, { microphone: s.microphone, camera: s.camera, speaker: s.speaker, voice: s.voice });
      call = joined.call;
      return joined.status;
    },
    declineCall: async (roomId) => {
      await socket.request('call_decline', { room_id: roomId });
    },
    leaveCall: async () => {
      const current = call;
      call = null;
      await current?.leave();
    },
    setMicrophone: (enabled) => currentCall().setMicrophone(enabled),
    setCamera: (enabled) => currentCall().setCamera(enabled),
    useDevice: async (kind, id) => {
      api.saveSettings({ ...settings(), [kind]: id });
      await call?.useDevice(kind, id);
    },
    callQuality: () => (call ? call.quality() : Promise.resolve([])),
  };

  return {
    kind: 'web',
    api,
    onClientEvent: (handler) => clientEvents.add(handler),
    onCallEvent: (handler) => callEvents.add(handler),
    onNotificationOpened: (handler) => opened.add(handler),
  };
}
