// Small pieces the pages share: badges, times, durations, facts, errors.
import { useEffect, useRef, useState } from 'preact/hooks';
import { html } from './lib.js';
import { hover, local, relative, serverNow } from './time.js';

export function useNow(ms) {
  const [now, setNow] = useState(serverNow());
  useEffect(() => {
    const t = setInterval(() => setNow(serverNow()), ms);
    return () => clearInterval(t);
  }, [ms]);
  return now;
}

// Runs `load` (again when `deps` change or on `reload`); { data, error, reload }. After an
// error the last data stays shown beside it.
export function useApi(load, deps) {
  const [state, setState] = useState({ data: null, error: null });
  const [tick, setTick] = useState(0);
  useEffect(() => {
    let live = true;
    load().then((data) => live && setState({ data, error: null }), (e) => live && setState((s) => ({ data: s.data, error: e })));
    return () => { live = false; };
  }, [...deps, tick]);
  return { ...state, reload: () => setTick((t) => t + 1) };
}

// The page's one stream of changes (GET /v1/events): `onChange(kind, run)` hears each, where
// `kind` is `run` (a run was created, started, ended...) or `jobs` (an apply, a pause or a
// resume). The browser reconnects by itself and resumes after the last event it saw.
export function useEvents(onChange, query = '') {
  const handler = useRef(onChange);
  handler.current = onChange;
  useEffect(() => {
    let source = null;
    let timer = null;
    let wait = 1000;
    let dropped = false;
    const open = () => {
      source = new EventSource(`/v1/events${query}`);
      source.addEventListener('run', (e) => handler.current('run', JSON.parse(e.data)));
      source.addEventListener('jobs', () => handler.current('jobs', null));
      // Back after a drop: whatever changed meanwhile is looked at again.
      source.addEventListener('open', () => {
        if (dropped) handler.current('jobs', null);
        dropped = false;
        wait = 1000;
      });
      source.addEventListener('error', () => {
        dropped = true;
        // The browser retries by itself unless the answer closed the stream for good (a
        // restart's 503, an expired session's 401): then it is opened again, later each time.
        if (source.readyState === EventSource.CLOSED) {
          timer = setTimeout(open, wait);
          wait = Math.min(wait * 2, 30000);
        }
      });
    };
    open();
    return () => { clearTimeout(timer); if (source) source.close(); };
  }, [query]);
}

// Reloads (`reload()`) when a change `relevant(kind, run)` says matters arrives: at most once
// a second, however many runs a burst changes, and never by polling.
export function useLive(reload, relevant = () => true, query = '') {
  const pending = useRef(null);
  const latest = useRef(null);
  latest.current = { reload, relevant };
  useEvents((kind, run) => {
    if (pending.current || !latest.current.relevant(kind, run)) return;
    pending.current = setTimeout(() => { pending.current = null; latest.current.reload(); }, 1000);
  }, query);
  useEffect(() => () => clearTimeout(pending.current), []);
}

export function Badge({ state }) {
  return html`<span class=${`badge s-${state}`}>${state.replace('_', ' ')}</span>`;
}

export function When({ at, zone, now }) {
  if (!at) return html`<span class="muted">—</span>`;
  return html`<time datetime=${at.replace(/\[.*\]$/, '')} title=${hover(at, zone)}>${local(at)}</time>${now !== undefined && html` <span class="sub">${relative(at, now)}</span>`}`;
}

export function duration(ms) {
  if (ms === null || ms === undefined) return '';
  if (ms < 1000) return `${ms} ms`;
  const s = ms / 1000;
  if (s < 60) return `${s.toFixed(s < 10 ? 2 : 1)} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m ${Math.round(s % 60)}s`;
  return `${Math.floor(m / 60)}h ${m % 60}m`;
}

export function Facts({ rows }) {
  return html`<dl class="facts">${rows.filter(([, v]) => v !== null && v !== undefined && v !== '' && v !== false).map(([k, v]) => html`<dt>${k}</dt><dd>${v}</dd>`)}</dl>`;
}

export function Problem({ error }) {
  if (!error) return null;
  return html`<p class="error" role="alert">${error.message || String(error)}</p>`;
}

export function Loading() {
  return html`<p class="muted" aria-busy="true">Loading…</p>`;
}
