// Shapes of what the Rust side sends: they mirror parlor-protocol and parlor-client's serde
// output (snake_case fields, tagged enums).

export type UserId = number;
export type RoomId = number;
export type Seq = number;

export interface User {
  id: UserId;
  username: string;
  display_name: string;
}

export type RoomKind = 'public' | 'private' | 'direct';

export interface Room {
  id: RoomId;
  name: string;
  kind: RoomKind;
  owner_id: UserId | null;
  created_at: number;
}

export interface Message {
  room_id: RoomId;
  seq: Seq;
  client_id: string;
  author_id: UserId;
  text: string;
  sent_at: number;
  edited_at: number | null;
  deleted: boolean;
}

/** A guest link to a room; `code` only when just made (the server keeps a hash). */
export interface RoomInvite {
  id: number;
  room_id: RoomId;
  code?: string;
  created_at: number;
  expires_at: number;
  uses_left: number | null;
  revoked: boolean;
}

/** A new guest link and the address to give out (null where the server's address is unknown). */
export interface GuestLink {
  invite: RoomInvite;
  url: string | null;
}

export interface RoomView {
  room: Room;
  unread: number;
  last_read_seq: Seq;
  last_message: Message | null;
}

export type TimelineEntry =
  | { kind: 'message'; message: Message }
  | { kind: 'edit'; room_id: RoomId; seq: Seq; target_seq: Seq; author_id: UserId; text: string; at: number }
  | { kind: 'delete'; room_id: RoomId; seq: Seq; target_seq: Seq; by: UserId; at: number };

export type OutboxState = { state: 'pending' } | { state: 'failed'; error: string } | { state: 'sent'; seq: Seq };

export type OutboxView = {
  client_id: string;
  room_id: RoomId;
  text: string;
  created_at: number;
} & OutboxState;

export type ConnectionState =
  | { state: 'connecting' }
  | { state: 'connected' }
  | { state: 'reconnecting'; attempt: number }
  | { state: 'offline' }
  /** Final: the server's TLS certificate was refused (it changed, or its CA was removed). */
  | { state: 'certificate_not_trusted'; reason: string };

export type Presence = 'online' | 'offline';

export interface Member {
  user: User;
  role: 'owner' | 'member';
  presence: Presence;
  last_read_seq: Seq;
}

export interface CallParticipant {
  user_id: UserId;
  joined_at: number;
  connected: boolean;
}

export interface CallInfo {
  room_id: RoomId;
  call_id: string;
  started_at: number;
  participants: CallParticipant[];
  max_participants: number;
}

export type ClientEvent =
  | { type: 'connection'; data: ConnectionState }
  | { type: 'rooms'; data: { rooms: RoomView[] } }
  | { type: 'room'; data: { room: RoomView } }
  | { type: 'room_removed'; data: { room_id: RoomId } }
  | { type: 'timeline'; data: { entry: TimelineEntry } }
  | { type: 'outbox'; data: { message: OutboxView } }
  | { type: 'member_joined'; data: { room_id: RoomId; user: User } }
  | { type: 'member_left'; data: { room_id: RoomId; user_id: UserId } }
  | { type: 'presence'; data: { user_id: UserId; presence: Presence } }
  | { type: 'typing'; data: { room_id: RoomId; user_id: UserId; typing: boolean } }
  | { type: 'incoming_call'; data: { call: CallInfo; by: UserId } }
  /** The ring is over: answered (here or elsewhere), declined, ended, or `missed`. */
  | { type: 'ring_stopped'; data: { room_id: RoomId; missed: boolean } }
  | { type: 'call_ongoing'; data: { call: CallInfo } }
  | { type: 'call_ended'; data: { room_id: RoomId } }
  | { type: 'synced' }
  | { type: 'session_ended'; data: { reason: string } };

export type LinkState = 'new' | 'connecting' | 'connected' | 'disconnected' | 'failed' | 'closed';

/** Why a call is over for us (the desktop's call machine says; the web app says the same). */
export type EndReason =
  | 'hung_up'
  | 'ended'
  | 'other_left'
  | 'no_answer'
  | 'declined'
  | 'busy'
  | 'lost'
  | 'room_gone';

export type CallEvent =
  | { type: 'joined'; data: { call: CallInfo } }
  | { type: 'participant_joined'; data: { user_id: UserId } }
  | { type: 'participant_left'; data: { user_id: UserId } }
  | { type: 'link'; data: { user_id: UserId; state: LinkState } }
  | { type: 'remote_track'; data: { user_id: UserId; kind: 'audio' | 'video' } }
  | { type: 'media_refused'; data: { user_id: UserId; kind: 'audio' | 'video'; offered: string[] } }
  | { type: 'busy'; data: { user_id: UserId } }
  | { type: 'declined'; data: { user_id: UserId } }
  | { type: 'failed'; data: { user_id: UserId | null; error: string } }
  /** Their signaling dropped; the server keeps their place for a while. */
  | { type: 'participant_away'; data: { user_id: UserId } }
  | { type: 'participant_back'; data: { user_id: UserId } }
  /** What we send now (microphone heard, camera seen). */
  | { type: 'media'; data: { microphone: boolean; camera: boolean } }
  /** Ours dropped: the call goes on while the client reconnects. */
  | { type: 'signaling_lost' }
  | { type: 'resumed' }
  | { type: 'ended'; data: { reason: EndReason } };

export interface Device {
  id: string;
  name: string;
  default?: boolean;
}

export interface Devices {
  microphones: Device[];
  speakers: Device[];
  cameras: Device[];
}

/** What the login page shows about the server: `untrusted` is a refused TLS certificate. */
export type ServerHealth = 'up' | 'down' | 'untrusted' | 'invalid';

export interface Settings {
  server: string | null;
  /** A PEM file of extra CA certificates for a wss:// server. */
  ca_file: string | null;
  language: string | null;
  microphone: string | null;
  speaker: string | null;
  camera: string | null;
  /** What is done to the microphone's sound before it is sent; each part on by default. */
  voice: VoiceProcessing;
}

export interface VoiceProcessing {
  echo_cancellation: boolean;
  noise_suppression: boolean;
  auto_gain_control: boolean;
}

/// Per participant, what the quality badge is computed from.
export interface VideoFigures {
  width: number;
  height: number;
  fps: number;
}

export interface LinkQuality {
  user_id: UserId;
  rtt_ms: number | null;
  packets_lost: number;
  packets_received: number;
  jitter_ms: number | null;
  /** All media received from them, bits per second over the last interval. */
  received_bps: number;
  received_video: VideoFigures | null;
  freeze_count: number;
  /** Our video as sent to them. */
  sent_video: VideoFigures | null;
  /** What the congestion controller finds room for towards them, bits per second. */
  available_bps: number | null;
  limitation: 'none' | 'bandwidth' | 'cpu';
}

export interface VideoEndpoint {
  url: string;
}

export interface CallStatus {
  room_id: RoomId;
  microphone: boolean;
  camera: boolean;
  /** Who was in the call when we joined, ourselves included. */
  participants: UserId[];
}

export interface CommandError {
  code: string;
  message: string;
}
