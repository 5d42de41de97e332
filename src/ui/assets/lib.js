// What every page shares: the template tag and navigation without reloading.
import { h } from 'preact';
import htm from 'htm';

export const html = htm.bind(h);

// Links inside the app push history; Back and Forward work (see app.js).
export function navigate(to, replace = false) {
  if (replace) history.replaceState(null, '', to);
  else history.pushState(null, '', to);
  window.dispatchEvent(new Event('jobs:navigate'));
}
