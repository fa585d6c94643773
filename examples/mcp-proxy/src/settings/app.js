// Settings → API Keys: the page's only script, served from this origin
// under a Content-Security-Policy with Trusted Types. Everything from the
// server (and from the authorization server) is shown with textContent or
// attributes, never parsed as HTML.
'use strict';

(function () {
  const API = '/api/v2/keys';
  const PAGE_PATH = '/settings/api-keys';
  const CONFIG_PATH = '/settings/api-keys/config.json';
  const MCP_PATH = '/mcp';
  const MCP_PROTOCOL = '2025-06-18';
  const PAGE_SIZE = 20;
  // This tab only; cleared on sign-out and when the tab closes: the bearer
  // the API is called with (a managing key, or an OAuth access token).
  const STORAGE_KEY = 'mcp-proxy.managing-key';
  // This tab only, beside it after an OAuth sign-in: {issuer, user}.
  const OAUTH_SESSION_KEY = 'mcp-proxy.oauth-session';
  // This tab only, from the sign-in's start to its return: state, PKCE
  // verifier and where to redeem the code. Read once.
  const OAUTH_PENDING_KEY = 'mcp-proxy.oauth-pending';
  // localStorage, the one thing kept there: this page's client id at the
  // issuer ({issuer, redirect_uri, client_id}), which is not a secret.
  const OAUTH_CLIENT_KEY = 'mcp-proxy.oauth-client';
  const PREFIX_LEN = 12;
  // What an answer of another server may put into a message.
  const MAX_SAID = 300;

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
    sessionLabel: $('session-label'),
    sessionPrefix: $('session-prefix'),
    oauthSignin: $('oauth-signin'),
    oauthButton: $('oauth-button'),
    oauthIssuer: $('oauth-issuer'),
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
    setupUrl: $('setup-url'),
    snippets: {
      'claude-code': $('snippet-claude-code'),
      'claude-desktop': $('snippet-claude-desktop'),
      codex: $('snippet-codex'),
      'codex-env': $('snippet-codex-env'),
      cursor: $('snippet-cursor'),
      vscode: $('snippet-vscode'),
      curl: $('snippet-curl'),
    },
    testConnection: $('test-connection'),
    testStatus: $('test-connection-status'),
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
  // What config.json says; until it answers, no OAuth and this origin's /mcp.
  let server = { mcpUrl: window.location.origin + MCP_PATH, oauth: null };
  // The secret the show-once dialog shows, and a count of its openings and
  // closings, so that a connection test that ends after the dialog closed
  // writes nothing into it.
  let shownSecret = null;
  let dialogRound = 0;

  // ------------------------------------------------------------ storage

  function sessionGet(name) {
    try {
      return window.sessionStorage.getItem(name);
    } catch (_) {
      return null;
    }
  }

  function sessionRemove(name) {
    try {
      window.sessionStorage.removeItem(name);
    } catch (_) {
      // Storage disabled: nothing was kept.
    }
  }

  // The parsed JSON object kept under `name`, or null.
  function sessionObject(name) {
    const text = sessionGet(name);
    if (text === null) return null;
    try {
      const value = JSON.parse(text);
      return value && typeof value === 'object' ? value : null;
    } catch (_) {
      return null;
    }
  }

  function managingKey() {
    return sessionGet(STORAGE_KEY);
  }

  // The OAuth sign-in the tab's bearer comes from ({issuer, user}), or null
  // for a managing key.
  function oauthSession() {
    return managingKey() ? sessionObject(OAUTH_SESSION_KEY) : null;
  }

  // Keeps `bearer` for the tab; `oauth` ({issuer, user}) when it is an
  // access token.
  function storeManagingKey(bearer, oauth) {
    window.sessionStorage.setItem(STORAGE_KEY, bearer);
    if (oauth) window.sessionStorage.setItem(OAUTH_SESSION_KEY, JSON.stringify(oauth));
    else sessionRemove(OAUTH_SESSION_KEY);
  }

  function forgetManagingKey() {
    sessionRemove(STORAGE_KEY);
    sessionRemove(OAUTH_SESSION_KEY);
  }

  // localStorage, or null where it is disabled. The only place the script
  // reaches it: it holds this page's OAuth client id and nothing else.
  function clientRegistry() {
    try {
      return window.localStorage;
    } catch (_) {
      return null;
    }
  }

  // --------------------------------------------------------------- API

  class ApiError extends Error {
    constructor(status, message) {
      super(message);
      this.status = status;
    }
  }

  // `value` as a message part: a trimmed string of at most MAX_SAID
  // characters, or null.
  function clip(value) {
    if (typeof value !== 'string') return null;
    const text = value.trim();
    if (text === '') return null;
    return text.length > MAX_SAID ? text.slice(0, MAX_SAID) + '…' : text;
  }

  // What the server said, in the shapes the API uses: RFC 9457 problem
  // details (detail, title) or the key layer's refusal (error_description).
  // `credential` is what the call was made with: 'key' or 'oauth'.
  function describe(status, body, credential) {
    const said = (field) => (body && typeof body === 'object' ? clip(body[field]) : null);
    const message = said('detail') || said('title') || said('error_description') || said('error');
    const oauth = credential === 'oauth';
    if (status === 401) {
      return oauth
        ? 'The OAuth sign-in was refused (its access token expired, or is not accepted here)' +
          (message ? ': ' + message : '.') + ' Sign in again.'
        : 'The managing key was refused' + (message ? ': ' + message : '.');
    }
    if (status === 403) {
      return oauth
        ? 'This OAuth sign-in may not manage API keys' + (message ? ': ' + message : '.') +
          ' The access token needs the keys:manage scope.'
        : 'This key may not manage API keys' + (message ? ': ' + message : '.') +
          ' Sign in with a key that has the keys:manage scope or full access.';
    }
    if (status === 429) {
      return 'Too many requests' + (message ? ': ' + message : '.') + ' Wait a moment and try again.';
    }
    return message || 'The server answered ' + status + '.';
  }

  // One call to the management API with `key` (the stored managing key by
  // default) in the Authorization header; `credential` says what `key` is
  // ('key' or 'oauth'; by default what the tab is signed in with). Resolves
  // to the parsed JSON body.
  async function api(method, path, body, key, credential) {
    const bearer = key === undefined ? managingKey() : key;
    const kind = credential || (key === undefined && oauthSession() ? 'oauth' : 'key');
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
    const data = await jsonOf(response);
    if (!response.ok) throw new ApiError(response.status, describe(response.status, data, kind));
    return data;
  }

  // The body of `response` as JSON when it says it is JSON, else null.
  async function jsonOf(response) {
    const type = response.headers.get('Content-Type') || '';
    if (!/json/i.test(type)) return null;
    try {
      return await response.json();
    } catch (_) {
      return null;
    }
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

  // A failed call: a refused managing key (or access token) signs out;
  // anything else is shown.
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
    return Boolean(bearer && !oauthSession() && typeof key.display_prefix === 'string' && key.display_prefix.length > 0 &&
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
    const oauth = oauthSession();
    if (oauth) {
      ui.sessionLabel.textContent = 'Signed in through OAuth as';
      ui.sessionPrefix.textContent = clip(oauth.user) || 'an OAuth user';
    } else {
      ui.sessionLabel.textContent = 'Signed in with';
      ui.sessionPrefix.textContent = key.slice(0, PREFIX_LEN) + '…';
    }
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
    const oauth = oauthSession();
    signOut();
    clearError();
    say(oauth
      ? 'Signed out. The access token was removed from this tab.'
      : 'Signed out. The managing key was removed from this tab.');
    ui.signinKey.focus();
  }

  // -------------------------------------------------------------- OAuth
  //
  // The page is a public OAuth client of the server's issuer, in the
  // browser: authorization code with PKCE S256, no client secret anywhere.
  // The access token it gets then stands where a managing key would.

  class OAuthError extends Error {}

  function base64url(bytes) {
    let binary = '';
    for (const byte of bytes) binary += String.fromCharCode(byte);
    return window.btoa(binary).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
  }

  function randomToken(bytes) {
    return base64url(window.crypto.getRandomValues(new Uint8Array(bytes)));
  }

  async function s256(verifier) {
    const digest = await window.crypto.subtle.digest('SHA-256', new TextEncoder().encode(verifier));
    return base64url(new Uint8Array(digest));
  }

  // `value` as an http(s) URL, or null.
  function webUrl(value) {
    if (typeof value !== 'string') return null;
    try {
      const url = new URL(value);
      return url.protocol === 'https:' || url.protocol === 'http:' ? url : null;
    } catch (_) {
      return null;
    }
  }

  // An OAuth endpoint's refusal ({error, error_description}) as text.
  function oauthRefusal(what, status, body) {
    const said = (field) => (body && typeof body === 'object' ? clip(body[field]) : null);
    const error = said('error');
    const description = said('error_description');
    if (!error) return what + ' (the authorization server answered ' + status + ').';
    return what + ': ' + error + (description ? ' (' + description + ')' : '') + '.';
  }

  // One call to the authorization server. Network failures (which include
  // a CORS refusal and this page's own policy) become an OAuthError saying
  // what could not be reached.
  async function oauthFetch(url, init, what) {
    try {
      return await fetch(url, Object.assign({
        cache: 'no-store',
        credentials: 'omit',
        redirect: 'error',
        referrerPolicy: 'no-referrer',
      }, init));
    } catch (_) {
      throw new OAuthError('The authorization server could not be reached for ' + what + ' (' + url +
        '): it is down, or does not allow this page to call it (CORS).');
    }
  }

  // Where RFC 8414 and OpenID Connect Discovery put the metadata of `issuer`.
  function metadataUrls(issuer) {
    const url = new URL(issuer);
    const path = url.pathname.replace(/\/+$/, '');
    if (path === '') {
      return [
        url.origin + '/.well-known/oauth-authorization-server',
        url.origin + '/.well-known/openid-configuration',
      ];
    }
    return [
      url.origin + '/.well-known/oauth-authorization-server' + path,
      url.origin + '/.well-known/openid-configuration' + path,
      url.origin + path + '/.well-known/openid-configuration',
    ];
  }

  // The issuer's metadata, whose `issuer` must be `issuer` exactly, with
  // what this page needs of it checked.
  async function discover(issuer) {
    const problems = [];
    for (const url of metadataUrls(issuer)) {
      let response;
      try {
        response = await oauthFetch(url, { headers: { Accept: 'application/json' } }, 'its metadata');
      } catch (_) {
        problems.push(url + ' could not be fetched');
        continue;
      }
      if (!response.ok) {
        problems.push(url + ' answered ' + response.status);
        continue;
      }
      const metadata = await jsonOf(response);
      if (!metadata || typeof metadata !== 'object') {
        problems.push(url + ' is not JSON');
        continue;
      }
      if (metadata.issuer !== issuer) {
        problems.push(url + ' names another issuer, ' + (clip(String(metadata.issuer)) || 'none'));
        continue;
      }
      checkMetadata(metadata, issuer);
      return metadata;
    }
    throw new OAuthError('No usable authorization server metadata was found for ' + issuer + ': ' +
      problems.join('; ') + '.');
  }

  function checkMetadata(metadata, issuer) {
    const origin = new URL(issuer).origin;
    const authorization = webUrl(metadata.authorization_endpoint);
    if (!authorization) {
      throw new OAuthError('The authorization server names no usable authorization_endpoint.');
    }
    // The policy lets this page call the issuer's origin, and no other.
    for (const name of ['token_endpoint', 'registration_endpoint']) {
      if (metadata[name] === undefined && name === 'registration_endpoint') continue;
      const url = webUrl(metadata[name]);
      if (!url) throw new OAuthError('The authorization server names no usable ' + name + '.');
      if (url.origin !== origin) {
        throw new OAuthError('The ' + name + ' (' + url.href + ') is not on the issuer\'s origin (' +
          origin + '), the only one this page may call.');
      }
    }
    const methods = metadata.code_challenge_methods_supported;
    if (!Array.isArray(methods) || !methods.includes('S256')) {
      throw new OAuthError('The authorization server does not say it supports PKCE with S256 ' +
        '(code_challenge_methods_supported), which this page requires.');
    }
    const types = metadata.response_types_supported;
    if (Array.isArray(types) && !types.includes('code')) {
      throw new OAuthError('The authorization server does not support the authorization code flow.');
    }
  }

  function storedClient(issuer, redirectUri) {
    const registry = clientRegistry();
    if (!registry) return null;
    try {
      const client = JSON.parse(registry.getItem(OAUTH_CLIENT_KEY));
      return client && client.issuer === issuer && client.redirect_uri === redirectUri &&
        typeof client.client_id === 'string' && client.client_id !== ''
        ? client.client_id
        : null;
    } catch (_) {
      return null;
    }
  }

  function storeClient(issuer, redirectUri, clientId) {
    const registry = clientRegistry();
    if (!registry) return;
    try {
      registry.setItem(OAUTH_CLIENT_KEY, JSON.stringify({ issuer, redirect_uri: redirectUri, client_id: clientId }));
    } catch (_) {
      // Not kept: the page registers again next time.
    }
  }

  function forgetClient() {
    const registry = clientRegistry();
    if (!registry) return;
    try {
      registry.removeItem(OAUTH_CLIENT_KEY);
    } catch (_) {
      // Nothing was kept.
    }
  }

  // This page's client id at `issuer`: the one kept in localStorage, or a
  // new one from dynamic registration (RFC 7591) as a public client.
  async function clientIdFor(issuer, metadata, redirectUri) {
    const kept = storedClient(issuer, redirectUri);
    if (kept) return kept;
    if (typeof metadata.registration_endpoint !== 'string') {
      throw new OAuthError('The authorization server offers no dynamic client registration ' +
        '(registration_endpoint), so this page cannot register itself there. Sign in with a managing key instead.');
    }
    const response = await oauthFetch(metadata.registration_endpoint, {
      method: 'POST',
      headers: { Accept: 'application/json', 'Content-Type': 'application/json' },
      body: JSON.stringify({
        client_name: 'MCP proxy: Settings → API Keys',
        application_type: 'web',
        redirect_uris: [redirectUri],
        grant_types: ['authorization_code'],
        response_types: ['code'],
        token_endpoint_auth_method: 'none',
      }),
    }, 'registration');
    const body = await jsonOf(response);
    if (!response.ok) {
      throw new OAuthError(oauthRefusal('The authorization server refused to register this page', response.status, body));
    }
    if (!body || typeof body.client_id !== 'string' || body.client_id === '') {
      throw new OAuthError('The authorization server registered this page but returned no client_id.');
    }
    if (body.token_endpoint_auth_method !== undefined && body.token_endpoint_auth_method !== 'none') {
      throw new OAuthError('The authorization server registered this page as a confidential client (' +
        clip(String(body.token_endpoint_auth_method)) + '); a page can only be a public one.');
    }
    // Only the id is kept; a registration access token or secret is not.
    storeClient(issuer, redirectUri, body.client_id);
    return body.client_id;
  }

  async function onOAuthSignIn() {
    const oauth = server.oauth;
    if (!oauth) return;
    clearError();
    ui.oauthButton.disabled = true;
    say('Contacting the authorization server…');
    try {
      if (!window.isSecureContext || !window.crypto || !window.crypto.subtle) {
        throw new OAuthError('Signing in with OAuth needs this page over HTTPS (or on localhost): ' +
          'the browser offers no SHA-256 for PKCE here.');
      }
      const metadata = await discover(oauth.issuer);
      const redirectUri = window.location.origin + PAGE_PATH;
      const clientId = await clientIdFor(oauth.issuer, metadata, redirectUri);
      const verifier = randomToken(32);
      const state = randomToken(16);
      const target = new URL(metadata.authorization_endpoint);
      const query = target.searchParams;
      query.set('response_type', 'code');
      query.set('client_id', clientId);
      query.set('redirect_uri', redirectUri);
      query.set('scope', oauth.scope);
      query.set('resource', oauth.resource);
      query.set('state', state);
      query.set('code_challenge', await s256(verifier));
      query.set('code_challenge_method', 'S256');
      window.sessionStorage.setItem(OAUTH_PENDING_KEY, JSON.stringify({
        state,
        verifier,
        issuer: oauth.issuer,
        resource: oauth.resource,
        client_id: clientId,
        redirect_uri: redirectUri,
        token_endpoint: metadata.token_endpoint,
        iss_required: metadata.authorization_response_iss_parameter_supported === true,
      }));
      say('Taking you to the sign-in page…');
      window.location.assign(target.href);
    } catch (error) {
      ui.oauthButton.disabled = false;
      showError(error instanceof OAuthError ? error.message : 'The OAuth sign-in failed: ' + String(error));
    }
  }

  // The query of the URL the page was opened with, when it is the answer of
  // an authorization request; the URL loses its query (and fragment) at
  // once either way, so that no code or state stays in the address bar or
  // the history.
  function takeCallback() {
    const params = new URLSearchParams(window.location.search);
    if (window.location.search !== '' || window.location.hash !== '') {
      window.history.replaceState(null, '', window.location.pathname);
    }
    return ['code', 'state', 'error', 'iss'].some((name) => params.has(name)) ? params : null;
  }

  // The sign-in this tab started, removed as it is read: a response is
  // redeemed once.
  function takePending() {
    const pending = sessionObject(OAUTH_PENDING_KEY);
    sessionRemove(OAUTH_PENDING_KEY);
    return pending && typeof pending.state === 'string' && typeof pending.verifier === 'string' ? pending : null;
  }

  function authorizationRefused(error, description) {
    const said = clip(description);
    if (error === 'access_denied') {
      return 'The sign-in was cancelled or not allowed (access_denied' + (said ? ': ' + said : '') +
        '). Nothing was signed in.';
    }
    return 'The authorization server did not sign you in: ' + (clip(error) || 'an error') +
      (said ? ' (' + said + ')' : '') + '. Nothing was signed in.';
  }

  // The account a JWT access token names (`sub`), to show who is signed in;
  // the server, not the page, checks the token.
  function subjectOf(token) {
    const parts = token.split('.');
    if (parts.length !== 3) return null;
    try {
      const base64 = parts[1].replace(/-/g, '+').replace(/_/g, '/');
      const binary = window.atob(base64 + '='.repeat((4 - (base64.length % 4)) % 4));
      const bytes = Uint8Array.from(binary, (c) => c.charCodeAt(0));
      const claims = JSON.parse(new TextDecoder().decode(bytes));
      return claims && typeof claims.sub === 'string' ? claims.sub : null;
    } catch (_) {
      return null;
    }
  }

  // Redeems `code` at the token endpoint with the PKCE verifier; the access
  // token.
  async function redeem(pending, code) {
    const response = await oauthFetch(pending.token_endpoint, {
      method: 'POST',
      headers: { Accept: 'application/json' },
      body: new URLSearchParams({
        grant_type: 'authorization_code',
        code,
        redirect_uri: pending.redirect_uri,
        client_id: pending.client_id,
        code_verifier: pending.verifier,
        resource: pending.resource,
      }),
    }, 'the token request');
    const body = await jsonOf(response);
    if (!response.ok) {
      // A client the server no longer knows is registered again next time.
      if (body && body.error === 'invalid_client') forgetClient();
      throw new OAuthError(oauthRefusal('The authorization server refused the token request', response.status, body) +
        ' Sign in again.');
    }
    const token = body && body.access_token;
    if (typeof token !== 'string' || !/^[A-Za-z0-9\-._~+/]+=*$/.test(token)) {
      throw new OAuthError('The authorization server returned no usable access token.');
    }
    if (typeof body.token_type !== 'string' || body.token_type.toLowerCase() !== 'bearer') {
      throw new OAuthError('The authorization server returned a ' + (clip(String(body.token_type)) || 'typeless') +
        ' token, not a bearer token.');
    }
    return token;
  }

  // The return from the authorization server: checked against the sign-in
  // this tab started, then the code redeemed and the token used as a
  // managing key would be (kept only once the API accepts it).
  async function finishOAuthSignIn(params) {
    ui.oauthButton.disabled = true;
    say('Finishing the sign-in…');
    try {
      const pending = takePending();
      if (!pending) {
        throw new OAuthError('This sign-in response was not asked for by this tab, or was used already: ' +
          'it was ignored and nothing was signed in.');
      }
      if (params.get('state') !== pending.state) {
        throw new OAuthError('This sign-in response does not match the sign-in this tab started (its state ' +
          'differs): it was ignored and nothing was signed in.');
      }
      // RFC 9207: the issuer says who answered; one that says it always
      // does must.
      const iss = params.get('iss');
      const wrongIssuer = iss === null ? pending.iss_required : iss !== pending.issuer;
      if (wrongIssuer) {
        throw new OAuthError('This sign-in response did not come from ' + pending.issuer +
          ': it was ignored and nothing was signed in.');
      }
      if (params.has('error')) {
        throw new OAuthError(authorizationRefused(params.get('error'), params.get('error_description')));
      }
      const code = params.get('code');
      if (!code) throw new OAuthError('The sign-in response carries no code: nothing was signed in.');
      const token = await redeem(pending, code);
      const page = await api('GET', listPath(null), undefined, token, 'oauth');
      const user = subjectOf(token);
      storeManagingKey(token, { issuer: pending.issuer, user });
      showSignedIn();
      ui.keysBody.replaceChildren();
      appendPage(page);
      say('Signed in through OAuth' + (user ? ' as ' + clip(user) : '') + '.');
      ui.createName.focus();
    } catch (error) {
      say('');
      showError(error instanceof Error ? error.message : String(error));
      // Still signed in as before (with a key, say): its keys, as usual.
      if (managingKey()) loadFirstPage().catch(failed);
      else ui.signinKey.focus();
    } finally {
      ui.oauthButton.disabled = false;
    }
  }

  // config.json: the URL of /mcp and the OAuth sign-in, if any.
  async function loadConfig() {
    let config = null;
    try {
      const response = await fetch(CONFIG_PATH, {
        headers: { Accept: 'application/json' },
        cache: 'no-store',
        credentials: 'omit',
        redirect: 'error',
      });
      config = response.ok ? await jsonOf(response) : null;
    } catch (_) {
      config = null;
    }
    if (config && typeof config.mcp_url === 'string' && webUrl(config.mcp_url)) {
      server.mcpUrl = config.mcp_url;
    }
    const oauth = config && config.oauth;
    if (oauth && webUrl(oauth.issuer) && typeof oauth.resource === 'string' && typeof oauth.scope === 'string') {
      server.oauth = { issuer: oauth.issuer, resource: oauth.resource, scope: oauth.scope };
      ui.oauthIssuer.textContent = new URL(oauth.issuer).host;
    }
    ui.oauthSignin.hidden = server.oauth === null;
    ui.signin.dataset.oauth = server.oauth ? 'on' : 'off';
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
    dialogRound += 1;
    shownSecret = secret;
    ui.secretName.textContent = String(key.name);
    ui.secretValue.value = secret;
    ui.secretCopyStatus.textContent = '';
    ui.setupUrl.textContent = server.mcpUrl;
    const snippets = setupSnippets(server.mcpUrl, secret);
    for (const [name, element] of Object.entries(ui.snippets)) element.textContent = snippets[name];
    resetTestConnection();
    openDialog(ui.secretDialog, ui.secretValue, ui.createName);
    ui.secretValue.select();
  }

  // Copies `text` to the clipboard, else selects `element` (an input, or
  // an element whose text it is) for the user to copy; says which in the
  // dialog, naming `what`.
  async function copy(text, element, what) {
    const select = () => {
      if (element instanceof HTMLInputElement) {
        element.focus();
        element.select();
      } else {
        window.getSelection().selectAllChildren(element);
      }
    };
    select();
    try {
      if (!navigator.clipboard || !window.isSecureContext) throw new Error('no clipboard');
      await navigator.clipboard.writeText(text);
      ui.secretCopyStatus.textContent = 'Copied ' + what + ' to the clipboard.';
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
      ? 'Copied ' + what + ' to the clipboard.'
      : 'It is selected: press Ctrl+C (⌘C on a Mac) to copy ' + what + '.';
  }

  function onCopy() {
    return copy(ui.secretValue.value, ui.secretValue, 'the key');
  }

  function onCopySnippet(event) {
    const button = event.target.closest('[data-copy]');
    if (!button) return;
    const element = document.getElementById(button.dataset.copy);
    if (!element || element.textContent === '') return;
    return copy(element.textContent, element, button.dataset.label || 'the snippet');
  }

  function resetTestConnection() {
    ui.testStatus.textContent = '';
    delete ui.testStatus.dataset.outcome;
    ui.testConnection.disabled = false;
  }

  // On every close, Done or Escape: the secret, and every snippet with it,
  // leaves the page.
  function onSecretClosed() {
    dialogRound += 1;
    shownSecret = null;
    ui.secretValue.value = '';
    ui.secretName.textContent = '';
    ui.secretCopyStatus.textContent = '';
    ui.setupUrl.textContent = '';
    for (const element of Object.values(ui.snippets)) element.textContent = '';
    resetTestConnection();
    const selection = window.getSelection();
    if (selection && ui.secretDialog.contains(selection.anchorNode)) selection.removeAllRanges();
    restoreFocus(ui.createName);
  }

  // ------------------------------------------------------------- setup
  //
  // The snippets of the show-once dialog: each client's own configuration
  // for this server's /mcp with the new key. The JSON ones are built as
  // objects and serialised, never pasted together as strings.

  // `value` as one POSIX shell word: bare when it is plain, in double quotes
  // when nothing in it is special inside them, else in single quotes.
  function shellWord(value) {
    if (/^[A-Za-z0-9_@%+=:,./-]+$/.test(value)) return value;
    if (!/[$`\\"!\n]/.test(value)) return '"' + value + '"';
    return '\'' + value.replace(/'/g, '\'\\\'\'') + '\'';
  }

  // `value` as a TOML basic string.
  function tomlString(value) {
    const escaped = value
      .replace(/[\\"]/g, (c) => '\\' + c)
      .replace(/[\u0000-\u001f\u007f]/g, (c) => '\\u' + c.charCodeAt(0).toString(16).padStart(4, '0'));
    return '"' + escaped + '"';
  }

  function initializeRequest(client) {
    return {
      jsonrpc: '2.0',
      id: 1,
      method: 'initialize',
      params: { protocolVersion: MCP_PROTOCOL, capabilities: {}, clientInfo: { name: client, version: '1.0' } },
    };
  }

  function setupSnippets(url, key) {
    const bearer = 'Bearer ' + key;
    // mcp-remote takes the header from the environment: a value with a
    // space in `args` is split by some clients. The `${AUTH_HEADER}` is
    // mcp-remote's, not this script's.
    const remoteArgs = ['mcp-remote', url, '--header', 'Authorization:${AUTH_HEADER}'];
    const remote = webUrl(url);
    if (remote && remote.protocol === 'http:' && !['localhost', '127.0.0.1'].includes(remote.hostname)) {
      // mcp-remote refuses plain HTTP beyond loopback without it.
      remoteArgs.push('--allow-http');
    }
    const json = (value) => JSON.stringify(value, null, 2);
    return {
      'claude-code': 'claude mcp add --transport http mcp-proxy ' + shellWord(url) +
        ' --header ' + shellWord('Authorization: ' + bearer),
      'claude-desktop': json({
        mcpServers: { 'mcp-proxy': { command: 'npx', args: remoteArgs, env: { AUTH_HEADER: bearer } } },
      }),
      codex: '[mcp_servers.mcp-proxy]\nurl = ' + tomlString(url) +
        '\nbearer_token_env_var = "MCP_PROXY_API_KEY"',
      'codex-env': 'export MCP_PROXY_API_KEY=' + shellWord(key),
      cursor: json({ mcpServers: { 'mcp-proxy': { url, headers: { Authorization: bearer } } } }),
      vscode: json({ servers: { 'mcp-proxy': { type: 'http', url, headers: { Authorization: bearer } } } }),
      curl: [
        'curl -sS ' + shellWord(url),
        '-H ' + shellWord('Authorization: ' + bearer),
        '-H ' + shellWord('Content-Type: application/json'),
        '-H ' + shellWord('Accept: application/json, text/event-stream'),
        '-d ' + shellWord(JSON.stringify(initializeRequest('curl'))),
      ].join(' \\\n  '),
    };
  }

  // ---------------------------------------------------- test connection

  const TEST_TIMEOUT_MS = 15000;

  // error_description="..." of a WWW-Authenticate challenge, or null.
  function challengeDescription(header) {
    const match = /error_description="((?:[^"\\]|\\.)*)"/.exec(header || '');
    return match ? clip(match[1].replace(/\\(.)/g, '$1')) : null;
  }

  // The JSON-RPC message with `id` in an MCP answer: a JSON body, or the
  // `data:` of an event of a text/event-stream one.
  async function rpcAnswer(response, id) {
    const type = response.headers.get('Content-Type') || '';
    if (/^application\/json/i.test(type)) {
      const body = await jsonOf(response);
      const found = (Array.isArray(body) ? body : [body]).find((m) => m && typeof m === 'object' && m.id === id);
      if (!found) throw new Error('The MCP endpoint answered without a response to initialize.');
      return found;
    }
    if (!/^text\/event-stream/i.test(type) || !response.body) {
      throw new Error('The MCP endpoint answered with ' + (clip(type) || 'no content type') +
        ', neither JSON nor an event stream.');
    }
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    const blank = /\r\n\r\n|\n\n|\r\r/;
    let buffer = '';
    let length = 0;
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (value) {
          length += value.length;
          buffer += decoder.decode(value, { stream: true });
        }
        // An event ends with a blank line; its data is its `data:` lines.
        let end = buffer.search(blank);
        while (end !== -1) {
          const event = buffer.slice(0, end);
          buffer = buffer.slice(end).replace(blank, '');
          const data = event.split(/\r\n|\n|\r/)
            .filter((line) => line.startsWith('data:'))
            .map((line) => line.slice(5).replace(/^ /, ''))
            .join('\n');
          let message = null;
          try {
            message = data === '' ? null : JSON.parse(data);
          } catch (_) {
            message = null;
          }
          if (message && typeof message === 'object' && message.id === id) return message;
          end = buffer.search(blank);
        }
        if (done || length > 1024 * 1024) break;
      }
    } finally {
      reader.cancel().catch(() => {});
    }
    throw new Error('The event stream of the MCP endpoint ended without a response to initialize.');
  }

  // Opens an MCP session on this server's /mcp with `key` (initialize),
  // says whom it reached, and ends the session (DELETE with its id).
  async function testConnection(key) {
    const controller = new AbortController();
    const timer = window.setTimeout(() => controller.abort(), TEST_TIMEOUT_MS);
    const request = (method, headers, body) => fetch(MCP_PATH, {
      method,
      headers: Object.assign({ Authorization: 'Bearer ' + key }, headers),
      body,
      cache: 'no-store',
      credentials: 'omit',
      redirect: 'error',
      referrerPolicy: 'no-referrer',
      signal: controller.signal,
    });
    let session = null;
    let protocol = MCP_PROTOCOL;
    try {
      let response;
      try {
        response = await request('POST', {
          Accept: 'application/json, text/event-stream',
          'Content-Type': 'application/json',
        }, JSON.stringify(initializeRequest('mcp-proxy settings page')));
      } catch (_) {
        throw new Error(controller.signal.aborted
          ? 'The MCP endpoint did not answer within ' + TEST_TIMEOUT_MS / 1000 + ' seconds.'
          : 'The MCP endpoint could not be reached.');
      }
      const id = response.headers.get('Mcp-Session-Id');
      session = id && /^[\x21-\x7e]+$/.test(id) ? id : null;
      if (!response.ok) {
        const body = await jsonOf(response);
        const said = (body && (clip(body.error_description) || clip(body.detail) || clip(body.error))) ||
          challengeDescription(response.headers.get('WWW-Authenticate'));
        throw new Error('The MCP endpoint refused the connection: ' + response.status +
          (said ? ', ' + said : '') + '.');
      }
      let message;
      try {
        message = await rpcAnswer(response, 1);
      } catch (error) {
        throw controller.signal.aborted
          ? new Error('The answer of the MCP endpoint did not end within ' + TEST_TIMEOUT_MS / 1000 + ' seconds.')
          : error;
      }
      if (message.error) {
        throw new Error('The MCP server answered initialize with an error: ' +
          (clip(message.error && message.error.message) || 'no message') + '.');
      }
      const result = message.result && typeof message.result === 'object' ? message.result : {};
      const info = result.serverInfo && typeof result.serverInfo === 'object' ? result.serverInfo : {};
      if (typeof result.protocolVersion === 'string' && /^[\x21-\x7e]+$/.test(result.protocolVersion)) {
        protocol = result.protocolVersion;
      }
      const version = clip(info.version);
      return 'Connected to ' + (clip(info.name) || 'the MCP server') + (version ? ' ' + version : '') +
        ' (MCP ' + protocol + ').';
    } finally {
      if (session) {
        try {
          await request('DELETE', { 'Mcp-Session-Id': session, 'MCP-Protocol-Version': protocol });
        } catch (_) {
          // The session ends when it is idle anyway.
        }
      }
      window.clearTimeout(timer);
    }
  }

  async function onTestConnection() {
    const secret = shownSecret;
    if (!secret) return;
    const round = dialogRound;
    const show = (outcome, text) => {
      if (round !== dialogRound) return;
      ui.testStatus.dataset.outcome = outcome;
      ui.testStatus.textContent = text;
    };
    ui.testConnection.disabled = true;
    show('pending', 'Testing the connection…');
    try {
      show('ok', await testConnection(secret));
    } catch (error) {
      show('failed', error instanceof Error ? error.message : String(error));
    } finally {
      if (round === dialogRound) ui.testConnection.disabled = false;
    }
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
    // First of all: the code and state of an OAuth return leave the URL.
    const callback = takeCallback();
    ui.signinForm.addEventListener('submit', onSignIn);
    ui.oauthButton.addEventListener('click', onOAuthSignIn);
    ui.signout.addEventListener('click', onSignOut);
    ui.createForm.addEventListener('submit', onCreate);
    ui.refresh.addEventListener('click', onRefresh);
    ui.loadMore.addEventListener('click', onLoadMore);
    ui.secretCopy.addEventListener('click', onCopy);
    ui.secretDone.addEventListener('click', () => closeDialog(ui.secretDialog));
    ui.secretDialog.addEventListener('close', onSecretClosed);
    ui.secretDialog.addEventListener('click', onCopySnippet);
    ui.testConnection.addEventListener('click', onTestConnection);
    ui.revokeCancel.addEventListener('click', () => closeDialog(ui.revokeDialog));
    ui.confirmRevoke.addEventListener('click', onConfirmRevoke);
    ui.revokeDialog.addEventListener('close', onRevokeClosed);
    window.setInterval(refreshRelativeTimes, 30 * 1000);
    // Back from the authorization server's page without signing in: the
    // page comes back from the cache as it was left.
    window.addEventListener('pageshow', (event) => {
      if (!event.persisted) return;
      ui.oauthButton.disabled = false;
      if (ui.status.textContent === 'Taking you to the sign-in page…') say('');
    });

    if (managingKey()) {
      showSignedIn();
      if (!callback) loadFirstPage().catch(failed);
    } else {
      showSignedOut();
      ui.signinKey.focus();
    }
    loadConfig();
    if (callback) finishOAuthSignIn(callback);
  }

  start();
})();
