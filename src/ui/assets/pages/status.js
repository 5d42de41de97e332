// The status page (/status): the daemon, the jobs folder's errors with file:line, the
// active runs and the next fires.
import { html } from '../lib.js';
import * as api from '../api.js';
import { Badge, Facts, Loading, Problem, When, useApi, useLive, useNow } from '../parts.js';

export function StatusPage() {
  const now = useNow(1000);
  const status = useApi(() => api.get('/v1/status'), []);
  // Active runs and the next fires change with every run: reloaded as the stream tells.
  useLive(status.reload);
  if (status.error && !status.data) return html`<h1>Status</h1><${Problem} error=${status.error} />`;
  if (!status.data) return html`<h1>Status</h1><${Loading} />`;
  const s = status.data;
  const d = s.daemon;
  return html`<h1>Status</h1>
    <${Facts} rows=${[
      ['Daemon', d.running ? html`<span class="s-succeeded">running</span> · pid ${d.pid} on ${d.holder}` : html`<span class="s-failed">not running</span>${d.stopped_at ? html` · stopped <${When} at=${d.stopped_at} now=${now} />` : ''}`],
      ['Since', d.since && html`<${When} at=${d.since} now=${now} />`],
      ['Ledger', html`<code>${s.ledger}</code>`],
      ['Jobs', String(s.jobs)],
    ]} />
    ${s.nodes.length > 0 && html`<section aria-labelledby="nodes-h"><h2 id="nodes-h">Nodes</h2>
      <div class="scroll"><table><thead><tr><th scope="col">Node</th><th scope="col">Labels</th><th scope="col">State</th><th scope="col">Running</th><th scope="col">Address</th><th scope="col">Last heartbeat</th></tr></thead>
      <tbody>${s.nodes.map((n) => html`<tr><td>${n.name}<div class="sub">pid ${n.pid} on ${n.host}</div></td>
        <td>${n.labels.length > 0 ? n.labels.map((l) => html`<span class="tag">${l}</span> `) : html`<span class="muted">none</span>`}</td>
        <td>${n.alive ? html`<span class="s-succeeded">${n.leader ? `leader · term ${n.term}` : 'alive'}</span>` : n.stopped_at ? html`<span class="muted">stopped</span>` : html`<span class="s-failed">lost</span>`}</td>
        <td>${n.running}</td><td>${n.address ? html`<code>${n.address}</code>` : '—'}</td>
        <td><${When} at=${n.heartbeat_at} now=${now} /></td></tr>`)}</tbody></table></div></section>`}
    <section aria-labelledby="files-h"><h2 id="files-h">Jobs folder</h2>
      ${s.files.errors === 0
        ? html`<p class="ok">Every file is valid.</p>`
        : html`<p class="error">${s.files.errors} error${s.files.errors === 1 ? '' : 's'}: the jobs of these files keep their last good revision until the files are fixed.</p>
          <pre class="problems">${s.files.rendered}</pre>`}
    </section>
    <section aria-labelledby="active-h"><h2 id="active-h">Active and pending runs</h2>
      ${s.active_runs.length === 0
        ? html`<p class="empty">Nothing is running or waiting.</p>`
        : html`<table><thead><tr><th scope="col">Run</th><th scope="col">Job</th><th scope="col">State</th><th scope="col">Since</th></tr></thead>
          <tbody>${s.active_runs.map((r) => html`<tr><td><a href=${`/runs/${r.id}`}>#${r.id}</a></td><td><a href=${`/jobs/${encodeURIComponent(r.job)}`}>${r.job}</a></td><td><${Badge} state=${r.state} /></td><td><${When} at=${r.started_at || r.created_at} now=${now} /></td></tr>`)}</tbody></table>`}
    </section>
    <section aria-labelledby="next-h"><h2 id="next-h">Next fires</h2>
      ${s.next_fires.length === 0
        ? html`<p class="empty">No scheduled fires.</p>`
        : html`<ol class="fires">${s.next_fires.map((f) => html`<li><a href=${`/jobs/${encodeURIComponent(f.job)}`}>${f.job}</a> <${When} at=${f.at} now=${now} /></li>`)}</ol>`}
    </section>`;
}
