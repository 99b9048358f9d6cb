// Small display rules shared by components.

/** An unread badge: nothing for zero, "99+" past 99. */
export function unreadBadge(count: number): string {
  if (count <= 0) return '';
  return count > 99 ? '99+' : String(count);
}

/** The health endpoint of a server given by its WebSocket URL (ws://host:port/ws). */
export function healthUrl(server: string): string | null {
  try {
    const url = new URL(server.trim());
    if (url.protocol !== 'ws:' && url.protocol !== 'wss:') return null;
    url.protocol = url.protocol === 'wss:' ? 'https:' : 'http:';
    url.pathname = '/healthz';
    url.search = '';
    url.hash = '';
    return url.toString();
  } catch {
    return null;
  }
}

/** Whether a server address looks usable before trying it. */
export function validServer(server: string): boolean {
  return healthUrl(server) !== null;
}

/** Initials for an avatar: the first letters of the first two words. */
export function initials(name: string): string {
  const words = name.trim().split(/\s+/).filter(Boolean);
  const letters = words.slice(0, 2).map((w) => [...w][0] ?? '');
  return letters.join('').toUpperCase() || '?';
}

/** A message's time of day in the app's chosen language (not the system's). */
export function formatTime(ms: number, language: string): string {
  return new Date(ms).toLocaleTimeString(language, { hour: '2-digit', minute: '2-digit' });
}

/** The code of a guest link's path (`/join/CODE`), or null for any other page. */
export function guestCode(pathname: string): string | null {
  const match = /^\/join\/([^/]+)\/?$/.exec(pathname);
  if (!match) return null;
  try {
    const code = decodeURIComponent(match[1]).trim();
    return code || null;
  } catch {
    return null;
  }
}

/** A moment in the app's chosen language, date and time. */
export function formatDateTime(ms: number, language: string): string {
  return new Date(ms).toLocaleString(language, { dateStyle: 'medium', timeStyle: 'short' });
}
