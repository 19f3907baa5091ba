// End to end over MCP with a human in the loop: propose → pending request →
// `warrant approvals approve` (the approver's own key, a separate process on
// the same state dir while warrantd runs) → run succeeds → the receipt names
// the approver; the single-use approval cannot be replayed.
// Usage: node --test approval.test.mjs [stdio|ws]  (default: both)
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';

import {
  connectWs, connectStdio, contract, findKey, makeWorld, resultText, serverPubkey,
  startNetworkDaemon, teardown, warrant, warrantOk, writeJson,
} from './lib/harness.mjs';

const APPROVER = 'alice@example.com';
const kinds = process.argv.slice(2).filter((a) => ['stdio', 'ws'].includes(a));

for (const kind of kinds.length ? kinds : ['stdio', 'ws']) {
  describe(`approval end to end over ${kind}`, { timeout: 90_000 }, () => {
    let world;
    let daemon;
    let session;
    let key;

    before(async () => {
      world = makeWorld();
      const base = path.join(world.root, 'alice');
      await warrantOk(['keygen', '--out', base]);
      key = `${base}.key`;
      assert.equal(fs.statSync(key).mode & 0o077, 0, 'approver key is private (0600)');
      world.setPolicy({ approvers: [{ identity: APPROVER, publicKey: fs.readFileSync(`${base}.pub`, 'utf8') }] });
      if (kind === 'stdio') {
        session = await connectStdio(world);
      } else {
        daemon = await startNetworkDaemon(world);
        session = await connectWs(daemon, world.tokens[world.agent]);
      }
    });

    after(() => teardown(() => session?.close(), () => daemon?.stopClean(), () => world?.cleanup()));

    test('propose → pending → warrant approvals approve → run → receipt lists the approver', async () => {
      const { client } = session;
      const c = contract(world, ['cat', 'hello.txt'], { mode: 'human_required' });

      const p = await client.callTool({ name: 'propose_contract', arguments: { contract: c } });
      assert.notEqual(p.isError, true, resultText(p));
      const decision = p.structuredContent.decision;
      assert.equal(decision?.decision ?? decision, 'needs_approval');
      const requestId = findKey(p.structuredContent.approval_request, 'request_id') ?? p.structuredContent.approval_request;
      assert.equal(typeof requestId, 'string', 'propose_contract returns the approval request id');
      assert.ok(requestId.length >= 8, 'request id is not trivially guessable');

      // Before approval: run returns promptly, isError, pending, same request.
      const early = await client.callTool({ name: 'run', arguments: { contract_id: c.contract_id } });
      assert.equal(early.isError, true);
      assert.match(JSON.stringify(early.structuredContent) + resultText(early), new RegExp(requestId));
      assert.doesNotMatch(JSON.stringify(early.structuredContent), /hello from the warrant workspace/);

      const pending = await client.callTool({ name: 'get_approval', arguments: { request_id: requestId } });
      assert.equal(pending.structuredContent.status, 'pending');

      // The approver works from the CLI on the same state dir while warrantd runs.
      const list = await warrantOk(['approvals', 'list', '--json', '--state-dir', world.state]);
      const queued = JSON.parse(list.stdout).find((r) => r.request_id === requestId);
      assert.ok(queued, 'the request is listed for approvers');
      assert.equal(queued.contract_sha256, p.structuredContent.contract_sha256);

      const ap = await warrantOk(['approvals', 'approve', requestId, '--key', key, '--identity', APPROVER,
        '--reason', 'sdk e2e', '--state-dir', world.state]);
      const artifact = JSON.parse(ap.stdout);
      assert.equal(artifact.contract_sha256, p.structuredContent.contract_sha256);
      assert.equal(artifact.approver.identity, APPROVER);
      assert.ok(artifact.signature, 'artifact is signed');

      const approved = await client.callTool({ name: 'get_approval', arguments: { request_id: requestId } });
      assert.equal(approved.structuredContent.status, 'approved');

      const r = await client.callTool({ name: 'run', arguments: { contract_id: c.contract_id } });
      assert.notEqual(r.isError, true, resultText(r));
      assert.equal(r.structuredContent.stdout, 'hello from the warrant workspace\n');
      const receipt = r.structuredContent.receipt;
      assert.equal(receipt.status, 'success');
      const used = JSON.stringify(receipt);
      assert.match(used, new RegExp(artifact.approval_id), 'receipt records the approval id');
      assert.match(used, /alice@example\.com/, 'receipt records the approver identity');

      const file = writeJson(world, 'approved-receipt.json', receipt);
      const v = await warrant(['verify', 'receipt', file, '--pubkey', await serverPubkey(world)]);
      assert.equal(v.code, 0, `verify receipt: ${v.stderr}`);

      // single_execution: the artifact was consumed by that run.
      const again = await client.callTool({ name: 'run', arguments: { contract_id: c.contract_id } });
      assert.equal(again.isError, true, 'a consumed approval does not authorise a second run');
      assert.notEqual(findKey(again.structuredContent, 'status'), 'success');
      const consumed = await client.callTool({ name: 'get_approval', arguments: { request_id: requestId } });
      assert.equal(consumed.structuredContent.status, 'consumed');
    });
  });
}
