// The desktop app's backend: the Rust side's commands and events over Tauri IPC.
import { invoke } from '@tauri-apps/api/core';
import { listen } from '@tauri-apps/api/event';
import { isPermissionGranted, requestPermission } from '@tauri-apps/plugin-notification';
import type { Api, Backend, Session } from '../api';
import type {
  CallEvent,
  CallStatus,
  ClientEvent,
  Devices,
  GuestLink,
  LinkQuality,
  Member,
  Message,
  OutboxView,
  Room,
  RoomId,
  RoomInvite,
  RoomView,
  ServerHealth,
  Settings,
  VideoEndpoint,
} from '../types';

export const desktopApi: Api & { videoEndpoint: () => Promise<VideoEndpoint> } = {
  settings: () => invoke<Settings>('get_settings'),
  saveSettings: (settings) => invoke<void>('save_settings', { settings }),
  health: (server) => invoke<ServerHealth>('server_health', { server }),
  resume: () => invoke<Session | null>('resume'),
  login: (server, username, password) => invoke<Session>('login', { server, username, password }),
  register: (server, username, displayName, password, invite) =>
    invoke<Session>('register', { server, username, displayName, password, invite }),
  logout: () => invoke<void>('logout'),
  retryNow: () => invoke<void>('retry_now'),
  notify: async (title, body, roomId) => {
    let allowed = await isPermissionGranted();
    if (!allowed) allowed = (await requestPermission()) === 'granted';
    if (allowed) await invoke<void>('show_notification', { title, body, roomId });
  },
  rooms: () => invoke<RoomView[]>('rooms'),
  createRoom: (name, isPublic) => invoke<Room>('create_room', { name, public: isPublic }),
  joinRoom: (roomId) => invoke<Room>('join_room', { roomId }),
  leaveRoom: (roomId) => invoke<void>('leave_room', { roomId }),
  renameRoom: (roomId, name) => invoke<Room>('rename_room', { roomId, name }),
  deleteRoom: (roomId) => invoke<void>('delete_room', { roomId }),
  findRooms: (query) => invoke<Room[]>('find_rooms', { query }),
  openDirect: (username) => invoke<Room>('open_direct', { username }),
  addMember: (roomId, username) => invoke<void>('add_member', { roomId, username }),
  createGuestLink: (roomId, hours, uses) => invoke<GuestLink>('create_guest_link', { roomId, hours, uses }),
  guestLinks: (roomId) => invoke<RoomInvite[]>('guest_links', { roomId }),
  revokeGuestLink: (roomId, inviteId) => invoke<void>('revoke_guest_link', { roomId, inviteId }),
  // Guest links open in the browser: the desktop app signs in with an account.
  guestJoin: () => Promise.reject({ code: 'invalid', message: 'guest links open in a web browser' }),
  members: (roomId) => invoke<Member[]>('members', { roomId }),
  history: (roomId, before, limit) => invoke<Message[]>('history', { roomId, before, limit }),
  historyAfter: (roomId, after, limit) => invoke<Message[]>('history_after', { roomId, after, limit }),
  outbox: (roomId) => invoke<OutboxView[]>('outbox', { roomId }),
  send: (roomId, text) => invoke<OutboxView>('send', { roomId, text }),
  retry: (clientId) => invoke<void>('retry', { clientId }),
  discard: (clientId) => invoke<void>('discard', { clientId }),
  edit: (roomId, seq, text) => invoke<void>('edit', { roomId, seq, text }),
  remove: (roomId, seq) => invoke<void>('delete_message', { roomId, seq }),
  search: (query) => invoke<Message[]>('search', { query }),
  markRead: (roomId) => invoke<void>('mark_read', { roomId }),
  typing: (roomId, typing) => invoke<void>('typing', { roomId, typing }),
  devices: () => invoke<Devices>('devices'),
  joinCall: (roomId) => invoke<CallStatus>('join_call', { roomId }),
  declineCall: (roomId) => invoke<void>('decline_call', { roomId }),
  leaveCall: () => invoke<void>('leave_call'),
  setMicrophone: (enabled) => invoke<void>('set_microphone', { enabled }),
  setCamera: (enabled) => invoke<void>('set_camera', { enabled }),
  useDevice: (kind, id) => invoke<void>('use_device', { kind, id }),
  callQuality: () => invoke<LinkQuality[]>('call_quality'),
  videoEndpoint: () => invoke<VideoEndpoint>('video_endpoint'),
};

export const desktop: Backend = {
  kind: 'desktop',
  api: desktopApi,
  onClientEvent: (handler) => listen<ClientEvent>('client', (e) => handler(e.payload)),
  onCallEvent: (handler) => listen<CallEvent>('call', (e) => handler(e.payload)),
  onNotificationOpened: (handler) => listen<RoomId | null>('notification_opened', (e) => handler(e.payload)),
};
