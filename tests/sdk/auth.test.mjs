// Network transports authenticate every connection with a token from the
// token file, bind it to an identity, and refuse unsafe configurations.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import { after, before, describe, test } from 'node:test';

import {
  connectHttp, connectWs, contract, freePort, httpUrl, makeWorld, resultText,
  startNetworkDaemon, teardown, WARRANTD,
} from './lib/harness.mjs';

describe('token authentication', { timeout: 60_000 }, () => {
  let world;
  let daemon;

  before(async () => {
    world = makeWorld({ agents: ['agent-a', 'agent-b'] });
    daemon = await startNetworkDaemon(world);
  });

  after(() => teardown(() => daemon?.stopClean(), () => world?.cleanup()));

  for (const [name, token] of [['a wrong', 'not-a-valid-token'], ['no', undefined]]) {
    test(`WebSocket with ${name} access_token is rejected`, async () => {
      await assert.rejects(connectWs(daemon, token));
    });

    test(`Streamable HTTP with ${name} bearer token is rejected with 401`, async () => {
      await assert.rejects(connectHttp(daemon, token), (e) => e?.code === 401);
      const headers = { 'content-type': 'application/json', accept: 'application/json, text/event-stream' };
      if (token) headers.authorization = `Bearer ${token}`;
      const res = await fetch(httpUrl(daemon), {
        method: 'POST', headers,
        body: JSON.stringify({ jsonrpc: '2.0', id: 0, method: 'initialize', params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 't', version: '1' } } }),
      });
      assert.equal(res.status, 401);
      assert.ok(!res.headers.get('mcp-session-id'), 'no session for an unauthenticated client');
    });
  }

  test('each token is bound to its own identity', async () => {
    for (const [agent, connect] of [['agent-a', connectWs], ['agent-b', connectHttp]]) {
      const other = agent === 'agent-a' ? 'agent-b' : 'agent-a';
      const s = await connect(daemon, world.tokens[agent]);
      try {
        const own = await s.client.callTool({ name: 'run', arguments: { contract: contract(world, ['echo', agent], { agent }) } });
        assert.notEqual(own.isError, true, resultText(own));
        assert.equal(own.structuredContent.stdout, `${agent}\n`);
        const theirs = await s.client.callTool({ name: 'run', arguments: { contract: contract(world, ['echo', 'x'], { agent: other }) } });
        assert.equal(theirs.isError, true, `${agent}'s token cannot act as ${other}`);
        assert.equal(theirs.structuredContent?.receipt?.status, 'blocked');
      } finally {
        await s.close();
      }
    }
  });

  test('the daemon still serves after the refusals', async () => {
    const s = await connectWs(daemon, world.tokens['agent-a']);
    try {
      assert.deepEqual(await s.client.ping(), {});
    } finally {
      await s.close();
    }
  });
});

/** Runs warrantd with args that must be refused; returns {code, stderr}. */
function refused(args) {
  return new Promise((resolve, reject) => {
    const child = spawn(WARRANTD, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d) => { stderr += d; });
    const t = setTimeout(() => { child.kill('SIGKILL'); reject(new Error(`warrantd ${args.join(' ')} kept running: ${stderr}`)); }, 10_000);
    child.on('exit', (code) => { clearTimeout(t); resolve({ code, stderr }); });
  });
}

describe('unsafe configurations are refused at start', { timeout: 60_000 }, () => {
  let world;
  before(() => { world = makeWorld(); });
  after(() => world?.cleanup());

  test('--auth none on a non-loopback bind', async () => {
    const port = await freePort();
    const r = await refused(['--listen', `0.0.0.0:${port}`, '--auth', 'none', '--policy', world.policy, '--state-dir', world.state]);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /loopback|auth/i);
  });

  test('a non-loopback bind without TLS', async () => {
    const port = await freePort();
    const r = await refused(['--listen', `0.0.0.0:${port}`, '--token-file', world.tokenFile, '--policy', world.policy, '--state-dir', world.state]);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /TLS|loopback/i);
  });

  test('a group/world-readable token file', async () => {
    fs.chmodSync(world.tokenFile, 0o644);
    try {
      const port = await freePort();
      const r = await refused(['--listen', `127.0.0.1:${port}`, '--token-file', world.tokenFile, '--policy', world.policy, '--state-dir', world.state]);
      assert.notEqual(r.code, 0);
      assert.match(r.stderr, /token/i);
    } finally {
      fs.chmodSync(world.tokenFile, 0o600);
    }
  });
});
