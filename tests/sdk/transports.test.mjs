// The same agent session over each transport, with the official SDK client:
// initialize, tools/list, describe_policy, check, propose_contract, run with
// streamed output, get_receipt verified offline, cancellation, refusals.
// Usage: node --test transports.test.mjs [stdio|ws|http ...]  (default: all three)
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import fs from 'node:fs';

import {
  contract, deadline, findKey, makeFifo, makeWorld, openSession, resultText, serverPubkey, sleep,
  teardown, warrant, warrantOk, writeJson,
} from './lib/harness.mjs';

const { McpError } = await import('@modelcontextprotocol/sdk/types.js');

const TOOLS = ['check', 'describe_policy', 'get_approval', 'get_checkpoint', 'get_receipt', 'propose_contract', 'run',
  'run_capsule', 'submit_approval'];
const READ_ONLY = ['check', 'describe_policy', 'get_approval', 'get_checkpoint', 'get_receipt'];
const kinds = process.argv.slice(2).filter((a) => ['stdio', 'ws', 'http'].includes(a));

for (const kind of kinds.length ? kinds : ['stdio', 'ws', 'http']) {
  describe(`MCP over ${kind}`, { timeout: 120_000 }, () => {
    let world;
    let session;
    let client;
    let pubkey;

    before(async () => {
      world = makeWorld();
      session = await openSession(kind, world);
      client = session.client;
      pubkey = await serverPubkey(world);
    });

    after(() => teardown(() => session?.close(), () => world?.cleanup()));

    test('initialize negotiates 2025-11-25 and declares tools', () => {
      const info = client.getServerVersion();
      assert.equal(info.name, 'warrantd');
      assert.ok(info.version, 'serverInfo.version is set');
      const caps = client.getServerCapabilities();
      assert.ok(caps.tools, 'tools capability declared');
      assert.equal(caps.prompts, undefined, 'no prompts capability');
      assert.equal(caps.resources?.subscribe, undefined, 'no resource subscriptions');
      // The SDK sent 2025-11-25 (its latest), which warrantd supports, so it must be echoed.
      assert.equal(session.transport.negotiatedVersion, '2025-11-25');
    });

    test('ping answers while idle', async () => {
      assert.deepEqual(await client.ping(), {});
    });

    test('tools/list: names, descriptions, schemas, annotations', async () => {
      const { tools, nextCursor } = await client.listTools();
      assert.equal(nextCursor, undefined);
      assert.deepEqual(tools.map((t) => t.name).sort(), TOOLS);
      for (const t of tools) {
        assert.ok(t.title && t.title.length > 2, `${t.name} has a title`);
        assert.ok(t.description && t.description.length >= 40, `${t.name} has a description written for a model`);
        assert.equal(t.inputSchema?.type, 'object', `${t.name} inputSchema root is an object`);
        assert.equal(t.outputSchema?.type, 'object', `${t.name} outputSchema root is an object`);
        assert.ok(t.annotations, `${t.name} has annotations`);
        const ro = READ_ONLY.includes(t.name);
        assert.equal(t.annotations.readOnlyHint, ro, `${t.name} readOnlyHint`);
        if (ro) assert.equal(t.annotations.openWorldHint, false, `${t.name} openWorldHint`);
      }
      const run = tools.find((t) => t.name === 'run');
      assert.equal(run.annotations.destructiveHint, true);
      assert.ok(run.inputSchema.properties?.contract_id && run.inputSchema.properties?.contract,
        'run takes contract_id or contract');
      const check = tools.find((t) => t.name === 'check');
      assert.ok(check.inputSchema.required?.includes('contract'), 'check requires contract');
    });

    test('describe_policy returns the active policy and its limits', async () => {
      const r = await client.callTool({ name: 'describe_policy', arguments: {} });
      assert.notEqual(r.isError, true, resultText(r));
      const s = JSON.stringify(r.structuredContent);
      assert.match(s, /sdk-test/, 'policy name');
      assert.match(s, /"sleep"/, 'allowed commands');
      assert.equal(findKey(r.structuredContent, 'max_timeout_sec'), 120);
      assert.equal(r.structuredContent.agent_id, world.agent, 'tells the agent its identity');
    });

    test('check: allow with the canonical contract hash, nothing stored', async () => {
      const c = contract(world, ['cat', 'hello.txt']);
      const r = await client.callTool({ name: 'check', arguments: { contract: c } });
      assert.notEqual(r.isError, true, resultText(r));
      const d = r.structuredContent;
      assert.equal(d.decision, 'allow');
      assert.deepEqual(d.reason_codes, ['ALLOW']);
      const { stdout } = await warrantOk(['hash', 'contract', writeJson(world, 'check.json', c)]);
      assert.equal(d.contract_sha256, stdout.trim(), 'same hash as `warrant hash contract`');
      assert.ok(resultText(r).length > 0, 'a text summary accompanies structuredContent');
    });

    test('check: a command outside the policy is denied with COMMAND_NOT_ALLOWED', async () => {
      const r = await client.callTool({ name: 'check', arguments: { contract: contract(world, ['curl', 'https://example.com']) } });
      assert.equal(r.structuredContent.decision, 'deny');
      assert.deepEqual(r.structuredContent.reason_codes, ['COMMAND_NOT_ALLOWED']);
    });

    test('check: an invalid contract is an isError result, not a protocol error', async () => {
      const r = await client.callTool({ name: 'check', arguments: { contract: { version: 'csc.v0.1' } } });
      assert.equal(r.isError, true);
      assert.match(resultText(r), /contract|required|invalid/i);
    });

    test('unknown tool is JSON-RPC error -32602', async () => {
      await assert.rejects(client.callTool({ name: 'no_such_tool', arguments: {} }),
        (e) => e instanceof McpError && e.code === -32602);
    });

    test('propose_contract, then run by id: output streamed live as progress, signed receipt', async () => {
      // cat prints hello.txt, then blocks on a FIFO until the test writes to
      // it: the first chunk must reach us as progress while the command runs.
      const fifo = makeFifo(world, 'live.fifo');
      const c = contract(world, ['cat', 'hello.txt', 'live.fifo']);
      const p = await client.callTool({ name: 'propose_contract', arguments: { contract: c } });
      assert.notEqual(p.isError, true, resultText(p));
      assert.equal(p.structuredContent.contract_id, c.contract_id);
      assert.match(p.structuredContent.contract_sha256, /^[0-9a-f]{64}$/);
      const decision = p.structuredContent.decision;
      assert.equal(decision?.decision ?? decision, 'allow');

      const progress = [];
      let sawFirstChunk;
      const firstChunk = new Promise((resolve) => { sawFirstChunk = resolve; });
      const call = client.callTool({ name: 'run', arguments: { contract_id: c.contract_id } }, undefined, {
        onprogress: (n) => {
          progress.push(n);
          if (/hello from the warrant workspace/.test(progress.map((x) => x.message ?? '').join(''))) sawFirstChunk();
        },
        resetTimeoutOnProgress: true,
        timeout: 60_000,
      });
      const early = await Promise.race([firstChunk.then(() => true), call.then(() => false), deadline(20_000).then(() => false)]);
      // Unblock cat whatever happened, so that the run ends either way.
      await Promise.race([fs.promises.writeFile(fifo, 'second chunk\n'), deadline(20_000)]);
      const r = await call;
      assert.ok(early, `the first chunk arrived as progress while the command was still running (${progress.length} notifications)`);
      assert.notEqual(r.isError, true, resultText(r));
      const s = r.structuredContent;
      assert.equal(s.stdout, 'hello from the warrant workspace\nsecond chunk\n');
      assert.equal(s.stdout_truncated, false);
      assert.equal(s.receipt.status, 'success');
      assert.equal(s.receipt.exit_code, 0);
      assert.equal(s.receipt.contract_id, c.contract_id);
      assert.equal(s.receipt.contract_sha256, p.structuredContent.contract_sha256);
      assert.equal(s.receipt.signature?.algorithm, 'ed25519');
      for (let i = 1; i < progress.length; i++) {
        assert.ok(progress[i].progress > progress[i - 1].progress, 'progress increases');
      }

      // get_receipt returns the same signed receipt, which verifies offline.
      const g = await client.callTool({ name: 'get_receipt', arguments: { execution_id: s.receipt.execution_id } });
      assert.notEqual(g.isError, true, resultText(g));
      assert.deepEqual(g.structuredContent.receipt, s.receipt);
      const file = writeJson(world, 'receipt.json', g.structuredContent.receipt);
      const v = await warrant(['verify', 'receipt', file, '--pubkey', pubkey]);
      assert.equal(v.code, 0, `verify receipt: ${v.stderr}`);

      // ... and is in the log: its inclusion proof holds against the signed checkpoint.
      const cp = `${world.root}/checkpoint`;
      fs.writeFileSync(cp, g.structuredContent.checkpoint);
      const proof = writeJson(world, 'inclusion.json', g.structuredContent.inclusion_proof);
      const incl = await warrant(['verify', 'inclusion', file, '--proof', proof, '--checkpoint', cp, '--pubkey', pubkey]);
      assert.equal(incl.code, 0, `verify inclusion: ${incl.stderr}`);

      // get_checkpoint: the same or a larger log, and a consistency proof from the size held.
      const size = g.structuredContent.inclusion_proof.tree_size;
      const k = await client.callTool({ name: 'get_checkpoint', arguments: { old_size: size } });
      assert.notEqual(k.isError, true, resultText(k));
      assert.ok(k.structuredContent.tree_size >= size);
      const newer = `${world.root}/checkpoint-new`;
      fs.writeFileSync(newer, k.structuredContent.checkpoint);
      const cons = writeJson(world, 'consistency.json', k.structuredContent.consistency_proof);
      const c2 = await warrant(['verify', 'consistency', cp, newer, '--proof', cons, '--pubkey', pubkey]);
      assert.equal(c2.code, 0, `verify consistency: ${c2.stderr}`);

      // A one-field change breaks the signature.
      const forged = writeJson(world, 'forged.json', { ...g.structuredContent.receipt, exit_code: 1 });
      const f = await warrant(['verify', 'receipt', forged, '--pubkey', pubkey]);
      assert.equal(f.code, 1, 'tampered receipt rejected');
    });

    test('run: output streams losslessly and in order up to the budget, then a marker and the newest output', async () => {
      // ~1.6 MB of multi-byte text: past the 1 MiB default streaming budget.
      let text = '';
      for (let i = 1; i <= 60000; i++) text += `line ${i}: é€😀 ${'x'.repeat(i % 7)}\n`;
      fs.writeFileSync(`${world.ws}/big.txt`, text);
      const bytes = Buffer.from(text);
      const progress = [];
      const r = await client.callTool({ name: 'run', arguments: { contract: contract(world, ['cat', 'big.txt']) } },
        undefined, { onprogress: (n) => progress.push(n), resetTimeoutOnProgress: true, timeout: 60_000 });
      assert.notEqual(r.isError, true, resultText(r));
      const messages = progress.map((n) => n.message ?? '').filter((m) => !/^running \(\d+s\)$/.test(m));
      const streamed = messages.join('');
      assert.doesNotMatch(streamed, /\uFFFD/, 'no character was cut');
      const at = messages.findIndex((m) => m.startsWith('[… '));
      assert.ok(at > 0, 'a marker says where streaming stopped being lossless');
      const head = Buffer.from(messages.slice(0, at).join(''));
      assert.ok(head.length > 1024 * 1024 - 4 && head.length <= 1024 * 1024, `lossless up to the budget (${head.length})`);
      assert.ok(bytes.subarray(0, head.length).equals(head), 'in order and without loss');
      const skipped = Number(/^\[… (\d+) bytes not streamed; the full output is in the result and the store …\]/.exec(messages[at])[1]);
      const rest = Buffer.from(messages.slice(at).filter((m) => !m.startsWith('[… ')).join(''));
      assert.equal(head.length + skipped + rest.length, bytes.length, 'every byte is streamed or counted');
      assert.ok(bytes.subarray(bytes.length - rest.length).equals(rest), 'the newest output, up to the end');
      assert.ok(streamed.endsWith('line 60000: é€😀 ' + 'x'.repeat(60000 % 7) + '\n'), 'the end is seen');
      // the result text is a short summary, not a copy of the output
      assert.equal(r.content.length, 1);
      assert.ok(r.content[0].text.length < 300, r.content[0].text);
    });

    test('run with an inline contract: a failing command is isError with a failed receipt', async () => {
      const r = await client.callTool({ name: 'run', arguments: { contract: contract(world, ['cat', 'missing.txt']) } });
      assert.equal(r.isError, true);
      assert.equal(r.structuredContent.receipt.status, 'failed');
      assert.notEqual(r.structuredContent.receipt.exit_code, 0);
      assert.match(r.structuredContent.stderr, /missing\.txt/);
    });

    test('run: policy denial is an isError result with a blocked receipt', async () => {
      const r = await client.callTool({ name: 'run', arguments: { contract: contract(world, ['curl', 'https://example.com']) } });
      assert.equal(r.isError, true);
      assert.equal(findKey(r.structuredContent, 'status'), 'blocked');
      assert.match(resultText(r) + JSON.stringify(r.structuredContent), /COMMAND_NOT_ALLOWED/);
    });

    test('run: actor.agent_id other than the client identity is refused', async () => {
      const r = await client.callTool({ name: 'run', arguments: { contract: contract(world, ['cat', 'hello.txt'], { agent: 'impostor' }) } });
      assert.equal(r.isError, true);
      assert.equal(findKey(r.structuredContent, 'status'), 'blocked');
      assert.match(resultText(r), /agent|identity/i);
      assert.doesNotMatch(JSON.stringify(r.structuredContent), /hello from the warrant workspace/, 'nothing ran');
    });

    test('get_receipt of an unknown execution id is an isError result', async () => {
      const r = await client.callTool({ name: 'get_receipt', arguments: { execution_id: 'exec_does_not_exist' } });
      assert.equal(r.isError, true);
    });

    test('cancel a run: the sandbox stops and the receipt says failed/cancelled', async () => {
      const c = contract(world, ['sleep', '30']);
      const ac = new AbortController();
      const t0 = Date.now();
      const call = client.callTool({ name: 'run', arguments: { contract: c } }, undefined, {
        signal: ac.signal, resetTimeoutOnProgress: true, onprogress: () => {}, timeout: 60_000,
      });
      await sleep(1500);
      ac.abort('test cancels');
      await assert.rejects(call, (e) => /abort|cancel/i.test(String(e?.name) + String(e?.message) + String(e)));

      // The receipt is written even though no response is sent; find it by contract id.
      let line;
      for (let i = 0; i < 100 && !line; i++) {
        const l = await warrant(['receipts', 'list', '--state-dir', world.state]);
        line = l.stdout.split('\n').find((x) => x.split(/\s+/).includes(c.contract_id));
        if (!line) await sleep(100);
      }
      assert.ok(line, 'a receipt for the cancelled run is listed');
      const execId = line.trim().split(/\s+/)[1];
      const g = await client.callTool({ name: 'get_receipt', arguments: { execution_id: execId } });
      assert.notEqual(g.isError, true, resultText(g));
      assert.equal(g.structuredContent.receipt.status, 'failed');
      assert.equal(g.structuredContent.receipt.error, 'cancelled');
      const ended = Date.parse(g.structuredContent.receipt.ended_at);
      assert.ok(ended - t0 < 10_000, 'sleep 30 was stopped, not waited for');
      assert.deepEqual(await client.ping(), {}, 'session still serves after the cancel');
    });
  });
}
