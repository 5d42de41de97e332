// A job (/jobs/NAME): its state and schedule, the next fires, its runs, the definition as
// applied; for an admin, trigger (a form built from the job's params), pause with a reason,
// resume.
import { useState } from 'preact/hooks';
import { html, navigate } from '../lib.js';
import * as api from '../api.js';
import { Badge, Facts, Loading, Problem, When, duration, useApi, useLive, useNow } from '../parts.js';
import { shownState } from './jobs.js';

function TriggerForm({ job }) {
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  const submit = async (e) => {
    e.preventDefault();
    const form = e.currentTarget;
    const params = {};
    for (const p of job.params) {
      const v = form.elements[`param-${p.name}`].value;
      if (v !== '') params[p.name] = v;
    }
    setBusy(true);
    setError(null);
    try {
      const run = await api.post(`/v1/jobs/${encodeURIComponent(job.name)}/trigger`, { params });
      navigate(`/runs/${run.id}`);
    } catch (err) {
      setError(err);
      setBusy(false);
    }
  };
  return html`<form class="card" onSubmit=${submit} aria-labelledby="trigger-h">
    <h2 id="trigger-h">Trigger</h2>
    ${job.params.length === 0 && html`<p class="muted">This job takes no parameters.</p>`}
    ${job.params.map((p) => html`<label class="field">
      <span>${p.name}${p.required && html` <abbr title="required" class="req">*</abbr>`}</span>
      <input name=${`param-${p.name}`} required=${p.required} placeholder=${p.default || ''} aria-describedby=${p.description ? `d-${p.name}` : undefined} />
      ${p.description && html`<small id=${`d-${p.name}`} class="muted">${p.description}${p.default ? ` (default ${p.default})` : ''}</small>`}
    </label>`)}
    <button type="submit" disabled=${busy}>${busy ? 'Queueing…' : 'Run now'}</button>
    <${Problem} error=${error} />
  </form>`;
}

function PauseForm({ job, onChange }) {
  const [error, setError] = useState(null);
  const paused = job.state === 'paused';
  const submit = async (e) => {
    e.preventDefault();
    const reason = paused ? undefined : e.currentTarget.elements.reason.value.trim();
    setError(null);
    try {
      await api.post(`/v1/jobs/${encodeURIComponent(job.name)}/${paused ? 'resume' : 'pause'}`, paused ? undefined : { reason: reason || null });
      onChange();
    } catch (err) {
      setError(err);
    }
  };
  return html`<form class="card" onSubmit=${submit} aria-labelledby="pause-h">
    <h2 id="pause-h">${paused ? 'Paused' : 'Pause'}</h2>
    ${paused
      ? html`<p>By ${job.paused.by}${job.paused.reason ? html`: “${job.paused.reason}”` : ''}, <${When} at=${job.paused.at} />.</p>`
      : html`<label class="field"><span>Reason</span><input name="reason" placeholder="why, for whoever looks next" /></label>`}
    <button type="submit">${paused ? 'Resume' : 'Pause'}</button>
    <${Problem} error=${error} />
  </form>`;
}

// Duration and outcome over time: a bar per run (its last 100), height = duration, colour =
// outcome, placed by when it was due; a click opens the run.
function DurationChart({ name, version }) {
  const runs = useApi(() => api.get(`/v1/runs?job=${encodeURIComponent(name)}&limit=100`), [name, version]);
  const ended = (runs.data ? runs.data.runs : []).filter((r) => r.duration_ms !== null).reverse();
  if (ended.length < 2) return null;
  const W = 720, H = 120, PAD = 52;
  const times = ended.map((r) => Date.parse(r.scheduled_at || r.created_at));
  const t0 = times[0], t1 = Math.max(times[times.length - 1], t0 + 1);
  const longest = Math.max(...ended.map((r) => r.duration_ms), 1);
  const bw = Math.max(2, Math.min(12, (W - PAD) / ended.length - 1));
  const x = (t) => PAD + ((t - t0) / (t1 - t0)) * (W - PAD - bw);
  return html`<section aria-labelledby="chart-h">
    <h2 id="chart-h">Duration and outcome <span class="count">last ${ended.length} runs, longest ${duration(longest)}</span></h2>
    <div class="chart"><svg class="durations" viewBox=${`0 0 ${W} ${H + 14}`} width="100%" role="group" aria-label=${`Durations of the last ${ended.length} runs; the longest ${duration(longest)}`}>
      <line class="grid" x1=${PAD} x2=${W} y1=${H} y2=${H} />
      <text class="tick" x="0" y="10">${duration(longest)}</text><text class="tick" x="0" y=${H}>0</text>
      ${ended.map((r, i) => {
        const h = Math.max(2, (r.duration_ms / longest) * (H - 6));
        return html`<a href=${`/runs/${r.id}`}><rect class=${`bar s-${r.state}`} x=${x(times[i])} y=${H - h} width=${bw} height=${h} rx="1"><title>${`#${r.id} ${r.state}, ${duration(r.duration_ms)}`}</title></rect></a>`;
      })}
    </svg></div>
  </section>`;
}

function Runs({ name, now, version }) {
  const [state, setState] = useState('');
  const runs = useApi(() => api.get(`/v1/runs?job=${encodeURIComponent(name)}&limit=50${state ? `&state=${state}` : ''}`), [name, state, version]);
  return html`<section aria-labelledby="runs-h">
    <div class="bar"><h2 id="runs-h">Runs</h2>
      <label class="inline">State <select value=${state} onChange=${(e) => setState(e.currentTarget.value)}>
        <option value="">any</option>${['pending', 'running', 'succeeded', 'failed', 'timed_out', 'cancelled', 'skipped'].map((s) => html`<option value=${s}>${s.replace('_', ' ')}</option>`)}
      </select></label></div>
    <${Problem} error=${runs.error} />
    ${!runs.data ? html`<${Loading} />` : runs.data.runs.length === 0
      ? html`<p class="empty">No runs${state ? ` in state ${state}` : ''} yet.</p>`
      : html`<div class="scroll"><table>
        <thead><tr><th scope="col">Run</th><th scope="col">State</th><th scope="col">Trigger</th><th scope="col">Scheduled</th><th scope="col">Duration</th><th scope="col">Exit</th><th scope="col">CPU</th><th scope="col">Memory</th></tr></thead>
        <tbody>${runs.data.runs.map((r) => html`<tr>
          <td><a href=${`/runs/${r.id}`}>#${r.id}</a>${r.attempt > 1 ? html` <span class="sub">attempt ${r.attempt}</span>` : ''}</td>
          <td><${Badge} state=${r.state} /></td><td>${r.trigger}</td>
          <td class="nowrap"><${When} at=${r.scheduled_at || r.created_at} now=${now} /></td>
          <td class="nowrap">${duration(r.duration_ms)}</td>
          <td>${r.exit_code !== null ? r.exit_code : r.signal !== null ? `signal ${r.signal}` : r.http_status != null ? `HTTP ${r.http_status}` : ''}</td>
          <td class="nowrap">${r.cpu_user_ms !== null ? duration(r.cpu_user_ms + r.cpu_sys_ms) : ''}</td>
          <td class="nowrap">${r.max_rss_kb !== null ? `${(r.max_rss_kb / 1024).toFixed(1)} MiB` : ''}</td>
        </tr>`)}</tbody></table></div>`}
  </section>`;
}

// The revisions (GitOps is history): each with its commit, and the diff between any two.
function Revisions({ name, count, now }) {
  const list = useApi(() => api.get(`/v1/jobs/${encodeURIComponent(name)}/revisions`), [name, count]);
  const [pair, setPair] = useState(null);
  const revs = list.data || [];
  const chosen = pair || (revs.length > 1 ? [revs[1].number, revs[0].number] : null);
  const diff = useApi(() => (chosen ? api.get(`/v1/jobs/${encodeURIComponent(name)}/revisions/diff?from=${chosen[0]}&to=${chosen[1]}`) : Promise.resolve(null)), [name, chosen && chosen.join('-')]);
  if (list.error) return html`<section><h2>Revisions</h2><${Problem} error=${list.error} /></section>`;
  if (!list.data) return null;
  const pick = (i) => (e) => { const next = [...chosen]; next[i] = Number(e.currentTarget.value); setPair(next); };
  return html`<section aria-labelledby="revs-h">
    <h2 id="revs-h">Revisions</h2>
    <div class="scroll"><table>
      <thead><tr><th scope="col">Revision</th><th scope="col">Applied</th><th scope="col">Commit</th><th scope="col">File</th></tr></thead>
      <tbody>${revs.map((r) => html`<tr><td>${r.number}</td><td class="nowrap"><${When} at=${r.applied_at} now=${now} /></td>
        <td>${r.git_commit ? html`<code title=${r.git_commit}>${r.git_commit.slice(0, 12)}</code>${r.git_dirty ? ' (uncommitted changes)' : ''}` : html`<span class="muted">—</span>`}</td>
        <td>${r.file ? html`<code>${r.file}</code>` : 'the API'}</td></tr>`)}</tbody>
    </table></div>
    ${chosen && html`<div class="bar">
      <label class="inline">Compare <select value=${chosen[0]} onChange=${pick(0)} aria-label="From revision">${revs.map((r) => html`<option value=${r.number}>${r.number}</option>`)}</select></label>
      <label class="inline">with <select value=${chosen[1]} onChange=${pick(1)} aria-label="To revision">${revs.map((r) => html`<option value=${r.number}>${r.number}</option>`)}</select></label>
    </div>
    ${diff.data && (diff.data.diff
      ? html`<pre class="diff">${diff.data.diff.split('\n').map((l) => html`<div class=${l.startsWith('+') && !l.startsWith('+++') ? 'add' : l.startsWith('-') && !l.startsWith('---') ? 'del' : l.startsWith('@@') ? 'hunk' : ''}>${l}</div>`)}</pre>`
      : html`<p class="muted">The two revisions define the job the same way.</p>`)}`}
  </section>`;
}

export function JobPage({ who, path }) {
  const name = decodeURIComponent(path.split('?')[0].slice('/jobs/'.length));
  const now = useNow(1000);
  const job = useApi(() => api.get(`/v1/jobs/${encodeURIComponent(name)}?fires=10`), [name]);
  // Live: this job's runs (its stream carries only them) and changes to the jobs reload it.
  const [version, setVersion] = useState(0);
  useLive(() => { job.reload(); setVersion((v) => v + 1); }, () => true, `?job=${encodeURIComponent(name)}`);
  if (job.error && !job.data) {
    return html`<h1>${name}</h1><${Problem} error=${job.error} /><p><a href="/">Back to every job</a></p>`;
  }
  if (!job.data) return html`<h1>${name}</h1><${Loading} />`;
  const j = job.data;
  return html`<h1>${j.name} <${Badge} state=${shownState(j)} /></h1>
    ${j.description && html`<p class="lead">${j.description}</p>`}
    <div class="columns">
      <div>
        <${Facts} rows=${[
          ['Schedule', html`<code>${j.schedule}</code>${j.schedule_description && j.schedule_description !== j.schedule ? html` · ${j.schedule_description}` : ''}`],
          ['Time zone', j.timezone],
          ['Failure streak', j.failure_streak > 0 ? `${j.failure_streak} in a row` : null],
          ['Progress', j.progress],
          ['Blocked', j.blocked],
          ['Tags', j.tags.length > 0 ? j.tags.join(', ') : null],
          ['Defined in', j.owner === 'file' ? html`<code>${j.file}</code>` : 'the API'],
          ['Revision', html`${j.revision} of ${j.revisions}${j.git_commit ? html` · commit <code>${j.git_commit.slice(0, 12)}</code>${j.git_dirty ? ' (dirty)' : ''}` : ''}`],
          ['Applied', html`<${When} at=${j.applied_at} now=${now} />`],
        ]} />
        <section aria-labelledby="fires-h"><h2 id="fires-h">Next fires</h2>
          ${j.next_fires.length === 0
            ? html`<p class="muted">None: ${j.schedule_kind === 'manual' ? 'it runs when triggered' : j.state === 'paused' ? 'it is paused' : 'nothing is scheduled'}.</p>`
            : html`<ol class="fires">${j.next_fires.map((f) => html`<li><${When} at=${f} zone=${j.timezone} now=${now} /></li>`)}</ol>`}
          ${j.dst_notes.length > 0 && html`<ul class="notes" aria-label="Daylight-saving notes">${j.dst_notes.map((n) => html`<li>${n}</li>`)}</ul>`}
        </section>
      </div>
      ${who.role === 'admin' && j.state !== 'removed' && html`<div class="actions">
        <${TriggerForm} job=${j} />
        <${PauseForm} job=${j} onChange=${job.reload} />
      </div>`}
    </div>
    <${DurationChart} name=${j.name} version=${version} />
    <${Runs} name=${j.name} now=${now} version=${version} />
    <${Revisions} name=${j.name} count=${j.revisions} now=${now} />
    <details><summary>Definition (revision ${j.revision})</summary><pre class="definition">${j.definition}</pre></details>`;
}
