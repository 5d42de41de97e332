// The jobs page (/): every job with its state, schedule in words, time zone, next fire with
// a countdown and its last run. Filters by text, tag and state and the sort live in the
// URL's query, so a filtered view can be shared. The server filters, sorts and pages
// (GET /v1/jobs?limit=...): a page of 100 rows costs the same on 10 jobs or 10,000. The rows
// shown reload when the page's stream of changes says one of their runs changed.
import { useEffect, useState } from 'preact/hooks';
import { html, navigate } from '../lib.js';
import * as api from '../api.js';
import { hover, local, relative } from '../time.js';
import { useApi, useLive, useNow } from '../parts.js';

const WINDOW = 100;
const STATES = ['active', 'paused', 'disabled', 'blocked', 'completed', 'failing', 'removed'];
const SORTS = { next: 'Next fire', last_failure: 'Last failure', failure: 'Failure streak', name: 'Name' };

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
        <div class="sub" title=${hover(last.at, job.timezone)}>${relative(last.at, now)}</div>
        ${job.last_failure_at && job.last_failure_at !== last.at && html`<div class="sub" title=${hover(job.last_failure_at, job.timezone)}>failed ${relative(job.last_failure_at, now)}</div>`}`
      : html`<span class="muted">never ran</span>`}</td>
    <td data-label="Recent" class="nowrap">${last ? html`<${Strip} runs=${runs} />` : ''}</td>
  </tr>`;
}

export function JobsPage() {
  const [shown, setShown] = useState(WINDOW);
  const now = useNow(1000);
  const f = query();
  const q = new URLSearchParams({ sort: f.sort, limit: String(shown) });
  if (f.text) q.set('q', f.text);
  if (f.tag) q.set('tag', f.tag);
  if (f.state) q.set('state', f.state);
  const list = useApi(() => api.page(`/v1/jobs?${q}`), [q.toString()]);
  const tags = useApi(() => api.get('/v1/tags'), []);
  const jobs = list.data ? list.data.items : null;
  const total = list.data ? list.data.total : 0;
  // The strips of the rows shown: one request for the page, refreshed with the list (the
  // old ones stay drawn until the new ones arrive).
  const [strips, setStrips] = useState({});
  const names = (jobs || []).filter((j) => j.last_run).map((j) => j.name);
  useEffect(() => {
    if (names.length === 0) return undefined;
    let live = true;
    // 100 jobs a request: short URLs, under the server's 500.
    const groups = [];
    for (let i = 0; i < names.length; i += 100) groups.push(names.slice(i, i + 100).join(','));
    Promise.all(groups.map((g) => api.get(`/v1/runs/recent?per_job=20&jobs=${encodeURIComponent(g)}`)))
      .then((rs) => live && setStrips(Object.assign({}, ...rs.map((r) => r.jobs))), () => {});
    return () => { live = false; };
  }, [jobs]);
  // Live: a run of a row shown, or a change to the jobs (an apply, a pause), reloads the page.
  // (A job not shown that fires only moves later: it cannot enter the rows shown.) Sorted by
  // failures or filtered by state, any run's end may move a job onto the page.
  const visible = new Set((jobs || []).map((j) => j.name));
  const anyEnd = f.state || f.sort === 'failure' || f.sort === 'last_failure';
  const ended = (run) => ['succeeded', 'failed', 'timed_out', 'cancelled', 'skipped'].includes(run.state);
  useLive(() => { list.reload(); tags.reload(); }, (kind, run) => kind === 'jobs' || (run && (visible.has(run.job) || (anyEnd && ended(run)))));
  const change = (key) => (e) => { setShown(WINDOW); setQuery({ ...f, [key]: e.currentTarget.value }); };
  const filtered = Boolean(f.text || f.tag || f.state);
  const error = list.error && list.error.message;
  if (error && !jobs) return html`<h1>Jobs</h1><p class="error" role="alert">${error}</p>`;
  if (!jobs) return html`<h1>Jobs</h1><p class="muted" aria-busy="true">Loading…</p>`;
  return html`<h1>Jobs <span class="count">${filtered ? `${total} matching` : total}</span></h1>
    <form class="filters" role="search" onSubmit=${(e) => e.preventDefault()}>
      <label>Search <input type="search" value=${f.text} onInput=${change('text')} placeholder="name, description, schedule, tag" /></label>
      <label>Tag <select value=${f.tag} onChange=${change('tag')}><option value="">any</option>${(tags.data || []).map((t) => html`<option value=${t.tag}>${t.tag} (${t.jobs})</option>`)}</select></label>
      <label>State <select value=${f.state} onChange=${change('state')}><option value="">any</option>${STATES.map((s) => html`<option value=${s}>${s}</option>`)}</select></label>
      <label>Sort <select value=${f.sort} onChange=${change('sort')}>${Object.entries(SORTS).map(([k, v]) => html`<option value=${k}>${v}</option>`)}</select></label>
    </form>
    ${error && html`<p class="error" role="alert">${error}</p>`}
    ${jobs.length === 0 && !filtered
      ? html`<div class="empty"><p>No jobs yet.</p><p>Put a YAML file in the jobs folder (see <code>jobs.d/</code> in the README) and run <code>jobctl apply</code>, or let <code>jobctl serve</code> pick it up.</p></div>`
      : jobs.length === 0
        ? html`<div class="empty"><p>No job matches these filters.</p><p><a href="/">Clear the filters</a></p></div>`
        : html`<div class="scroll"><table class="jobs">
            <thead><tr><th scope="col">Job</th><th scope="col">State</th><th scope="col">Schedule</th><th scope="col">Zone</th><th scope="col">Next fire</th><th scope="col">Last run</th><th scope="col">Recent</th></tr></thead>
            <tbody>${jobs.map((j) => html`<${Row} key=${j.name} job=${j} now=${now} runs=${strips[j.name]} />`)}</tbody>
          </table></div>
          ${total > jobs.length && html`<p><button type="button" onClick=${() => setShown(Math.min(1000, shown + WINDOW))} disabled=${shown >= 1000}>Show ${Math.min(WINDOW, total - jobs.length)} more of ${total - jobs.length}</button>${shown >= 1000 ? html` <span class="muted">Narrow the filters to see the rest.</span>` : ''}</p>`}`}`;
}
