// holdfast web console: one ES module, no framework, no build step.
//
// Security rules (the server's CSP forbids anything else): no inline script
// or style, no eval, and no innerHTML: every piece of data goes into the
// page through createElement / textContent (see `h()` below).

// ------------------------------------------------------------ constants

const API = '/api/v1';
const EXPIRED = 'Your session has expired or ended. Sign in again.';

const SCREENS = ['search', 'holds', 'exports', 'retention', 'audit'];
const SCREEN_NAMES = {
  search: 'Search',
  holds: 'Legal holds',
  exports: 'Exports',
  retention: 'Retention',
  audit: 'Audit trail',
  password: 'Change password',
};
const ROLE_SCREENS = {
  compliance_officer: ['search', 'exports'],
  legal: ['search', 'holds', 'exports'],
  admin: ['holds', 'exports', 'retention', 'audit'],
  auditor: ['audit'],
  ingest: [],
};
const SCREEN_ROLES = {
  search: 'compliance officers and legal staff',
  holds: 'legal staff and administrators',
  exports: 'compliance officers, legal staff and administrators',
  retention: 'administrators',
  audit: 'auditors and administrators',
};

const FORMATS = [
  ['csv', 'CSV', 'compliance-export columns, one row per event'],
  ['pdf', 'PDF transcript', 'per channel, with threads, edits, deletions and Bates numbers'],
  ['jsonl', 'JSON Lines', 'lossless, can be re-ingested'],
  ['actiance', 'Actiance XML', 'for Smarsh and compatible review tools'],
  ['eml', 'EML', 'Global Relay style, one message per channel'],
];

const AUDIT_ACTIONS = [
  'login', 'login_failed', 'logout', 'search', 'search_facets', 'view_event', 'view_post',
  'view_context', 'export_create', 'export_download', 'export_view',
  'export_cancel', 'export_complete', 'hold_create', 'hold_list', 'hold_view',
  'hold_release', 'policy_run', 'policy_refused', 'retention_plan',
  'retention_view', 'retention_compact', 'key_rotation', 'user_change',
  'token_create', 'token_revoke', 'ingest', 'audit_read', 'audit_export',
  'audit_verify', 'config_change',
];
const AUDIT_OUTCOMES = ['ok', 'denied', 'failed', 'error'];

const KIND_WORDS = {
  delete: 'deleted the message',
  reaction_add: 'added a reaction',
  reaction_remove: 'removed a reaction',
  file: 'attached a file',
  channel_create: 'created the channel',
  channel_rename: 'renamed the channel',
  channel_archive: 'archived the channel',
  member_join: 'joined the channel',
  member_leave: 'left the channel',
};

// A few common reaction names, shown next to the name (never instead of it).
const EMOJI = {
  '+1': '👍', thumbsup: '👍', '-1': '👎', thumbsdown: '👎', heart: '❤️',
  smile: '😄', laughing: '😆', joy: '😂', tada: '🎉', eyes: '👀', rocket: '🚀',
  white_check_mark: '✅', heavy_check_mark: '✔️', x: '❌', warning: '⚠️',
  fire: '🔥', pray: '🙏', clap: '👏', thinking_face: '🤔', ok_hand: '👌',
};

const PAGE_SIZE = 20;
/** At most this many suggestions are listed under a field (typing narrows them). */
const MAX_SUGGESTIONS = 50;

// ------------------------------------------------------------ state

const state = {
  me: null,
  screens: new Set(),
  expiryTimer: 0,
  warnTimer: 0,       // the notice a few minutes before the session ends
  pollTimer: 0,
  search: null,       // the search screen's form values, pages and last result
  holdDraft: null,    // criteria handed from a search to the hold form
  facets: null,       // the teams, channels and people of the search scope (suggestions), once loaded
  facetsLoading: false,
  exportDraft: null,  // a source handed from a search or a hold to the export form
  flash: '',          // a notice to show after the next navigation
  contextOpener: null,
  routed: false,
  // Bumped whenever the session ends: an answer to a request made under an
  // earlier session is dropped, never shown to whoever signs in next.
  sessionGen: 0,
  // Bumped by every new request of a kind, so that a slow earlier answer
  // never overwrites a newer one.
  searchSeq: 0,
  contextSeq: 0,
  pollGen: 0,
};

// ------------------------------------------------------------ DOM helpers

const $ = (selector, root = document) => root.querySelector(selector);
const $$ = (selector, root = document) => Array.from(root.querySelectorAll(selector));

/** Builds an element. Props: class, text, dataset, on<event>, booleans, attributes. */
function h(tag, props, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === 'class') node.className = Array.isArray(value) ? value.filter(Boolean).join(' ') : value;
    else if (key === 'text') node.textContent = String(value);
    else if (key === 'dataset') Object.assign(node.dataset, value);
    else if (key === 'value') node.value = value;
    else if (key === 'checked') node.checked = Boolean(value);
    else if (key.startsWith('on') && typeof value === 'function') node.addEventListener(key.slice(2), value);
    else if (key === 'style' || key === 'innerHTML' || key.startsWith('on')) throw new Error(`h(): ${key} is not allowed`);
    // Links and sources only ever point into this site (`#/…`, `/api/…`):
    // never `javascript:` or another server, whatever a value contains.
    else if (['href', 'src', 'action', 'formaction'].includes(key) && !/^(#|\/(?![/\\]))/.test(String(value))) {
      throw new Error(`h(): ${key} must be a path of this site`);
    }
    else if (value === true) node.setAttribute(key, '');
    else node.setAttribute(key, String(value));
  }
  append(node, children);
  return node;
}

/** Appends children, skipping null/undefined/false (DOM append would write "null"). */
function append(node, ...children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    node.appendChild(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

/** Replaces the children of a node (null, undefined and false are skipped). */
function fill(node, ...children) {
  node.replaceChildren();
  return append(node, ...children);
}

/** A labelled form field. */
function field(label, input, hint) {
  // `input` may be a box around the control (a field with suggestions).
  const control = input.matches('input, select, textarea') ? input : $('input, select, textarea', input);
  const wrap = h('div', { class: 'field' }, h('label', { for: control.id }, label), input);
  if (hint) {
    const hintId = `${control.id}-hint`;
    append(wrap, h('p', { class: 'hint', id: hintId }, hint));
    control.setAttribute('aria-describedby', hintId);
  }
  return wrap;
}

function input(id, props = {}) {
  return h('input', { id, name: id, type: 'text', autocomplete: 'off', spellcheck: 'false', ...props });
}

function select(id, options, value) {
  const node = h('select', { id, name: id });
  for (const option of options) {
    const [optValue, label] = Array.isArray(option) ? option : [option, option];
    append(node, h('option', { value: optValue, selected: optValue === value }, label));
  }
  return node;
}

/** A definition list from [term, value] pairs; empty values are left out. */
function details(pairs, cls = 'facts') {
  const list = h('dl', { class: cls });
  for (const [term, value] of pairs) {
    if (value === undefined || value === null || value === '') continue;
    append(list, h('div', null, h('dt', null, term), h('dd', { dir: 'auto' }, value)));
  }
  return list;
}

function tableWrap(table) {
  return h('div', { class: 'table-wrap', tabindex: '0', role: 'region', 'aria-label': table.getAttribute('aria-label') || 'table' }, table);
}

function splitList(text) {
  return String(text || '').split(',').map((part) => part.trim()).filter(Boolean);
}

/** A value in a link or query string: percent-encoded. */
function enc(value) {
  return encodeURIComponent(String(value));
}

/**
 * A path segment of an API call. `.` and `..` cannot be sent: the browser
 * reads them (even as %2E) as "this folder" and "the folder above", so
 * `#/exports/..` would ask for /api/v1/ instead of an export.
 */
function segment(value) {
  const text = String(value);
  if (text === '.' || text === '..') {
    throw new ApiError(0, { error: { code: 'bad_id', message: `“${text}” cannot be asked for by its id.` } });
  }
  return encodeURIComponent(text);
}

/** Data used in a class name: only [a-z0-9_-], so a value cannot add classes. */
function token(value) {
  return String(value ?? '').toLowerCase().replace(/[^a-z0-9_-]/g, '_');
}

/** "1 record", "2 records", "1,024 records". */
function plural(n, one, many = `${one}s`) {
  return `${count(n)} ${n === 1 ? one : many}`;
}

/** At most `max` characters (code points: an emoji is never cut in half), with … when cut. */
function truncate(text, max) {
  const chars = Array.from(String(text));
  return chars.length > max ? `${chars.slice(0, max - 1).join('')}…` : String(text);
}

// ------------------------------------------------------------ formatting

const dateTime = new Intl.DateTimeFormat(undefined, {
  year: 'numeric', month: 'short', day: '2-digit', hour: '2-digit', minute: '2-digit', second: '2-digit',
});
const timeOnly = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit' });
const dayAndTime = new Intl.DateTimeFormat(undefined, { month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit' });
const numberFormat = new Intl.NumberFormat('en-US');

function utcText(iso) {
  return `${iso.replace('T', ' ').replace(/Z$/, '')} UTC`;
}

/** A <time>: local time shown, the UTC value in the title. */
function timeEl(value, cls) {
  if (value === null || value === undefined || value === '') return h('span', { class: 'muted' }, '–');
  const date = typeof value === 'number' ? new Date(value) : new Date(value);
  if (Number.isNaN(date.getTime())) return h('time', { class: cls }, String(value));
  const iso = typeof value === 'number' ? date.toISOString() : String(value);
  return h('time', { class: cls, datetime: iso, title: utcText(iso) }, dateTime.format(date));
}

function count(value) {
  return value === null || value === undefined ? '–' : numberFormat.format(value);
}

function bytes(size) {
  if (typeof size !== 'number') return '';
  const units = ['bytes', 'KB', 'MB', 'GB', 'TB'];
  let value = size;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return unit === 0 ? plural(size, 'byte') : `${value.toFixed(value < 10 ? 1 : 0)} ${units[unit]}`;
}

function todayUtc() {
  return new Date().toISOString().slice(0, 10);
}

// ------------------------------------------------------------ the API

class ApiError extends Error {
  constructor(status, body, retryAfter) {
    const error = (body && body.error) || {};
    super(error.message || (status ? `The server answered ${status}.` : 'The request failed.'));
    this.status = status;
    this.code = error.code || (status ? `http_${status}` : 'network');
    this.field = error.field;
    this.position = error.position;
    this.column = error.column;
    this.expected = error.expected;
    this.found = error.found;
    this.retryAfter = retryAfter;
  }
}

/** Thrown after a 401: the sign-in screen is already shown, nothing else to do. */
class SessionEnded extends Error {}

/**
 * Every call to the server goes through here: same-origin cookie, the CSRF
 * header, JSON in and out. A 401 ends the session in the page (unless the
 * call is `anonymous`, as signing in is).
 */
async function api(path, { method = 'GET', body, params, anonymous = false } = {}) {
  let url = API + path;
  if (params) {
    const query = new URLSearchParams();
    for (const [key, value] of Object.entries(params)) {
      if (value !== undefined && value !== null && value !== '') query.set(key, String(value));
    }
    const text = query.toString();
    if (text) url += `?${text}`;
  }
  const gen = state.sessionGen;
  const headers = { 'X-Holdfast-Console': '1', Accept: 'application/json' };
  const init = { method, headers, credentials: 'same-origin', cache: 'no-store' };
  if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(url, init);
  } catch {
    if (gen !== state.sessionGen) throw new SessionEnded('answer to an ended session');
    throw new ApiError(0, { error: { code: 'network', message: 'The server cannot be reached. Check the connection and try again.' } });
  }
  const text = await response.text().catch(() => '');
  // The session this request was made in has ended (signed out, expired):
  // its answer is for nobody, and its 401 must not end a newer session.
  if (gen !== state.sessionGen) throw new SessionEnded('answer to an ended session');
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  // 401 `invalid_credentials` is a wrong password typed in a form (sign-in,
  // password change), not the end of the session.
  if (response.status === 401 && !anonymous && !(data && data.error && data.error.code === 'invalid_credentials')) {
    sessionEnded(EXPIRED);
    throw new SessionEnded('session ended');
  }
  if (!response.ok) throw new ApiError(response.status, data, response.headers.get('Retry-After'));
  return data;
}

// ------------------------------------------------------------ errors and notices

/** Index in a JS string (UTF-16) of a byte offset into its UTF-8 form. */
function byteToIndex(text, byteOffset) {
  let seen = 0;
  let index = 0;
  for (const char of text) {
    if (seen >= byteOffset) break;
    const code = char.codePointAt(0);
    seen += code < 0x80 ? 1 : code < 0x800 ? 2 : code < 0x10000 ? 3 : 4;
    index += char.length;
  }
  return index;
}

/** The query with the character at `index` (UTF-16) wrapped in `.error-at`. */
function queryEcho(query, index) {
  const pre = h('pre', { class: 'query-echo', dir: 'ltr' });
  const at = index < query.length ? String.fromCodePoint(query.codePointAt(index)) : '';
  append(pre,
    query.slice(0, index),
    h('span', { class: at && at.trim() ? 'error-at' : 'error-at at-space', title: 'here' }, at || '\u00a0'),
    query.slice(index + at.length),
  );
  return pre;
}

/**
 * The one error renderer: the message, the field it names, and for a query
 * error a copy of the query with the offending character marked.
 */
function renderError(target, error, { query } = {}) {
  fill(target);
  if (!error || error instanceof SessionEnded) return;
  if (!(error instanceof ApiError)) {
    console.error(error);
    append(target, h('p', { class: 'error-message' }, 'Something went wrong in the console. Reload the page and try again.'));
    return;
  }
  let message = error.message.charAt(0).toUpperCase() + error.message.slice(1);
  if (error.status === 403) message = `Not allowed: ${message}`;
  if (error.code === 'rate_limited' && error.retryAfter) message += ` Try again in ${error.retryAfter} s.`;
  append(target, h('p', { class: 'error-message' }, message));
  if (error.field) append(target, h('p', { class: 'error-field' }, 'Field: ', h('code', null, error.field)));
  if (typeof error.position === 'number' && typeof query === 'string') {
    const index = byteToIndex(query, error.position);
    append(target,
      h('p', { class: 'error-where' }, `At column ${error.column ?? index + 1} of the query:`),
      queryEcho(query, index),
    );
  }
}

/** A new alert box with the error rendered in it. */
function errorBlock(error) {
  const box = h('div', { class: 'error-box', role: 'alert' });
  renderError(box, error);
  return box;
}

function showError(error) {
  if (error instanceof SessionEnded) return;
  renderError($('#error'), error);
}

function clearError() {
  fill($('#error'));
}

function notify(message) {
  const notice = $('#notice');
  fill(notice, h('p', null, message));
}

// ------------------------------------------------------------ session

function roles() {
  return state.me ? state.me.grants.map((grant) => grant.role) : [];
}

function allowedScreens(me) {
  const screens = new Set();
  for (const grant of me.grants) for (const screen of (Object.hasOwn(ROLE_SCREENS, grant.role) ? ROLE_SCREENS[grant.role] : [])) screens.add(screen);
  return screens;
}

async function loadMe() {
  try {
    const me = await api('/me', { anonymous: true });
    setSession(me);
    return true;
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) return false;
    throw error;
  }
}

function setSession(me) {
  state.me = me;
  state.screens = allowedScreens(me);
  const grants = me.grants.map((grant) => (grant.scope && grant.scope !== 'n/a' ? `${grant.role} (${grant.scope})` : grant.role));
  // <bdi>: a right-to-left user name does not reorder the roles after it.
  fill($('#whoami'), h('bdi', null, me.username), ` · ${grants.join(', ') || 'no role'}`);
  $('#whoami').title = `${me.display_name || me.username}${me.email ? ` <${me.email}>` : ''}; search scope: ${me.search_scope}`;
  const expiry = $('#session-expiry');
  clearTimeout(state.expiryTimer);
  clearTimeout(state.warnTimer);
  if (me.session_expires_at) {
    const end = new Date(me.session_expires_at);
    const sameDay = end.toDateString() === new Date().toDateString();
    expiry.textContent = `Session until ${(sameDay ? timeOnly : dayAndTime).format(end)}`;
    expiry.title = utcText(me.session_expires_at);
    armExpiry(end.getTime());
    armWarning(end);
  } else {
    expiry.textContent = '';
  }
  $('#session').hidden = false;
  for (const link of $$('a[data-nav]')) link.hidden = me.must_change_password || !state.screens.has(link.dataset.nav);
  $('#password-link').hidden = me.via !== 'local' || me.must_change_password;
  $('#nav').hidden = me.must_change_password;
  $('#nav-toggle').hidden = me.must_change_password;
}

function armExpiry(endMs) {
  const wait = endMs - Date.now();
  if (wait <= 0) {
    expiryReached();
    return;
  }
  // setTimeout takes at most 2^31-1 ms: re-arm for longer sessions.
  state.expiryTimer = setTimeout(() => armExpiry(endMs), Math.min(wait, 2 ** 31 - 1));
}

/** Minutes before the end of a session that the console says it is ending. */
const WARN_MINUTES = 5;

/** Says, a few minutes ahead, that the session is about to end. */
function armWarning(end) {
  const wait = end.getTime() - WARN_MINUTES * 60_000 - Date.now();
  if (wait <= 0 || wait > 2 ** 31 - 1) return;
  const gen = state.sessionGen;
  state.warnTimer = setTimeout(() => {
    if (gen !== state.sessionGen) return;
    notify(`Your session ends at ${timeOnly.format(end)}, in ${WARN_MINUTES} minutes; then you will be asked to sign in again. Running exports go on.`);
  }, wait);
}

/**
 * The session shown has reached its end. The cookie may by now hold a newer
 * session (signed in again in another tab): ask before ending anything.
 */
async function expiryReached() {
  const shown = state.me;
  const gen = state.sessionGen;
  let me = null;
  try {
    me = await api('/me', { anonymous: true });
  } catch {
    me = null;
  }
  if (gen !== state.sessionGen || state.me !== shown) return;
  const later = me && me.session_expires_at && Date.parse(me.session_expires_at) > Date.now();
  if (later && me.username === shown.username && JSON.stringify(me.grants) === JSON.stringify(shown.grants)) {
    setSession(me); // the same person's newer session: keep going, with its end
  } else {
    sessionEnded(EXPIRED);
  }
}

/** Forgets everything about the session and shows the sign-in screen. */
function sessionEnded(message) {
  clearTimeout(state.expiryTimer);
  clearTimeout(state.warnTimer);
  stopPolling();
  closeContext(false);
  closeNavMenu();
  state.sessionGen += 1;
  Object.assign(state, {
    me: null, screens: new Set(), search: null, holdDraft: null, exportDraft: null, flash: '', contextOpener: null,
    facets: null, facetsLoading: false,
  });
  $('#session').hidden = true;
  $('#nav').hidden = true;
  $('#nav-toggle').hidden = true;
  fill($('#whoami'));
  $('#whoami').removeAttribute('title');
  $('#session-expiry').textContent = '';
  $('#session-expiry').removeAttribute('title');
  fill($('#notice'));
  clearError();
  renderSignIn(message);
}

/**
 * When the tab comes back into view: is the session still the one shown?
 * Signed out in another tab, or another person signed in there (the cookie
 * is shared by the tabs): the page must not keep showing, nor keep acting
 * for, the earlier person.
 */
async function recheckSession() {
  if (!state.me || document.visibilityState !== 'visible') return;
  const shown = state.me;
  const gen = state.sessionGen;
  let me;
  try {
    me = await api('/me', { anonymous: true });
  } catch (error) {
    if (gen !== state.sessionGen || error instanceof SessionEnded) return;
    if (error instanceof ApiError && error.status === 401) sessionEnded(EXPIRED);
    return; // a network error: the next action will tell
  }
  if (gen !== state.sessionGen || state.me !== shown) return;
  const grants = (who) => JSON.stringify(who.grants);
  if (me.username !== shown.username || grants(me) !== grants(shown) || me.must_change_password !== shown.must_change_password) {
    sessionEnded(EXPIRED); // forget everything shown for the earlier session
    setSession(me);
    state.flash = `You are now signed in as ${me.username} (signed in from another tab).`;
    startRoute();
  } else if (me.session_expires_at !== shown.session_expires_at) {
    setSession(me); // signed in again elsewhere: the session ends later now
  }
}

async function logout() {
  const button = $('#logout');
  if (button.disabled) return;
  button.disabled = true;
  try {
    // `anonymous`: a 401 here means the session had already ended, which
    // is what signing out wants.
    await api('/logout', { method: 'POST', body: {}, anonymous: true });
  } catch (error) {
    if (!(error instanceof SessionEnded) && !(error instanceof ApiError && error.status === 401)) {
      // The session may still be alive on the server, and its cookie in
      // this browser: do not pretend it is over.
      renderError($('#error'), new ApiError(error.status, { error: {
        message: `Signing out failed, so your session may still be active: ${error.message} Try again.`,
      } }));
      return;
    }
  } finally {
    button.disabled = false;
  }
  sessionEnded('You are signed out.');
}

// ------------------------------------------------------------ sign-in and password

function renderSignIn(notice) {
  document.title = 'Sign in · holdfast';
  const view = $('#view');
  const username = input('login-username', { autocomplete: 'username', required: true, autocapitalize: 'none' });
  const password = input('login-password', { type: 'password', autocomplete: 'current-password', required: true });
  const submit = h('button', { type: 'submit', id: 'login-submit', class: 'btn-primary' }, 'Sign in');
  const errorBox = h('div', { id: 'login-error', role: 'alert', class: 'error-box' });
  const form = h('form', { id: 'login-form', class: 'card narrow', novalidate: true },
    h('h1', { tabindex: '-1' }, 'Sign in'),
    h('p', { class: 'muted' }, 'holdfast archive console. Every action you take here is recorded in the audit trail.'),
    h('p', { id: 'login-notice', class: 'notice-box', role: 'status' }, notice || ''),
    field('Username', username),
    field('Password', password),
    errorBox,
    h('div', { class: 'actions' }, submit));
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    fill(errorBox);
    if (!username.value.trim() || !password.value) {
      append(errorBox, h('p', { class: 'error-message' }, 'Enter your username and password.'));
      (username.value.trim() ? password : username).focus();
      return;
    }
    submit.disabled = true;
    try {
      await api('/login', { method: 'POST', body: { username: username.value.trim(), password: password.value }, anonymous: true });
      password.value = '';
      if (!(await loadMe())) throw new ApiError(401, { error: { message: 'Signed in, but the session was not kept: check that cookies are allowed for this site.' } });
      startRoute();
    } catch (error) {
      if (error instanceof ApiError && error.code === 'invalid_credentials') {
        renderError(errorBox, new ApiError(401, { error: { code: error.code, message: 'The username or password is not correct.' } }));
      } else {
        renderError(errorBox, error);
      }
      password.select();
      password.focus();
    } finally {
      submit.disabled = false;
    }
  });
  fill(view, h('section', { class: 'screen signin' }, form));
  username.focus();
}

function viewPassword(root) {
  const me = state.me;
  const current = input('password-current', { type: 'password', autocomplete: 'current-password', required: true });
  const next = input('password-new', { type: 'password', autocomplete: 'new-password', required: true });
  const show = h('input', { type: 'checkbox', id: 'password-show' });
  show.addEventListener('change', () => {
    for (const box of [current, next]) box.type = show.checked ? 'text' : 'password';
  });
  const submit = h('button', { type: 'submit', id: 'password-submit', class: 'btn-primary' }, 'Change password');
  const errorBox = h('div', { id: 'password-error', role: 'alert', class: 'error-box' });
  const form = h('form', { id: 'password-form', class: 'card narrow', novalidate: true },
    h('h1', { tabindex: '-1' }, 'Change password'),
    h('input', { type: 'text', autocomplete: 'username', value: me.username, hidden: true, readonly: true, tabindex: '-1', 'aria-hidden': 'true' }),
    me.must_change_password
      ? h('p', { class: 'notice-box' }, 'Your password was set by an administrator for one use. Choose your own before using the console.')
      : null,
    me.via !== 'local' ? h('p', { class: 'muted' }, 'Your account comes from the directory (LDAP): change your password there.') : null,
    field('Current password', current),
    field('New password', next, 'After the change every session of yours ends: you sign in again with the new password.'),
    h('div', { class: 'check' }, show, h('label', { for: 'password-show' }, 'Show passwords')),
    errorBox,
    h('div', { class: 'actions' }, submit));
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    fill(errorBox);
    if (!current.value || !next.value) {
      append(errorBox, h('p', { class: 'error-message' }, 'Enter your current password and a new one.'));
      (current.value ? next : current).focus();
      return;
    }
    submit.disabled = true;
    try {
      await api('/me/password', { method: 'POST', body: { current_password: current.value, new_password: next.value } });
      sessionEnded('Your password is changed. Sign in with the new password.');
    } catch (error) {
      if (error instanceof ApiError && error.code === 'invalid_credentials') {
        renderError(errorBox, new ApiError(401, { error: { code: error.code, message: 'The current password is not correct.' } }));
        current.select();
        current.focus();
      } else {
        renderError(errorBox, error);
      }
      submit.disabled = false;
    }
  });
  append(root, form);
}

// ------------------------------------------------------------ router

function parseHash() {
  let path = location.hash.replace(/^#\/?/, '').split('?')[0];
  try {
    path = decodeURIComponent(path);
  } catch {
    path = '';
  }
  const [screen = '', ...rest] = path.split('/');
  return { screen, id: rest.join('/') || null };
}

function defaultScreen() {
  return SCREENS.find((screen) => state.screens.has(screen)) || null;
}

const VIEWS = {
  search: viewSearch,
  holds: (root, id) => (id ? viewHoldDetail(root, id) : viewHolds(root)),
  exports: (root, id) => (id ? viewExportDetail(root, id) : viewExports(root)),
  retention: viewRetention,
  audit: viewAudit,
  password: viewPassword,
};

function route() {
  stopPolling();
  closeContext(false);
  closeNavMenu();
  if (!state.me) {
    renderSignIn('');
    return;
  }
  let { screen, id } = parseHash();
  if (state.me.must_change_password && screen !== 'password') {
    screen = 'password';
    id = null;
    history.replaceState(null, '', '#/password');
  }
  if (!Object.hasOwn(VIEWS, screen)) {
    screen = defaultScreen() || 'none';
    id = null;
    if (screen !== 'none') history.replaceState(null, '', `#/${screen}`);
  }
  for (const link of $$('a[data-nav]')) {
    if (link.dataset.nav === screen) link.setAttribute('aria-current', 'page');
    else link.removeAttribute('aria-current');
  }
  clearError();
  fill($('#notice'));
  if (state.flash) {
    notify(state.flash);
    state.flash = '';
  }
  document.title = `${SCREEN_NAMES[screen] || 'Console'} · holdfast`;
  const root = h('section', { class: `screen screen-${screen}` });
  fill($('#view'), root);
  if (screen === 'none') viewNothing(root);
  else if (screen !== 'password' && !state.screens.has(screen)) viewNotAllowed(root, screen);
  else VIEWS[screen](root, id);
  // After a navigation (not the first render), move focus to the new heading.
  if (state.routed) {
    const title = $('h1', root);
    if (title && !root.contains(document.activeElement)) title.focus();
  }
  state.routed = true;
}

/**
 * The first screen of a new session. A screen left in the address by an
 * earlier session that this person may not use: their own first screen
 * instead (a bookmark to a screen they may use is kept).
 */
function startRoute() {
  const { screen } = parseHash();
  if (Object.hasOwn(VIEWS, screen) && screen !== 'password' && !state.screens.has(screen) && defaultScreen()) {
    history.replaceState(null, '', `#/${defaultScreen()}`);
  }
  state.routed = false;
  route();
}

function go(hash) {
  if (location.hash === hash) route();
  else location.hash = hash;
}

function heading(text, ...extra) {
  return h('div', { class: 'screen-head' }, h('h1', { tabindex: '-1' }, text), ...extra);
}

function viewNothing(root) {
  const only = roles();
  append(root, heading('Nothing to show'),
    h('p', null, only.includes('ingest')
      ? 'This account has the ingest role only: it sends events to the archive and has no screen in this console.'
      : 'This account has no role that uses the console. Ask an administrator for the role you need.'));
}

function viewNotAllowed(root, screen) {
  append(root, heading(SCREEN_NAMES[screen]),
    h('p', { class: 'notice-box' }, `${SCREEN_NAMES[screen]} is for ${SCREEN_ROLES[screen]}. Your roles (${roles().join(', ') || 'none'}) do not include it.`),
    defaultScreen() ? h('p', null, h('a', { href: `#/${defaultScreen()}` }, `Go to ${SCREEN_NAMES[defaultScreen()]}`)) : null);
}

// ------------------------------------------------------------ message rendering

/** Highlight ranges (Unicode scalar values of `text`, [start, end)) as UTF-16 ranges. */
function highlightRanges(text, ranges) {
  if (!Array.isArray(ranges) || ranges.length === 0) return [];
  const offsets = [0];
  let index = 0;
  for (const char of text) {
    index += char.length;
    offsets.push(index);
  }
  const last = offsets.length - 1;
  return ranges
    .filter((range) => Array.isArray(range) && Number.isInteger(range[0]) && Number.isInteger(range[1]) && range[0] >= 0)
    .map(([start, end]) => [offsets[Math.min(start, last)], offsets[Math.min(end, last)]])
    .filter(([start, end]) => end > start)
    .sort((a, b) => a[0] - b[0]);
}

/** Appends text[start, end) with the parts inside `ranges` wrapped in <mark>. */
function appendMarked(node, text, start, end, ranges) {
  let at = start;
  for (const [from, to] of ranges) {
    const markFrom = Math.max(from, at);
    const markTo = Math.min(to, end);
    if (markTo <= markFrom) continue;
    if (markFrom > at) append(node, text.slice(at, markFrom));
    append(node, h('mark', null, text.slice(markFrom, markTo)));
    at = markTo;
  }
  if (at < end) append(node, text.slice(at, end));
}

/** Splits a message into prose and ``` fenced code, as [start, end, isCode] ranges. */
function splitFences(text) {
  const parts = [];
  let at = 0;
  let code = false;
  for (;;) {
    const fence = text.indexOf('```', at);
    let end = fence < 0 ? text.length : fence;
    let start = at;
    if (code) {
      const tag = /^[\w+#.-]*\n/.exec(text.slice(start, start + 40));
      if (tag) start += tag[0].length; // the language tag of the fence
      if (text[end - 1] === '\n') end -= 1;
    } else if (parts.length && text[start] === '\n') {
      start += 1;
    }
    if (end > start) parts.push([start, end, code]);
    if (fence < 0) break;
    at = fence + 3;
    code = !code;
  }
  return parts;
}

/** Message text: newlines kept, code blocks in <pre>, highlights as <mark>. */
function messageText(text, ranges = [], cls = 'hit-text') {
  const box = h('div', { class: cls, dir: 'auto' });
  const marks = highlightRanges(text, ranges);
  for (const [start, end, code] of splitFences(text)) {
    if (code) {
      const inner = h('code');
      appendMarked(inner, text, start, end, marks);
      append(box, h('pre', { class: 'code', dir: 'ltr', tabindex: '0' }, inner));
    } else {
      const para = h('p', { class: 'prose', dir: 'auto' });
      appendMarked(para, text, start, end, marks);
      append(box, para);
    }
  }
  return box;
}

/** team / #channel, each isolated so that right-to-left names keep their order. */
function where(hit) {
  return h('span', { class: 'hit-where' }, h('bdi', null, hit.team), ' / #', h('bdi', null, hit.channel));
}

function badges(hit) {
  const list = [];
  if (hit.kind && hit.kind !== 'post') list.push(h('span', { class: 'badge badge-kind' }, hit.kind));
  if (hit.parent) list.push(h('span', { class: 'badge badge-reply', title: `reply in the thread of ${hit.parent}` }, 'reply'));
  if (hit.edited) list.push(h('span', { class: 'badge badge-edited', title: typeof hit.versions === 'number' ? plural(hit.versions, 'text version') : null }, 'edited'));
  if (hit.deleted) list.push(h('span', { class: 'badge badge-deleted' }, 'deleted'));
  return list;
}

function reactionList(reactions) {
  if (!reactions || reactions.length === 0) return null;
  return h('ul', { class: 'reactions', 'aria-label': 'Reactions' }, reactions.map((reaction) => {
    const users = Array.isArray(reaction.users) ? reaction.users : [];
    const emoji = Object.hasOwn(EMOJI, reaction.emoji) ? EMOJI[reaction.emoji] : null;
    return h('li', { class: 'reaction', title: users.length ? `by ${users.join(', ')}` : null },
      emoji ? h('span', { 'aria-hidden': 'true' }, `${emoji} `) : null,
      `:${reaction.emoji}: `, h('span', { class: 'reaction-count' }, String(users.length)),
      h('span', { class: 'visually-hidden' }, users.length ? ` (${users.join(', ')})` : ''));
  }));
}

function fileList(files) {
  if (!files || files.length === 0) return null;
  return h('ul', { class: 'files', 'aria-label': 'Attachments' }, files.map((file) =>
    h('li', { class: 'file', title: file.sha256 ? `sha256 ${file.sha256}` : null, dir: 'auto' },
      h('span', { class: 'file-name' }, file.name),
      h('span', { class: 'file-meta' }, ` ${[bytes(file.size), file.mime].filter(Boolean).join(', ')}`))));
}

function kindText(hit, cls) {
  const words = Object.hasOwn(KIND_WORDS, hit.kind) ? KIND_WORDS[hit.kind] : hit.kind;
  const extra = hit.emoji ? ` :${hit.emoji}:` : '';
  return h('div', { class: `${cls} system` }, h('p', { class: 'prose' }, `${words}${extra}`));
}

/** The header line of a message: who, where, when, badges. */
function messageHead(hit) {
  return h('div', { class: 'hit-head' },
    h('span', { class: 'hit-user', dir: 'auto' }, hit.user),
    where(hit),
    timeEl(hit.at, 'hit-time'),
    badges(hit),
    hit.post ? h('span', { class: 'hit-id', title: 'post id' }, hit.post) : null);
}

/** A message in the context panel (`.msg`). */
function contextMessage(hit, focused) {
  return h('li', { class: ['msg', focused && 'focus'], dataset: { post: hit.post || '', event: hit.id }, 'aria-current': focused ? 'true' : null },
    messageHead(hit),
    typeof hit.text === 'string' ? messageText(hit.text, [], 'hit-text') : kindText(hit, 'hit-text'),
    reactionList(hit.reactions),
    fileList(hit.files));
}

// ------------------------------------------------------------ suggestions

/**
 * The teams, channels and people of the person's search scope (GET
 * /facets, audited as `search_facets`), as suggestions for the fields that
 * name them. Loaded once per session, by the first screen with such a
 * field, for roles that search; forgotten at sign-out with everything
 * else. They only suggest: when they cannot be loaded the fields stay
 * plain text boxes, and no error is shown for it (a later screen asks
 * again).
 */
function loadFacets() {
  if (!state.me || !state.screens.has('search') || state.facets || state.facetsLoading) return;
  const gen = state.sessionGen;
  state.facetsLoading = true;
  api('/facets').then((data) => {
    if (gen !== state.sessionGen) return;
    state.facets = facetSuggestions(data);
    for (const node of $$('input[data-suggest]')) armSuggestions(node);
  }).catch((error) => {
    if (!(error instanceof ApiError) && !(error instanceof SessionEnded)) console.error(error);
  }).finally(() => {
    if (gen === state.sessionGen) state.facetsLoading = false;
  });
}

/**
 * The suggestions of each kind, busiest first: { value, label, events,
 * name, where?, title? }: `label` is `name (where)`, `where` the team(s)
 * of a channel. `channels` are for the search filter, where `in:` names a
 * channel of any team (one suggestion per name, with its teams);
 * `teamChannels` for holds and exports, which name `team/channel`.
 */
function facetSuggestions(data) {
  const list = (value) => (Array.isArray(value) ? value : []);
  const events = (value) => (Number.isFinite(value) ? value : null);
  const named = (items) => list(items)
    .filter((item) => item && typeof item.name === 'string' && item.name)
    .map((item) => ({ value: item.name, label: item.name, name: item.name, events: events(item.events) }));
  const channels = list(data && data.channels)
    .filter((c) => c && typeof c.team === 'string' && c.team && typeof c.channel === 'string' && c.channel);
  const byName = new Map();
  for (const c of channels) {
    const entry = byName.get(c.channel) || { value: c.channel, teams: [], events: 0 };
    entry.teams.push(c.team);
    entry.events += events(c.events) || 0;
    byName.set(c.channel, entry);
  }
  const teamsText = (teams) => (teams.length > 3 ? `${teams.slice(0, 3).join(', ')} and ${teams.length - 3} more` : teams.join(', '));
  return {
    people: named(data && data.people),
    teams: named(data && data.teams),
    channels: Array.from(byName.values())
      .sort((a, b) => b.events - a.events || (a.value < b.value ? -1 : a.value > b.value ? 1 : 0))
      .map((entry) => ({
        value: entry.value,
        label: `${entry.value} (${teamsText(entry.teams)})`,
        name: entry.value,
        where: teamsText(entry.teams),
        title: entry.teams.length > 3 ? `in ${entry.teams.join(', ')}` : null,
        events: entry.events,
      })),
    teamChannels: channels.map((c) => ({
      value: `${c.team}/${c.channel}`, label: `${c.channel} (${c.team})`, name: c.channel, where: c.team, events: events(c.events),
    })),
  };
}

const SUGGESTION_NAMES = { people: 'People', teams: 'Teams', channels: 'Channels', teamChannels: 'Channels' };

/** A name as typed in a field of `kind`, without the marker the search filter drops (`@`, `#`). */
function bareName(text, kind) {
  const marker = kind === 'people' ? '@' : kind === 'channels' ? '#' : null;
  return marker && text.startsWith(marker) ? text.slice(marker.length).trim() : text;
}

/**
 * The suggestions for `typed` (lowercase): names starting with it first,
 * then those with a word starting with it, then any containing it; each
 * group busiest first. Names in `chosen` (lowercase) are left out.
 */
function matchSuggestions(items, typed, chosen) {
  const rankIn = (hay) => {
    let at = hay.indexOf(typed);
    if (at < 0) return 3;
    if (at === 0) return 0;
    for (; at > 0; at = hay.indexOf(typed, at + 1)) if (!/[\p{L}\p{N}]/u.test(hay[at - 1])) return 1;
    return 2;
  };
  const ranked = [];
  for (const item of items) {
    if (chosen.has(item.value.toLowerCase())) continue;
    const rank = typed ? Math.min(rankIn(item.value.toLowerCase()), rankIn(item.label.toLowerCase())) : 0;
    if (rank < 3) ranked.push([rank, item]);
  }
  return ranked.sort((a, b) => a[0] - b[0]).slice(0, MAX_SUGGESTIONS).map(([, item]) => item);
}

/** Makes a field with suggestions an ARIA combobox, once the facets are there. */
function armSuggestions(node) {
  const items = state.facets && state.facets[node.dataset.suggest];
  if (!items || items.length === 0 || node.getAttribute('role') === 'combobox') return;
  node.setAttribute('role', 'combobox');
  node.setAttribute('aria-autocomplete', 'list');
  node.setAttribute('aria-expanded', 'false');
  node.setAttribute('aria-controls', `${node.id}-suggestions`);
}

/**
 * A text field of comma-separated names of `kind` (people, teams,
 * channels, teamChannels) with suggestions from the facets: a combobox
 * with a listbox popup. Typing, or Down, lists the names of the scope
 * that match the name being typed (the one at the caret: the last one
 * when typing at the end), and Enter or a click puts the chosen one in
 * its place, leaving the others as they are. Up and Down move through
 * the list, Escape closes it; Enter with no suggestion chosen submits the
 * form as usual. Anything can still be typed, and without facets it is a
 * plain text box. Returns the box holding the field and its list.
 */
function suggesting(node, kind) {
  const listId = `${node.id}-suggestions`;
  const list = h('ul', { id: listId, class: 'combo-list', role: 'listbox', hidden: true, 'aria-label': `${SUGGESTION_NAMES[kind]} in your scope` });
  node.dataset.suggest = kind;
  let shown = [];
  let active = -1;
  let span = [0, 0]; // where the name being completed is in the value

  const close = () => {
    if (list.hidden) return;
    list.hidden = true;
    fill(list);
    shown = [];
    active = -1;
    node.setAttribute('aria-expanded', 'false');
    node.removeAttribute('aria-activedescendant');
  };
  const setActive = (index) => {
    active = index;
    Array.from(list.children).forEach((option, i) => option.setAttribute('aria-selected', String(i === index)));
    if (index < 0) {
      node.removeAttribute('aria-activedescendant');
      return;
    }
    const option = list.children[index];
    node.setAttribute('aria-activedescendant', option.id);
    option.scrollIntoView({ block: 'nearest' });
  };
  const open = (activeIndex) => {
    const items = state.facets && state.facets[kind];
    if (!items || items.length === 0) {
      close();
      return;
    }
    armSuggestions(node);
    const text = node.value;
    const caret = node.selectionStart ?? text.length;
    const start = text.lastIndexOf(',', caret - 1) + 1;
    const comma = text.indexOf(',', caret);
    span = [start, comma < 0 ? text.length : comma];
    const typed = bareName(text.slice(span[0], span[1]).trim(), kind).toLowerCase();
    const chosen = new Set(splitList(text.slice(0, span[0]) + text.slice(span[1])).map((name) => bareName(name, kind).toLowerCase()));
    shown = matchSuggestions(items, typed, chosen);
    if (shown.length === 0) {
      close();
      return;
    }
    fill(list, shown.map((item, i) => h('li', {
      id: `${listId}-${i}`, role: 'option', class: 'combo-option', 'aria-selected': 'false',
      dataset: { value: item.value }, title: item.title,
    }, h('span', { class: 'combo-name' }, h('bdi', null, item.name),
      item.where ? [' ', h('span', { class: 'combo-where' }, '(', h('bdi', null, item.where), ')')] : null),
    item.events === null ? null : [' ', h('span', { class: 'combo-count' }, plural(item.events, 'event'))])));
    list.scrollTop = 0;
    list.classList.remove('combo-list-end', 'combo-list-fit');
    list.hidden = false;
    // Wider than its field when the names need it, but never past the
    // window's edges: aligned on the field's end, else as wide as the field.
    const width = document.documentElement.clientWidth;
    if (list.getBoundingClientRect().right > width - 4) {
      list.classList.add('combo-list-end');
      if (list.getBoundingClientRect().left < 4) list.classList.replace('combo-list-end', 'combo-list-fit');
    }
    node.setAttribute('aria-expanded', 'true');
    setActive(Math.min(activeIndex, shown.length - 1));
  };
  const pick = (index) => {
    const item = shown[index];
    if (!item) return;
    const text = node.value;
    const before = span[0] > 0 ? `${text.slice(0, span[0]).trimEnd()} ` : '';
    node.value = `${before}${item.value}${text.slice(span[1])}`;
    const at = before.length + item.value.length;
    close();
    node.focus();
    node.setSelectionRange(at, at);
    node.removeAttribute('aria-invalid');
  };

  // Emptying the field closes the list (Down opens it again).
  node.addEventListener('input', () => (node.value.trim() ? open(-1) : close()));
  node.addEventListener('blur', close);
  node.addEventListener('click', () => {
    if (!list.hidden) open(-1); // the caret moved to another name
  });
  node.addEventListener('keydown', (event) => {
    if (event.isComposing || event.ctrlKey || event.metaKey) return;
    const isOpen = !list.hidden;
    if (event.key === 'ArrowDown' || event.key === 'ArrowUp') {
      if (!state.facets) return;
      event.preventDefault();
      const down = event.key === 'ArrowDown';
      if (!isOpen) open(event.altKey ? -1 : down ? 0 : Infinity);
      else if (down) setActive((active + 1) % shown.length);
      else setActive(active <= 0 ? shown.length - 1 : active - 1);
    } else if (event.key === 'Enter') {
      if (isOpen && active >= 0) {
        event.preventDefault();
        pick(active);
      } else {
        close();
      }
    } else if (event.key === 'Escape') {
      if (isOpen) {
        event.preventDefault();
        event.stopPropagation(); // not also the context panel
        close();
      }
    } else if (event.key === 'Tab') {
      close();
    }
  });
  // A click on a suggestion keeps the focus in the field.
  list.addEventListener('mousedown', (event) => event.preventDefault());
  list.addEventListener('click', (event) => {
    const option = event.target instanceof Element ? event.target.closest('[role="option"]') : null;
    if (option) pick(Array.prototype.indexOf.call(list.children, option));
  });
  armSuggestions(node);
  return h('div', { class: 'combo' }, node, list);
}

// ------------------------------------------------------------ search

function searchState() {
  if (!state.search) {
    state.search = {
      values: { q: '', from: '', in: '', team: '', after: '', before: '', sort: 'newest', versions: 'latest' },
      sent: null, sentOffset: 0, cursors: [null], page: 1, result: null, resultVersions: 'latest', loading: false,
    };
  }
  return state.search;
}

/**
 * A field value as the query language wants it (src/search/lexer.rs): bare
 * when it is a plain run of characters, else in quotes with `\`, `"` and the
 * curly quotes (which also close a quoted value) escaped.
 */
function queryValue(value) {
  return /^[^\s\u0085()"“”*:\\]+$/.test(value) ? value : `"${value.replace(/[\\"“”]/g, '\\$&')}"`;
}

/** `from:a` or `(from:a OR from:b)`. `strip`: the marker a bare value drops (`@`, `#`), dropped here too. */
function clauses(field, values, strip) {
  const parts = values
    .map((value) => (strip && value.startsWith(strip) ? value.slice(strip.length).trim() : value))
    .filter(Boolean)
    .map((value) => `${field}:${queryValue(value)}`);
  return parts.length > 1 ? `(${parts.join(' OR ')})` : parts[0];
}

/**
 * The query sent: the query box, then the filters as clauses. `offset` is
 * where the box's text starts in it (1 when grouped in parentheses), to put
 * the caret of a query error back into the box.
 */
function composeQuery(values) {
  const base = values.q.trim();
  const filters = [
    clauses('from', splitList(values.from), '@'),
    clauses('in', splitList(values.in), '#'),
    clauses('team', splitList(values.team)),
    values.after ? `after:${values.after}` : null,
    values.before ? `before:${values.before}` : null,
  ].filter(Boolean);
  if (filters.length === 0) return { text: base, offset: 0 };
  // `a OR b from:x` would mean `a OR (b AND from:x)`: group such a query
  // (an OR inside quotes makes a harmless extra pair of parentheses).
  const group = base && /(^|[\s()"“”])OR([\s()"“”]|$)/.test(base);
  return { text: [group ? `(${base})` : base, ...filters].filter(Boolean).join(' '), offset: group ? 1 : 0 };
}

function viewSearch(root) {
  loadFacets();
  const s = searchState();
  const v = s.values;
  const q = input('search-q', { type: 'search', value: v.q, placeholder: '"wire transfer" NEAR(5) offshore', 'aria-describedby': 'search-q-hint', enterkeyhint: 'search' });
  const filters = {
    from: input('filter-from', { value: v.from, placeholder: 'allen-p, bob', 'aria-describedby': 'filters-hint' }),
    in: input('filter-in', { value: v.in, placeholder: 'trading', 'aria-describedby': 'filters-hint' }),
    team: input('filter-team', { value: v.team, placeholder: 'legal', 'aria-describedby': 'filters-hint' }),
    after: input('filter-after', { type: 'date', value: v.after }),
    before: input('filter-before', { type: 'date', value: v.before }),
    sort: select('search-sort', [['newest', 'Newest first'], ['oldest', 'Oldest first'], ['relevance', 'Relevance']], v.sort),
    versions: select('search-versions', [['latest', 'Latest of each post'], ['all', 'All versions']], v.versions),
  };
  const helpToggle = h('button', { type: 'button', id: 'search-help-toggle', class: 'btn-quiet', 'aria-expanded': 'false', 'aria-controls': 'search-help' }, 'Syntax help');
  const help = searchHelp();
  helpToggle.addEventListener('click', () => {
    help.hidden = !help.hidden;
    helpToggle.setAttribute('aria-expanded', String(!help.hidden));
  });
  const form = h('form', { id: 'search-form', role: 'search', class: 'card search-form' },
    h('div', { class: 'query-row' },
      h('label', { for: 'search-q', class: 'query-label' }, 'Query'),
      q,
      h('button', { type: 'submit', id: 'search-submit', class: 'btn-primary' }, 'Search'),
      helpToggle),
    h('p', { id: 'search-q-hint', class: 'hint' }, 'Words, "phrases", AND OR NOT, NEAR(n), prefix*, fields like from: in: kind: has:file. Dates are UTC. Press / to come back here.'),
    help,
    h('div', { class: 'filters' },
      field('From (people)', suggesting(filters.from, 'people')),
      field('In (channels)', suggesting(filters.in, 'channels')),
      field('Team', suggesting(filters.team, 'teams')),
      field('After (UTC)', filters.after, 'That day not included.'),
      field('Before (UTC)', filters.before, 'That day not included.'),
      field('Sort', filters.sort),
      field('Versions', filters.versions)),
    h('p', { id: 'filters-hint', class: 'hint' }, 'Several people, channels or teams: separate them with commas; any of them matches. Type, or press Down, for the names in your scope.'));
  const errorBox = h('div', { id: 'search-error', role: 'alert', class: 'error-box' });
  const sentLine = h('div', { class: 'sent-line', id: 'search-sent-line' });
  const status = h('p', { class: 'results-summary', id: 'search-status', role: 'status', 'aria-live': 'polite' });
  const bar = h('div', { class: 'results-bar' }, status, h('div', { class: 'results-actions', id: 'search-actions' }));
  const results = h('div', { class: 'search-results', id: 'search-results-area' });
  const main = h('div', { class: 'search-main' }, form, sentLine, errorBox, bar, results);
  const layout = h('div', { class: 'search-layout' }, main);
  append(root, heading('Search the archive', h('p', { class: 'muted scope-line' }, `Scope: ${state.me.search_scope}`)), layout);

  const readForm = () => {
    Object.assign(v, {
      q: q.value, from: filters.from.value, in: filters.in.value, team: filters.team.value,
      after: filters.after.value, before: filters.before.value, sort: filters.sort.value, versions: filters.versions.value,
    });
  };
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    readForm();
    const composed = composeQuery(v);
    if (!composed.text) {
      state.searchSeq += 1; // an answer still on its way is not for this
      Object.assign(s, { sent: null, sentOffset: 0, result: null, cursors: [null], page: 1, loading: false });
      fill(sentLine);
      fill(results);
      fill($('#search-actions', root));
      status.textContent = '';
      results.removeAttribute('aria-busy');
      fill(errorBox, h('p', { class: 'error-message' }, 'Enter a query or a filter: an empty query is refused rather than matching everything.'));
      q.focus();
      return;
    }
    s.sent = composed.text;
    s.sentOffset = composed.offset;
    s.cursors = [null];
    s.page = 1;
    runSearch(root);
  });
  for (const changer of [filters.sort, filters.versions]) {
    changer.addEventListener('change', () => {
      v.sort = filters.sort.value;
      v.versions = filters.versions.value;
      if (s.sent === null) return;
      s.cursors = [null];
      s.page = 1;
      runSearch(root); // sort and versions apply to the query already sent
    });
  }
  if (s.sent !== null) renderSent(root, s.result);
  if (s.loading) status.textContent = 'Searching…';
  else if (s.result) renderResults(root);
  if (!q.value) q.focus();
}

/**
 * Runs the search of `s.sent` for page `s.page`. Only the answer to the
 * latest request is shown: a slow earlier one (a search sent twice, a sort
 * changed meanwhile) is dropped.
 */
async function runSearch(root, { fromPager = false } = {}) {
  const s = searchState();
  const errorBox = $('#search-error', root);
  const area = $('#search-results-area', root);
  closeContext(false);
  fill(errorBox);
  area.setAttribute('aria-busy', 'true');
  $('#search-status', root).textContent = 'Searching…';
  const seq = ++state.searchSeq;
  s.loading = true;
  const sent = s.sent;
  const versions = s.values.versions;
  renderSent(root, null);
  try {
    const result = await api('/search', {
      params: { q: sent, sort: s.values.sort, versions, limit: PAGE_SIZE, cursor: s.cursors[s.page - 1] },
    });
    if (s !== state.search || seq !== state.searchSeq) return;
    s.result = result;
    s.resultVersions = versions;
    s.loading = false;
    // The person may have left the screen and come back meanwhile: draw
    // into the search screen shown now, if any.
    root = root.isConnected ? root : $('#view .screen-search');
    if (!root) return;
    renderResults(root);
    if (fromPager) {
      // The pager was replaced: go to the top of the new page.
      const list = $('#search-results', root);
      $('.results-bar', root).scrollIntoView({ block: 'start' });
      list.focus({ preventScroll: true });
    }
  } catch (error) {
    if (s !== state.search || seq !== state.searchSeq || error instanceof SessionEnded) return;
    s.result = null;
    s.loading = false;
    root = root.isConnected ? root : $('#view .screen-search');
    if (!root) return;
    fill($('#search-results-area', root));
    fill($('#search-actions', root));
    $('#search-status', root).textContent = error instanceof ApiError && error.code === 'bad_query' ? 'The query is not valid.' : 'The search failed.';
    showSearchError(root, error, sent);
  } finally {
    if (seq === state.searchSeq && root) $('#search-results-area', root).removeAttribute('aria-busy');
  }
}

function showSearchError(root, error, sent) {
  const errorBox = $('#search-error', root);
  renderError(errorBox, error, { query: sent });
  if (!(error instanceof ApiError) || typeof error.position !== 'number') return;
  // Put the caret where the error is, when it falls in the query box (and
  // the box still holds what was sent).
  const q = $('#search-q', root);
  const box = q.value.trim();
  const offset = searchState().sentOffset || 0;
  const inBox = box !== '' && sent.startsWith(box, offset);
  const index = byteToIndex(sent, error.position) - offset;
  const lead = q.value.length - q.value.trimStart().length;
  q.focus();
  if (inBox && index >= 0 && index <= box.length) q.setSelectionRange(lead + index, lead + index);
  else q.setSelectionRange(q.value.length, q.value.length);
}

/** The query as sent (and, after an answer, as the server read it). */
function renderSent(root, result) {
  const s = searchState();
  fill($('#search-sent-line', root),
    h('p', null, h('span', { class: 'muted' }, 'Query sent: '), h('code', { id: 'search-sent', dir: 'ltr' }, s.sent)),
    result && result.query && result.query !== s.sent
      ? h('p', null, h('span', { class: 'muted' }, 'Read as: '), h('code', { id: 'search-canonical', dir: 'ltr' }, result.query))
      : null);
}

function renderResults(root) {
  const s = searchState();
  const result = s.result;
  const area = $('#search-results-area', root);
  const canHold = state.screens.has('holds');
  const canExport = state.screens.has('exports');
  renderSent(root, result);
  // The query of these results (not one typed or sent since).
  const sent = s.sent;
  fill($('#search-status', root),
    h('span', { id: 'search-total' }, plural(result.total, 'result')),
    h('span', { class: 'muted' }, ` · page ${s.page}`));
  fill($('#search-actions', root),
    canHold ? h('button', { type: 'button', id: 'hold-from-search', class: 'btn-secondary', onclick: () => {
      state.holdDraft = { query: sent };
      go('#/holds');
    } }, 'Place a hold on these results') : null,
    canExport ? h('button', { type: 'button', id: 'export-from-search', class: 'btn-secondary', onclick: () => {
      state.exportDraft = { type: 'query', query: sent };
      go('#/exports');
    } }, 'Export these results') : null);
  const list = h('ol', { id: 'search-results', class: 'hits', 'aria-label': `Results, page ${s.page}`, tabindex: '-1' });
  for (const hit of result.hits) append(list, renderHit(root, hit));
  const empty = result.hits.length === 0
    ? h('p', { class: 'empty' }, s.page === 1 ? 'No message in your scope matches this query.' : 'No more results.')
    : null;
  // A click while a page is loading is ignored: two quick clicks on Next
  // must not skip a page, nor Previous go below page 1.
  const pager = h('nav', { class: 'pager', 'aria-label': 'Result pages' },
    h('button', { type: 'button', id: 'page-prev', class: 'btn-secondary', disabled: s.page <= 1, onclick: () => {
      if (s.loading || s.result !== result || s.page <= 1) return;
      s.page -= 1;
      runSearch(root, { fromPager: true });
    } }, '← Previous'),
    h('span', { id: 'page-info' }, `page ${s.page}`),
    h('button', { type: 'button', id: 'page-next', class: 'btn-secondary', disabled: !result.next_cursor, onclick: () => {
      if (s.loading || s.result !== result || !result.next_cursor) return;
      s.cursors[s.page] = result.next_cursor;
      s.cursors.length = s.page + 1;
      s.page += 1;
      runSearch(root, { fromPager: true });
    } }, 'Next →'));
  fill(area, list, empty, pager);
}

function renderHit(root, hit) {
  const s = searchState();
  const item = h('li', { class: 'hit', dataset: { post: hit.post || '', event: hit.id } }, messageHead(hit));
  const snippet = {
    text: hit.snippet && typeof hit.snippet.text === 'string' ? hit.snippet.text : '',
    highlights: hit.snippet && Array.isArray(hit.snippet.highlights) ? hit.snippet.highlights : [],
  };
  const hasText = typeof hit.text === 'string' || snippet.text;
  if (!hasText) {
    append(item, kindText(hit, 'hit-text'));
  } else {
    let body = messageText(snippet.text, snippet.highlights);
    append(item, body);
    const full = typeof hit.text === 'string' ? hit.text : null;
    if (full !== null && full !== snippet.text) {
      const core = snippet.text.replace(/^…/, '').replace(/…$/, '');
      const shift = core ? full.indexOf(core) : -1;
      if (shift < 0 && hit.matched_event_id !== hit.id) {
        append(item, h('p', { class: 'hint' }, 'These words are from an earlier version of the message; “Show the whole message” shows the current text.'));
      }
      const toggle = h('button', { type: 'button', class: 'btn-link show-full', 'aria-expanded': 'false' }, 'Show the whole message');
      toggle.addEventListener('click', () => {
        const expanded = toggle.getAttribute('aria-expanded') === 'true';
        let next;
        if (expanded) {
          next = messageText(snippet.text, snippet.highlights);
        } else {
          // Shift the snippet's highlights onto the full text when it is part of it.
          const lead = snippet.text.startsWith('…') ? 1 : 0;
          const startChars = shift >= 0 ? Array.from(full.slice(0, shift)).length - lead : 0;
          const marks = shift >= 0 ? snippet.highlights.map(([a, b]) => [a + startChars, b + startChars]) : [];
          next = messageText(full, marks);
        }
        body.replaceWith(next);
        body = next;
        toggle.setAttribute('aria-expanded', String(!expanded));
        toggle.textContent = expanded ? 'Show the whole message' : 'Show the snippet only';
      });
      append(item, toggle);
    }
  }
  append(item, reactionList(hit.reactions), fileList(hit.files));
  if (s.resultVersions === 'all' && hit.matched_event_id && hit.matched_event_id !== hit.id) {
    append(item, h('p', { class: 'hint' }, `Matched event ${hit.matched_event_id}`));
  }
  if (hit.post) {
    append(item, h('div', { class: 'hit-actions' },
      h('button', { type: 'button', class: 'btn-link open-thread', onclick: (event) => openContext(root, hit, event.currentTarget) }, 'Open in context')));
  }
  return item;
}

function searchHelp() {
  const rows = [
    ['Words', 'wire transfer', 'both words, any order; case and accents ignored'],
    ['Phrase', '"wire transfer"', 'those words next to each other, in order'],
    ['OR', 'wire OR cash', 'either (operators in capitals)'],
    ['NOT, -', 'wire -test   NOT from:bot', 'excludes what follows; - touches it'],
    ['Grouping', '(wire OR cash) offshore', 'NEAR binds tightest, then NOT, AND, OR'],
    ['NEAR(n)', '"wire transfer" NEAR(5) offshore', 'at most n words apart, either order (8 by default)'],
    ['Prefix', 'invest*', 'invest, investor, investigation'],
    ['Exact', 'exact:Café   exact:"Wire Transfer"', 'case and accents must match'],
    ['Sender', 'from:allen-p', '(from:a OR from:b) for several'],
    ['Channel, team', 'in:"gas desk"   team:legal', 'names are matched whole'],
    ['Kind', 'kind:edit', 'post edit delete reaction_add reaction_remove file channel_create channel_rename channel_archive member_join member_leave'],
    ['Attachments', 'has:file   filename:budget', 'events with a file; words of the file name'],
    ['Reactions', 'has:reaction   emoji:thumbsup', 'posts with any reaction; one emoji'],
    ['Thread', 'thread:p-1001', 'the root post and its replies'],
    ['History', 'is:edited   is:deleted', 'posts that were edited or deleted'],
    ['Dates', 'after:2024-01-01   before:2024-02-01   on:2024-01-31', 'after and before exclude the day named; dates are UTC'],
    ['Ranges', 'sent:2024-01-01..2024-03-31   sent>=2024-01-01', 'both ends included; >= <= > < also work'],
  ];
  const table = h('table', { class: 'help-table' },
    h('thead', null, h('tr', null, h('th', { scope: 'col' }, 'What'), h('th', { scope: 'col' }, 'Write'), h('th', { scope: 'col' }, 'Finds'))),
    h('tbody', null, rows.map(([what, example, meaning]) =>
      h('tr', null, h('th', { scope: 'row' }, what),
        h('td', null, example.split('   ').map((one) => h('code', { class: 'example' }, one))), h('td', null, meaning)))));
  return h('section', { id: 'search-help', class: 'help', hidden: true, 'aria-label': 'Query syntax' },
    tableWrap(table),
    h('p', { class: 'hint' }, 'Lowercase and, or, not are ordinary words. Quote text that contains a colon ("re:budget"). A wrong query is refused with the place of the mistake, never run as something else.'));
}

// ------------------------------------------------------------ context

async function openContext(root, hit, opener) {
  const layout = $('.search-layout', root);
  let panel = $('#context', root);
  if (!panel) {
    panel = h('section', { id: 'context', class: 'context', 'aria-labelledby': 'context-title' });
    append(layout, panel);
  }
  state.contextOpener = opener; // Escape or Close gives the focus back to it
  const seq = ++state.contextSeq;
  layout.classList.add('has-context');
  document.body.classList.add('context-open');
  panel.hidden = false;
  const title = h('h2', { id: 'context-title', tabindex: '-1' }, 'In context');
  const close = h('button', { type: 'button', id: 'context-close', class: 'btn-quiet', 'aria-label': 'Close the context (Escape)', onclick: () => closeContext(true) }, 'Close ✕');
  const body = h('div', { class: 'context-body', 'aria-busy': 'true' }, h('p', { class: 'muted' }, 'Loading…'));
  fill(panel, h('div', { class: 'context-head' }, title, close), body);
  title.focus();
  try {
    const data = await api(`/posts/${segment(hit.post)}/context`, { params: { before: 5, after: 5 } });
    if (!panel.isConnected || panel.hidden || seq !== state.contextSeq) return;
    fill(title, 'In context: ', h('bdi', null, data.post.team), ' / #', h('bdi', null, data.post.channel));
    renderContext(body, data);
    // Scroll the panel (not the page) to the post.
    const focused = $('.msg.focus', body);
    if (focused) panel.scrollTop = Math.max(0, focused.offsetTop - panel.clientHeight / 3);
  } catch (error) {
    if (!panel.isConnected || panel.hidden || seq !== state.contextSeq || error instanceof SessionEnded) return;
    fill(body, errorBlock(error));
  } finally {
    body.removeAttribute('aria-busy');
  }
}

/** Whether the context panel covers the screen (narrow windows, see app.css). */
function contextIsOverlay() {
  return window.matchMedia('(max-width: 1100px)').matches;
}

/** Tab and Shift+Tab stay inside the panel while it covers the screen. */
function trapContextFocus(event) {
  const panel = $('#context');
  if (!panel || panel.hidden || !contextIsOverlay()) return;
  const focusable = $$('a[href], button:not([disabled]), input, select, textarea, [tabindex]:not([tabindex="-1"])', panel)
    .filter((node) => node.offsetParent !== null || node === document.activeElement);
  if (focusable.length === 0) return;
  const first = focusable[0];
  const last = focusable[focusable.length - 1];
  if (!panel.contains(document.activeElement)) {
    event.preventDefault();
    first.focus();
  } else if (event.shiftKey && (document.activeElement === first || document.activeElement === $('#context-title'))) {
    event.preventDefault();
    last.focus();
  } else if (!event.shiftKey && document.activeElement === last) {
    event.preventDefault();
    first.focus();
  }
}

function renderContext(body, data) {
  const post = data.post;
  data.before = Array.isArray(data.before) ? data.before : [];
  data.after = Array.isArray(data.after) ? data.after : [];
  const focusId = post.post;
  const section = (title, ...children) => h('section', { class: 'context-section' }, h('h3', { dir: 'auto' }, title), ...children);
  const channel = h('ol', { class: 'msgs channel-msgs', 'aria-label': 'Channel, oldest first' },
    h('li', { class: 'msg-group' }, h('ol', { id: 'context-before', class: 'msgs' }, data.before.map((hit) => contextMessage(hit, false)))),
    contextMessage(post, true),
    h('li', { class: 'msg-group' }, h('ol', { id: 'context-after', class: 'msgs' }, data.after.map((hit) => contextMessage(hit, false)))));
  const parts = [
    section(['Channel #', h('bdi', null, post.channel), `: ${count(data.before.length)} before, ${count(data.after.length)} after`],
      data.before.length ? null : h('p', { class: 'muted' }, 'Nothing before this message in your scope.'),
      channel),
  ];
  if (data.thread && data.thread.length) {
    parts.push(section(`Thread${data.thread_root ? ` of ${data.thread_root}` : ''} (${plural(data.thread.length, 'message')})`,
      h('ol', { id: 'context-thread', class: 'msgs' }, data.thread.map((hit) => contextMessage(hit, hit.post === focusId)))));
  }
  if (data.versions && data.versions.length > 1) {
    parts.push(section(`History: ${plural(data.versions.length, 'event')} about this post`, renderVersions(data.versions)));
  }
  fill(body, ...parts);
}

/** Every event about the post, side by side; text changes marked against the previous text. */
function renderVersions(versions) {
  const list = h('ol', { id: 'versions', class: 'versions', 'aria-label': 'Versions, oldest first' });
  let previousText = null;
  versions.forEach((event, index) => {
    const column = h('li', { class: 'version', dataset: { event: event.id } },
      h('div', { class: 'version-head' },
        h('span', { class: 'badge badge-kind' }, event.kind),
        h('span', { class: 'version-n muted' }, ` ${index + 1}/${versions.length}`),
        h('div', null, timeEl(event.at, 'hit-time')),
        h('div', { class: 'hit-user', dir: 'auto' }, event.user)));
    if (typeof event.text === 'string') {
      const box = h('div', { class: 'hit-text version-text', dir: 'auto' });
      if (previousText === null) append(box, event.text);
      else for (const [op, text] of diffWords(previousText, event.text)) append(box, op === '=' ? text : h(op === '+' ? 'ins' : 'del', null, text));
      append(column, box);
      previousText = event.text;
    } else if (event.kind === 'delete') {
      append(column, h('p', { class: 'system' }, 'The message was deleted. holdfast keeps every earlier version.'));
    } else {
      append(column, kindText(event, 'hit-text'));
    }
    append(column, fileList(event.files));
    append(list, column);
  });
  return tableWrap(list);
}

/** Word diff (LCS) of two texts: [['=', text] | ['-', text] | ['+', text]]. */
function diffWords(before, after) {
  const a = before.split(/(\s+)/).filter(Boolean);
  const b = after.split(/(\s+)/).filter(Boolean);
  if (a.length * b.length > 400000) return [['-', before], ['+', after]];
  const width = b.length + 1;
  const lcs = new Uint32Array((a.length + 1) * width);
  for (let i = a.length - 1; i >= 0; i -= 1) {
    for (let j = b.length - 1; j >= 0; j -= 1) {
      lcs[i * width + j] = a[i] === b[j] ? lcs[(i + 1) * width + j + 1] + 1 : Math.max(lcs[(i + 1) * width + j], lcs[i * width + j + 1]);
    }
  }
  const ops = [];
  const push = (op, text) => {
    const last = ops[ops.length - 1];
    if (last && last[0] === op) last[1] += text;
    else ops.push([op, text]);
  };
  let i = 0;
  let j = 0;
  while (i < a.length && j < b.length) {
    if (a[i] === b[j]) {
      push('=', a[i]);
      i += 1;
      j += 1;
    } else if (lcs[(i + 1) * width + j] >= lcs[i * width + j + 1]) {
      push('-', a[i]);
      i += 1;
    } else {
      push('+', b[j]);
      j += 1;
    }
  }
  while (i < a.length) push('-', a[i++]);
  while (j < b.length) push('+', b[j++]);
  return ops;
}

function closeContext(restoreFocus) {
  const panel = $('#context');
  state.contextSeq += 1;
  document.body.classList.remove('context-open');
  if (!panel || panel.hidden) return;
  panel.hidden = true;
  fill(panel);
  const layout = panel.closest('.search-layout');
  if (layout) layout.classList.remove('has-context');
  const opener = state.contextOpener;
  state.contextOpener = null;
  if (restoreFocus && opener && opener.isConnected) opener.focus();
}

// ------------------------------------------------------------ holds

function holdCriteriaList(criteria) {
  const channels = (criteria.channels || []).map((c) => `${c.team}/${c.channel}`);
  return details([
    ['Custodians', (criteria.custodians || []).join(', ')],
    ['Teams', (criteria.teams || []).join(', ')],
    ['Channels', channels.join(', ')],
    ['From', criteria.from],
    ['To', criteria.to],
    ['Query', criteria.query ? h('code', { dir: 'ltr' }, criteria.query) : null],
  ], 'facts criteria');
}

function statusBadge(status) {
  return h('span', { class: `status status-${token(status)}` }, status);
}

function viewHolds(root) {
  const filter = select('holds-status', [['active', 'Active'], ['released', 'Released'], ['all', 'All']], 'active');
  const newButton = h('button', { type: 'button', id: 'hold-new', class: 'btn-primary', 'aria-expanded': 'false', 'aria-controls': 'hold-form' }, 'New hold');
  const formSlot = h('div');
  const list = h('div', { class: 'list-area' });
  append(root,
    heading('Legal holds', h('div', { class: 'head-actions' }, newButton)),
    h('p', { class: 'muted' }, 'A hold keeps what it covers from deletion by any retention policy until it is released. Nothing is deleted when a hold is released.'),
    formSlot,
    h('div', { class: 'toolbar' }, field('Show', filter)),
    list);
  const openForm = (draft) => {
    if (!$('#hold-form', formSlot)) append(formSlot, holdForm(draft, () => {
      fill(formSlot);
      newButton.setAttribute('aria-expanded', 'false');
      newButton.focus();
    }));
    newButton.setAttribute('aria-expanded', 'true');
    $('#hold-name', formSlot).focus();
  };
  newButton.addEventListener('click', () => openForm(null));
  filter.addEventListener('change', () => loadHolds(list, filter.value));
  loadHolds(list, filter.value);
  if (state.holdDraft) {
    const draft = state.holdDraft;
    state.holdDraft = null;
    openForm(draft);
  }
}

async function loadHolds(list, status) {
  list.setAttribute('aria-busy', 'true');
  // Only the latest load fills the list (the filter changed twice quickly).
  const seq = String(Number(list.dataset.seq || 0) + 1);
  list.dataset.seq = seq;
  try {
    const data = await api('/holds', { params: { status } });
    if (list.dataset.seq !== seq) return;
    const table = h('table', { id: 'holds-list', class: 'data', 'aria-label': 'Legal holds' },
      h('thead', null, h('tr', null, ['Name', 'Matter', 'Status', 'Created by', 'Created'].map((t) => h('th', { scope: 'col' }, t)))),
      h('tbody', null, data.holds.map((hold) => {
        // The name is the link (Tab, Enter); a click anywhere on the row
        // opens the hold too.
        const row = h('tr', { dataset: { holdId: String(hold.id) }, class: 'clickable' },
          h('td', { dir: 'auto' }, h('a', { href: `#/holds/${enc(hold.id)}` }, hold.name)),
          h('td', { dir: 'auto' }, hold.matter),
          h('td', null, statusBadge(hold.status)),
          h('td', { dir: 'auto' }, hold.created_by),
          h('td', null, timeEl(hold.created_at)));
        row.addEventListener('click', (event) => {
          if (event.target.closest('a, button, input, select, textarea')) return;
          if (String(window.getSelection() || '')) return; // selecting text is not a click
          go(`#/holds/${enc(hold.id)}`);
        });
        return row;
      })));
    fill(list, tableWrap(table),
      data.holds.length ? null : h('p', { class: 'empty' }, status === 'all' ? 'No hold yet.' : `No ${status} hold.`));
  } catch (error) {
    if (list.dataset.seq !== seq || error instanceof SessionEnded) return;
    fill(list, errorBlock(error));
  } finally {
    if (list.dataset.seq === seq) list.removeAttribute('aria-busy');
  }
}

const HOLD_FIELD_INPUTS = {
  name: 'hold-name', matter: 'hold-matter', reason: 'hold-reason',
  'criteria.custodians': 'hold-custodians', 'criteria.teams': 'hold-teams', 'criteria.channels': 'hold-channels',
  'criteria.from': 'hold-from', 'criteria.to': 'hold-to', 'criteria.query': 'hold-query', criteria: 'hold-custodians',
};

function fieldInput(map, name, form) {
  if (!name) return null;
  const key = Object.keys(map).filter((k) => name === k || name.startsWith(`${k}.`) || name.startsWith(`${k}[`))
    .sort((x, y) => y.length - x.length)[0];
  return key ? $(`#${map[key]}`, form) : null;
}

function markInvalid(form, inputNode) {
  for (const node of $$('[aria-invalid]', form)) node.removeAttribute('aria-invalid');
  if (!inputNode) return;
  inputNode.setAttribute('aria-invalid', 'true');
  inputNode.focus();
}

function holdForm(draft, onClose) {
  loadFacets();
  const query = input('hold-query', { value: draft ? draft.query : '', dir: 'ltr' });
  const errorBox = h('div', { id: 'hold-error', role: 'alert', class: 'error-box' });
  const submit = h('button', { type: 'submit', id: 'hold-submit', class: 'btn-primary' }, 'Place the hold');
  const form = h('form', { id: 'hold-form', class: 'card', novalidate: true, 'aria-labelledby': 'hold-form-title' },
    h('h2', { id: 'hold-form-title' }, draft ? 'New hold on the search results' : 'New legal hold'),
    h('div', { class: 'grid-2' },
      field('Name', input('hold-name', { required: true }), 'Unique, e.g. "Acme v. Initech: trading desk".'),
      field('Matter', input('hold-matter', { required: true }), 'The case or matter reference.'),
      h('div', { class: 'field span-2' }, h('label', { for: 'hold-reason' }, 'Reason'),
        h('textarea', { id: 'hold-reason', name: 'hold-reason', rows: '2', required: true, autocomplete: 'off' }))),
    h('fieldset', null, h('legend', null, 'What the hold covers (at least one; all given must match)'),
      h('div', { class: 'grid-2' },
        field('Custodians', suggesting(input('hold-custodians'), 'people'), 'User names, comma separated.'),
        field('Teams', suggesting(input('hold-teams'), 'teams'), 'Comma separated.'),
        field('Channels', suggesting(input('hold-channels'), 'teamChannels'), 'team/channel, comma separated.'),
        h('div', { class: 'grid-2 inner' },
          field('From (UTC day)', input('hold-from', { type: 'date' })),
          field('To (UTC day, included)', input('hold-to', { type: 'date' }))),
        h('div', { class: 'span-2' }, field('Query', query, 'Search language; dates in it are UTC, and today/yesterday are refused in a hold.')))),
    errorBox,
    h('div', { class: 'actions' }, submit,
      h('button', { type: 'button', class: 'btn-quiet', onclick: onClose }, 'Cancel')));
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const value = (id) => $(`#${id}`, form).value.trim();
    const criteria = {
      custodians: splitList(value('hold-custodians')),
      teams: splitList(value('hold-teams')),
      channels: splitList(value('hold-channels')),
      from: value('hold-from') || null,
      to: value('hold-to') || null,
      query: value('hold-query') || null,
    };
    const body = { name: value('hold-name'), matter: value('hold-matter'), reason: value('hold-reason'), criteria };
    fill(errorBox);
    submit.disabled = true;
    try {
      const hold = await api('/holds', { method: 'POST', body });
      state.flash = `Hold “${hold.name}” is in force.`;
      go(`#/holds/${enc(hold.id)}`);
    } catch (error) {
      renderError(errorBox, error, { query: criteria.query || '' });
      const target = error instanceof ApiError && (error.code === 'bad_query' ? $('#hold-query', form) : fieldInput(HOLD_FIELD_INPUTS, error.field, form));
      markInvalid(form, target || null);
      if (target && error.code === 'bad_query' && typeof error.position === 'number') {
        const at = byteToIndex(criteria.query, error.position) + (query.value.length - query.value.trimStart().length);
        query.setSelectionRange(at, at);
      }
      submit.disabled = false;
    }
  });
  return form;
}

async function viewHoldDetail(root, id) {
  const back = h('p', { class: 'crumbs' }, h('a', { href: '#/holds' }, '← Legal holds'));
  const section = h('section', { id: 'hold-detail', 'aria-busy': 'true' }, h('h1', { tabindex: '-1' }, `Hold ${id}`), h('p', { class: 'muted' }, 'Loading…'));
  append(root, back, section);
  let hold;
  try {
    hold = await api(`/holds/${segment(id)}`);
  } catch (error) {
    if (error instanceof SessionEnded) return;
    const focusTitle = section.contains(document.activeElement);
    fill(section, h('h1', { tabindex: '-1' }, `Hold ${id}`), errorBlock(error));
    section.removeAttribute('aria-busy');
    if (focusTitle) $('h1', section).focus();
    return;
  }
  if (!section.isConnected) return;
  // The heading shown while loading had the focus after the navigation:
  // give it to the new one.
  const focusTitle = section.contains(document.activeElement) || document.activeElement === document.body;
  section.removeAttribute('aria-busy');
  const held = hold.held;
  const counts = held
    ? h('dl', { class: 'hold-counts stats' }, [
      ['Events held', held.events], ['Matching the criteria', held.matching_events], ['Posts', held.posts],
      ['Custodians', held.custodians], ['Channels', held.channels],
    ].map(([label, n]) => h('div', null, h('dt', null, label), h('dd', null, count(n)))))
    : null;
  const errorBox = h('div', { class: 'error-box', role: 'alert', id: 'hold-release-error' });
  const exportButton = state.screens.has('exports') && hold.status === 'active'
    ? h('button', { type: 'button', id: 'export-from-hold', class: 'btn-secondary', onclick: () => {
      state.exportDraft = { type: 'hold', hold: String(hold.id), name: hold.name };
      go('#/exports');
    } }, 'Export what this hold keeps')
    : null;
  fill(section,
    h('div', { class: 'screen-head' }, h('h1', { tabindex: '-1', dir: 'auto' }, hold.name), statusBadge(hold.status), h('div', { class: 'head-actions' }, exportButton)),
    details([
      ['Hold id', String(hold.id)], ['Matter', hold.matter], ['Reason', hold.reason], ['Scope', hold.scope],
      ['Created by', hold.created_by], ['Created', timeEl(hold.created_at)],
      ['Released by', hold.released_by], ['Released', hold.released_at ? timeEl(hold.released_at) : null],
      ['Release reason', hold.release_reason],
    ]),
    h('h2', null, 'Criteria'), holdCriteriaList(hold.criteria),
    h('h2', null, 'What it keeps now'), counts || h('p', { class: 'muted' }, 'Counts are not available.'));
  if (focusTitle) $('h1', section).focus();
  if (hold.status === 'active') {
    const reason = input('hold-release-reason', { required: true });
    const release = h('button', { type: 'submit', id: 'hold-release', class: 'btn-danger' }, 'Release the hold');
    const form = h('form', { class: 'card release', id: 'hold-release-form', novalidate: true },
      h('h2', null, 'Release'),
      h('p', { class: 'muted' }, 'Releasing ends the protection: retention policies may then delete what only this hold kept. Nothing is deleted now.'),
      field('Reason for the release', reason, 'Recorded with the hold and in the audit trail.'),
      errorBox, h('div', { class: 'actions' }, release));
    form.addEventListener('submit', async (event) => {
      event.preventDefault();
      fill(errorBox);
      if (!reason.value.trim()) {
        append(errorBox, h('p', { class: 'error-message' }, 'Give the reason for the release.'));
        reason.setAttribute('aria-invalid', 'true');
        reason.focus();
        return;
      }
      release.disabled = true;
      try {
        await api(`/holds/${segment(hold.id)}/release`, { method: 'POST', body: { reason: reason.value.trim() } });
        state.flash = `Hold “${hold.name}” is released.`;
        route();
      } catch (error) {
        renderError(errorBox, error);
        release.disabled = false;
      }
    });
    append(section, form);
  }
}

// ------------------------------------------------------------ exports

const EXPORT_FIELD_INPUTS = {
  'source.query': 'export-query', 'source.hold': 'export-hold', source: 'export-from', 'source.from': 'export-from',
  'source.to': 'export-to', 'source.teams': 'export-teams', 'source.channels': 'export-channels',
  'source.custodians': 'export-custodians', matter: 'export-matter', bates: 'export-bates-prefix',
  'bates.prefix': 'export-bates-prefix', 'bates.start': 'export-bates-start', 'bates.digits': 'export-bates-digits',
  formats: 'export-format-csv',
};

function describeSource(source) {
  if (!source) return '';
  if (source.type === 'query') return `query ${source.query}`;
  if (source.type === 'hold') return `legal hold ${source.hold}`;
  const parts = [];
  if (source.from || source.to) parts.push(`${source.from || '…'} to ${source.to || '…'}`);
  if (source.custodians && source.custodians.length) parts.push(`custodians ${source.custodians.join(', ')}`);
  if (source.teams && source.teams.length) parts.push(`teams ${source.teams.join(', ')}`);
  if (source.channels && source.channels.length) parts.push(`channels ${source.channels.map((c) => `${c.team}/${c.channel}`).join(', ')}`);
  return parts.join('; ');
}

function viewExports(root) {
  const draft = state.exportDraft;
  state.exportDraft = null;
  const list = h('div', { class: 'list-area' });
  const started = () => loadExports(list).then(() => list.scrollIntoView({ block: 'nearest', behavior: 'smooth' }));
  append(root, heading('Exports'), exportForm(draft, started),
    h('h2', null, 'Past exports'), list);
  loadExports(list);
  if (draft) $('#export-submit', root).scrollIntoView({ block: 'nearest' });
}

function exportForm(draft, onStarted) {
  const canHold = state.screens.has('holds');
  const types = [['query', 'Search query'], ...(canHold ? [['hold', 'Legal hold']] : []), ['criteria', 'Time range, people, channels']];
  const type = select('export-source-type', types, draft ? draft.type : 'criteria');
  const source = h('div', { id: 'export-source', class: 'source' });
  const errorBox = h('div', { id: 'export-error', role: 'alert', class: 'error-box' });
  const submit = h('button', { type: 'submit', id: 'export-submit', class: 'btn-primary' }, 'Start the export');
  const formats = h('fieldset', { class: 'formats' }, h('legend', null, 'Formats'),
    FORMATS.map(([value, label, hint]) => h('div', { class: 'check' },
      h('input', { type: 'checkbox', name: 'format', value, id: `export-format-${value}` }),
      h('label', { for: `export-format-${value}` }, h('strong', null, label), h('span', { class: 'muted' }, ` ${hint}`)))));
  const bates = h('details', { class: 'bates' }, h('summary', null, 'Bates numbering (PDF transcript)'),
    h('div', { class: 'grid-3' },
      field('Prefix', input('export-bates-prefix', { placeholder: 'ACME' }), 'Letters, digits, - _ .; empty: no Bates numbers.'),
      field('First number', input('export-bates-start', { type: 'number', min: '0', value: '1' })),
      field('Digits', input('export-bates-digits', { type: 'number', min: '1', max: '12', value: '6' }))));
  const form = h('form', { id: 'export-form', class: 'card', novalidate: true, 'aria-labelledby': 'export-form-title' },
    h('h2', { id: 'export-form-title' }, 'New export'),
    h('div', { class: 'export-grid' },
      h('fieldset', null, h('legend', null, 'What to export'), field('Source', type), source),
      h('div', null, formats, field('Matter', input('export-matter'), 'Printed on the cover page and in the manifest.'), bates)),
    errorBox, h('div', { class: 'actions' }, submit));
  const fillSource = () => renderExportSource(source, type.value, draft);
  type.addEventListener('change', fillSource);
  fillSource();
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    fill(errorBox);
    markInvalid(form, null);
    let body;
    try {
      body = exportBody(form, type.value);
    } catch (problem) {
      append(errorBox, h('p', { class: 'error-message' }, problem.message));
      markInvalid(form, problem.input ? $(`#${problem.input}`, form) : null);
      return;
    }
    submit.disabled = true;
    try {
      const started = await api('/exports', { method: 'POST', body });
      if (!form.isConnected) return;
      notify(`Export ${started.id} started. It appears below; it can be downloaded once done.`);
      onStarted();
    } catch (error) {
      if (error instanceof SessionEnded || !form.isConnected) return;
      const query = body.source.type === 'query' ? body.source.query : undefined;
      renderError(errorBox, error, { query });
      const target = error instanceof ApiError ? fieldInput(EXPORT_FIELD_INPUTS, error.field, form) : null;
      markInvalid(form, target);
      if (target && target.id === 'export-query' && error.code === 'bad_query' && typeof error.position === 'number') {
        const at = byteToIndex(query, error.position) + (target.value.length - target.value.trimStart().length);
        target.setSelectionRange(at, at);
      }
    } finally {
      submit.disabled = false;
    }
  });
  return form;
}

function renderExportSource(source, type, draft) {
  const fromDraft = draft && draft.type === type ? draft : null;
  if (type === 'query') {
    const query = input('export-query', { value: fromDraft ? fromDraft.query : '', dir: 'ltr' });
    const summary = h('p', { class: 'source-summary' });
    const describe = () => fill(summary, 'Every event the query matches, with every version, reaction and attachment of the matched posts: ',
      h('code', null, query.value || '…'));
    query.addEventListener('input', describe);
    describe();
    fill(source, summary, field('Query', query, fromDraft ? 'From your search. Dates are read in UTC.' : 'Search language; dates are read in UTC.'));
  } else if (type === 'hold') {
    const holdSelect = h('select', { id: 'export-hold', name: 'export-hold' },
      fromDraft ? h('option', { value: fromDraft.hold, selected: true }, `${fromDraft.name || 'hold'} (#${fromDraft.hold})`) : h('option', { value: '' }, 'Choose a hold…'));
    const summary = h('p', { class: 'source-summary' }, fromDraft
      ? `Everything legal hold “${fromDraft.name || fromDraft.hold}” (#${fromDraft.hold}) keeps now.`
      : 'Everything the chosen legal hold keeps now.');
    fill(source, summary, field('Legal hold', holdSelect));
    // Only an active hold can be exported (a released one holds nothing).
    api('/holds', { params: { status: 'active' } }).then((data) => {
      if (!holdSelect.isConnected) return;
      for (const hold of data.holds) {
        if (fromDraft && String(hold.id) === fromDraft.hold) continue;
        append(holdSelect, h('option', { value: String(hold.id) }, `${hold.name} (#${hold.id})`));
      }
    }).catch((error) => {
      if (holdSelect.isConnected) showError(error);
    });
  } else {
    fill(source,
      h('p', { class: 'source-summary' }, 'Every event in the time range, limited to the people, teams and channels given.'),
      h('div', { class: 'grid-2' },
        field('From (UTC day)', input('export-from', { type: 'date' })),
        field('To (UTC day, included)', input('export-to', { type: 'date' })),
        field('Custodians', suggesting(input('export-custodians'), 'people'), 'User names, comma separated.'),
        field('Teams', suggesting(input('export-teams'), 'teams'), 'Comma separated.'),
        field('Channels', suggesting(input('export-channels'), 'teamChannels'), 'team/channel, comma separated.')));
    loadFacets();
  }
}

function problem(message, inputId) {
  const error = new Error(message);
  error.input = inputId;
  return error;
}

/** The export request (src/export/job.rs ExportRequest) from the form. */
function exportBody(form, type) {
  const value = (id) => ($(`#${id}`, form) ? $(`#${id}`, form).value.trim() : '');
  let source;
  if (type === 'query') {
    if (!value('export-query')) throw problem('Enter the query to export.', 'export-query');
    source = { type: 'query', query: value('export-query') };
  } else if (type === 'hold') {
    if (!value('export-hold')) throw problem('Choose the legal hold to export.', 'export-hold');
    source = { type: 'hold', hold: value('export-hold') };
  } else {
    const channels = splitList(value('export-channels')).map((text) => {
      const cut = text.indexOf('/');
      if (cut <= 0 || cut === text.length - 1) throw problem(`Write channels as team/channel: "${text}" is not.`, 'export-channels');
      return { team: text.slice(0, cut), channel: text.slice(cut + 1) };
    });
    if (!value('export-from') && !value('export-to')) throw problem('A time range export needs a start or an end day (or both).', 'export-from');
    source = { type: 'criteria', custodians: splitList(value('export-custodians')), teams: splitList(value('export-teams')), channels };
    if (value('export-from')) source.from = value('export-from');
    if (value('export-to')) source.to = value('export-to');
  }
  const formats = $$('input[name="format"]:checked', form).map((box) => box.value);
  if (formats.length === 0) throw problem('Choose at least one format.', 'export-format-csv');
  const body = { source, formats, matter: value('export-matter') };
  if (value('export-bates-prefix')) {
    if (!formats.includes('pdf')) throw problem('Bates numbers are printed on the PDF transcript: add the PDF format.', 'export-format-pdf');
    body.bates = {
      prefix: value('export-bates-prefix'),
      start: Number(value('export-bates-start') || 1),
      digits: Number(value('export-bates-digits') || 6),
    };
  }
  return body;
}

async function loadExports(list) {
  list.setAttribute('aria-busy', 'true');
  const seq = String(Number(list.dataset.seq || 0) + 1);
  list.dataset.seq = seq;
  try {
    const data = await api('/exports', { params: { limit: 100 } });
    if (list.dataset.seq !== seq || !list.isConnected) return;
    const table = h('table', { id: 'exports-list', class: 'data', 'aria-label': 'Exports, newest first' },
      h('thead', null, h('tr', null, ['Export', 'Started', 'By', 'Source', 'Formats', 'Status', 'Events', ''].map((t) => h('th', { scope: 'col' }, t)))),
      h('tbody', null, data.exports.map(exportRow)));
    fill(list, tableWrap(table), data.exports.length ? null : h('p', { class: 'empty' }, 'No export yet.'));
    pollExports(list);
  } catch (error) {
    if (list.dataset.seq !== seq || error instanceof SessionEnded) return;
    fill(list, errorBlock(error));
  } finally {
    if (list.dataset.seq === seq) list.removeAttribute('aria-busy');
  }
}

function exportStatus(exp) {
  const cell = h('span', { class: 'export-status-cell' }, h('span', { class: `export-status status status-${token(exp.status)}` }, exp.status));
  if (exp.status === 'running' && exp.progress) {
    const stage = exp.progress.stage || '';
    const total = Number.isFinite(exp.progress.total) ? exp.progress.total : 0;
    const exported = Number.isFinite(exp.progress.exported) ? exp.progress.exported : 0;
    const max = Math.max(total, 1);
    const bar = h('progress', { class: 'export-progress', max: String(max), value: String(Math.min(Math.max(exported, 0), max)), 'aria-label': `Progress of ${exp.id}` });
    append(cell, bar, h('span', { class: 'muted progress-text' }, ` ${stage}${total ? ` ${count(exported)} / ${count(total)}` : ''}`));
  } else if (exp.status === 'running') {
    append(cell, h('progress', { class: 'export-progress', 'aria-label': `Progress of ${exp.id}` }));
  }
  if (exp.error) append(cell, h('span', { class: 'error-inline' }, ` ${exp.error}`));
  return cell;
}

function exportActions(exp, onChange) {
  const cell = [];
  if (exp.status === 'done') {
    cell.push(h('a', { class: 'export-download btn-secondary', href: `${API}/exports/${enc(exp.id)}/download`, download: `${exp.id}.zip`, 'aria-label': `Download export ${exp.id}` }, 'Download'));
  }
  if (exp.status === 'running') {
    cell.push(h('button', { type: 'button', class: 'export-cancel btn-quiet', 'aria-label': `Cancel export ${exp.id}`, onclick: async (event) => {
      const button = event.currentTarget;
      if (button.disabled) return;
      button.disabled = true;
      try {
        await api(`/exports/${segment(exp.id)}/cancel`, { method: 'POST', body: {} });
        notify(`Export ${exp.id} is being cancelled.`);
      } catch (error) {
        if (error instanceof SessionEnded) return;
        showError(error);
        button.disabled = false;
      }
      onChange();
    } }, 'Cancel'));
  }
  return cell;
}

function exportRow(exp) {
  const request = exp.request || {};
  const row = h('tr', { dataset: { exportId: exp.id } });
  const refresh = () => refreshExportRow(row, exp.id);
  append(row,
    h('td', null, h('a', { href: `#/exports/${enc(exp.id)}` }, exp.id)),
    h('td', null, timeEl(exp.created_at_ms)),
    h('td', { dir: 'auto' }, exp.requested_by),
    h('td', { class: 'source-cell', dir: 'auto' }, describeSource(request.source), request.matter ? h('div', { class: 'muted' }, 'matter: ', h('bdi', null, request.matter)) : null),
    h('td', null, (request.formats || []).join(', ')),
    h('td', { class: 'status-cell' }, exportStatus(exp)),
    h('td', { class: 'num' }, count(exp.events), exp.warnings ? h('div', { class: 'warn-text' }, plural(exp.warnings, 'warning')) : null),
    h('td', { class: 'actions-cell' }, exportActions(exp, refresh)));
  return row;
}

/** Re-reads one export and redraws its row; false when that failed. */
async function refreshExportRow(row, id) {
  try {
    const exp = await api(`/exports/${segment(id)}`);
    if (!row.isConnected) return true;
    const focused = row.contains(document.activeElement) ? document.activeElement : null;
    const next = exportRow(exp);
    row.replaceWith(next);
    if (focused) {
      // Keep the focus on the same control, or the next best in the row.
      const same = focused.classList.contains('export-download') || focused.classList.contains('export-cancel')
        ? $('.export-download, .export-cancel', next)
        : $('a', next);
      (same || $('a', next)).focus();
    }
    return true;
  } catch (error) {
    if (!(error instanceof SessionEnded) && row.isConnected) showError(error);
    return false;
  }
}

/**
 * While any export is running, refreshes the running ones every second.
 * One chain of timers at a time: a new one (the list reloaded) or
 * stopPolling() (navigation, sign-out) ends the old one, even in the middle
 * of a tick.
 */
function pollExports(list) {
  stopPolling();
  const gen = state.pollGen;
  const tick = async () => {
    if (gen !== state.pollGen || !list.isConnected) return;
    const running = $$('#exports-list tr[data-export-id]', list).filter((row) => $('.status-running', row));
    if (running.length === 0) return;
    const results = await Promise.all(running.map((row) => refreshExportRow(row, row.dataset.exportId)));
    if (gen !== state.pollGen || !list.isConnected) return;
    if (results.every((ok) => !ok)) return; // the server refuses or is gone: stop, the error is shown
    state.pollTimer = setTimeout(tick, 1000);
  };
  state.pollTimer = setTimeout(tick, 1000);
}

function stopPolling() {
  clearTimeout(state.pollTimer);
  state.pollTimer = 0;
  state.pollGen += 1;
}

async function viewExportDetail(root, id) {
  const section = h('section', { id: 'export-detail', 'aria-busy': 'true' }, h('h1', { tabindex: '-1' }, `Export ${id}`));
  append(root, h('p', { class: 'crumbs' }, h('a', { href: '#/exports' }, '← Exports')), section);
  // One load at a time drives the polling: a newer load (the Cancel button,
  // the next tick) makes an older one's answer moot.
  let latest = 0;
  const load = async () => {
    const seq = ++latest;
    stopPolling();
    const gen = state.pollGen;
    let exp;
    try {
      exp = await api(`/exports/${segment(id)}`);
    } catch (error) {
      if (error instanceof SessionEnded || seq !== latest || !section.isConnected) return;
      const focusTitle = section.contains(document.activeElement);
      fill(section, h('h1', { tabindex: '-1' }, `Export ${id}`), errorBlock(error));
      if (focusTitle) $('h1', section).focus();
      return;
    } finally {
      if (seq === latest) section.removeAttribute('aria-busy');
    }
    if (seq !== latest || gen !== state.pollGen || !section.isConnected) return;
    renderExportDetail(section, exp, load);
    if (exp.status === 'running') state.pollTimer = setTimeout(load, 1000);
  };
  await load();
}

function renderExportDetail(section, exp, reload) {
  const request = exp.request || {};
  const focused = section.contains(document.activeElement) ? document.activeElement : null;
  const manifest = exp.manifest;
  fill(section,
    h('div', { class: 'screen-head' }, h('h1', { tabindex: '-1' }, `Export ${exp.id}`),
      h('div', { class: 'head-actions' }, exportActions(exp, reload))),
    h('p', { class: 'status-line' }, exportStatus(exp)),
    details([
      ['Source', describeSource(request.source)],
      ['Formats', (request.formats || []).join(', ')],
      ['Matter', request.matter],
      ['Bates', request.bates ? `${request.bates.prefix} from ${request.bates.start ?? 1}, ${request.bates.digits ?? 6} digits` : null],
      ['Requested by', exp.requested_by],
      ['Schedule', exp.schedule],
      ['Started', timeEl(exp.created_at_ms)],
      ['Finished', exp.finished_at_ms ? timeEl(exp.finished_at_ms) : null],
      ['Events exported', count(exp.events)],
      ['Warnings', exp.warnings ? `${plural(exp.warnings, 'warning')} (listed in warnings.jsonl in the package)` : 'none'],
      ['Archive sequence range', exp.seq_from !== null && exp.seq_from !== undefined ? `${exp.seq_from} – ${exp.seq_to}` : null],
      ['Manifest SHA-256', exp.manifest_sha256 ? h('code', { class: 'hash' }, exp.manifest_sha256) : null],
      ['Error', exp.error],
    ]),
    exp.deliveries && exp.deliveries.length
      ? h('div', null, h('h2', null, 'Deliveries'), h('pre', { class: 'json', tabindex: '0' }, JSON.stringify(exp.deliveries, null, 2)))
      : null,
    h('h2', null, 'Manifest'),
    manifest
      ? h('pre', { id: 'export-manifest', class: 'json', tabindex: '0', 'aria-label': 'Manifest JSON' }, JSON.stringify(manifest, null, 2))
      : h('p', { class: 'muted' }, exp.status === 'running' ? 'The manifest is written when the export is sealed.' : 'This export has no manifest.'));
  if (focused) {
    // Polling redraws the page every second: keep the focus where it was
    // (the Cancel button becomes Download when the export is done).
    const same = focused.id ? $(`#${CSS.escape(focused.id)}`, section)
      : focused.matches('.export-cancel, .export-download') ? $('.export-cancel, .export-download', section) : null;
    (same || $('h1', section)).focus();
  }
}

// ------------------------------------------------------------ retention

function viewRetention(root) {
  const policies = h('section', { id: 'retention-policies', 'aria-labelledby': 'retention-policies-title' },
    h('h2', { id: 'retention-policies-title' }, 'Policies in force'), h('p', { class: 'muted' }, 'Loading…'));
  const runsArea = h('div', { class: 'list-area' }, h('p', { class: 'muted' }, 'Loading…'));
  const runDetail = h('div', { id: 'retention-run', 'aria-live': 'polite' });
  const asOf = input('retention-plan-as-of', { type: 'date', value: todayUtc() });
  const planArea = h('div', { id: 'retention-plan-area', 'aria-live': 'polite' });
  const planForm = h('form', { id: 'retention-plan-form', class: 'card', novalidate: true },
    h('h2', null, 'Dry run'),
    h('p', { class: 'muted' }, 'What a retention run on that day would delete and what legal holds would keep. Nothing is changed.'),
    h('div', { class: 'inline-form' }, field('As of (UTC day)', asOf),
      h('button', { type: 'submit', id: 'retention-plan-run', class: 'btn-primary' }, 'Plan')),
    planArea);
  append(root, heading('Retention'), policies, planForm,
    h('section', { 'aria-labelledby': 'retention-runs-title' }, h('h2', { id: 'retention-runs-title' }, 'Runs'), runsArea, runDetail));
  planForm.addEventListener('submit', (event) => {
    event.preventDefault();
    loadPlan(planArea, asOf.value);
  });
  loadPolicies(policies);
  loadRuns(runsArea, runDetail);
}

async function loadPolicies(section) {
  const title = $('h2', section);
  try {
    const data = await api('/retention/policies');
    const table = h('table', { class: 'data', 'aria-label': 'Retention policies' },
      h('thead', null, h('tr', null, ['Policy', 'Applies to', 'Kinds', 'Delete after', 'Kept at least', 'Defined in'].map((t) => h('th', { scope: 'col' }, t)))),
      h('tbody', null, (data.policies || []).map((policy) => h('tr', null,
        h('td', null, policy.name),
        h('td', { dir: 'auto' }, policy.channel ? `channel ${policy.team}/${policy.channel}` : policy.team ? `team ${policy.team}` : 'everything'),
        h('td', null, Array.isArray(policy.kinds) && policy.kinds.length ? policy.kinds.join(', ') : 'all kinds'),
        h('td', null, typeof policy.keep_days === 'number' ? plural(policy.keep_days, 'day') : 'never'),
        h('td', null, policy.min_keep_days ? plural(policy.min_keep_days, 'day') : '–'),
        h('td', null, policy.source ? h('code', null, policy.line ? `${policy.source}:${policy.line}` : policy.source) : '–')))));
    fill(section, title, data.digest ? h('p', { class: 'muted' }, 'Digest of the policy set: ', h('code', { class: 'hash' }, data.digest)) : null,
      tableWrap(table), (data.policies || []).length ? null : h('p', { class: 'empty' }, 'No policy: nothing is ever deleted.'));
  } catch (error) {
    fill(section, title, errorBlock(error));
  }
}

async function loadRuns(area, detail) {
  try {
    const data = await api('/retention/runs', { params: { limit: 50 } });
    const table = h('table', { id: 'retention-runs', class: 'data', 'aria-label': 'Retention runs, newest first' },
      h('thead', null, h('tr', null, ['Run', 'Started', 'Finished', 'As of', 'By', 'Trigger', 'Status', 'Stage'].map((t) => h('th', { scope: 'col' }, t)))),
      h('tbody', null, (data.runs || []).map((run) => {
        const open = h('button', { type: 'button', class: 'btn-link open-run' }, `Run ${run.run_id}`);
        const row = h('tr', { dataset: { runId: String(run.run_id) }, class: 'clickable' },
          h('td', null, open), h('td', null, timeEl(run.started_at_ms)), h('td', null, timeEl(run.finished_at_ms)),
          h('td', null, run.as_of), h('td', { dir: 'auto' }, run.started_by), h('td', null, run.trigger),
          h('td', null, statusBadge(run.status)), h('td', null, run.stage));
        row.addEventListener('click', (event) => {
          if (event.target !== open && String(window.getSelection() || '')) return; // selecting text is not a click
          showRun(detail, run.run_id, row, open);
        });
        return row;
      })));
    fill(area, tableWrap(table), (data.runs || []).length ? null : h('p', { class: 'empty' }, 'No run yet.'));
  } catch (error) {
    fill(area, errorBlock(error));
  }
}

async function showRun(detail, runId, row, button) {
  for (const other of $$('#retention-runs tr.selected')) other.classList.remove('selected');
  for (const other of $$('#retention-runs button[aria-pressed]')) other.setAttribute('aria-pressed', 'false');
  row.classList.add('selected');
  button.setAttribute('aria-pressed', 'true');
  fill(detail, h('p', { class: 'muted' }, 'Loading…'));
  const seq = String(Number(detail.dataset.seq || 0) + 1);
  detail.dataset.seq = seq;
  try {
    const run = await api(`/retention/runs/${segment(runId)}`);
    if (detail.dataset.seq !== seq || !detail.isConnected) return;
    const heading2 = h('h3', { tabindex: '-1' }, `Run ${run.run_id}`);
    fill(detail, h('div', { class: 'card' }, heading2,
      details([['Status', run.status], ['Stage', run.stage], ['As of', run.as_of], ['Started by', run.started_by], ['Trigger', run.trigger]]),
      h('h4', null, 'Certificate'),
      h('pre', { id: 'retention-certificate', class: 'json', tabindex: '0', 'aria-label': 'Certificate JSON' },
        run.certificate ? JSON.stringify(run.certificate, null, 2) : 'No certificate: the run did not finish.')));
    heading2.focus();
  } catch (error) {
    if (detail.dataset.seq !== seq || error instanceof SessionEnded) return;
    fill(detail, errorBlock(error));
  }
}

async function loadPlan(area, asOf) {
  fill(area, h('p', { class: 'muted' }, 'Planning…'));
  const seq = String(Number(area.dataset.seq || 0) + 1);
  area.dataset.seq = seq;
  try {
    const plan = await api('/retention/plan', { params: { as_of: asOf } });
    if (area.dataset.seq !== seq || !area.isConnected) return;
    const row = (label, value, cls) => h('tr', { class: cls }, h('th', { scope: 'row' }, label), h('td', { class: 'num' }, value));
    const group = (label) => h('tr', { class: 'group' }, h('th', { scope: 'rowgroup', colspan: '2' }, label));
    const table = h('table', { id: 'retention-plan', class: 'data plan', 'aria-label': `Retention plan as of ${plan.as_of}` },
      h('caption', null, `As of ${plan.as_of}`),
      h('tbody', null,
        row('Events to delete', count(plan.events_to_delete), 'strong'),
        row('Events kept by legal holds', count(plan.events_kept_by_holds)),
        row('Events re-encrypted first (carried)', count(plan.events_to_carry)),
        row('Key epochs to destroy', count(plan.epochs_to_destroy)),
        row('Policy set digest', h('code', { class: 'hash' }, plan.policies_digest))),
      plan.by_policy && plan.by_policy.length
        ? h('tbody', null, group('Deleted by policy'), plan.by_policy.map((p) => row(p.policy, count(p.events))))
        : null,
      plan.kept_by_holds && plan.kept_by_holds.length
        ? h('tbody', null, group('Kept by hold'), plan.kept_by_holds.map((k) => row(`${k.name} (#${k.hold_id}, ${k.matter})`, count(k.events))))
        : null);
    const floors = (plan.lowered_floors || []).map((f) => h('li', null,
      `${f.scope_key} ${f.kind}: floor lowered from ${plural(f.old_days, 'day')} (${f.old_policy}) to ${plural(f.new_days, 'day')}${f.new_policy ? ` (${f.new_policy})` : ''}`));
    fill(area, tableWrap(table),
      plan.refused ? h('p', { class: 'notice-box warn' }, 'A run would be refused: the policy set lowers a retention floor.') : null,
      floors.length ? h('ul', { class: 'floors' }, floors) : null);
  } catch (error) {
    if (area.dataset.seq !== seq || error instanceof SessionEnded) return;
    fill(area, errorBlock(error));
  }
}

// ------------------------------------------------------------ audit

function auditFilters(form) {
  const value = (id) => $(`#${id}`, form).value.trim();
  return {
    user: value('audit-user'), action: value('audit-action'), outcome: value('audit-outcome'),
    since: value('audit-since'), until: value('audit-until'), order: value('audit-order'),
  };
}

function viewAudit(root) {
  const form = h('form', { id: 'audit-form', class: 'card filters-form', novalidate: true },
    h('div', { class: 'filters' },
      field('User', input('audit-user')),
      field('Action', select('audit-action', [['', 'Any action'], ...AUDIT_ACTIONS])),
      field('Outcome', select('audit-outcome', [['', 'Any outcome'], ...AUDIT_OUTCOMES])),
      field('Since (UTC day, included)', input('audit-since', { type: 'date' })),
      field('Until (UTC day, excluded)', input('audit-until', { type: 'date' })),
      field('Order', select('audit-order', [['newest', 'Newest first'], ['oldest', 'Oldest first']], 'newest'))),
    h('div', { class: 'actions' },
      h('button', { type: 'submit', id: 'audit-submit', class: 'btn-primary' }, 'Show records'),
      h('a', { id: 'audit-export', class: 'btn-secondary', href: `${API}/audit?format=csv`, download: 'holdfast-audit.csv' }, 'Export CSV')));
  const errorBox = h('div', { id: 'audit-error', role: 'alert', class: 'error-box' });
  const status = h('p', { class: 'muted', role: 'status', id: 'audit-count' });
  const tbody = h('tbody');
  const table = h('table', { id: 'audit-records', class: 'data audit', 'aria-label': 'Audit records' },
    h('thead', null, h('tr', null, ['#', 'Time', 'Actor', 'Role', 'Action', 'Outcome', 'Parameters', 'Detail'].map((t) => h('th', { scope: 'col' }, t)))),
    tbody);
  const more = h('button', { type: 'button', id: 'audit-more', class: 'btn-secondary', hidden: true }, 'More records');
  append(root, heading('Audit trail'),
    h('p', { class: 'muted' }, 'Every request to the archive, in a tamper-evident chain. Reading it is itself recorded.'),
    form, errorBox, status, tableWrap(table), h('div', { class: 'actions' }, more));
  let cursor = null;
  let filters = auditFilters(form);
  // Only the latest request's answer is shown: new filters while "More
  // records" is loading must not append the old selection to the new one.
  let latest = 0;
  const load = async (next) => {
    const seq = ++latest;
    fill(errorBox);
    more.disabled = true;
    if (!next) status.textContent = 'Loading…';
    try {
      const data = await api('/audit', { params: { ...filters, cursor: next ? cursor : undefined, limit: 100 } });
      if (seq !== latest || !tbody.isConnected) return;
      if (!next) fill(tbody);
      for (const record of data.records || []) append(tbody, auditRow(record));
      cursor = data.next_cursor ?? null;
      more.hidden = cursor === null;
      const shown = tbody.rows.length;
      status.textContent = shown === 0
        ? 'No record matches these filters.'
        : `${plural(shown, 'record')} shown${cursor === null ? '' : ', more available'}.`;
    } catch (error) {
      if (seq !== latest || error instanceof SessionEnded) return;
      if (!next) {
        fill(tbody);
        more.hidden = true;
        status.textContent = '';
      }
      renderError(errorBox, error);
    } finally {
      if (seq === latest) more.disabled = false;
    }
  };
  const exportLink = () => {
    const params = new URLSearchParams({ format: 'csv' });
    for (const [key, value] of Object.entries(filters)) if (value) params.set(key, value);
    $('#audit-export', form).href = `${API}/audit?${params}`;
  };
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    filters = auditFilters(form);
    exportLink();
    load(false);
  });
  more.addEventListener('click', () => load(true));
  exportLink();
  load(false);
}

function paramsSummary(params) {
  if (params === null || params === undefined) return '–';
  if (typeof params !== 'object') return truncate(String(params), 200);
  const parts = [];
  if (params.method && params.path) parts.push(`${params.method} ${params.path}${params.status ? ` → ${params.status}` : ''}`);
  for (const [key, value] of Object.entries(params)) {
    if (['method', 'path', 'status', 'query_string'].includes(key)) continue;
    const text = typeof value === 'string' ? value : JSON.stringify(value) ?? String(value);
    parts.push(`${key}: ${truncate(text, 80)}`);
  }
  return parts.join(' · ') || '(none)';
}

function auditRow(record) {
  return h('tr', { dataset: { seq: String(record.seq) } },
    h('td', { class: 'num' }, String(record.seq)),
    h('td', null, timeEl(record.at)),
    h('td', { dir: 'auto' }, record.actor, record.client ? h('div', { class: 'muted' }, record.client) : null),
    h('td', null, record.role || '–'),
    h('td', null, h('code', null, record.action)),
    h('td', null, h('span', { class: `outcome outcome-${token(record.outcome)}` }, record.outcome)),
    h('td', { class: 'params' }, h('details', null, h('summary', null, paramsSummary(record.params)),
      h('pre', { class: 'json', tabindex: '0' }, JSON.stringify(record.params, null, 2)))),
    h('td', { dir: 'auto' }, record.detail || ''));
}

// ------------------------------------------------------------ global wiring

function closeNavMenu() {
  document.body.classList.remove('nav-open');
  $('#nav-toggle').setAttribute('aria-expanded', 'false');
}

function isTyping(target) {
  return target instanceof HTMLElement && (target.isContentEditable || ['INPUT', 'TEXTAREA', 'SELECT'].includes(target.tagName));
}

function onKeydown(event) {
  if (event.key === 'Tab') {
    trapContextFocus(event);
    return;
  }
  if (event.key === 'Escape') {
    if ($('#context') && !$('#context').hidden) {
      event.preventDefault();
      closeContext(true);
    } else if (document.body.classList.contains('nav-open')) {
      closeNavMenu();
      $('#nav-toggle').focus();
    }
    return;
  }
  if (event.key === '/' && !event.ctrlKey && !event.metaKey && !event.altKey && !isTyping(event.target)) {
    const box = $('#search-q');
    if (box) {
      event.preventDefault();
      box.focus();
      box.select();
    } else if (state.me && state.screens.has('search')) {
      event.preventDefault();
      go('#/search');
    }
  }
}

async function boot() {
  window.addEventListener('hashchange', route);
  document.addEventListener('visibilitychange', recheckSession);
  document.addEventListener('keydown', onKeydown);
  $('#logout').addEventListener('click', logout);
  $('#nav-toggle').addEventListener('click', () => {
    const open = document.body.classList.toggle('nav-open');
    $('#nav-toggle').setAttribute('aria-expanded', String(open));
  });
  $('.skip-link').addEventListener('click', (event) => {
    event.preventDefault(); // the hash is the router's: move focus without navigating
    const target = $('#view h1') || $('#view');
    target.focus();
  });
  try {
    await loadMe();
  } catch (error) {
    renderSignIn('');
    renderError($('#login-error'), error);
    return;
  }
  route();
}

boot();
