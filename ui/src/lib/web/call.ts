// A call in the web app: the browser's own RTCPeerConnection, one per other participant (the
// mesh of docs/protocol.md, "Writing a browser client"), signaled through the server.
import { LOCAL_TILE } from '../frames';
import type { CallEvent, CallInfo, CallStatus, EndReason, LinkQuality, RoomId, UserId, VoiceProcessing } from '../types';
import type { ProtocolSocket } from './socket';
import { linkQuality, type Previous, type StatsEntry } from './stats';
import { clearStreams, setSpeaker, setStream } from './streams';

export interface Devices {
  microphone: string | null;
  camera: string | null;
  speaker: string | null;
  voice: VoiceProcessing;
}

/** Of each pair, the lower id offers and is the impolite peer of perfect negotiation. */
export function offersTo(me: UserId, other: UserId): boolean {
  return me < other;
}

/** What getUserMedia is asked for: the chosen device, and for sound the browser's own echo
 * cancellation, noise suppression and gain control as the settings say (each on by default). */
function constraint(kind: 'audio' | 'video', devices: Devices): MediaTrackConstraints {
  const id = kind === 'audio' ? devices.microphone : devices.camera;
  const device = id ? { deviceId: { exact: id } } : {};
  if (kind === 'video') return device;
  return {
    ...device,
    echoCancellation: devices.voice.echo_cancellation,
    noiseSuppression: devices.voice.noise_suppression,
    autoGainControl: devices.voice.auto_gain_control,
  };
}

/** The microphone and camera, each if it can be had: a call goes on without either. */
async function openLocal(devices: Devices): Promise<MediaStream> {
  const stream = new MediaStream();
  for (const kind of ['audio', 'video'] as const) {
    try {
      const got = await navigator.mediaDevices.getUserMedia({ [kind]: constraint(kind, devices) });
      for (const track of got.getTracks()) stream.addTrack(track);
    } catch (e) {
      console.warn(`no ${kind}`, e);
    }
  }
  return stream;
}

class Link {
  readonly pc: RTCPeerConnection;
  readonly remote = new MediaStream();
  makingOffer = false;
  ignoreOffer = false;
  /** Candidates that came before the description they belong to. */
  early: RTCIceCandidateInit[] = [];
  reading: Previous | null = null;

  constructor(
    readonly user: UserId,
    readonly polite: boolean,
    config: RTCConfiguration,
  ) {
    this.pc = new RTCPeerConnection(config);
  }
}

export class WebCall {
  private links = new Map<UserId, Link>();
  private ended = false;

  private constructor(
    readonly room: RoomId,
    private readonly me: UserId,
    private readonly socket: ProtocolSocket,
    private readonly emit: (event: CallEvent) => void,
    private readonly local: MediaStream,
    private readonly config: RTCConfiguration,
    private devices: Devices,
  ) {}

  /** Opens the devices, joins the room's call and connects to everyone in it. */
  static async join(
    room: RoomId,
    me: UserId,
    socket: ProtocolSocket,
    emit: (event: CallEvent) => void,
    devices: Devices,
  ): Promise<{ call: WebCall; status: CallStatus }> {
    const local = await openLocal(devices);
    try {
      const servers = await socket.request('get_ice_servers');
      const config: RTCConfiguration = { iceServers: servers.data.ice_servers ?? [] };
      const call = new WebCall(room, me, socket, emit, local, config, devices);
      const joined = await socket.request('call_join', { room_id: room });
      setStream(LOCAL_TILE, local);
      setSpeaker(devices.speaker);
      const info = joined.data.call as CallInfo;
      for (const p of info.participants) {
        if (p.user_id !== me) call.connect(p.user_id);
      }
      const status = {
        room_id: room,
        microphone: local.getAudioTracks().length > 0,
        camera: local.getVideoTracks().length > 0,
        participants: info.participants.map((p) => p.user_id),
      };
      return { call, status };
    } catch (e) {
      for (const track of local.getTracks()) track.stop();
      throw e;
    }
  }

  /** A server event about this call (anything else is ignored). */
  async handle(type: string, data: { room_id?: RoomId; user_id?: UserId; from?: UserId; sdp?: string; candidate?: RTCIceCandidateInit }): Promise<void> {
    if (this.ended || data.room_id !== this.room) return;
    switch (type) {
      case 'call_participant_joined':
        if (data.user_id !== undefined && data.user_id !== this.me) this.connect(data.user_id);
        break;
      case 'call_participant_left':
        if (data.user_id === this.me) this.end('lost');
        else if (data.user_id !== undefined) this.disconnect(data.user_id);
        break;
      case 'call_ended':
        this.end('ended');
        break;
      case 'call_declined':
        if (data.user_id !== undefined) this.emit({ type: 'declined', data: { user_id: data.user_id } });
        break;
      case 'call_busy':
        if (data.user_id !== undefined) this.emit({ type: 'busy', data: { user_id: data.user_id } });
        break;
      case 'call_offer':
        if (data.from !== undefined && data.sdp) await this.offered(data.from, data.sdp);
        break;
      case 'call_answer':
        if (data.from !== undefined && data.sdp) await this.answered(data.from, data.sdp);
        break;
      case 'call_ice':
        if (data.from !== undefined && data.candidate) await this.candidate(data.from, data.candidate);
        break;
    }
  }

  private connect(user: UserId): Link {
    const existing = this.links.get(user);
    if (existing) return existing;
    const link = new Link(user, !offersTo(this.me, user), this.config);
    this.links.set(user, link);
    this.emit({ type: 'participant_joined', data: { user_id: user } });
    const pc = link.pc;
    pc.onicecandidate = ({ candidate }) => {
      // No end-of-candidates message exists: the null candidate is not sent.
      if (candidate) this.send('call_ice', { room_id: this.room, to: user, candidate: candidate.toJSON() });
    };
    pc.ontrack = ({ track }) => {
      link.remote.addTrack(track);
      setStream(user, link.remote);
      this.emit({ type: 'remote_track', data: { user_id: user, kind: track.kind === 'audio' ? 'audio' : 'video' } });
    };
    pc.onconnectionstatechange = () => {
      const state = pc.connectionState;
      this.emit({ type: 'link', data: { user_id: user, state } });
      // The offerer restarts ICE; the other side answers the new offer.
      if (state === 'failed' && !link.polite) pc.restartIce();
    };
    pc.onnegotiationneeded = async () => {
      try {
        link.makingOffer = true;
        await pc.setLocalDescription();
        if (pc.localDescription) this.send('call_offer', { room_id: this.room, to: user, sdp: pc.localDescription.sdp });
      } catch (e) {
        this.failed(user, e);
      } finally {
        link.makingOffer = false;
      }
    };
    if (offersTo(this.me, user)) {
      // Audio first, then video, as Parlor's own offers: a peer that refuses the video section
      // keeps the audio. A section without a local track still receives, and takes the track
      // when the device is turned on, without another offer.
      for (const kind of ['audio', 'video'] as const) {
        const track = this.localTrack(kind);
        pc.addTransceiver(track ?? kind, { direction: 'sendrecv', streams: [this.local] });
      }
    }
    return link;
  }

  private async offered(from: UserId, sdp: string): Promise<void> {
    const link = this.connect(from);
    const pc = link.pc;
    const collision = link.makingOffer || pc.signalingState !== 'stable';
    link.ignoreOffer = !link.polite && collision;
    if (link.ignoreOffer) return;
    try {
      // A polite peer's own offer is rolled back by this (perfect negotiation).
      await pc.setRemoteDescription({ type: 'offer', sdp });
      for (const transceiver of pc.getTransceivers()) {
        const kind = transceiver.receiver.track.kind as 'audio' | 'video';
        if (transceiver.sender.track || transceiver.currentDirection === 'stopped') continue;
        transceiver.direction = 'sendrecv';
        const track = this.localTrack(kind);
        if (track) {
          await transceiver.sender.replaceTrack(track);
          transceiver.sender.setStreams(this.local);
        }
      }
      await pc.setLocalDescription();
      if (pc.localDescription) this.send('call_answer', { room_id: this.room, to: from, sdp: pc.localDescription.sdp });
      await this.flushEarly(link);
    } catch (e) {
      this.failed(from, e);
    }
  }

  private async answered(from: UserId, sdp: string): Promise<void> {
    const link = this.links.get(from);
    if (!link) return;
    try {
      await link.pc.setRemoteDescription({ type: 'answer', sdp });
      await this.flushEarly(link);
    } catch (e) {
      this.failed(from, e);
    }
  }

  private async candidate(from: UserId, candidate: RTCIceCandidateInit): Promise<void> {
    const link = this.connect(from);
    if (!link.pc.remoteDescription) {
      link.early.push(candidate);
      return;
    }
    try {
      await link.pc.addIceCandidate(candidate);
    } catch (e) {
      if (!link.ignoreOffer) console.warn('candidate refused', e);
    }
  }

  private async flushEarly(link: Link): Promise<void> {
    const early = link.early;
    link.early = [];
    for (const candidate of early) await this.candidate(link.user, candidate);
  }

  private localTrack(kind: 'audio' | 'video'): MediaStreamTrack | null {
    return (kind === 'audio' ? this.local.getAudioTracks() : this.local.getVideoTracks())[0] ?? null;
  }

  private send(type: string, data: unknown): void {
    // Not awaited: a candidate's round trip must not hold up the next one.
    this.socket.request(type, data).catch((e) => console.warn(`${type} failed`, e));
  }

  private failed(user: UserId, e: unknown): void {
    console.warn('call step failed', e);
    this.emit({ type: 'failed', data: { user_id: user, error: String(e) } });
  }

  private disconnect(user: UserId): void {
    const link = this.links.get(user);
    if (!link) return;
    link.pc.close();
    this.links.delete(user);
    setStream(user, null);
    this.emit({ type: 'participant_left', data: { user_id: user } });
  }

  /** The call is over for us: every link closed, the devices released; `lost` when the server
   * no longer had us in it after the connection came back. */
  end(reason: EndReason): void {
    if (this.ended) return;
    this.ended = true;
    for (const link of this.links.values()) link.pc.close();
    this.links.clear();
    for (const track of this.local.getTracks()) track.stop();
    clearStreams();
    this.emit({ type: 'ended', data: { reason } });
  }

  async leave(): Promise<void> {
    if (this.ended) return;
    try {
      await this.socket.request('call_leave', { room_id: this.room });
    } finally {
      this.end('hung_up');
    }
  }

  async setMicrophone(enabled: boolean): Promise<void> {
    const track = this.localTrack('audio');
    if (track) track.enabled = enabled;
    else if (enabled) await this.replace('audio');
    this.emitMedia();
  }

  async setCamera(enabled: boolean): Promise<void> {
    const track = this.localTrack('video');
    if (enabled && !track) await this.replace('video');
    if (!enabled && track) {
      track.stop();
      this.local.removeTrack(track);
      await this.forEachSender('video', (sender) => sender.replaceTrack(null));
      setStream(LOCAL_TILE, this.local);
    }
    this.emitMedia();
  }

  async useDevice(kind: 'microphone' | 'speaker' | 'camera', id: string | null): Promise<void> {
    this.devices = { ...this.devices, [kind]: id };
    if (kind === 'speaker') setSpeaker(id);
    else {
      await this.replace(kind === 'camera' ? 'video' : 'audio');
      this.emitMedia();
    }
  }

  /** Says what is sent now, as the desktop's call machine does. */
  private emitMedia(): void {
    const microphone = this.localTrack('audio')?.enabled ?? false;
    const camera = this.localTrack('video') !== null;
    this.emit({ type: 'media', data: { microphone, camera } });
  }

  /** A new track of `kind` from the chosen device in place of the current one, on every link. */
  private async replace(kind: 'audio' | 'video'): Promise<void> {
    const stream = await navigator.mediaDevices.getUserMedia({ [kind]: constraint(kind, this.devices) });
    const track = stream.getTracks()[0];
    const old = this.localTrack(kind);
    if (old) {
      old.stop();
      this.local.removeTrack(old);
    }
    this.local.addTrack(track);
    await this.forEachSender(kind, (sender) => sender.replaceTrack(track));
    setStream(LOCAL_TILE, this.local);
  }

  private async forEachSender(kind: 'audio' | 'video', act: (sender: RTCRtpSender) => Promise<void>): Promise<void> {
    for (const link of this.links.values()) {
      for (const transceiver of link.pc.getTransceivers()) {
        if (transceiver.receiver.track.kind === kind && transceiver.currentDirection !== 'stopped') {
          await act(transceiver.sender);
        }
      }
    }
  }

  async quality(): Promise<LinkQuality[]> {
    const now = performance.now();
    const all: LinkQuality[] = [];
    for (const link of this.links.values()) {
      const report = await link.pc.getStats();
      const entries: StatsEntry[] = [];
      report.forEach((entry: StatsEntry) => entries.push(entry));
      const { quality, reading } = linkQuality(link.user, entries, link.reading, now);
      link.reading = reading;
      all.push(quality);
    }
    return all;
  }
}
