// The dashboard's entry: the session, the navigation, and the page the URL names.
import { render } from 'preact';
import { useEffect, useRef, useState } from 'preact/hooks';
import * as api from './api.js';
import { html, navigate } from './lib.js';
import { syncClock } from './time.js';
import { JobsPage } from './pages/jobs.js';
import { LoginPage } from './pages/login.js';
import { NotFoundPage } from './pages/notfound.js';
import { JobPage } from './pages/job.js';
import { RunPage } from './pages/run.js';
import { StatusPage } from './pages/status.js';
import { TimelinePage } from './pages/timeline.js';
import { GraphPage } from './pages/graph.js';

// Links to pages of the app navigate without reloading.
document.addEventListener('click', (e) => {
  const a = e.target.closest('a');
  if (!a || a.target || a.hasAttribute('download') || e.ctrlKey || e.metaKey || e.shiftKey || e.button !== 0) return;
  const url = new URL(a.href, location.href);
  // A link within the page (the skip link) does what a browser does with it.
  if (url.pathname === location.pathname && url.hash) return;
  if (url.origin !== location.origin || url.pathname.startsWith('/v1/') || url.pathname.startsWith('/assets/')) return;
  e.preventDefault();
  navigate(url.pathname + url.search);
});

function route(path) {
  if (path === '/') return { page: JobsPage, title: 'Jobs' };
  if (path === '/login') return { page: LoginPage, title: 'Log in', bare: true };
  if (path === '/status') return { page: StatusPage, title: 'Status' };
  if (path === '/timeline') return { page: TimelinePage, title: 'Timeline' };
  if (path === '/graph') return { page: GraphPage, title: 'Graph' };
  if (/^\/jobs\/[^/]+$/.test(path)) return { page: JobPage, title: decodeURIComponent(path.slice(6)) };
  if (/^\/runs\/\d+$/.test(path)) return { page: RunPage, title: `Run ${path.slice(6)}` };
  return { page: NotFoundPage, title: 'Not found' };
}

function Nav({ who, onLogout }) {
  const here = location.pathname;
  const link = (to, label) => html`<a href=${to} aria-current=${here === to ? 'page' : undefined}>${label}</a>`;
  // The first stop of the Tab key: straight to the page's content, past the navigation.
  const skip = (e) => { e.preventDefault(); document.getElementById('main').focus(); };
  return html`<header class="top">
    <a class="skip" href="#main" onClick=${skip}>Skip to content</a>
    <a class="brand" href="/">jobs</a>
    <nav aria-label="Pages">${link('/', 'Jobs')}${link('/timeline', 'Timeline')}${link('/graph', 'Graph')}${link('/status', 'Status')}</nav>
    <div class="who">
      ${who && html`<span title=${`signed in ${who.via === 'none' ? 'without a token' : `with a ${who.role} token`}${who.scope ? `, limited to the jobs in ${who.scope}` : ''}`}>
        ${who.name || (who.via === 'none' ? 'no token' : 'token')} · <b>${who.role}</b>${who.scope && html` · <span class="scope">${who.scope}</span>`}</span>`}
      ${who && who.via === 'cookie' && html`<button type="button" class="link" onClick=${onLogout}>Log out</button>`}
    </div>
  </header>`;
}

function App() {
  const [path, setPath] = useState(location.pathname + location.search);
  const [who, setWho] = useState(undefined);
  useEffect(() => {
    const onMove = () => setPath(location.pathname + location.search);
    window.addEventListener('popstate', onMove);
    window.addEventListener('jobs:navigate', onMove);
    return () => {
      window.removeEventListener('popstate', onMove);
      window.removeEventListener('jobs:navigate', onMove);
    };
  }, []);
  const { page: Page, title, bare } = route(path.split('?')[0]);
  useEffect(() => {
    if (bare) return;
    api.session().then((w) => { syncClock(w.now); setWho(w); }, (e) => {
      if (e.status === 401) navigate(`/login?next=${encodeURIComponent(location.pathname + location.search)}`, true);
      else setWho(null);
    });
  }, [path]);
  useEffect(() => { document.title = `${title} · jobs`; }, [title]);
  // A new page takes the focus to its content, as a page load would start over (a change of
  // the query alone, such as typing in a filter, keeps it where it is).
  const pathname = path.split('?')[0];
  const first = useRef(true);
  useEffect(() => {
    if (first.current) { first.current = false; return; }
    const main = document.getElementById('main');
    if (main && !main.contains(document.activeElement)) main.focus({ preventScroll: true });
  }, [pathname]);
  const logout = async () => {
    await api.logout().catch(() => {});
    setWho(undefined);
    navigate('/login', true);
  };
  const onLogin = (w) => { syncClock(w.now); setWho(w); };
  if (bare) return html`<main id="main"><${Page} onLogin=${onLogin} /></main>`;
  if (who === undefined) return html`<${Nav} /><main id="main" tabindex="-1" aria-busy="true"><p class="muted">Loading…</p></main>`;
  return html`<${Nav} who=${who} onLogout=${logout} />
    <main id="main" tabindex="-1"><${Page} who=${who} path=${path} /></main>`;
}

render(html`<${App} />`, document.getElementById('app'));
