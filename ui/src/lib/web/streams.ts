// Which MediaStream each video tile shows in the web app: the local preview under LOCAL_TILE,
// each participant's under their user id. Tiles watch their entry; the call sets it.
type Watcher = (stream: MediaStream | null) => void;

const streams = new Map<number, MediaStream>();
const watchers = new Map<number, Set<Watcher>>();
let sinkId: string | null = null;
const sinkWatchers = new Set<(id: string | null) => void>();

export function setStream(tile: number, stream: MediaStream | null): void {
  if (stream) streams.set(tile, stream);
  else streams.delete(tile);
  for (const w of watchers.get(tile) ?? []) w(stream);
}

export function clearStreams(): void {
  for (const tile of [...streams.keys()]) setStream(tile, null);
}

/** Calls `watcher` with the tile's stream now and whenever it changes; returns the unsubscribe. */
export function watchStream(tile: number, watcher: Watcher): () => void {
  let set = watchers.get(tile);
  if (!set) {
    set = new Set();
    watchers.set(tile, set);
  }
  set.add(watcher);
  watcher(streams.get(tile) ?? null);
  return () => {
    set.delete(watcher);
  };
}

/** The speaker remote sound plays on (null: the system's default). */
export function setSpeaker(id: string | null): void {
  sinkId = id;
  for (const w of sinkWatchers) w(id);
}

export function watchSpeaker(watcher: (id: string | null) => void): () => void {
  sinkWatchers.add(watcher);
  watcher(sinkId);
  return () => {
    sinkWatchers.delete(watcher);
  };
}
