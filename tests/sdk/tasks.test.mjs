// MCP tasks (2025-11-25) for `run`, with the official SDK on every
// transport: a run longer than the client's request timeout completes as a
// task (tools/call answers at once; tasks/get polls; tasks/result fetches),
// and tasks/cancel stops the sandbox. The plain path stays (transports.test).
// Usage: node --test tasks.test.mjs [stdio|ws|http ...]  (default: all three)
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { contract, makeWorld, openSession, resultText, teardown, warrant } from './lib/harness.mjs';

const kinds = process.argv.slice(2).filter((a) => ['stdio', 'ws', 'http'].includes(a));
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

for (const kind of kinds.length ? kinds : ['stdio', 'ws', 'http']) {
  describe(`MCP tasks over ${kind}`, { timeout: 90_000 }, () => {
    let world;
    let session;
    let client;

    before(async () => {
      world = makeWorld();
      session = await openSession(kind, world);
      client = session.client;
      const caps = client.getServerCapabilities();
      assert.ok(caps.tasks?.requests?.tools?.call, 'task-augmented tools/call declared');
      assert.ok(caps.tasks?.cancel, 'tasks/cancel declared');
      const { tools } = await client.listTools(); // the SDK learns run's taskSupport here
      assert.equal(tools.find((t) => t.name === 'run').execution?.taskSupport, 'optional');
    });

    after(() => teardown(() => session?.close(), () => world?.cleanup()));

    test('a run longer than the request timeout completes as a task', async () => {
      const c = contract(world, ['sleep', '3']);
      const seen = [];
      let result;
      // every request (tools/call, tasks/get, tasks/result) must answer within 1.5 s
      for await (const m of client.experimental.tasks.callToolStream({ name: 'run', arguments: { contract: c } },
        undefined, { timeout: 1500 })) {
        seen.push(m.type);
        if (m.type === 'error') throw m.error;
        if (m.type === 'result') result = m.result;
      }
      assert.equal(seen[0], 'taskCreated');
      assert.ok(seen.filter((t) => t === 'taskStatus').length >= 2, `polled: ${seen.join(',')}`);
      assert.notEqual(result.isError, true, resultText(result));
      assert.equal(result.structuredContent.status, 'success');
      assert.equal(result.structuredContent.receipt.status, 'success');
      assert.ok(result._meta?.['io.modelcontextprotocol/related-task']?.taskId, 'the result names its task');
    });

    test('tasks/cancel stops the run; its receipt says cancelled', async () => {
      const c = contract(world, ['sleep', '30']);
      const stream = client.experimental.tasks.callToolStream({ name: 'run', arguments: { contract: c } });
      const first = (await stream.next()).value;
      assert.equal(first.type, 'taskCreated');
      const t0 = Date.now();
      const cancelled = await client.experimental.tasks.cancelTask(first.task.taskId);
      assert.equal(cancelled.status, 'cancelled');
      assert.equal((await client.experimental.tasks.getTask(first.task.taskId)).status, 'cancelled');
      await stream.return();
      let line;
      for (let i = 0; i < 100 && !line; i++) {
        const l = await warrant(['receipts', 'list', '--state-dir', world.state]);
        line = l.stdout.split('\n').find((x) => x.split(/\s+/).includes(c.contract_id));
        if (!line) await sleep(100);
      }
      assert.ok(line, 'the cancelled run sealed a receipt');
      assert.match(line, /failed/);
      assert.ok(Date.now() - t0 < 10_000, 'sleep 30 was stopped');
      await assert.rejects(client.experimental.tasks.getTask('task-unknown'), /unknown task/);
    });
  });
}
