// One event loop, never blocked by a running command: ten `sleep 2` runs on
// one WebSocket overlap, and `check` keeps answering in milliseconds meanwhile.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import {
  connectWs, contract, makeWorld, resultText, startNetworkDaemon, teardown,
} from './lib/harness.mjs';

// Generous bounds for 2 shared cores under ASan: serial execution would take
// 20 s; overlapping runs take about 2-3 s.
const RUNS = 10;
const MAX_WALL_MS = 5_000;
const MAX_CHECK_MS = 500;

describe('concurrency on one WebSocket', { timeout: 60_000 }, () => {
  let world;
  let daemon;
  let session;

  before(async () => {
    world = makeWorld();
    daemon = await startNetworkDaemon(world);
    session = await connectWs(daemon, world.tokens[world.agent]);
  });

  after(() => teardown(() => session?.close(), () => daemon?.stopClean(), () => world?.cleanup()));

  test(`${RUNS} concurrent runs of sleep 2 overlap; check answers meanwhile`, async () => {
    const { client } = session;
    const t0 = performance.now();
    const runs = Array.from({ length: RUNS }, () => client.callTool(
      { name: 'run', arguments: { contract: contract(world, ['sleep', '2']) } },
      undefined, { timeout: 30_000, resetTimeoutOnProgress: true, onprogress: () => {} },
    ).then((r) => ({ r, ms: performance.now() - t0 })));

    // While the sandboxes sleep, ask for policy decisions.
    const checkMs = [];
    let settled = false;
    const all = Promise.all(runs).finally(() => { settled = true; });
    await new Promise((r) => setTimeout(r, 300));
    while (!settled && checkMs.length < 20) {
      const c0 = performance.now();
      const d = await client.callTool({ name: 'check', arguments: { contract: contract(world, ['cat', 'hello.txt']) } });
      checkMs.push(performance.now() - c0);
      assert.equal(d.structuredContent.decision, 'allow');
      await new Promise((r) => setTimeout(r, 50));
    }

    const results = await all;
    const wall = performance.now() - t0;
    for (const { r } of results) {
      assert.notEqual(r.isError, true, resultText(r));
      assert.equal(r.structuredContent.receipt.status, 'success');
    }
    const execIds = new Set(results.map(({ r }) => r.structuredContent.receipt.execution_id));
    assert.equal(execIds.size, RUNS, 'each run has its own execution');
    assert.ok(wall >= 1_900, `runs really slept (${wall.toFixed(0)} ms)`);
    assert.ok(wall < MAX_WALL_MS, `${RUNS} runs of sleep 2 took ${wall.toFixed(0)} ms (serial would be ${RUNS * 2000})`);
    assert.ok(checkMs.length >= 3, `check answered during the runs (${checkMs.length} times)`);
    const worst = Math.max(...checkMs);
    assert.ok(worst < MAX_CHECK_MS, `slowest check during the runs: ${worst.toFixed(1)} ms`);
    console.log(`# ${RUNS} x sleep 2: ${wall.toFixed(0)} ms; ${checkMs.length} checks, max ${worst.toFixed(1)} ms, median ${checkMs.sort((a, b) => a - b)[checkMs.length >> 1].toFixed(1)} ms`);
  });
});
