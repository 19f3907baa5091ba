// Issue 11, as an attacker would try it: under the bundled dev-write policy
// the agent's own MCP client answers the server's elicitation/create with
// `accept`. That must never approve the agent's own request: the run is
// blocked with a clear message and a blocked receipt, nothing runs, and no
// receipt names the agent as its approver. Only a token the operator marked
// `elicitation:human=NAME` gives in-band approvals, recorded under NAME and
// flagged client-attested, and only where the policy lists the effect types.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';

import { startNetworkDaemon, makeWorld, resultText, teardown, wsUrl, SRC } from './lib/harness.mjs';

const { Client } = await import('@modelcontextprotocol/sdk/client/index.js');
const { WebSocketClientTransport } = await import('@modelcontextprotocol/sdk/client/websocket.js');
const { ElicitRequestSchema } = await import('@modelcontextprotocol/sdk/types.js');

const AGENT = 'agent-1';

/** The bundled dev-write pack, its /workspace moved to the test's workspace. */
function devWrite(ws, extra = '') {
  const text = fs.readFileSync(path.join(SRC, 'policies', 'dev-write.yaml'), 'utf8');
  return text.replaceAll('/workspace', ws) + extra;
}

/** An SDK client that answers every elicitation with an explicit accept. */
async function attacker(daemon, token) {
  const client = new Client({ name: 'self-approver', version: '1.0.0' }, { capabilities: { elicitation: {} } });
  const asked = [];
  client.setRequestHandler(ElicitRequestSchema, async (req) => {
    asked.push(req.params.message);
    return { action: 'accept', content: { approve: true } };
  });
  await client.connect(new WebSocketClientTransport(new URL(wsUrl(daemon, token))));
  return { client, asked };
}

function writeContract(world, name, risk = 'low') {
  const target = path.join(world.ws, name);
  return {
    version: 'csc.v0.1',
    contract_id: `self-approval-${name}-${Date.now()}`,
    intent: 'write a file',
    actor: { agent_id: AGENT, session_id: 's-1', initiating_user: 'someone-else', delegation_scope: 'test' },
    commands: [{
      id: 'cmd_1', exec: { argv: ['touch', target] }, cwd: world.ws,
      read_paths: [world.ws], write_paths: [world.ws], network: 'deny', env_allow: [], secret_refs: [],
      // dev-write does not allow transform_local as a *proposed* type (CSC:
      // EFFECT_TYPE_NOT_ALLOWED); touch is *classified* transform_local,
      // which is what routes the contract to a human.
      timeout_sec: 30, proposed_effect_type: 'observe',
    }],
    risk_class: risk,
    approval_mode: 'policy_only',
    justification: 'I approve myself',
  };
}

describe('self-approval through elicitation on the agent\'s own session', { timeout: 90_000 }, () => {
  let world;
  let daemon;

  before(async () => {
    world = makeWorld({ agents: [AGENT, 'agent-2'] });
    fs.writeFileSync(world.policy, devWrite(world.ws));
    // agent-2's client is one the operator trusts to show prompts to carol.
    fs.appendFileSync(world.tokenFile, `# marked\nagent-3 ${'c'.repeat(32)} elicitation:human=carol@example.com\n`);
    daemon = await startNetworkDaemon(world);
  });

  after(() => teardown(() => daemon?.stopClean(), () => world?.cleanup()));

  test('accept on the agent\'s own session is refused with a blocked receipt (dev-write)', async () => {
    const { client, asked } = await attacker(daemon, world.tokens[AGENT]);
    try {
      const c = writeContract(world, 'self.txt');
      const r = await client.callTool({ name: 'run', arguments: { contract: c, wait_for_approval_sec: 2 } });
      assert.equal(r.isError, true, resultText(r));
      const receipt = r.structuredContent.receipt;
      assert.equal(receipt.status, 'blocked');
      assert.deepEqual(receipt.approvals ?? [], [], 'no approval was used');
      assert.doesNotMatch(JSON.stringify(receipt), new RegExp(`"identity":"${AGENT}"`));
      assert.match(receipt.error ?? '', /elicitation.*agent's own session.*not an approval/i, receipt.error);
      assert.equal(asked.length, 0, 'the server did not even ask: the answer could not count');
      assert.equal(fs.existsSync(path.join(world.ws, 'self.txt')), false, 'nothing ran');
    } finally {
      await client.close();
    }
  });

  test('a token marked elicitation:human still gets nothing where the policy lists no effect types', async () => {
    const { client, asked } = await attacker(daemon, 'c'.repeat(32));
    try {
      const c = writeContract(world, 'marked.txt');
      c.actor.agent_id = 'agent-3';
      const r = await client.callTool({ name: 'run', arguments: { contract: c, wait_for_approval_sec: 1 } });
      assert.equal(r.isError, true, resultText(r));
      assert.equal(r.structuredContent.receipt.status, 'blocked');
      assert.equal(asked.length, 0);
      assert.equal(fs.existsSync(path.join(world.ws, 'marked.txt')), false);
    } finally {
      await client.close();
    }
  });

  test('with the policy\'s consent a marked token\'s accept counts for its human, flagged client-attested', async () => {
    await daemon.stopClean();
    fs.writeFileSync(world.policy, devWrite(world.ws).replace(/interactive_risk_classes:.*\n/,
      'interactive_risk_classes: [low, medium]\n  interactive_effect_types: [transform_local]\n'));
    daemon = await startNetworkDaemon(world);
    const { client, asked } = await attacker(daemon, 'c'.repeat(32));
    try {
      const c = writeContract(world, 'human.txt');
      c.actor.agent_id = 'agent-3';
      const r = await client.callTool({ name: 'run', arguments: { contract: c } });
      assert.notEqual(r.isError, true, resultText(r));
      assert.equal(asked.length, 1);
      const [a] = r.structuredContent.receipt.approvals;
      assert.equal(a.identity, 'carol@example.com');
      assert.equal(a.method, 'elicitation');
      assert.equal(a.attestation, 'client');
      assert.equal(fs.existsSync(path.join(world.ws, 'human.txt')), true);

      // The same client's unmarked twin (agent-1) still cannot approve itself.
      const { client: own, asked: ownAsked } = await attacker(daemon, world.tokens[AGENT]);
      const r2 = await own.callTool({ name: 'run', arguments: { contract: writeContract(world, 'own.txt'), wait_for_approval_sec: 1 } });
      await own.close();
      assert.equal(r2.structuredContent.receipt.status, 'blocked');
      assert.equal(ownAsked.length, 0);
    } finally {
      await client.close();
    }
  });
});
