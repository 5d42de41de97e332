// The timeline (/timeline): one row per job, past runs as bars from start to end coloured by
// outcome (retries linked), and the coming fires on the same axis, drawn hollow, so what
// overlaps, what is late and what is about to start show at a glance. The window zooms and
// pans (in the URL: ?span=24h&at=...). The week view (?view=week) counts fires per hour, a
// heat map of load: a new cron landing on the busiest hour shows before it is merged. A run
// that started (or still waits) more than a minute after it was due is marked late: a dotted
// line from when it was due. Runs update live from the page's stream of changes.
import { useEffect, useRef, useState } from 'preact/hooks';
import { html, navigate } from '../lib.js';
import * as api from '../api.js';
import { Loading, Problem, duration, useApi, useLive, useNow } from '../parts.js';
import { parse, serverNow } from '../time.js';

const SPANS = { '6h': 6, '24h': 24, '3d': 72, '7d': 168 };
const HOUR = 3600 * 1000;
const ROWS = 50;
const ROW = 22;
const LABEL = 170;
const AXIS = 24;
// A run is late when it starts more than this after it was due.
const LATE = 60 * 1000;

function params() {
  const q = new URLSearchParams(location.search);
  const span = SPANS[q.get('span')] ? q.get('span') : '24h';
  const at = parse(q.get('at'));
  return { view: q.get('view') === 'week' ? 'week' : 'runs', span, at: at ? at.getTime() : null, q: q.get('q') || '' };
}

function go(next) {
  const q = new URLSearchParams();
  if (next.view === 'week') q.set('view', 'week');
  if (next.span !== '24h') q.set('span', next.span);
  if (next.at !== null) q.set('at', new Date(next.at).toISOString());
  if (next.q) q.set('q', next.q);
  const s = q.toString();
  navigate(`/timeline${s ? `?${s}` : ''}`, true);
}

function useWidth() {
  const ref = useRef(null);
  const [width, setWidth] = useState(900);
  useEffect(() => {
    if (!ref.current) return undefined;
    const o = new ResizeObserver(([e]) => setWidth(Math.max(320, Math.floor(e.contentRect.width))));
    o.observe(ref.current);
    return () => o.disconnect();
  }, [ref.current]);
  return [ref, width];
}

function ticks(start, end, width) {
  const span = end - start;
  const steps = [HOUR, 3 * HOUR, 6 * HOUR, 12 * HOUR, 24 * HOUR];
  const step = steps.find((s) => (width - LABEL) / (span / s) >= 100) || 24 * HOUR;
  const out = [];
  for (let t = Math.ceil(start / step) * step; t < end; t += step) out.push(t);
  return out;
}

const tickFormat = new Intl.DateTimeFormat(undefined, { weekday: 'short', hour: '2-digit', minute: '2-digit' });
const exact = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'medium' });

function Chart({ rows, start, end, now, width }) {
  const names = rows.map((r) => r.job);
  if (names.length === 0) {
    return html`<p class="empty">No jobs match. Clear the search, or apply some jobs first.</p>`;
  }
  const runs = rows.flatMap((row) => row.runs.map((r) => ({ ...r, job: row.job })));
  const fires = { jobs: rows.map((r) => ({ job: r.job, fires: r.fires })) };
  const x = (t) => LABEL + ((Math.min(Math.max(t, start), end) - start) / (end - start)) * (width - LABEL - 8);
  const row = new Map(names.map((n, i) => [n, i]));
  const height = AXIS + names.length * ROW + 4;
  // A job's typical duration, for the width of its coming fires.
  const typical = new Map();
  for (const n of names) {
    const d = runs.filter((r) => r.job === n && r.duration_ms !== null).map((r) => r.duration_ms).sort((a, b) => a - b);
    typical.set(n, d.length ? d[Math.floor(d.length / 2)] : 0);
  }
  const byId = new Map(runs.map((r) => [r.id, r]));
  const late = [];
  const bars = runs.map((r) => {
    const due = r.scheduled_at ? Date.parse(r.scheduled_at) : null;
    const began = r.started_at ? Date.parse(r.started_at) : null;
    const waited = due === null ? 0 : (began ?? (r.state === 'pending' ? now : due)) - due;
    const from = began ?? due ?? Date.parse(r.created_at);
    const to = r.finished_at ? Date.parse(r.finished_at) : r.state === 'running' ? now : from;
    const y = AXIS + row.get(r.job) * ROW + 4;
    const x1 = x(from);
    const w = Math.max(3, x(to) - x1);
    const lateBy = waited > LATE ? `, ${duration(waited)} late` : '';
    if (lateBy) {
      const mid = y + (ROW - 8) / 2;
      late.push(html`<line class="late" x1=${x(due)} x2=${r.state === 'pending' ? x(now) : x1} y1=${mid} y2=${mid}><title>${`${r.job} run ${r.id} was due ${exact.format(new Date(due))}${lateBy}`}</title></line>`);
    }
    const label = `${r.job} run ${r.id}: ${r.state}${r.attempt > 1 ? `, attempt ${r.attempt}` : ''}, ${exact.format(new Date(from))}${r.duration_ms !== null ? `, ${duration(r.duration_ms)}` : ''}${lateBy}`;
    return html`<a href=${`/runs/${r.id}`} aria-label=${label}><rect class=${`bar s-${r.state}`} x=${x1} y=${y} width=${w} height=${ROW - 8} rx="2"><title>${label}</title></rect></a>`;
  });
  // Retries: a line from the attempt before to this one.
  const links = runs.filter((r) => r.attempt > 1).map((r) => {
    const prev = runs.find((p) => (p.first_run_id || p.id) === r.first_run_id && p.attempt === r.attempt - 1) || byId.get(r.first_run_id);
    if (!prev || !prev.finished_at) return null;
    const y = AXIS + row.get(r.job) * ROW + ROW / 2;
    return html`<line class="retry" x1=${x(Date.parse(prev.finished_at))} x2=${x(Date.parse(r.started_at || r.created_at))} y1=${y} y2=${y} />`;
  });
  // Coming fires, hollow; fires closer than a few pixels merge into one band ("12 fires").
  const coming = fires.jobs.flatMap((f) => {
    const groups = [];
    for (const at of f.fires) {
      const t = parse(at).getTime();
      const last = groups[groups.length - 1];
      if (last && x(t) - x(last.to) < 4) {
        last.to = t;
        last.n += 1;
      } else {
        groups.push({ from: t, to: t, n: 1 });
      }
    }
    const y = AXIS + row.get(f.job) * ROW + 4;
    return groups.map((grp) => {
      const w = Math.max(4, x(grp.to + typical.get(f.job)) - x(grp.from));
      const label = grp.n === 1
        ? `${f.job} fires ${exact.format(new Date(grp.from))}`
        : `${f.job} fires ${grp.n} times from ${exact.format(new Date(grp.from))} to ${exact.format(new Date(grp.to))}`;
      return html`<rect class=${grp.n === 1 ? 'fire' : 'fire band'} x=${x(grp.from)} y=${y} width=${w} height=${ROW - 8} rx="2"><title>${label}</title></rect>`;
    });
  });
  return html`<svg class="timeline" width=${width} height=${height} role="group" aria-label=${`Runs and coming fires of ${names.length} jobs`}>
    ${ticks(start, end, width).map((t) => html`<g><line class="grid" x1=${x(t)} x2=${x(t)} y1=${AXIS - 4} y2=${height} /><text class="tick" x=${x(t) + 3} y="14">${tickFormat.format(new Date(t))}</text></g>`)}
    ${names.map((n, i) => html`<g>
      ${i % 2 === 1 && html`<rect class="stripe" x="0" y=${AXIS + i * ROW} width=${width} height=${ROW} />`}
      <a href=${`/jobs/${encodeURIComponent(n)}`}><text class="name" x="4" y=${AXIS + i * ROW + 15}>${n.length > 22 ? `${n.slice(0, 21)}…` : n}<title>${n}</title></text></a></g>`)}
    ${links}${coming}${late}${bars}
    ${now >= start && now <= end && html`<line class="now" x1=${x(now)} x2=${x(now)} y1=${AXIS - 6} y2=${height}><title>now</title></line>`}
  </svg>`;
}

function Week() {
  // Calendar days in the viewer's zone, from today's midnight: each hour's count (the server
  // buckets by the hour from `from`) goes to the local day and hour it starts in, so a day
  // clocks go back on adds its repeated hour, and one they go forward on shows a gap.
  const midnight = new Date(serverNow());
  midnight.setHours(0, 0, 0, 0);
  const from = midnight.getTime();
  const fires = useApi(() => api.get(`/v1/fires?from=${encodeURIComponent(new Date(from).toISOString())}&to=${encodeURIComponent(new Date(from + 169 * HOUR).toISOString())}&per_job=0`), [from]);
  if (fires.error) return html`<${Problem} error=${fires.error} />`;
  if (!fires.data) return html`<${Loading} />`;
  const days = [...Array(7).keys()].map((d) => { const t = new Date(from); t.setDate(t.getDate() + d); return t; });
  const grid = days.map(() => Array(24).fill(0));
  fires.data.hourly.forEach((c, i) => {
    const t = new Date(from + i * HOUR);
    const day = days.findIndex((d, k) => t >= d && (k === 6 || t < days[k + 1]));
    if (day >= 0 && (day < 6 || t.getDate() === days[6].getDate())) grid[day][t.getHours()] += c;
  });
  const max = Math.max(1, ...grid.flat());
  let busiest = [0, 0];
  grid.forEach((row, d) => row.forEach((c, h) => { if (c > grid[busiest[0]][busiest[1]]) busiest = [d, h]; }));
  const top = grid[busiest[0]][busiest[1]];
  const dayFormat = new Intl.DateTimeFormat(undefined, { weekday: 'short', day: 'numeric', month: 'short' });
  const hour = (h) => `${String(h).padStart(2, '0')}:00`;
  return html`<p class="muted">Fires per hour over 7 days from today, in your time zone, from the schedules as applied.
      ${top > 0 ? html` The busiest hour: <b>${dayFormat.format(days[busiest[0]])} ${hour(busiest[1])}</b> with ${top} fire${top === 1 ? '' : 's'}.` : ' No scheduled fires.'}</p>
    <div class="scroll"><table class="heat">
      <thead><tr><th scope="col">Day</th>${[...Array(24).keys()].map((h) => html`<th scope="col">${String(h).padStart(2, '0')}</th>`)}</tr></thead>
      <tbody>${days.map((d, i) => html`<tr><th scope="row">${dayFormat.format(d)}</th>${grid[i].map((c, h) => html`<td class=${c / max > 0.5 ? 'hot' : ''} style=${`--heat:${(c / max).toFixed(3)}`} title=${`${c} fire${c === 1 ? '' : 's'}, ${dayFormat.format(d)} ${hour(h)}`}>${c || ''}</td>`)}</tr>`)}</tbody>
    </table></div>`;
}


export function TimelinePage() {
  const p = params();
  const now = useNow(5000);
  const [ref, width] = useWidth();
  const half = (SPANS[p.span] * HOUR) / 2;
  const center = p.at ?? Math.floor(serverNow() / (5 * 60000)) * 5 * 60000;
  const start = center - half;
  const end = center + half;
  // Rows a page at a time (jobs by name): each page is one request, whatever the ledger's size.
  const [pages, setPages] = useState(1);
  const data = useApi(async () => {
    const got = [];
    let total = 0;
    for (let page = 0; page < pages; page++) {
      const q = `/v1/timeline?from=${encodeURIComponent(new Date(start).toISOString())}&to=${encodeURIComponent(new Date(end).toISOString())}&offset=${page * ROWS}&limit=${ROWS}${p.q ? `&q=${encodeURIComponent(p.q)}` : ''}`;
      const r = await api.get(q);
      total = r.total;
      got.push(...r.rows);
      if (got.length >= total) break;
    }
    return { rows: got, total };
  }, [start, end, p.view, p.q, pages]);
  // Live: a change to a run of a row shown reloads the rows (at most once a second).
  const shown = new Set(data.data ? data.data.rows.map((r) => r.job) : []);
  useLive(data.reload, (kind, run) => kind === 'jobs' || (run && shown.has(run.job)));
  const pan = (k) => go({ ...p, at: center + k * half });
  return html`<h1>Timeline</h1>
    <div class="bar controls" role="toolbar" aria-label="Timeline window">
      <div class="segmented" role="group" aria-label="View">
        <button type="button" aria-pressed=${p.view === 'runs'} onClick=${() => go({ ...p, view: 'runs' })}>Runs and fires</button>
        <button type="button" aria-pressed=${p.view === 'week'} onClick=${() => go({ ...p, view: 'week' })}>Week of load</button>
      </div>
      ${p.view === 'runs' && html`
        <div class="segmented" role="group" aria-label="Zoom">${Object.keys(SPANS).map((s) => html`<button type="button" aria-pressed=${p.span === s} onClick=${() => go({ ...p, span: s })}>${s}</button>`)}</div>
        <div class="segmented" role="group" aria-label="Pan">
          <button type="button" onClick=${() => pan(-1)} aria-label="Earlier">←</button>
          <button type="button" onClick=${() => go({ ...p, at: null })}>Now</button>
          <button type="button" onClick=${() => pan(1)} aria-label="Later">→</button>
        </div>
        <label class="inline">Jobs <input type="search" value=${p.q} placeholder="name" onChange=${(e) => go({ ...p, q: e.currentTarget.value })} /></label>
        <span class="legend"><span class="key solid"></span> run <span class="key hollow"></span> coming fire <span class="key late"></span> late <span class="key now"></span> now</span>`}
    </div>
    ${p.view === 'week'
      ? html`<${Week} />`
      : html`<div ref=${ref} class="chart">
        <${Problem} error=${data.error} />
        ${data.data ? html`<${Chart} rows=${data.data.rows} start=${start} end=${end} now=${now} width=${width} />` : html`<${Loading} />`}
        ${data.data && data.data.rows.length < data.data.total && html`<p><button type="button" onClick=${() => setPages(pages + 1)}>Show ${Math.min(ROWS, data.data.total - data.data.rows.length)} more of ${data.data.total - data.data.rows.length} jobs</button></p>`}
      </div>`}`;
}
