// The login page: a token traded for a session cookie (POST /v1/session). The token is
// sent in the request body only: never in a URL, never stored by the page.
import { useEffect, useState } from 'preact/hooks';
import { html, navigate } from '../lib.js';
import * as api from '../api.js';

function next() {
  const to = new URLSearchParams(location.search).get('next');
  return to && to.startsWith('/') && !to.startsWith('//') ? to : '/';
}

export function LoginPage({ onLogin }) {
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  const [noTokens, setNoTokens] = useState(null);
  // Already in (a live session, or a server without tokens by --insecure): go on. A server
  // with no tokens at all says so, and how to set one, instead of offering a form.
  useEffect(() => {
    api.session().then((who) => { onLogin(who); navigate(next(), true); }, (e) => {
      if (e.status === 401 && e.message.includes('no tokens configured')) setNoTokens(e.message);
    });
  }, []);
  const submit = async (e) => {
    e.preventDefault();
    const form = e.currentTarget;
    const token = form.token.value.trim();
    if (!token) {
      setError('Paste a token: a line of the server\'s token file, or JOBS_TOKEN.');
      return;
    }
    setBusy(true);
    setError(null);
    try {
      const who = await api.login(token);
      form.reset();
      onLogin(who);
      navigate(next(), true);
    } catch (err) {
      setError(err.message);
    } finally {
      setBusy(false);
    }
  };
  if (noTokens) {
    return html`<section class="login">
      <h1>jobs</h1>
      <p class="error" role="alert">${noTokens}.</p>
      <p>Create a token file (one <code>ROLE NAME TOKEN</code> per line, <code>chmod 600</code>), for example
      <code>printf 'admin alice %s\n' "$(openssl rand -hex 32)" > tokens</code>, then start the server
      with <code>jobctl serve --token-file tokens</code> (or set <code>JOBS_TOKEN</code> for one admin token).</p>
    </section>`;
  }
  return html`<section class="login">
    <h1>jobs</h1>
    <form onSubmit=${submit} aria-describedby="login-help">
      <label for="token">API token</label>
      <input id="token" name="token" type="password" autocomplete="current-password" required autofocus />
      <button type="submit" disabled=${busy}>${busy ? 'Logging in…' : 'Log in'}</button>
      ${error && html`<p class="error" role="alert">${error}</p>`}
    </form>
    <p id="login-help" class="muted">A <b>read</b> token sees everything; an <b>admin</b> token also
      triggers, pauses, resumes and cancels. Tokens come from the server's <code>--token-file</code>
      (<code>ROLE NAME TOKEN</code> per line) or <code>JOBS_TOKEN</code>. The session lasts 12 hours.</p>
  </section>`;
}
