// One video socket for the whole page, opened on first use.
import { desktopApi as api } from './api';
import { VideoClient } from './video';

let client: Promise<VideoClient> | null = null;

export function videoClient(): Promise<VideoClient> {
  client ??= api.videoEndpoint().then((endpoint) => new VideoClient(endpoint.url));
  return client;
}
