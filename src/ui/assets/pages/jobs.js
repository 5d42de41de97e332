// The jobs page (/): every job with its state, schedule in words, time zone, next fire with
// a countdown and its last run. Filters by text, tag and state and the sort live in the
// URL's query, so a filtered view can be shared. Rows are rendered a window at a time.
import { useEffect, useMemo, useState } from 'preact/hooks';
import { html, navigate } from '../lib.js';
import * as api from '../api.js';
import { hover, local, parse, relative } from '../time.js';
import { useNow } from '../parts.js';

const WINDOW = 200;
const STATES = ['active', 'paused', 'disabled', 'blocked', 'completed', 'failing', 'removed'];
const SORTS = { next: 'Next fire', failure: 'Failure streak', name: 'Name' };

function query() {
  const q = new URLSearchParams(location.search);
  return { text: q.get('q') || '', tag: q.get('tag') || '', state: q.get('state') || '', sort: q.get('sort') || 'next' };
}

function setQuery(next) {
  const q = new URLSearchParams();
  if (next.text) q.set('q', next.text);
  if (next.tag) q.set('tag', next.tag);
  if (next.state) q.set('state', next.state);
  if (next.sort && next.sort !== 'next') q.set('sort', next.sort);
  const s = q.toString();
  navigate(`/${s ? `?${s}` : ''}`, true);
}

// A job's state for the operator: its ledger state, or `failing` while its streak runs.
export function shownState(job) {
  if (job.state === 'active' && job.failure_streak > 0) return 'failing';
  return job.state;
}

function matches(job, f) {
  if (f.tag && !job.tags.includes(f.tag)) return false;
  if (f.state && shownState(job) !== f.state) return false;
  if (f.text) {
    const t = f.text.toLowerCase();
    const hay = `${job.name} ${job.description} ${job.schedule} ${job.tags.join(' ')}`.toLowerCase();
    if (!hay.includes(t)) return false;
  }
  return true;
}

function compare(sort) {
  const next = (j) => (parse(j.next_fire) || { getTime: () => Infinity }).getTime();
  if (sort === 'name') return (a, b) => a.name.localeCompare(b.name);
  if (sort === 'failure') return (a, b) => b.failure_streak - a.failure_streak || a.name.localeCompare(b.name);
  return (a, b) => next(a) - next(b) || a.name.localeCompare(b.name);
}

function StateBadge({ job }) {
  const state = shownState(job);
  let title = state;
  if (job.paused) title = `paused by ${job.paused.by}${job.paused.reason ? `: ${job.paused.reason}` : ''}`;
  if (state === 'failing') title = `${job.failure_streak} failed in a row`;
  if (job.blocked) title = job.blocked;
  return html`<span class=${`badge s-${state}`} title=${title}>${state}${state === 'failing' ? ` ×${job.failure_streak}` : ''}</span>
    ${job.paused && html`<div class="sub">by ${job.paused.by}${job.paused.reason ? ` · ${job.paused.reason}` : ''}</div>`}`;
}

// The last runs, oldest to newest: colour = outcome, height = duration (relative to the
// job's longest shown).
function Strip({ runs }) {
  if (!runs) return html`<span class="strip" aria-hidden="true"></span>`;
  if (runs.length === 0) return html`<span class="muted">never ran</span>`;
  const shown = runs.slice().reverse();
  const longest = Math.max(1, ...shown.map((r) => r.duration_ms || 0));
  const summary = `last ${shown.length} runs: ${shown.filter((r) => r.state === 'succeeded').length} succeeded, ${shown.filter((r) => ['failed', 'timed_out', 'interrupted'].includes(r.state)).length} failed`;
  // Each bar is a link (out of the tab order: 20 a row); the summary is read once, as text.
  return html`<span class="strip" title=${summary}><span class="sr-only">${summary}</span>${shown.map((r) => {
    const h = 4 + Math.round(14 * ((r.duration_ms || 0) / longest));
    const label = `run ${r.id} ${r.state}${r.duration_ms !== null ? `, ${r.duration_ms} ms` : ''}`;
    return html`<a href=${`/runs/${r.id}`} class=${`s-${r.state}`} style=${`height:${h}px`} title=${label} aria-label=${label} tabindex="-1"></a>`;
  })}</span>`;
}

function Row({ job, now, runs }) {
  const last = job.last_run;
  return html`<tr>
    <td class="job"><a href=${`/jobs/${encodeURIComponent(job.name)}`}>${job.name}</a>
      ${job.description && html`<div class="sub">${job.description}</div>`}
      ${job.tags.length > 0 && html`<div class="tags">${job.tags.map((t) => html`<span class="tag">${t}</span>`)}</div>`}</td>
    <td data-label="State"><${StateBadge} job=${job} /></td>
    <td data-label="Schedule"><code class="nowrap">${job.schedule}</code>${job.schedule_description && job.schedule_description !== job.schedule && html`<div class="sub">${job.schedule_description}</div>`}</td>
    <td data-label="Zone" class="nowrap">${job.timezone}</td>
    <td data-label="Next fire" class="nowrap">${job.next_fire
      ? html`<time datetime=${job.next_fire.replace(/\[.*\]$/, '')} title=${hover(job.next_fire, job.timezone)}>${local(job.next_fire)}</time>
        <div class="sub">${relative(job.next_fire, now)}</div>`
      : html`<span class="muted">—</span>`}</td>
    <td data-label="Last run" class="nowrap">${last
      ? html`<span class=${`dot s-${last.state}`} aria-hidden="true"></span>${last.state}
        <div class="sub" title=${hover(last.at, job.timezone)}>${relative(last.at, now)}</div>`
      : html`<span class="muted">never ran</span>`}</td>
    <td data-label="Recent" class="nowrap">${last ? html`<${Strip} runs=${runs} />` : ''}</td>
  </tr>`;
}

export function JobsPage() {
  const [jobs, setJobs] = useState(null);
  const [error, setError] = useState(null);
  const [shown, setShown] = useState(WINDOW);
  const now = useNow(1000);
  const f = query();
  useEffect(() => {
    let live = true;
    const load = () => api.get('/v1/jobs').then((j) => live && (setJobs(j), setError(null)), (e) => live && setError(e.message));
    load();
    // The list changes when files are applied or runs end: refreshed each half minute.
    const t = setInterval(load, 30000);
    return () => { live = false; clearInterval(t); };
  }, []);
  const tags = useMemo(() => [...new Set((jobs || []).flatMap((j) => j.tags))].sort(), [jobs]);
  const rows = useMemo(() => (jobs || []).filter((j) => matches(j, f)).sort(compare(f.sort)), [jobs, f.text, f.tag, f.state, f.sort]);
  const visible = rows.slice(0, shown);
  // The strips of the rows shown: one request for the window, refreshed with the list.
  const [strips, setStrips] = useState({});
  const names = visible.filter((j) => j.last_run && !(j.name in strips)).map((j) => j.name).join(',');
  useEffect(() => {
    if (!names) return;
    api.get(`/v1/runs/recent?per_job=20&jobs=${encodeURIComponent(names)}`).then((r) => setStrips((s) => ({ ...s, ...r.jobs })), () => {});
  }, [names]);
  useEffect(() => setStrips({}), [jobs]);
  const change = (key) => (e) => { setShown(WINDOW); setQuery({ ...f, [key]: e.currentTarget.value }); };
  if (error && !jobs) return html`<h1>Jobs</h1><p class="error" role="alert">${error}</p>`;
  if (!jobs) return html`<h1>Jobs</h1><p class="muted" aria-busy="true">Loading…</p>`;
  return html`<h1>Jobs <span class="count">${rows.length === jobs.length ? jobs.length : `${rows.length} of ${jobs.length}`}</span></h1>
    <form class="filters" role="search" onSubmit=${(e) => e.preventDefault()}>
      <label>Search <input type="search" value=${f.text} onInput=${change('text')} placeholder="name, description, schedule, tag" /></label>
      <label>Tag <select value=${f.tag} onChange=${change('tag')}><option value="">any</option>${tags.map((t) => html`<option value=${t}>${t}</option>`)}</select></label>
      <label>State <select value=${f.state} onChange=${change('state')}><option value="">any</option>${STATES.map((s) => html`<option value=${s}>${s}</option>`)}</select></label>
      <label>Sort <select value=${f.sort} onChange=${change('sort')}>${Object.entries(SORTS).map(([k, v]) => html`<option value=${k}>${v}</option>`)}</select></label>
    </form>
    ${error && html`<p class="error" role="alert">${error}</p>`}
    ${jobs.length === 0
      ? html`<div class="empty"><p>No jobs yet.</p><p>Put a YAML file in the jobs folder (see <code>jobs.d/</code> in the README) and run <code>jobctl apply</code>, or let <code>jobctl serve</code> pick it up.</p></div>`
      : rows.length === 0
        ? html`<div class="empty"><p>No job matches these filters.</p><p><a href="/">Clear the filters</a></p></div>`
        : html`<div class="scroll"><table class="jobs">
            <thead><tr><th scope="col">Job</th><th scope="col">State</th><th scope="col">Schedule</th><th scope="col">Zone</th><th scope="col">Next fire</th><th scope="col">Last run</th><th scope="col">Recent</th></tr></thead>
            <tbody>${visible.map((j) => html`<${Row} key=${j.name} job=${j} now=${now} runs=${strips[j.name]} />`)}</tbody>
          </table></div>
          ${rows.length > shown && html`<p><button type="button" onClick=${() => setShown(shown + WINDOW)}>Show ${Math.min(WINDOW, rows.length - shown)} more of ${rows.length - shown}</button></p>`}`}`;
}
