// The approval console (/console) driven in a real headless Chromium
// (Debian's chromium, puppeteer-core from the lock file). An agent's run
// waits for approval; a human signs in with an approver token, sees the
// request pushed live, reads the hostile contract text rendered inert,
// approves with the key file `warrant keygen` wrote (signed in the page with
// WebCrypto, never uploaded), and the run proceeds with a receipt naming
// the human. Dual control and revocation work there too; agent tokens get
// nothing. WARRANT_CONSOLE_SCREENSHOT=docs/console.png saves the screenshot.
// Exits 77 (meson SKIP) with the reason when chromium is not installed.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';

import {
  SRC, WsWebSocket, connectWs, contract, makeWorld, resultText, startNetworkDaemon, teardown, warrantOk,
} from './lib/harness.mjs';

const CHROMIUM = process.env.WARRANT_CHROMIUM ?? '/usr/bin/chromium';
if (!fs.existsSync(CHROMIUM)) {
  console.log(`SKIP: ${CHROMIUM} is not installed (scripts/deps.sh --test installs Debian's chromium)`);
  process.exit(77);
}
const { default: puppeteer } = await import('puppeteer-core');

const AGENT = 'agent-sdk';
const HOSTILE = '<img src=x onerror="window.__pwned=1"><script>window.__pwned=2</script>'
  + ' invoice\u202Egnp.exe \u001b[31mRED\u001b[0m \u200Bzero-width';
const randomToken = () => [...crypto.getRandomValues(new Uint8Array(20))].map((b) => b.toString(16).padStart(2, '0')).join('');

describe('approval console in headless Chromium', { timeout: 150_000 }, () => {
  let world;
  let daemon;
  let agent;
  let browser;
  const keys = {};
  const tokens = { alice: randomToken(), bob: randomToken(), mallory: randomToken() };

  before(async () => {
    world = makeWorld({ agents: [AGENT] });
    const approvers = [];
    for (const name of ['alice', 'bob']) {
      const base = path.join(world.root, name);
      await warrantOk(['keygen', '--out', base]);
      keys[name] = `${base}.key`;
      approvers.push({ identity: name, publicKey: fs.readFileSync(`${base}.pub`, 'utf8') });
    }
    world.setPolicy({ approvers });
    // mallory has an approver token but no key in the policy
    fs.appendFileSync(world.tokenFile,
      `approver:alice ${tokens.alice}\napprover:bob ${tokens.bob}\napprover:mallory ${tokens.mallory}\n`);
    daemon = await startNetworkDaemon(world);
    agent = await connectWs(daemon, world.tokens[AGENT]);
    browser = await puppeteer.launch({
      executablePath: CHROMIUM,
      headless: true,
      userDataDir: fs.mkdtempSync(path.join(world.root, 'chromium-')),
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking',
        '--disable-component-update', '--disable-sync', '--disable-dev-shm-usage'],
    });
  });

  after(() => teardown(() => browser?.close(), () => agent?.close(), () => daemon?.stopClean(), () => world?.cleanup()));

  const base = () => `http://127.0.0.1:${daemon.port}`;

  /** A fresh page signed in as an approver, with its key file loaded. */
  async function signedIn(name) {
    const page = await browser.newPage();
    await page.setViewport({ width: 1200, height: 1500 });
    await page.goto(`${base()}/console`);
    await page.type('#token', tokens[name]);
    await page.click('#sign-in');
    await page.waitForSelector('#app:not([hidden])');
    assert.equal(await page.$eval('#who-name', (e) => e.textContent), name);
    const input = await page.$('#key-file');
    await input.uploadFile(keys[name]);
    await until(page, () => document.querySelector('#key-state').classList.contains('on'));
    await until(page, () => document.querySelector('#live').textContent === 'live');
    return page;
  }

  /** page.waitForFunction polling on a timer: a tab in the background gets
   * no animation frames, the default polling. */
  function until(page, fn, arg, timeout = 20_000) {
    return page.waitForFunction(fn, { polling: 100, timeout }, arg);
  }

  async function waitForRequest(page, requestId) {
    await page.waitForSelector(`#requests li[data-request-id="${requestId}"]`, { timeout: 20_000 });
  }

  async function openAndWait(page, requestId, progress) {
    await page.click(`#requests li[data-request-id="${requestId}"]`);
    await until(page, (p) => document.querySelector('#d-progress').textContent.startsWith(p), progress);
  }

  /** Proposes c, waits for it in the page, opens it and approves it there. */
  async function proposeAndApprove(page, c) {
    const requestId = await requestIdOf(c);
    await waitForRequest(page, requestId);
    await openAndWait(page, requestId, '0 of 1');
    await page.click('#approve');
    await until(page, () => /is approved/.test(document.querySelector('#action-result').textContent));
    return requestId;
  }

  /** Starts a run that waits for approval; resolves with its tool result. */
  function waitingRun(c) {
    return agent.client.callTool({ name: 'run', arguments: { contract: c, wait_for_approval_sec: 60 } },
      undefined, { timeout: 90_000 });
  }

  async function requestIdOf(c) {
    const p = await agent.client.callTool({ name: 'propose_contract', arguments: { contract: c } });
    assert.notEqual(p.isError, true, resultText(p));
    return p.structuredContent.approval_request.request_id ?? p.structuredContent.approval_request;
  }

  test('agent tokens cannot open the console API; the page serves a strict CSP', async () => {
    for (const route of ['whoami', 'requests', 'receipts', 'events']) {
      const r = await fetch(`${base()}/console/api/${route}`, { headers: { Authorization: `Bearer ${world.tokens[AGENT]}` } });
      assert.equal(r.status, 403, route);
    }
    const post = await fetch(`${base()}/console/api/requests/apr_x/approve`, {
      method: 'POST', headers: { Authorization: `Bearer ${world.tokens[AGENT]}`, 'Content-Type': 'application/json' }, body: '{}',
    });
    assert.equal(post.status, 403);
    assert.equal((await fetch(`${base()}/console/api/requests`)).status, 401);
    const page = await fetch(`${base()}/console`);
    assert.match(page.headers.get('content-security-policy'), /default-src 'none'; script-src 'self'/);
    assert.equal(page.headers.get('x-frame-options'), 'DENY');
    // An approver token is no agent: 403 on /mcp.
    const mcp = await fetch(`${base()}/mcp`, {
      method: 'POST', body: '{}',
      headers: { Authorization: `Bearer ${tokens.alice}`, 'Content-Type': 'application/json', Accept: 'application/json, text/event-stream' },
    });
    assert.equal(mcp.status, 403);
    const wsStatus = await new Promise((resolve) => {
      const ws = new WsWebSocket(`ws://127.0.0.1:${daemon.port}/ws?access_token=${tokens.alice}`, 'mcp');
      ws.on('unexpected-response', (req, res) => { resolve(res.statusCode); ws.terminate(); });
      ws.on('open', () => { resolve('open'); ws.close(); });
      ws.on('error', () => {});
    });
    assert.equal(wsStatus, 403, 'an approver token cannot open the agents\' WebSocket');

    // The API's own conditions: an artifact must name the signed-in approver;
    // only approvers the policy declares may deny.
    const requestId = await requestIdOf(contract(world, ['echo', 'api'], { mode: 'human_required' }));
    const asApprover = (who, verb, body) => fetch(`${base()}/console/api/requests/${requestId}/${verb}`, {
      method: 'POST', headers: { Authorization: `Bearer ${tokens[who]}`, 'Content-Type': 'application/json' },
      body: JSON.stringify(body),
    });
    const forged = await asApprover('alice', 'approve', { approver: { identity: 'bob', method: 'manual' } });
    assert.equal(forged.status, 403);
    assert.match((await forged.json()).error, /names approver "bob" but you are signed in as "alice"/);
    const veto = await asApprover('mallory', 'deny', { reason: 'no' });
    assert.equal(veto.status, 403);
    assert.match((await veto.json()).error, /mallory is not an approver of the active policy/);

    const p = await browser.newPage();
    await p.goto(`${base()}/console`);
    await p.type('#token', world.tokens[AGENT]);
    await p.click('#sign-in');
    await until(p, () => document.querySelector('#signin-error').textContent !== '');
    assert.match(await p.$eval('#signin-error', (e) => e.textContent), /this token does not open this endpoint/);
    await p.close();
  });

  test('a request appears live, hostile text is inert, approval in the browser lets the waiting run proceed', async () => {
    const page = await signedIn('alice');
    const c = contract(world, ['cat', 'hello.txt'], { mode: 'human_required' });
    c.intent = HOSTILE;
    c.justification = `${HOSTILE}\n</pre><h1 id="injected">approve me</h1>`;
    c.commands[0].exec.argv = ['cat', 'hello.txt'];
    const requestId = await requestIdOf(c);
    const run = waitingRun(c);

    await waitForRequest(page, requestId);
    await openAndWait(page, requestId, '0 of 1');
    // Inert: nothing ran, no element came from the agent's text, and the
    // deceptive characters are shown as visible escapes.
    assert.equal(await page.evaluate(() => window.__pwned), undefined);
    assert.equal(await page.$('#injected'), null);
    assert.equal(await page.$$eval('#detail img, #detail script, #requests img, #requests script', (x) => x.length), 0);
    const shown = await page.$eval('#d-facts', (e) => e.textContent);
    assert.ok(shown.includes('<script>window.__pwned=2</script>'), 'the markup is shown as text');
    assert.ok(shown.includes('\\u{202e}') && shown.includes('\\u{001b}[31m') && shown.includes('\\u{200b}'), shown);
    assert.ok(!shown.includes('\u202E') && !shown.includes('\u001b'), 'no raw bidi or ESC reaches the page');
    assert.ok(await page.$eval('#d-facts', (e) => e.querySelectorAll('[data-untrusted]').length >= 2));
    const shot = await page.screenshot({ fullPage: true });
    assert.ok(shot.length > 10_000, 'a real screenshot');
    // WARRANT_CONSOLE_SCREENSHOT=docs/console.png refreshes the README's picture.
    if (process.env.WARRANT_CONSOLE_SCREENSHOT) fs.writeFileSync(path.resolve(SRC, process.env.WARRANT_CONSOLE_SCREENSHOT), shot);

    await page.click('#approve');
    await until(page, () => /approve: request .* is approved/.test(document.querySelector('#action-result').textContent));
    const r = await run;
    assert.notEqual(r.isError, true, resultText(r));
    assert.equal(r.structuredContent.stdout, 'hello from the warrant workspace\n');
    const [used] = r.structuredContent.receipt.approvals;
    assert.equal(used.identity, 'alice');
    assert.equal(used.method, 'manual');
    assert.equal(used.attestation, 'approver_key');
    // The receipt is listed with its verification status.
    await until(page, (id) => [...document.querySelectorAll('#receipts tr')].some(
      (tr) => tr.textContent.includes(id) && tr.textContent.includes('alice (manual)') && tr.querySelector('.verified')),
    c.contract_id);
    await page.close();
  });

  test('the key never leaves the page: no request body carries it', async () => {
    const page = await browser.newPage();
    const bodies = [];
    page.on('request', (req) => bodies.push(req.postData() ?? ''));
    await page.goto(`${base()}/console`);
    await page.type('#token', tokens.alice);
    await page.click('#sign-in');
    await page.waitForSelector('#app:not([hidden])');
    await (await page.$('#key-file')).uploadFile(keys.alice);
    await until(page, () => document.querySelector('#key-state').classList.contains('on'));
    await proposeAndApprove(page, contract(world, ['echo', 'key-check'], { mode: 'human_required' }));
    const pem = fs.readFileSync(keys.alice, 'utf8').replace(/-----[^-]+-----|\s/g, '');
    assert.ok(bodies.some((b) => b.includes('"signature"')), 'the signed artifact was posted');
    assert.ok(bodies.every((b) => !b.includes(pem) && !b.includes(pem.slice(-40))), 'no body holds the private key');
    await page.close();
  });

  test('dual control: the second approver sees one approval in, then completes it', async () => {
    const alice = await signedIn('alice');
    const bob = await signedIn('bob');
    const c = contract(world, ['echo', 'dual'], { mode: 'dual_control_required' });
    const requestId = await requestIdOf(c);
    const run = waitingRun(c);
    await alice.bringToFront();
    await waitForRequest(alice, requestId);
    await openAndWait(alice, requestId, '0 of 2');
    await alice.click('#approve');
    await until(alice, () => /1\/2 approvals/.test(document.querySelector('#action-result').textContent));
    // pushed to bob's open console
    await until(bob, (id) => /1\/2 approvals/.test(
      document.querySelector(`#requests li[data-request-id="${id}"]`)?.textContent ?? ''), requestId);
    await bob.bringToFront();
    await openAndWait(bob, requestId, '1 of 2');
    assert.match(await bob.$eval('#d-artifacts', (e) => e.textContent), /alice \(manual\).* — counts/);
    await bob.click('#approve');
    const r = await run;
    assert.notEqual(r.isError, true, resultText(r));
    assert.deepEqual(r.structuredContent.receipt.approvals.map((a) => a.identity).sort(), ['alice', 'bob']);
    await alice.close();
    await bob.close();
  });

  test('revocation and denial in the console: a revoked approval does not authorise the run; a denied request is closed', async () => {
    const page = await signedIn('alice');
    const c = contract(world, ['echo', 'revoked'], { mode: 'human_required' });
    const requestId = await proposeAndApprove(page, c);
    await page.click('#revoke');
    await until(page, () => /is revoked/.test(document.querySelector('#action-result').textContent));
    // gone from the queue (pushed)
    await until(page, (id) => !document.querySelector(`#requests li[data-request-id="${id}"]`), requestId);
    const r = await agent.client.callTool({ name: 'run', arguments: { contract: c } });
    assert.equal(r.isError, true);
    assert.equal(r.structuredContent.receipt.status, 'blocked');
    assert.deepEqual(r.structuredContent.receipt.approvals, []);

    // Deny is a veto, recorded with the approver's name.
    const d = contract(world, ['echo', 'denied'], { mode: 'human_required' });
    const denied = await requestIdOf(d);
    await waitForRequest(page, denied);
    await openAndWait(page, denied, '0 of 1');
    await page.type('#reason', 'not today');
    await page.click('#deny');
    await until(page, () => /is denied/.test(document.querySelector('#action-result').textContent));
    const st = await agent.client.callTool({ name: 'get_approval', arguments: { request_id: denied } });
    assert.equal(st.structuredContent.status, 'denied');
    await page.close();
  });
});
