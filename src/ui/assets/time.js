// Times: shown in the viewer's zone, the job's zone on hover.

// The server's clock, as the viewer's plus the offset measured at the last answer of
// /v1/session: countdowns follow the server, which fires the jobs.
let offset = 0;

export function syncClock(serverNow) {
  const t = parse(serverNow);
  if (t) offset = t.getTime() - Date.now();
}

export function serverNow() {
  return Date.now() + offset;
}

const viewer = Intl.DateTimeFormat().resolvedOptions().timeZone;

export function parse(stamp) {
  if (!stamp) return null;
  // RFC 3339, perhaps with a bracketed zone name (jiff's `2026-12-03T09:00:00+01:00[Europe/Paris]`).
  const plain = stamp.replace(/\[.*\]$/, '');
  const t = new Date(plain);
  return Number.isNaN(t.getTime()) ? null : t;
}

const short = new Intl.DateTimeFormat(undefined, {
  month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit', second: '2-digit',
});

export function local(stamp) {
  const t = parse(stamp);
  return t ? short.format(t) : '';
}

export function inZone(stamp, zone) {
  const t = parse(stamp);
  if (!t) return '';
  try {
    return new Intl.DateTimeFormat(undefined, {
      dateStyle: 'medium', timeStyle: 'long', timeZone: zone,
    }).format(t);
  } catch {
    return t.toISOString();
  }
}

export function hover(stamp, zone) {
  return zone && zone !== viewer ? `${inZone(stamp, zone)} (${zone})` : inZone(stamp, viewer);
}

// "in 3m 20s", "2h ago".
export function relative(stamp, now) {
  const t = parse(stamp);
  if (!t) return '';
  let s = Math.round((t.getTime() - now) / 1000);
  const future = s >= 0;
  s = Math.abs(s);
  const parts = [];
  const d = Math.floor(s / 86400), h = Math.floor((s % 86400) / 3600), m = Math.floor((s % 3600) / 60), sec = s % 60;
  if (d) parts.push(`${d}d`);
  if (h) parts.push(`${h}h`);
  if (m && !d) parts.push(`${m}m`);
  if (!d && !h) parts.push(`${sec}s`);
  const text = parts.slice(0, 2).join(' ');
  return future ? `in ${text}` : `${text} ago`;
}
