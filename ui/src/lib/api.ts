// What the UI asks of its backend, and the one it has: the desktop app's Rust side (over Tauri
// IPC) or, in the web build (`vite build --mode web`), the browser speaking the protocol to the
// server itself. Components and state call `api`; neither knows which backend answers.
import { desktop } from './desktop/api';
import { web } from './web/backend';
import type {
  CallEvent,
  CallStatus,
  ClientEvent,
  CommandError,
  ConnectionState,
  GuestLink,
  Devices,
  LinkQuality,
  Member,
  Message,
  OutboxView,
  Room,
  RoomId,
  RoomInvite,
  RoomView,
  Seq,
  ServerHealth,
  Settings,
  User,
} from './types';

export interface Session {
  user: User;
  server: string;
  /** Where the connection stands now: a resume returns before the server answers. */
  connection: ConnectionState;
  /** For a guest (web app only), the one room they were let into. */
  guest_room?: RoomId | null;
}

export type Unlisten = () => void;

export interface Api {
  settings(): Promise<Settings>;
  saveSettings(settings: Settings): Promise<void>;
  health(server: string): Promise<ServerHealth>;
  /** Resumes the saved session, if there is one. */
  resume(): Promise<Session | null>;
  login(server: string, username: string, password: string): Promise<Session>;
  register(server: string, username: string, displayName: string, password: string, invite: string | null): Promise<Session>;
  logout(): Promise<void>;
  /** Reconnects now instead of waiting out the backoff. */
  retryNow(): Promise<void>;
  /** A system notification, where the user allows them; clicking it opens the room. */
  notify(title: string, body: string, roomId: RoomId | null): Promise<void>;
  rooms(): Promise<RoomView[]>;
  createRoom(name: string, isPublic: boolean): Promise<Room>;
  joinRoom(roomId: RoomId): Promise<Room>;
  leaveRoom(roomId: RoomId): Promise<void>;
  renameRoom(roomId: RoomId, name: string): Promise<Room>;
  deleteRoom(roomId: RoomId): Promise<void>;
  findRooms(query: string): Promise<Room[]>;
  openDirect(username: string): Promise<Room>;
  addMember(roomId: RoomId, username: string): Promise<void>;
  /** A guest link to a room the user owns: expiring after `hours`, for `uses` guests (null: any number). */
  createGuestLink(roomId: RoomId, hours: number, uses: number | null): Promise<GuestLink>;
  guestLinks(roomId: RoomId): Promise<RoomInvite[]>;
  revokeGuestLink(roomId: RoomId, inviteId: number): Promise<void>;
  /** Comes in through a guest link as `displayName` (the web app's `/join/CODE`). */
  guestJoin(code: string, displayName: string): Promise<Session>;
  members(roomId: RoomId): Promise<Member[]>;
  history(roomId: RoomId, before: Seq | null, limit: number): Promise<Message[]>;
  /** The oldest `limit` messages after `after`, for reading forward from older ones. */
  historyAfter(roomId: RoomId, after: Seq, limit: number): Promise<Message[]>;
  outbox(roomId: RoomId): Promise<OutboxView[]>;
  send(roomId: RoomId, text: string): Promise<OutboxView>;
  retry(clientId: string): Promise<void>;
  discard(clientId: string): Promise<void>;
  edit(roomId: RoomId, seq: Seq, text: string): Promise<void>;
  remove(roomId: RoomId, seq: Seq): Promise<void>;
  search(query: string): Promise<Message[]>;
  markRead(roomId: RoomId): Promise<void>;
  typing(roomId: RoomId, typing: boolean): Promise<void>;
  devices(): Promise<Devices>;
  joinCall(roomId: RoomId): Promise<CallStatus>;
  declineCall(roomId: RoomId): Promise<void>;
  leaveCall(): Promise<void>;
  setMicrophone(enabled: boolean): Promise<void>;
  setCamera(enabled: boolean): Promise<void>;
  useDevice(kind: 'microphone' | 'speaker' | 'camera', id: string | null): Promise<void>;
  callQuality(): Promise<LinkQuality[]>;
}

export interface Backend {
  kind: 'desktop' | 'web';
  api: Api;
  onClientEvent(handler: (event: ClientEvent) => void): Promise<Unlisten>;
  onCallEvent(handler: (event: CallEvent) => void): Promise<Unlisten>;
  /** A notification was clicked: the room it was about. */
  onNotificationOpened(handler: (room: RoomId | null) => void): Promise<Unlisten>;
}

/** True in the web build: Vite replaces the mode with a constant, so the other backend is left out. */
export const WEB_APP = import.meta.env.MODE === 'web';

const backend: Backend = WEB_APP ? web() : desktop;

export const api = backend.api;
export const onClientEvent = backend.onClientEvent;
export const onCallEvent = backend.onCallEvent;
export const onNotificationOpened = backend.onNotificationOpened;

/** A command's failure as `{code, message}` whatever was thrown. */
export function asCommandError(e: unknown): CommandError {
  if (e && typeof e === 'object' && 'code' in e && 'message' in e) {
    return { code: String((e as CommandError).code), message: String((e as CommandError).message) };
  }
  return { code: 'internal', message: String(e) };
}
