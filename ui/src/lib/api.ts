// The Rust side's commands and events, typed. Nothing here touches the DOM.
import { invoke } from '@tauri-apps/api/core';
import { listen, type UnlistenFn } from '@tauri-apps/api/event';
import type {
  CallEvent,
  CallStatus,
  ClientEvent,
  CommandError,
  ConnectionState,
  Devices,
  LinkQuality,
  Member,
  Message,
  OutboxView,
  Room,
  RoomId,
  RoomView,
  Seq,
  ServerHealth,
  Settings,
  User,
  VideoEndpoint,
} from './types';

export interface Session {
  user: User;
  server: string;
  /** Where the connection stands now: a resume returns before the server answers. */
  connection: ConnectionState;
}

export const api = {
  settings: () => invoke<Settings>('get_settings'),
  saveSettings: (settings: Settings) => invoke<void>('save_settings', { settings }),
  health: (server: string) => invoke<ServerHealth>('server_health', { server }),
  /** Resumes the saved session, if there is one. */
  resume: () => invoke<Session | null>('resume'),
  login: (server: string, username: string, password: string) =>
    invoke<Session>('login', { server, username, password }),
  register: (server: string, username: string, displayName: string, password: string, invite: string | null) =>
    invoke<Session>('register', { server, username, displayName, password, invite }),
  logout: () => invoke<void>('logout'),
  /** Reconnects now instead of waiting out the backoff. */
  retryNow: () => invoke<void>('retry_now'),
  /** A desktop notification; clicking it sends `notification_opened` with the room. */
  showNotification: (title: string, body: string, roomId: RoomId | null) =>
    invoke<void>('show_notification', { title, body, roomId }),
  rooms: () => invoke<RoomView[]>('rooms'),
  createRoom: (name: string, isPublic: boolean) => invoke<Room>('create_room', { name, public: isPublic }),
  joinRoom: (roomId: RoomId) => invoke<Room>('join_room', { roomId }),
  leaveRoom: (roomId: RoomId) => invoke<void>('leave_room', { roomId }),
  renameRoom: (roomId: RoomId, name: string) => invoke<Room>('rename_room', { roomId, name }),
  deleteRoom: (roomId: RoomId) => invoke<void>('delete_room', { roomId }),
  findRooms: (query: string) => invoke<Room[]>('find_rooms', { query }),
  openDirect: (username: string) => invoke<Room>('open_direct', { username }),
  addMember: (roomId: RoomId, username: string) => invoke<void>('add_member', { roomId, username }),
  members: (roomId: RoomId) => invoke<Member[]>('members', { roomId }),
  history: (roomId: RoomId, before: Seq | null, limit: number) =>
    invoke<Message[]>('history', { roomId, before, limit }),
  /** The oldest `limit` messages after `after`, for reading forward from older ones. */
  historyAfter: (roomId: RoomId, after: Seq, limit: number) =>
    invoke<Message[]>('history_after', { roomId, after, limit }),
  outbox: (roomId: RoomId) => invoke<OutboxView[]>('outbox', { roomId }),
  send: (roomId: RoomId, text: string) => invoke<OutboxView>('send', { roomId, text }),
  retry: (clientId: string) => invoke<void>('retry', { clientId }),
  discard: (clientId: string) => invoke<void>('discard', { clientId }),
  edit: (roomId: RoomId, seq: Seq, text: string) => invoke<void>('edit', { roomId, seq, text }),
  remove: (roomId: RoomId, seq: Seq) => invoke<void>('delete_message', { roomId, seq }),
  search: (query: string) => invoke<Message[]>('search', { query }),
  markRead: (roomId: RoomId) => invoke<void>('mark_read', { roomId }),
  typing: (roomId: RoomId, typing: boolean) => invoke<void>('typing', { roomId, typing }),
  devices: () => invoke<Devices>('devices'),
  joinCall: (roomId: RoomId) => invoke<CallStatus>('join_call', { roomId }),
  declineCall: (roomId: RoomId) => invoke<void>('decline_call', { roomId }),
  leaveCall: () => invoke<void>('leave_call'),
  setMicrophone: (enabled: boolean) => invoke<void>('set_microphone', { enabled }),
  setCamera: (enabled: boolean) => invoke<void>('set_camera', { enabled }),
  useDevice: (kind: 'microphone' | 'speaker' | 'camera', id: string | null) =>
    invoke<void>('use_device', { kind, id }),
  callQuality: () => invoke<LinkQuality[]>('call_quality'),
  videoEndpoint: () => invoke<VideoEndpoint>('video_endpoint'),
};

export function onClientEvent(handler: (event: ClientEvent) => void): Promise<UnlistenFn> {
  return listen<ClientEvent>('client', (e) => handler(e.payload));
}

/** A notification was clicked: the room it was about. */
export function onNotificationOpened(handler: (room: RoomId | null) => void): Promise<UnlistenFn> {
  return listen<RoomId | null>('notification_opened', (e) => handler(e.payload));
}

export function onCallEvent(handler: (event: CallEvent) => void): Promise<UnlistenFn> {
  return listen<CallEvent>('call', (e) => handler(e.payload));
}

/** A command's failure as `{code, message}` whatever was thrown. */
export function asCommandError(e: unknown): CommandError {
  if (e && typeof e === 'object' && 'code' in e && 'message' in e) {
    return { code: String((e as CommandError).code), message: String((e as CommandError).message) };
  }
  return { code: 'internal', message: String(e) };
}
