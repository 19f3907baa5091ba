// warrant approval console (issue 11; docs/approvals.md).
//
// Rules this file keeps:
// - Everything the server returns about a request may be written by the
//   agent. It reaches the page only through textContent (never innerHTML),
//   with control, bidi and zero-width characters shown as visible escapes.
// - The approver's private key is read from a local file into WebCrypto and
//   used here to sign; it is never sent anywhere. The server verifies the
//   signature with the same code as `warrant approvals approve`.
// - The token lives in this page's memory only (a reload signs out).
'use strict';

const state = { token: null, identity: null, key: null, selected: null, detail: null, stream: null };
const $ = (id) => document.getElementById(id);

// ---- rendering hostile text ------------------------------------------------

// C0/C1 controls (ESC starts ANSI sequences), bidi overrides and isolates,
// zero-width and other invisible characters: each would let agent text look
// like something it is not.
const DECEPTIVE = /[\u0000-\u001f\u007f-\u009f\u00ad\u061c\u115f\u1160\u180e\u200b-\u200f\u202a-\u202e\u2060-\u206f\u3164\ufe00-\ufe0f\ufeff\uffa0\ufff9-\ufffb]/u;

function visible(text) {
  const frag = document.createDocumentFragment();
  let run = '';
  for (const ch of String(text ?? '')) {
    if (DECEPTIVE.test(ch) && ch !== '\n') {
      if (run) frag.append(run);
      run = '';
      const esc = document.createElement('span');
      esc.className = 'esc';
      esc.textContent = `\\u{${ch.codePointAt(0).toString(16).padStart(4, '0')}}`;
      frag.append(esc);
    } else {
      run += ch;
    }
  }
  if (run) frag.append(run);
  return frag;
}

function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === 'class') e.className = v;
    else e.setAttribute(k, v);
  }
  for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return e;
}

/** Agent-written text: escaped, isolated, marked untrusted. */
function untrusted(text) {
  return el('span', { class: 'untrusted', 'data-untrusted': '' }, el('span', { class: 'untrusted-tag' }, 'agent text · untrusted'), visible(text));
}

/** Text from the request that is not free prose (ids, paths, argv): escaped too. */
function mono(text) {
  return el('code', { class: 'mono untrusted' }, visible(text));
}

function facts(dl, rows) {
  dl.replaceChildren();
  for (const [k, v] of rows) dl.append(el('dt', {}, k), el('dd', {}, v));
}

// ---- server --------------------------------------------------------------------

async function api(path, { method = 'GET', body } = {}) {
  const headers = { Authorization: `Bearer ${state.token}` };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const r = await fetch(`/console/api/${path}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), cache: 'no-store' });
  let data = null;
  try { data = await r.json(); } catch { /* empty or not JSON */ }
  if (!r.ok) throw new Error(data?.error ?? `HTTP ${r.status}`);
  return data;
}

// Server-sent events over fetch (EventSource cannot send the token header).
async function listen() {
  const ctrl = new AbortController();
  state.stream = ctrl;
  while (state.token && !ctrl.signal.aborted) {
    try {
      const r = await fetch('/console/api/events', { headers: { Authorization: `Bearer ${state.token}`, Accept: 'text/event-stream' }, signal: ctrl.signal, cache: 'no-store' });
      if (!r.ok || !r.body) throw new Error(`events: HTTP ${r.status}`);
      setLive(true);
      const reader = r.body.pipeThrough(new TextDecoderStream()).getReader();
      let buf = '';
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += value;
        let i;
        while ((i = buf.indexOf('\n\n')) >= 0) {
          onEvent(buf.slice(0, i));
          buf = buf.slice(i + 2);
        }
      }
    } catch (e) {
      if (ctrl.signal.aborted) return;
    }
    setLive(false);
    await new Promise((res) => setTimeout(res, 1000));
  }
}

function setLive(on) {
  $('live').textContent = on ? 'live' : 'reconnecting…';
  $('live').classList.toggle('on', on);
}

function onEvent(block) {
  let name = 'message';
  let data = '';
  for (const line of block.split('\n')) {
    if (line.startsWith('event: ')) name = line.slice(7);
    else if (line.startsWith('data: ')) data += line.slice(6);
  }
  if (name === 'receipts') refreshReceipts();
  if (name !== 'requests') return;
  renderRequests(JSON.parse(data));
  if (state.selected) openRequest(state.selected, { quiet: true });
}

// ---- the queue -------------------------------------------------------------------

function renderRequests(list) {
  const ul = $('requests');
  ul.replaceChildren();
  $('no-requests').hidden = list.length > 0;
  for (const r of list) {
    const li = el('li', { 'data-request-id': r.request_id },
      el('strong', {}, mono(r.request_id)), ' ',
      el('span', { class: 'badge' }, `${r.status} · ${r.approvals}/${r.required_approvals} approvals`), ' agent ',
      mono(r.agent_id), ' · ', untrusted(r.intent ?? ''));
    if (r.request_id === state.selected) li.classList.add('selected');
    li.addEventListener('click', () => openRequest(r.request_id));
    ul.append(li);
  }
}

function commandView(c) {
  const argv = (c.pipeline ?? [c.argv]).map((seg) => el('span', { class: 'argv' }, ...seg.map((a) => el('span', { class: 'arg' }, mono(a)))));
  const list = (xs) => (xs?.length ? el('span', {}, ...xs.flatMap((x, i) => (i ? [' ', mono(x)] : [mono(x)]))) : el('span', {}, '—'));
  const dl = el('dl');
  facts(dl, [
    ['argv', el('span', {}, ...argv.flatMap((a, i) => (i ? [' | ', a] : [a])))],
    ['cwd', mono(c.cwd ?? '')],
    ['read paths', list(c.read_paths)],
    ['write paths', list(c.write_paths)],
    ['network', el('strong', {}, c.network)],
    ['secrets', list(c.secret_refs)],
    ['environment', list(c.env_allow)],
    ['timeout', `${c.timeout_sec} s`],
    ['proposed effect', mono(c.proposed_effect_type ?? '')],
  ]);
  return el('div', { class: 'cmd' }, el('strong', {}, mono(c.id)), dl);
}

async function openRequest(id, { quiet = false } = {}) {
  state.selected = id;
  for (const li of $('requests').children) li.classList.toggle('selected', li.dataset.requestId === id);
  if (!quiet) { $('action-error').textContent = ''; $('action-result').textContent = ''; }
  let d;
  try {
    d = await api(`requests/${encodeURIComponent(id)}`);
  } catch (e) {
    $('action-error').textContent = e.message;
    return;
  }
  state.detail = d;
  $('detail').hidden = false;
  $('d-id').textContent = d.request_id;
  const dec = d.decision ?? {};
  facts($('d-facts'), [
    ['status', el('strong', { id: 'd-status' }, d.status)],
    ['agent', mono(d.agent_id)],
    ['initiating user', mono(d.initiating_user ?? '')],
    ['contract', mono(`${d.contract_id}  sha256 ${d.contract_sha256}`)],
    ['intent', untrusted(d.intent ?? '')],
    ['justification', untrusted(d.justification ?? '')],
    ['risk class (agent)', mono(d.risk_class ?? '')],
    ['approval mode', mono(d.approval_mode ?? '')],
    ['requested', `${d.requested_at} (expires ${d.expires_at})`],
  ]);
  $('d-commands').replaceChildren(...(d.commands ?? []).map(commandView));
  facts($('d-decision'), [
    ['policy', mono(d.policy ?? '')],
    ['decision', el('strong', {}, dec.decision ?? '?')],
    ['risk class that gates approval', el('strong', { class: `risk-${dec.risk_class}` }, dec.risk_class ?? '?')],
    ['classified effects', el('span', {}, ...(dec.classified_effects ?? []).flatMap((e, i) => [i ? ', ' : '', mono(`${e.command_id}: ${e.effect_type}`)]))],
    ['effects needing approval', mono((dec.approval_effects ?? []).join(', '))],
    ['reasons', el('span', {}, ...(dec.reasons ?? []).map((r) => mono(r)))],
    ['reason codes', mono((dec.reason_codes ?? []).join(', '))],
  ]);
  const counting = d.artifacts.filter((a) => !a.revoked && !a.consumed);
  const mine = counting.some((a) => a.identity === state.identity);
  $('d-progress').textContent = `${d.approvals} of ${d.required_approvals} approval(s) in` +
    (d.required_approvals > 1 ? ' — dual control: two distinct approvers' : '') + (mine ? ' — yours is one of them' : '');
  $('d-artifacts').replaceChildren(...d.artifacts.map((a) => el('li', { 'data-approval-id': a.approval_id },
    mono(a.identity), ` (${a.method}) at ${a.approved_at}, until ${a.expires_at}`,
    a.revoked ? ' — revoked' : a.consumed ? ' — used' : ' — counts')));
  $('d-raw').replaceChildren(visible(JSON.stringify(d.contract, null, 2)));
  const open = d.status === 'pending' || d.status === 'approved';
  $('approve').disabled = !open || mine;
  $('deny').disabled = !open;
  $('revoke').disabled = !open;
}

// ---- keys and signing --------------------------------------------------------------

const b64 = (bytes) => btoa(String.fromCharCode(...new Uint8Array(bytes)));
const hex = (bytes) => [...new Uint8Array(bytes)].map((b) => b.toString(16).padStart(2, '0')).join('');
const fromB64url = (s) => Uint8Array.from(atob(s.replace(/-/g, '+').replace(/_/g, '/')), (c) => c.charCodeAt(0));

async function loadKey(file) {
  $('key-error').textContent = '';
  const pem = await file.text();
  const m = /-----BEGIN PRIVATE KEY-----([A-Za-z0-9+/=\s]+)-----END PRIVATE KEY-----/.exec(pem);
  if (!m) throw new Error('not a PKCS#8 PEM private key (the NAME.key file `warrant keygen` writes)');
  const der = Uint8Array.from(atob(m[1].replace(/\s+/g, '')), (c) => c.charCodeAt(0));
  // Extractable once, to learn the public half; the signing key kept is not.
  const probe = await crypto.subtle.importKey('pkcs8', der, { name: 'Ed25519' }, true, ['sign']);
  const pk = fromB64url((await crypto.subtle.exportKey('jwk', probe)).x);
  const priv = await crypto.subtle.importKey('pkcs8', der, { name: 'Ed25519' }, false, ['sign']);
  der.fill(0);
  const keyId = hex(await crypto.subtle.digest('SHA-256', pk)).slice(0, 16);
  state.key = { priv, publicKey: b64(pk), keyId };
  $('key-info').textContent = `Key ${keyId} loaded (public key ${state.key.publicKey}).`;
  $('key-state').textContent = `key ${keyId}`;
  $('key-state').classList.add('on');
}

// Canonical JSON, byte for byte the server's (design.md): keys sorted by
// code point, no whitespace, literal UTF-8, JSON.stringify's escapes.
function canonical(v) {
  if (Array.isArray(v)) return `[${v.map(canonical).join(',')}]`;
  if (v && typeof v === 'object') {
    const cmp = (a, b) => { const x = [...a].map((c) => c.codePointAt(0)); const y = [...b].map((c) => c.codePointAt(0));
      for (let i = 0; i < Math.min(x.length, y.length); i++) if (x[i] !== y[i]) return x[i] - y[i];
      return x.length - y.length; };
    return `{${Object.keys(v).filter((k) => v[k] !== undefined).sort(cmp).map((k) => `${JSON.stringify(k)}:${canonical(v[k])}`).join(',')}}`;
  }
  return JSON.stringify(v);
}

async function signApproval(d) {
  if (!state.key) throw new Error('load your private key file first');
  // The server's clock decides validity: start from its time.
  const approved = Date.parse(d.server_time);
  const life = Math.min(Number($('lifetime').value), d.max_lifetime_sec || 3600);
  const reason = $('reason').value.trim();
  const artifact = {
    approval_version: 'csc.approval.v0.1',
    approval_id: `apv_${hex(crypto.getRandomValues(new Uint8Array(16)))}`,
    contract_sha256: d.contract_sha256,
    approver: { identity: state.identity, method: 'manual' },
    approved_at: new Date(approved).toISOString(),
    expires_at: new Date(approved + life * 1000).toISOString(),
    scope: 'single_execution',
    ...(reason ? { reason } : {}),
    signature: { algorithm: 'ed25519', key_id: state.key.keyId, public_key: state.key.publicKey },
  };
  const payload = new TextEncoder().encode(canonical(artifact));
  artifact.signature.signature = b64(await crypto.subtle.sign({ name: 'Ed25519' }, state.key.priv, payload));
  return artifact;
}

// ---- actions -----------------------------------------------------------------------

async function act(verb) {
  const d = state.detail;
  if (!d) return;
  $('action-error').textContent = '';
  $('action-result').textContent = '';
  try {
    const body = verb === 'approve' ? await signApproval(d) : { reason: $('reason').value.trim() };
    const r = await api(`requests/${encodeURIComponent(d.request_id)}/${verb}`, { method: 'POST', body });
    $('action-result').textContent = `${verb}: request ${r.request_id} is ${r.status} (${r.approvals}/${r.required_approvals} approvals)`;
  } catch (e) {
    $('action-error').textContent = `${verb} refused: ${e.message}`;
  }
  await openRequest(d.request_id, { quiet: true });
}

// ---- receipts ---------------------------------------------------------------------------

async function refreshReceipts() {
  let data;
  try { data = await api('receipts'); } catch { return; }
  $('receipts').replaceChildren(...data.receipts.map((v) => {
    const r = v.receipt ?? {};
    const ok = v.verified && v.linked !== false;
    const status = ok ? 'signature ok' + (v.linked ? ', chained' : '') : `FAILED: ${v.verify_error ?? 'chain link broken'}`;
    return el('tr', { 'data-seq': String(v.seq) }, el('td', {}, String(v.seq)), el('td', {}, r.status ?? ''),
      el('td', {}, mono(r.contract_id ?? '')), el('td', {}, mono(r.agent_id ?? '')),
      el('td', {}, ...(r.approvals ?? []).flatMap((a, i) => [i ? ', ' : '', mono(`${a.identity} (${a.method}${a.attestation === 'client' ? ', client-attested' : ''})`)])),
      el('td', { class: ok ? 'verified' : 'unverified' }, status));
  }));
}

// ---- sign in / out -----------------------------------------------------------------------

async function signIn() {
  $('signin-error').textContent = '';
  state.token = $('token').value.trim();
  try {
    const me = await api('whoami');
    state.identity = me.identity;
  } catch (e) {
    state.token = null;
    $('signin-error').textContent = `Sign-in refused: ${e.message}`;
    return;
  }
  $('token').value = '';
  $('who-name').textContent = state.identity;
  $('who').hidden = false;
  $('signin').hidden = true;
  $('app').hidden = false;
  refreshReceipts();
  listen();
}

function signOut() {
  state.stream?.abort();
  Object.assign(state, { token: null, identity: null, key: null, selected: null, detail: null, stream: null });
  location.reload();
}

document.addEventListener('DOMContentLoaded', () => {
  $('sign-in').addEventListener('click', signIn);
  $('token').addEventListener('keydown', (e) => { if (e.key === 'Enter') signIn(); });
  $('sign-out').addEventListener('click', signOut);
  $('key-file').addEventListener('change', async (e) => {
    const f = e.target.files[0];
    e.target.value = '';
    if (!f) return;
    try { await loadKey(f); } catch (err) { $('key-error').textContent = `Key refused: ${err.message}`; }
  });
  $('approve').addEventListener('click', () => act('approve'));
  $('deny').addEventListener('click', () => act('deny'));
  $('revoke').addEventListener('click', () => act('revoke'));
});
