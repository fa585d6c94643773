// Settings → API Keys: the page's only script, served from this origin
// under a Content-Security-Policy with Trusted Types. Everything from the
// server is shown with textContent or attributes, never parsed as HTML.
'use strict';

(function () {
  const API = '/api/v2/keys';
  const PAGE_SIZE = 20;
  // This tab only; cleared on sign-out and when the tab closes.
  const STORAGE_KEY = 'mcp-proxy.managing-key';
  const PREFIX_LEN = 12;

  const $ = (id) => {
    const element = document.getElementById(id);
    if (!element) throw new Error('missing #' + id);
    return element;
  };

  const ui = {
    error: $('error'),
    status: $('status'),
    signin: $('signin'),
    signinForm: $('signin-form'),
    signinKey: $('signin-key'),
    signinButton: $('signin-button'),
    app: $('app'),
    sessionBar: $('session-bar'),
    sessionPrefix: $('session-prefix'),
    signout: $('signout-button'),
    createForm: $('create-form'),
    createName: $('create-name'),
    createExpires: $('create-expires'),
    createButton: $('create-button'),
    refresh: $('refresh-button'),
    keysTitle: $('keys-title'),
    keysBody: $('keys-body'),
    keysEmpty: $('keys-empty'),
    keysLoading: $('keys-loading'),
    loadMore: $('load-more'),
    secretDialog: $('secret-dialog'),
    secretName: $('secret-name'),
    secretValue: $('secret-value'),
    secretCopy: $('secret-copy'),
    secretCopyStatus: $('secret-copy-status'),
    secretDone: $('secret-done'),
    revokeDialog: $('revoke-dialog'),
    revokeName: $('revoke-name'),
    revokePrefix: $('revoke-prefix'),
    revokeSelf: $('revoke-self'),
    revokeCancel: $('revoke-cancel'),
    confirmRevoke: $('confirm-revoke'),
  };

  let nextCursor = null;
  // The key a confirmation dialog is about, and where focus goes after it.
  let revoking = null;
  let returnFocus = null;

  // ------------------------------------------------------------ storage

  function managingKey() {
    try {
      return window.sessionStorage.getItem(STORAGE_KEY);
    } catch (_) {
      return null;
    }
  }

  function storeManagingKey(key) {
    window.sessionStorage.setItem(STORAGE_KEY, key);
  }

  function forgetManagingKey() {
    try {
      window.sessionStorage.removeItem(STORAGE_KEY);
    } catch (_) {
      // Storage disabled: nothing was kept.
    }
  }

  // --------------------------------------------------------------- API

  class ApiError extends Error {
    constructor(status, message) {
      super(message);
      this.status = status;
    }
  }

  // What the server said, in the shapes the API uses: RFC 9457 problem
  // details (detail, title) or the key layer's refusal (error_description).
  function describe(status, body) {
    const said = (field) =>
      body && typeof body === 'object' && typeof body[field] === 'string' && body[field].trim() !== ''
        ? body[field].trim()
        : null;
    const message = said('detail') || said('title') || said('error_description') || said('error');
    if (status === 401) {
      return 'The managing key was refused' + (message ? ': ' + message : '.');
    }
    if (status === 403) {
      return 'This key may not manage API keys' + (message ? ': ' + message : '.') +
        ' Sign in with a key that has the keys:manage scope or full access.';
    }
    if (status === 429) {
      return 'Too many requests' + (message ? ': ' + message : '.') + ' Wait a moment and try again.';
    }
    return message || 'The server answered ' + status + '.';
  }

  // One call to the management API with `key` (the stored managing key by
  // default) in the Authorization header. Resolves to the parsed JSON body.
  async function api(method, path, body, key) {
    const bearer = key === undefined ? managingKey() : key;
    if (!bearer) throw new ApiError(401, 'Sign in with a managing key first.');
    const headers = { Accept: 'application/json', Authorization: 'Bearer ' + bearer };
    const init = {
      method,
      headers,
      cache: 'no-store',
      credentials: 'omit',
      redirect: 'error',
      referrerPolicy: 'no-referrer',
    };
    if (body !== undefined) {
      headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    let response;
    try {
      response = await fetch(path, init);
    } catch (error) {
      if (error instanceof TypeError && /header|ByteString|ISO-8859-1/i.test(String(error.message))) {
        throw new ApiError(0, 'The key has characters that cannot be sent in a header; paste it again.');
      }
      throw new ApiError(0, 'The server could not be reached. Check your connection and try again.');
    }
    const type = response.headers.get('Content-Type') || '';
    let data = null;
    if (/json/i.test(type)) {
      try {
        data = await response.json();
      } catch (_) {
        data = null;
      }
    }
    if (!response.ok) throw new ApiError(response.status, describe(response.status, data));
    return data;
  }

  function listPath(cursor) {
    const query = new URLSearchParams({ limit: String(PAGE_SIZE) });
    if (cursor) query.set('cursor', cursor);
    return API + '?' + query.toString();
  }

  function keyPath(id, action) {
    return API + '/' + encodeURIComponent(id) + (action ? '/' + action : '');
  }

  // ------------------------------------------------------------ messages

  function showError(message) {
    ui.status.textContent = '';
    ui.error.textContent = message;
  }

  function clearError() {
    ui.error.textContent = '';
  }

  function say(message) {
    ui.status.textContent = message;
  }

  // A failed call: a refused managing key signs out; anything else is shown.
  function failed(error) {
    const message = error instanceof ApiError ? error.message : 'Something went wrong: ' + String(error);
    if (error instanceof ApiError && error.status === 401 && managingKey()) {
      signOut();
    }
    showError(message);
  }

  // --------------------------------------------------------------- dates

  const dateFormat = new Intl.DateTimeFormat(undefined, { year: 'numeric', month: 'short', day: 'numeric' });
  const exactFormat = new Intl.DateTimeFormat(undefined, {
    year: 'numeric', month: 'short', day: 'numeric',
    hour: '2-digit', minute: '2-digit', second: '2-digit', timeZoneName: 'short',
  });
  const relativeFormat = new Intl.RelativeTimeFormat('en', { numeric: 'always' });

  function parseDate(value) {
    if (typeof value !== 'string') return null;
    const date = new Date(value);
    return Number.isNaN(date.getTime()) ? null : date;
  }

  // "3 minutes ago", "in 30 days", "just now".
  function relative(date, now) {
    const seconds = (date.getTime() - now) / 1000;
    const abs = Math.abs(seconds);
    if (abs < 45) return 'just now';
    const units = [
      ['year', 365 * 86400], ['month', 30 * 86400], ['week', 7 * 86400],
      ['day', 86400], ['hour', 3600], ['minute', 60],
    ];
    for (const [unit, size] of units) {
      if (abs >= size || unit === 'minute') {
        return relativeFormat.format(Math.round(seconds / size) || Math.sign(seconds), unit);
      }
    }
    return 'just now';
  }

  // A <time> element: `text` shown, the exact time on hover and in `datetime`.
  function timeElement(value, style) {
    const date = parseDate(value);
    if (!date) return null;
    const time = document.createElement('time');
    time.dateTime = date.toISOString();
    time.title = exactFormat.format(date) + ' (' + date.toISOString() + ')';
    time.dataset.style = style;
    time.textContent = style === 'relative' ? relative(date, Date.now()) : dateFormat.format(date);
    return time;
  }

  function refreshRelativeTimes() {
    const now = Date.now();
    for (const time of ui.keysBody.querySelectorAll('time[data-style="relative"]')) {
      const date = parseDate(time.dateTime);
      if (date) time.textContent = relative(date, now);
    }
  }

  // YYYY-MM-DD in UTC.
  function utcDay(date) {
    return date.toISOString().slice(0, 10);
  }

  // The end of the chosen day in UTC, as RFC 3339.
  function endOfDayUtc(day) {
    if (!/^\d{4}-\d{2}-\d{2}$/.test(day)) return null;
    const date = new Date(day + 'T23:59:59Z');
    return Number.isNaN(date.getTime()) ? null : day + 'T23:59:59Z';
  }

  // ---------------------------------------------------------------- rows

  const STATUSES = new Set(['active', 'expired', 'revoked']);

  function cell(className, content) {
    const td = document.createElement('td');
    td.className = className;
    if (content instanceof Node) td.append(content);
    else td.textContent = content;
    return td;
  }

  function isSignedInWith(key) {
    const bearer = managingKey();
    return Boolean(bearer && typeof key.display_prefix === 'string' && key.display_prefix.length > 0 &&
      bearer.startsWith(key.display_prefix));
  }

  function renderRow(key) {
    const tr = document.createElement('tr');
    tr.dataset.keyId = String(key.id);
    tr.className = 'key-row';
    tr.tabIndex = -1;

    const name = cell('name', String(key.name));
    if (isSignedInWith(key)) {
      const self = document.createElement('span');
      self.className = 'self-badge';
      self.textContent = 'this session';
      name.append(' ', self);
    }
    tr.append(name);

    const prefix = document.createElement('code');
    prefix.textContent = String(key.display_prefix) + '…';
    tr.append(cell('prefix', prefix));

    tr.append(cell('created', timeElement(key.created_at, 'date') || '—'));
    tr.append(cell('last-used', timeElement(key.last_used_at, 'relative') || 'never'));
    tr.append(cell('expires', timeElement(key.expires_at, 'date') || 'never'));

    const access = Array.isArray(key.scopes)
      ? (key.scopes.length ? key.scopes.map(String).join(', ') : 'no scopes')
      : 'full access';
    tr.append(cell('access', access));

    const status = STATUSES.has(key.status) ? key.status : 'unknown';
    if (status !== 'active') tr.classList.add('is-inactive');
    const badge = document.createElement('span');
    badge.className = 'badge badge-' + status;
    badge.textContent = status;
    tr.append(cell('status', badge));

    const actions = cell('row-actions', '');
    if (status === 'active') {
      const button = document.createElement('button');
      button.type = 'button';
      button.className = 'button danger-outline revoke';
      button.textContent = 'Revoke';
      button.setAttribute('aria-label', 'Revoke ' + String(key.name));
      button.addEventListener('click', () => askRevoke(key, button));
      actions.append(button);
    }
    tr.append(actions);
    return tr;
  }

  function rowOf(id) {
    for (const tr of ui.keysBody.rows) {
      if (tr.dataset.keyId === String(id)) return tr;
    }
    return null;
  }

  function updateEmpty() {
    ui.keysEmpty.hidden = ui.keysBody.rows.length > 0;
  }

  function appendPage(page) {
    const keys = page && Array.isArray(page.keys) ? page.keys : [];
    for (const key of keys) {
      const existing = rowOf(key.id);
      const row = renderRow(key);
      if (existing) existing.replaceWith(row);
      else ui.keysBody.append(row);
    }
    nextCursor = page && typeof page.next_cursor === 'string' && page.next_cursor !== '' ? page.next_cursor : null;
    ui.loadMore.hidden = nextCursor === null;
    updateEmpty();
  }

  // ------------------------------------------------------------ sessions

  function showSignedIn() {
    const key = managingKey() || '';
    ui.sessionPrefix.textContent = key.slice(0, PREFIX_LEN) + '…';
    ui.signin.hidden = true;
    ui.app.hidden = false;
    ui.sessionBar.hidden = false;
    // The first day whose end (23:59:59 UTC) is still ahead: today in UTC.
    ui.createExpires.min = utcDay(new Date());
  }

  function showSignedOut() {
    ui.app.hidden = true;
    ui.sessionBar.hidden = true;
    ui.signin.hidden = false;
    ui.keysBody.replaceChildren();
    ui.loadMore.hidden = true;
    nextCursor = null;
  }

  function signOut() {
    forgetManagingKey();
    showSignedOut();
    closeDialog(ui.secretDialog);
    closeDialog(ui.revokeDialog);
  }

  async function loadFirstPage(key) {
    ui.keysLoading.hidden = false;
    try {
      const page = await api('GET', listPath(null), undefined, key);
      ui.keysBody.replaceChildren();
      appendPage(page);
      return page;
    } finally {
      ui.keysLoading.hidden = true;
    }
  }

  async function onSignIn(event) {
    event.preventDefault();
    clearError();
    const key = ui.signinKey.value.trim();
    if (key === '') {
      showError('Paste a managing key to sign in.');
      ui.signinKey.focus();
      return;
    }
    if (/\s/.test(key)) {
      showError('A key has no spaces or line breaks: paste it again.');
      ui.signinKey.focus();
      return;
    }
    ui.signinButton.disabled = true;
    try {
      // The key is kept only once the API has accepted it.
      const page = await api('GET', listPath(null), undefined, key);
      storeManagingKey(key);
      ui.signinKey.value = '';
      showSignedIn();
      ui.keysBody.replaceChildren();
      appendPage(page);
      say('Signed in.');
      ui.createName.focus();
    } catch (error) {
      showError(error instanceof ApiError ? error.message : String(error));
      ui.signinKey.focus();
      ui.signinKey.select();
    } finally {
      ui.signinButton.disabled = false;
    }
  }

  function onSignOut() {
    signOut();
    clearError();
    say('Signed out. The managing key was removed from this tab.');
    ui.signinKey.focus();
  }

  // ------------------------------------------------------------- create

  async function onCreate(event) {
    event.preventDefault();
    clearError();
    const name = ui.createName.value.trim();
    if (name === '') {
      showError('Give the key a name, such as "Claude Desktop".');
      ui.createName.focus();
      return;
    }
    const body = { name };
    const day = ui.createExpires.value;
    if (day !== '') {
      const expires = endOfDayUtc(day);
      if (!expires) {
        showError('The expiration date is not a valid date.');
        ui.createExpires.focus();
        return;
      }
      if (new Date(expires).getTime() <= Date.now()) {
        showError('The expiration date must be in the future.');
        ui.createExpires.focus();
        return;
      }
      body.expires_at = expires;
    }
    ui.createButton.disabled = true;
    try {
      const created = await api('POST', API, body);
      if (!created || typeof created.secret !== 'string' || !created.key) {
        throw new ApiError(0, 'The server did not return the new key.');
      }
      const existing = rowOf(created.key.id);
      const row = renderRow(created.key);
      if (existing) existing.replaceWith(row);
      else ui.keysBody.prepend(row);
      updateEmpty();
      ui.createName.value = '';
      ui.createExpires.value = '';
      say('Created "' + String(created.key.name) + '".');
      showSecret(created.key, created.secret);
    } catch (error) {
      failed(error);
    } finally {
      ui.createButton.disabled = false;
    }
  }

  // ------------------------------------------------------------ dialogs

  // Opens `dialog` modal with `focus` focused; when it closes, focus goes
  // back to `back`.
  function openDialog(dialog, focus, back) {
    returnFocus = back;
    dialog.showModal();
    focus.focus();
  }

  function closeDialog(dialog) {
    if (dialog.open) dialog.close();
  }

  function restoreFocus(fallback) {
    const usable = (element) => element instanceof HTMLElement && element !== document.body &&
      document.contains(element) && !element.disabled && !element.closest('[hidden]');
    const target = usable(returnFocus) ? returnFocus : fallback;
    returnFocus = null;
    if (target) target.focus();
  }

  function showSecret(key, secret) {
    ui.secretName.textContent = String(key.name);
    ui.secretValue.value = secret;
    ui.secretCopyStatus.textContent = '';
    openDialog(ui.secretDialog, ui.secretValue, ui.createName);
    ui.secretValue.select();
  }

  async function onCopy() {
    const secret = ui.secretValue.value;
    ui.secretValue.focus();
    ui.secretValue.select();
    try {
      if (!navigator.clipboard || !window.isSecureContext) throw new Error('no clipboard');
      await navigator.clipboard.writeText(secret);
      ui.secretCopyStatus.textContent = 'Copied to the clipboard.';
      return;
    } catch (_) {
      // Fall back to the selection.
    }
    let copied = false;
    try {
      copied = document.execCommand('copy');
    } catch (_) {
      copied = false;
    }
    ui.secretCopyStatus.textContent = copied
      ? 'Copied to the clipboard.'
      : 'The key is selected: press Ctrl+C (⌘C on a Mac) to copy it.';
  }

  // On every close, Done or Escape: the secret leaves the page.
  function onSecretClosed() {
    ui.secretValue.value = '';
    ui.secretName.textContent = '';
    ui.secretCopyStatus.textContent = '';
    restoreFocus(ui.createName);
  }

  function askRevoke(key, button) {
    clearError();
    revoking = key;
    ui.revokeName.textContent = String(key.name);
    ui.revokePrefix.textContent = String(key.display_prefix);
    ui.revokeSelf.hidden = !isSignedInWith(key);
    ui.confirmRevoke.disabled = false;
    // Cancel first: the safe choice is the default one.
    openDialog(ui.revokeDialog, ui.revokeCancel, button);
  }

  async function onConfirmRevoke() {
    const key = revoking;
    if (!key) return;
    ui.confirmRevoke.disabled = true;
    const self = isSignedInWith(key);
    try {
      const revoked = await api('POST', keyPath(key.id, 'revoke'));
      revoking = null;
      if (self) {
        signOut();
        say('Revoked "' + String(key.name) + '", the key you were signed in with: you are signed out.');
        returnFocus = ui.signinKey;
        return;
      }
      const row = renderRow(revoked && revoked.id ? revoked : Object.assign({}, key, { status: 'revoked' }));
      const existing = rowOf(key.id);
      if (existing) existing.replaceWith(row);
      say('Revoked "' + String(key.name) + '". It no longer works.');
      // Focus goes to the row once the dialog's close event has run.
      returnFocus = row;
      closeDialog(ui.revokeDialog);
    } catch (error) {
      closeDialog(ui.revokeDialog);
      failed(error);
    } finally {
      ui.confirmRevoke.disabled = false;
    }
  }

  function onRevokeClosed() {
    revoking = null;
    restoreFocus(ui.keysTitle);
  }

  // --------------------------------------------------------------- lists

  async function onLoadMore() {
    if (!nextCursor) return;
    clearError();
    ui.loadMore.disabled = true;
    try {
      const page = await api('GET', listPath(nextCursor));
      appendPage(page);
      say('More keys loaded.');
    } catch (error) {
      failed(error);
    } finally {
      ui.loadMore.disabled = false;
    }
  }

  async function onRefresh() {
    clearError();
    try {
      await loadFirstPage();
      say('Keys refreshed.');
    } catch (error) {
      failed(error);
    }
  }

  // ---------------------------------------------------------------- start

  function start() {
    ui.signinForm.addEventListener('submit', onSignIn);
    ui.signout.addEventListener('click', onSignOut);
    ui.createForm.addEventListener('submit', onCreate);
    ui.refresh.addEventListener('click', onRefresh);
    ui.loadMore.addEventListener('click', onLoadMore);
    ui.secretCopy.addEventListener('click', onCopy);
    ui.secretDone.addEventListener('click', () => closeDialog(ui.secretDialog));
    ui.secretDialog.addEventListener('close', onSecretClosed);
    ui.revokeCancel.addEventListener('click', () => closeDialog(ui.revokeDialog));
    ui.confirmRevoke.addEventListener('click', onConfirmRevoke);
    ui.revokeDialog.addEventListener('close', onRevokeClosed);
    window.setInterval(refreshRelativeTimes, 30 * 1000);

    if (managingKey()) {
      showSignedIn();
      loadFirstPage().catch(failed);
    } else {
      showSignedOut();
      ui.signinKey.focus();
    }
  }

  start();
})();
