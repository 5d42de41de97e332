// The dependency graph (/graph): `after` (solid) and `depends_on` (dashed) links between
// jobs, laid out in layers by dagre (loaded on this page only), each job coloured by its
// last run's outcome (kept current by the page's stream of changes); a job opens its page.
import { useEffect, useState } from 'preact/hooks';
import { html } from '../lib.js';
import * as api from '../api.js';
import { Loading, Problem, useLive } from '../parts.js';

const NODE_H = 34;

function layout(dagre, graph) {
  const g = new dagre.graphlib.Graph();
  g.setGraph({ rankdir: 'LR', nodesep: 18, ranksep: 60, marginx: 8, marginy: 8 });
  g.setDefaultEdgeLabel(() => ({}));
  for (const j of graph.jobs) {
    g.setNode(j.name, { width: Math.max(90, j.name.length * 7.5 + 24), height: NODE_H, job: j });
  }
  for (const e of graph.edges) {
    if (g.hasNode(e.from) && g.hasNode(e.to)) g.setEdge(e.from, e.to, { kind: e.kind });
  }
  dagre.layout(g);
  return g;
}

export function GraphPage() {
  const [state, setState] = useState({ g: null, error: null, alone: 0, loaded: false });
  const [version, setVersion] = useState(0);
  useEffect(() => {
    let live = true;
    // The linked jobs only (with their last runs), and how many jobs there are in all.
    Promise.all([import('dagre'), api.get('/v1/graph?linked=true'), api.page('/v1/jobs?limit=1')]).then(([dagre, graph, all]) => {
      const g = graph.edges.length ? layout(dagre, graph) : null;
      if (live) setState({ g, error: null, alone: all.total - (g ? g.nodeCount() : 0), loaded: true });
    }).catch((error) => live && setState({ g: null, error, alone: 0, loaded: true }));
    return () => { live = false; };
  }, [version]);
  const drawn = new Set(state.g ? state.g.nodes() : []);
  useLive(() => setVersion((v) => v + 1), (kind, run) => kind === 'jobs' || (run && drawn.has(run.job)));
  if (state.error) return html`<h1>Graph</h1><${Problem} error=${state.error} />`;
  if (!state.loaded) return html`<h1>Graph</h1><${Loading} />`;
  if (state.g === null) {
    return html`<h1>Graph</h1><div class="empty"><p>No job depends on another yet.</p>
      <p>Chain jobs with <code>schedule: {after: [build]}</code> (fires when <code>build</code> succeeds) or gate
      them with <code>depends_on: [build]</code>; the links appear here.</p></div>`;
  }
  const g = state.g;
  const { width, height } = g.graph();
  const path = (points) => points.map((p, i) => `${i ? 'L' : 'M'}${p.x.toFixed(1)},${p.y.toFixed(1)}`).join(' ');
  return html`<h1>Graph</h1>
    <p class="legend"><span class="key edge-after"></span> after (fires on success) <span class="key edge-dep"></span> depends on (gates) · colour: last run
      ${state.alone > 0 && html` · ${state.alone} job${state.alone === 1 ? '' : 's'} without links not drawn`}</p>
    <div class="chart"><svg class="graph" width=${width} height=${height} viewBox=${`0 0 ${width} ${height}`} role="group" aria-label=${`Dependency graph of ${g.nodeCount()} jobs`}>
      <defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" class="arrowhead" /></marker></defs>
      ${g.edges().map((e) => {
        const edge = g.edge(e);
        return html`<path class=${`edge ${edge.kind === 'depends_on' ? 'dep' : 'after'}`} d=${path(edge.points)} marker-end="url(#arrow)"><title>${e.v} → ${e.w} (${edge.kind.replace('_', ' ')})</title></path>`;
      })}
      ${g.nodes().map((n) => {
        const node = g.node(n);
        const state = node.job.last_run ? node.job.last_run.state : 'none';
        return html`<a href=${`/jobs/${encodeURIComponent(n)}`} aria-label=${`${n}: last run ${state === 'none' ? 'none yet' : state}`}>
          <rect class=${`node s-${state}`} x=${node.x - node.width / 2} y=${node.y - NODE_H / 2} width=${node.width} height=${NODE_H} rx="6" />
          <text class="node-label" x=${node.x} y=${node.y + 4} text-anchor="middle">${n}</text></a>`;
      })}
    </svg></div>`;
}
