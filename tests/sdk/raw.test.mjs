// Malformed and out-of-order frames on each transport, sent raw (the SDK never
// sends them): each gets the JSON-RPC error the checklist names, and the same
// connection keeps serving afterwards.
import assert from 'node:assert/strict';
import http from 'node:http';
import { after, before, describe, test } from 'node:test';

import { WebSocket } from 'ws';

import {
  contract, Daemon, deadline, makeWorld, onLines, sleep, spawnStdio, startNetworkDaemon, teardown, wsUrl,
} from './lib/harness.mjs';

const INIT = { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'raw', version: '1' } };

/** Collects parsed JSON messages and lets a test wait for the next one. */
class Inbox {
  constructor() { this.queue = []; this.waiters = []; this.raw = []; }

  push(text) {
    this.raw.push(text);
    let msg;
    try { msg = JSON.parse(text); } catch { msg = { unparseable: text }; }
    const w = this.waiters.shift();
    if (w) w(msg); else this.queue.push(msg);
  }

  next(ms = 5000) {
    if (this.queue.length) return Promise.resolve(this.queue.shift());
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== done);
        reject(new Error(`no message within ${ms} ms`));
      }, ms);
      const done = (m) => { clearTimeout(t); resolve(m); };
      this.waiters.push(done);
    });
  }
}

/**
 * The shared script: `send(text|Buffer)` writes one frame, `inbox` receives.
 * Every step sends something malformed, checks the answer, and the final
 * ping proves the connection survived all of it.
 */
async function malformedScript(send, inbox, { lines }) {
  // (lines: stdio framing. Invalid UTF-8 is only sent on stdio: over WebSocket
  // a text frame with invalid UTF-8 may legitimately close the connection, 1007.)
  // ping is answered even before initialize.
  send(JSON.stringify({ jsonrpc: '2.0', id: 0, method: 'ping' }));
  assert.deepEqual(await inbox.next(), { jsonrpc: '2.0', id: 0, result: {} });

  // Other requests before initialize are refused, not ignored.
  send(JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/list' }));
  let m = await inbox.next();
  assert.equal(m.id, 1);
  assert.ok(m.error, 'tools/list before initialize is an error');
  assert.ok(!(m.error.code <= -32020 && m.error.code >= -32029), 'no -3202x code');

  send(JSON.stringify({ jsonrpc: '2.0', id: 2, method: 'initialize', params: INIT }));
  m = await inbox.next();
  assert.equal(m.id, 2);
  assert.equal(m.result.protocolVersion, '2025-11-25');
  send(JSON.stringify({ jsonrpc: '2.0', method: 'notifications/initialized' }));

  // Parse error: -32700 and no id member (the SDK rejects "id": null).
  send('{"jsonrpc":"2.0","id":3,"method":');
  m = await inbox.next();
  assert.equal(m.error?.code, -32700);
  assert.equal(Object.hasOwn(m, 'id'), false, 'parse error response omits id');

  if (lines) {
    // Invalid UTF-8 is rejected like a parse error.
    send(Buffer.concat([Buffer.from('{"jsonrpc":"2.0","id":4,"method":"ping","x":"'), Buffer.from([0xff, 0xfe]), Buffer.from('"}')]));
    m = await inbox.next();
    assert.ok(m.error && [-32700, -32600].includes(m.error.code), `invalid UTF-8 → ${JSON.stringify(m)}`);
  }

  // Batches are not part of 2025-11-25: one -32600.
  send(JSON.stringify([{ jsonrpc: '2.0', id: 5, method: 'ping' }]));
  m = await inbox.next();
  assert.equal(Array.isArray(m), false);
  assert.equal(m.error?.code, -32600);

  // id null and a fractional id are invalid requests.
  send('{"jsonrpc":"2.0","id":null,"method":"ping"}');
  m = await inbox.next();
  assert.equal(m.error?.code, -32600);
  send('{"jsonrpc":"2.0","id":1.5,"method":"ping"}');
  m = await inbox.next();
  assert.equal(m.error?.code, -32600);

  // Unknown method: -32601, the string id echoed with its type.
  send(JSON.stringify({ jsonrpc: '2.0', id: '6', method: 'no/such/method' }));
  m = await inbox.next();
  assert.equal(m.id, '6');
  assert.equal(m.error?.code, -32601);

  // A second initialize on the same session: -32600.
  send(JSON.stringify({ jsonrpc: '2.0', id: 7, method: 'initialize', params: INIT }));
  m = await inbox.next();
  assert.equal(m.id, 7);
  assert.equal(m.error?.code, -32600);

  // tools/call with arguments that are not an object: -32602.
  send(JSON.stringify({ jsonrpc: '2.0', id: 8, method: 'tools/call', params: { name: 'check', arguments: 'x' } }));
  m = await inbox.next();
  assert.equal(m.id, 8);
  assert.equal(m.error?.code, -32602);

  // Notifications are never answered, not even unknown ones: the next
  // message we receive must be the reply to the ping that follows.
  send(JSON.stringify({ jsonrpc: '2.0', method: 'notifications/unknown_thing', params: {} }));
  send(JSON.stringify({ jsonrpc: '2.0', method: 'notifications/cancelled', params: { requestId: 999 } }));

  if (lines) {
    // stdio framing: blank lines and CRLF are tolerated.
    send('');
    send(JSON.stringify({ jsonrpc: '2.0', id: 9, method: 'ping' }) + '\r');
    assert.deepEqual(await inbox.next(), { jsonrpc: '2.0', id: 9, result: {} });
  }

  // The connection still serves.
  send(JSON.stringify({ jsonrpc: '2.0', id: 10, method: 'tools/list' }));
  m = await inbox.next();
  assert.equal(m.id, 10);
  assert.equal(m.result.tools.length, 9);
}

/** warrantd --stdio with raw pipes: send(text) writes one line. */
function rawStdio(world) {
  const d = new Daemon(spawnStdio(world));
  const inbox = new Inbox();
  onLines(d.child.stdout, (line) => inbox.push(line));
  const send = (s) => d.child.stdin.write(Buffer.concat([Buffer.from(s), Buffer.from('\n')]));
  return { d, inbox, send };
}

describe('raw frames over stdio', { timeout: 60_000 }, () => {
  let world;
  let d;
  let inbox;
  let send;

  before(() => {
    world = makeWorld();
    ({ d, inbox, send } = rawStdio(world));
  });

  after(() => teardown(() => d?.stopClean(), () => world?.cleanup()));

  test('malformed messages get errors and the stream keeps serving', async () => {
    await malformedScript(send, inbox, { lines: true });
    for (const line of inbox.raw) assert.doesNotMatch(line, /\n/, 'one message per line');
  });

  test('an oversized line gets -32600 and the stream resyncs', async () => {
    send(JSON.stringify({ jsonrpc: '2.0', id: 20, method: 'ping', params: { pad: 'x'.repeat(5 << 20) } }));
    const m = await inbox.next(15_000);
    assert.equal(m.error?.code, -32600);
    send(JSON.stringify({ jsonrpc: '2.0', id: 21, method: 'ping' }));
    assert.deepEqual(await inbox.next(), { jsonrpc: '2.0', id: 21, result: {} });
  });

  test('EOF on stdin ends warrantd with status 0', async () => {
    d.child.stdin.end();
    const { code, signal } = await Promise.race([d.exit, deadline(10_000).then(() => ({ code: 'timeout' }))]);
    assert.equal(signal ?? null, null);
    assert.equal(code, 0, d.stderr);
  });
});

describe('pipelined requests over stdio', { timeout: 60_000 }, () => {
  let world;
  let d;
  let inbox;
  let send;

  before(async () => {
    world = makeWorld();
    ({ d, inbox, send } = rawStdio(world));
    send(JSON.stringify({ jsonrpc: '2.0', id: 0, method: 'initialize', params: INIT }));
    assert.equal((await inbox.next()).id, 0);
    send(JSON.stringify({ jsonrpc: '2.0', method: 'notifications/initialized' }));
  });

  after(() => teardown(() => d?.stopClean(), () => world?.cleanup()));

  test('1000 requests written at once to a slow reader all get answers', async () => {
    // About 0.7 MB in one write, split by reads at arbitrary points.
    const params = { name: 'check', arguments: { contract: contract(world, ['cat', 'hello.txt']) } };
    const burst = Array.from({ length: 1000 }, (_, i) => JSON.stringify({ jsonrpc: '2.0', id: 1000 + i, method: 'tools/call', params })).join('\n');
    // Read nothing for a moment: stdout (a 64 KiB pipe) fills and warrantd's
    // writes hit EAGAIN; it must resume writing when the pipe drains.
    d.child.stdout.pause();
    send(burst);
    await sleep(500);
    d.child.stdout.resume();
    const ids = new Set();
    for (let i = 0; i < 1000; i++) {
      const m = await inbox.next(10_000).catch(() => assert.fail(`only ${ids.size} of 1000 pipelined requests answered`));
      assert.equal(m.result?.structuredContent?.decision, 'allow');
      ids.add(m.id);
    }
    assert.equal(ids.size, 1000);
  });

});

describe('raw frames over WebSocket', { timeout: 60_000 }, () => {
  let world;
  let daemon;

  before(async () => {
    world = makeWorld();
    daemon = await startNetworkDaemon(world);
  });

  // SIGTERM drains and exits 0 (design.md, warrantd); stopClean checks it.
  after(() => teardown(() => daemon?.stopClean(), () => world?.cleanup()));

  function open(opts = {}, token = world.tokens[world.agent]) {
    const ws = new WebSocket(wsUrl(daemon, token), 'mcp', opts);
    const inbox = new Inbox();
    ws.on('message', (data) => inbox.push(data.toString('utf8')));
    const opened = new Promise((resolve, reject) => {
      ws.once('open', resolve);
      ws.once('error', reject);
      ws.once('unexpected-response', (_req, res) => reject(new Error(`HTTP ${res.statusCode}`)));
    });
    return { ws, inbox, opened };
  }

  test('malformed messages get errors and the connection keeps serving', async () => {
    const { ws, inbox, opened } = await open();
    await opened;
    assert.equal(ws.protocol, 'mcp', 'subprotocol mcp selected');
    try {
      await malformedScript((s) => ws.send(s), inbox, { lines: false });
    } finally {
      ws.close();
    }
  });

  test('a foreign Origin is refused at the handshake', async () => {
    const { opened } = open({ origin: 'http://evil.example.com' });
    await assert.rejects(opened, /403|Unexpected server response/);
  });
});

/** One raw HTTP request to /mcp on a fresh connection (or the given agent's);
 * resolves to {status, headers, body}. */
function post(daemon, body, headers = {}, method = 'POST', agent = false) {
  return new Promise((resolve, reject) => {
    const req = http.request({
      host: '127.0.0.1', port: daemon.port, path: '/mcp', method, agent,
      headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', ...headers },
    }, (res) => {
      let data = '';
      res.setEncoding('utf8');
      res.on('data', (c) => { data += c; });
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: data }));
    });
    req.on('error', reject);
    req.setTimeout(10_000, () => req.destroy(new Error('timeout')));
    req.end(body);
  });
}

/** The JSON-RPC message in a JSON or SSE body. */
function message(res) {
  if ((res.headers['content-type'] ?? '').startsWith('text/event-stream')) {
    const data = res.body.split('\n').filter((l) => l.startsWith('data:')).map((l) => l.slice(5).trim()).filter(Boolean);
    return JSON.parse(data[data.length - 1]);
  }
  return JSON.parse(res.body);
}

describe('raw requests over Streamable HTTP', { timeout: 60_000 }, () => {
  let world;
  let daemon;
  let auth;
  let session;

  before(async () => {
    world = makeWorld();
    daemon = await startNetworkDaemon(world);
    auth = { authorization: `Bearer ${world.tokens[world.agent]}` };
    const res = await post(daemon, JSON.stringify({ jsonrpc: '2.0', id: 0, method: 'initialize', params: INIT }), auth);
    assert.equal(res.status, 200, res.body);
    session = res.headers['mcp-session-id'];
    assert.match(session ?? '', /^[\x21-\x7e]{16,}$/, 'session id: visible ASCII, long enough to be unguessable');
    assert.equal(message(res).result.protocolVersion, '2025-11-25');
    const n = await post(daemon, JSON.stringify({ jsonrpc: '2.0', method: 'notifications/initialized' }),
      { ...auth, 'mcp-session-id': session, 'mcp-protocol-version': '2025-11-25' });
    assert.equal(n.status, 202);
  });

  after(() => teardown(() => daemon?.stopClean(), () => world?.cleanup()));

  const inSession = () => ({ ...auth, 'mcp-session-id': session, 'mcp-protocol-version': '2025-11-25' });

  test('bad JSON → 400 with -32700', async () => {
    const r = await post(daemon, '{"jsonrpc":', inSession());
    assert.equal(r.status, 400);
    assert.equal(JSON.parse(r.body).error.code, -32700);
  });

  test('invalid UTF-8 → 400', async () => {
    const body = Buffer.concat([Buffer.from('{"jsonrpc":"2.0","id":1,"method":"ping","x":"'), Buffer.from([0xc3, 0x28]), Buffer.from('"}')]);
    const r = await post(daemon, body, inSession());
    assert.equal(r.status, 400);
  });

  test('a batch → 400 with -32600', async () => {
    const r = await post(daemon, JSON.stringify([{ jsonrpc: '2.0', id: 1, method: 'ping' }]), inSession());
    assert.equal(r.status, 400);
    assert.equal(JSON.parse(r.body).error.code, -32600);
  });

  test('wrong Content-Type → 415, Accept without text/event-stream → 406', async () => {
    const ping = JSON.stringify({ jsonrpc: '2.0', id: 2, method: 'ping' });
    assert.equal((await post(daemon, ping, { ...inSession(), 'content-type': 'text/plain' })).status, 415);
    assert.equal((await post(daemon, ping, { ...inSession(), accept: 'application/json' })).status, 406);
  });

  test('foreign Origin or Host → 403 (DNS rebinding)', async () => {
    const ping = JSON.stringify({ jsonrpc: '2.0', id: 3, method: 'ping' });
    assert.equal((await post(daemon, ping, { ...inSession(), origin: 'http://evil.example.com' })).status, 403);
    assert.equal((await post(daemon, ping, { ...inSession(), host: 'evil.example.com' })).status, 403);
    const ok = await post(daemon, ping, { ...inSession(), origin: `http://127.0.0.1:${daemon.port}` });
    assert.equal(ok.status, 200, 'own origin accepted');
  });

  test('a kept-alive connection survives a refused request (or is closed with Connection: close)', async () => {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    try {
      for (const bad of [{ 'content-type': 'text/plain' }, { origin: 'http://evil.example.com' }, {}]) {
        const r = await post(daemon, '{"jsonrpc":', { ...inSession(), ...bad }, 'POST', agent);
        assert.ok(r.status >= 400 && r.status < 500, `refused: ${r.status}`);
        const ping = await post(daemon, JSON.stringify({ jsonrpc: '2.0', id: 11, method: 'ping' }), inSession(), 'POST', agent)
          .catch((e) => assert.fail(`request after a ${r.status} on the same connection failed (${e.message}); `
            + `the ${r.status} response said Connection: ${r.headers.connection ?? '(nothing)'}`));
        assert.equal(ping.status, 200);
      }
    } finally {
      agent.destroy();
    }
  });

  test('missing session id → 400, unknown session id → 404, bad protocol version → 400', async () => {
    const ping = JSON.stringify({ jsonrpc: '2.0', id: 4, method: 'ping' });
    assert.equal((await post(daemon, ping, auth)).status, 400);
    assert.equal((await post(daemon, ping, { ...inSession(), 'mcp-session-id': 'no-such-session-0000000000' })).status, 404);
    assert.equal((await post(daemon, ping, { ...inSession(), 'mcp-protocol-version': '1999-01-01' })).status, 400);
  });

  test('the session still serves, then DELETE ends it and its id → 404', async () => {
    const r = await post(daemon, JSON.stringify({ jsonrpc: '2.0', id: 5, method: 'ping' }), inSession());
    assert.equal(r.status, 200);
    assert.deepEqual(message(r), { jsonrpc: '2.0', id: 5, result: {} });
    const del = await post(daemon, undefined, inSession(), 'DELETE');
    assert.ok([200, 204].includes(del.status), `DELETE → ${del.status}`);
    const gone = await post(daemon, JSON.stringify({ jsonrpc: '2.0', id: 6, method: 'ping' }), inSession());
    assert.equal(gone.status, 404);
  });
});
