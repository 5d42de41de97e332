import { html } from '../lib.js';

export function NotFoundPage() {
  return html`<h1>Not found</h1>
    <p>No page at <code>${location.pathname}</code>. <a href="/">See every job</a>.</p>`;
}
