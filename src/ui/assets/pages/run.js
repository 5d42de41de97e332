// A run (/runs/ID): its facts, its events, and its output, followed live over the API's
// server-sent events while the run is active (stderr told apart), searchable, downloadable.
// An admin may cancel it.
import { useEffect, useMemo, useRef, useState } from 'preact/hooks';
import { html } from '../lib.js';
import * as api from '../api.js';
import { Badge, Facts, Loading, Problem, When, duration, useApi, useNow } from '../parts.js';

const ACTIVE = ['pending', 'running'];

// Follows the run's output: one stream for the page, reopened after a drop from the last
// line seen; closed when the server says the run ended.
function useOutput(id, onEnd, onFirst) {
  const [lines, setLines] = useState([]);
  const [live, setLive] = useState(true);
  useEffect(() => {
    let last = 0;
    let source = null;
    let retry = null;
    let stopped = false;
    let buffer = [];
    let flush = null;
    const open = () => {
      source = new EventSource(`/v1/runs/${id}/logs?follow=true&after=${last}`);
      source.addEventListener('line', (e) => {
        const line = JSON.parse(e.data);
        // The first line of a run that was pending when the page loaded: it has started.
        if (last === 0) onFirst();
        last = line.id;
        buffer.push(line);
        // Lines arrive in bursts: rendered once a frame, not once a line.
        if (!flush) flush = requestAnimationFrame(() => { flush = null; const b = buffer; buffer = []; setLines((l) => l.concat(b)); });
      });
      source.addEventListener('end', (e) => {
        stopped = true;
        source.close();
        setLive(false);
        onEnd(JSON.parse(e.data));
      });
      source.onerror = () => {
        source.close();
        if (!stopped) retry = setTimeout(open, 2000);
      };
    };
    open();
    return () => { stopped = true; if (source) source.close(); clearTimeout(retry); if (flush) cancelAnimationFrame(flush); };
  }, [id]);
  return { lines, live };
}

function Output({ id, onEnd, onFirst }) {
  const { lines, live } = useOutput(id, onEnd, onFirst);
  const [find, setFind] = useState('');
  const [follow, setFollow] = useState(true);
  const box = useRef(null);
  const shown = useMemo(() => (find ? lines.filter((l) => l.line.toLowerCase().includes(find.toLowerCase())) : lines), [lines, find]);
  useEffect(() => {
    if (follow && box.current) box.current.scrollTop = box.current.scrollHeight;
  }, [shown.length, follow]);
  const download = () => {
    const text = lines.map((l) => (l.stream === 'stderr' ? `[stderr] ${l.line}` : l.line)).join('\n') + '\n';
    const a = document.createElement('a');
    a.href = URL.createObjectURL(new Blob([text], { type: 'text/plain' }));
    a.download = `run-${id}.log`;
    a.click();
    URL.revokeObjectURL(a.href);
  };
  return html`<section aria-labelledby="output-h">
    <div class="bar">
      <h2 id="output-h">Output <span class="count">${lines.length} line${lines.length === 1 ? '' : 's'}${live ? ' · following' : ''}</span></h2>
      <label class="inline">Search <input type="search" value=${find} onInput=${(e) => setFind(e.currentTarget.value)} /></label>
      <label class="inline"><input type="checkbox" checked=${follow} onChange=${(e) => setFollow(e.currentTarget.checked)} /> Follow</label>
      <button type="button" onClick=${download} disabled=${lines.length === 0}>Download</button>
    </div>
    ${lines.length === 0
      ? html`<p class="empty">${live ? 'No output yet: lines appear here as the run writes them.' : 'The run wrote no output.'}</p>`
      : html`<pre class="output" ref=${box} tabindex="0" aria-live=${live ? 'polite' : 'off'}>${shown.map((l) => html`<div class=${l.stream === 'stderr' ? 'err' : ''}><span class="ln">${l.id}</span>${l.line}</div>`)}</pre>`}
  </section>`;
}

export function RunPage({ who, path }) {
  const id = decodeURIComponent(path.split('?')[0].split('/')[2]);
  const now = useNow(1000);
  const run = useApi(() => api.get(`/v1/runs/${id}`), [id]);
  const events = useApi(() => api.get(`/v1/runs/${id}/events`), [id]);
  // The other attempts: once the run is known, from its job's recent runs.
  const job = run.data && run.data.job;
  const first = run.data && (run.data.first_run_id || run.data.id);
  const attempts = useApi(async () => {
    if (!job) return null;
    const page = await api.get(`/v1/runs?job=${encodeURIComponent(job)}&limit=200`);
    return page.runs.filter((x) => (x.first_run_id || x.id) === first).sort((a, b) => a.attempt - b.attempt);
  }, [job, first]);
  const [acting, setActing] = useState(null);
  const onEnd = () => { run.reload(); events.reload(); };
  if (run.error && !run.data) return html`<h1>Run ${id}</h1><${Problem} error=${run.error} />`;
  if (!run.data) return html`<h1>Run ${id}</h1><${Loading} />`;
  const r = run.data;
  const cancel = async () => {
    setActing(null);
    try {
      const out = await api.post(`/v1/runs/${r.id}/cancel`);
      setActing({ ok: out.result === 'cancelled' ? 'Cancelled.' : 'Cancel requested: the run is being stopped.' });
      run.reload(); events.reload();
    } catch (e) {
      setActing({ error: e });
    }
  };
  const outcome = r.exit_code !== null ? `exit ${r.exit_code}` : r.signal !== null ? `signal ${r.signal}`
    : r.http_status != null ? `HTTP ${r.http_status}` : null;
  const tokens = r.prompt_tokens != null || r.completion_tokens != null
    ? `${r.prompt_tokens ?? '?'} prompt + ${r.completion_tokens ?? '?'} completion` : null;
  const cpu = r.cpu_user_ms !== null ? `${duration(r.cpu_user_ms)} user, ${duration(r.cpu_sys_ms)} system` : null;
  return html`<h1>Run ${r.id} <span class="of">of <a href=${`/jobs/${encodeURIComponent(r.job)}`}>${r.job}</a></span> <${Badge} state=${r.state} /></h1>
    ${who.role === 'admin' && ACTIVE.includes(r.state) && html`<p><button type="button" class="danger" onClick=${cancel}>Cancel run</button></p>`}
    ${acting && (acting.error ? html`<${Problem} error=${acting.error} />` : html`<p class="ok" role="status">${acting.ok}</p>`)}
    <${Facts} rows=${[
      ['Trigger', r.backfill_id ? `${r.trigger} (backfill ${r.backfill_id})` : r.trigger],
      ['Overrides', r.overrides && r.overrides.timeout ? `timeout ${r.overrides.timeout} (this run only)` : null],
      ['Attempt', attempts.data && attempts.data.length > 1
        ? html`${r.attempt} of ${attempts.data.length}: ${attempts.data.map((a) => (a.id === r.id ? html`<b>#${a.id}</b> ` : html`<a href=${`/runs/${a.id}`}>#${a.id}</a> `))}`
        : String(r.attempt)],
      ['Scheduled', r.scheduled_at && html`<${When} at=${r.scheduled_at} now=${now} />`],
      ['Started', r.started_at && html`<${When} at=${r.started_at} />`],
      ['Ended', r.finished_at && html`<${When} at=${r.finished_at} />`],
      ['Duration', r.duration_ms !== null ? duration(r.duration_ms) : r.started_at && !r.finished_at ? `${duration(now - Date.parse(r.started_at))} so far` : null],
      ['Outcome', outcome],
      ['Model', r.model ? `${r.model}${r.finish_reason ? ` (finish reason: ${r.finish_reason})` : ''}` : null],
      ['Tokens', tokens],
      ['Error', r.error],
      ['Reason', r.reason],
      ['Revision', r.revision !== null ? html`${r.revision}${r.git_commit ? html` · commit <code>${r.git_commit.slice(0, 12)}</code>` : ''}` : null],
      ['Parameters', r.params && Object.keys(r.params).length > 0 ? html`<code>${Object.entries(r.params).map(([k, v]) => `${k}=${v}`).join(' ')}</code>` : null],
      ['Released by', r.released_by && r.released_by.length > 0 ? r.released_by.map((u) => html`<a href=${`/runs/${u.run}`}>${u.job} #${u.run}</a> `) : null],
      ['CPU', cpu],
      ['Memory', r.max_rss_kb !== null ? `${(r.max_rss_kb / 1024).toFixed(1)} MiB peak` : null],
      ['Cancel requested', r.cancel_requested && html`<${When} at=${r.cancel_requested} />`],
    ]} />
    <section aria-labelledby="events-h">
      <h2 id="events-h">Events</h2>
      ${events.data
        ? html`<ol class="events">${events.data.map((e) => html`<li><${When} at=${e.at} /> <b>${e.kind}</b> ${e.message}</li>`)}</ol>`
        : html`<${Loading} />`}
    </section>
    <${Output} id=${r.id} onEnd=${onEnd} onFirst=${() => r.state === 'pending' && run.reload()} />`;
}
