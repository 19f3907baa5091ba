// Shared fixtures for the SDK tests: they drive build/server/warrantd and
// build/clients/warrant from the outside, through the interfaces documented in
// design.md (warrantd flags, token file, /ws and /mcp, the warrant CLI).
import { execFile, execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

import { WebSocket as WsWebSocket } from 'ws';

// The SDK's WebSocketClientTransport uses the global WebSocket, which Node 20
// lacks (without --experimental-websocket); it must exist before the import.
if (typeof globalThis.WebSocket === 'undefined') globalThis.WebSocket = WsWebSocket;

const { Client } = await import('@modelcontextprotocol/sdk/client/index.js');
const { StdioClientTransport } = await import('@modelcontextprotocol/sdk/client/stdio.js');
const { WebSocketClientTransport } = await import('@modelcontextprotocol/sdk/client/websocket.js');
const { StreamableHTTPClientTransport } = await import('@modelcontextprotocol/sdk/client/streamableHttp.js');

const here = path.dirname(fileURLToPath(import.meta.url));
export const SRC = process.env.WARRANT_SRC ?? path.resolve(here, '..', '..', '..');
export const BUILD = process.env.WARRANT_BUILD ?? path.join(SRC, 'build');
export const WARRANTD = path.join(BUILD, 'server', 'warrantd');
export const WARRANT = path.join(BUILD, 'clients', 'warrant');

const execFileP = promisify(execFile);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
/** Like sleep, but does not keep the process alive (for Promise.race bounds). */
const deadline = (ms) => new Promise((r) => setTimeout(r, ms).unref());

/** Runs the warrant CLI; never throws on a non-zero exit. */
export async function warrant(args, { input, timeout = 30_000 } = {}) {
  return new Promise((resolve, reject) => {
    const child = execFile(WARRANT, args, { timeout, maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
      if (err && typeof err.code !== 'number' && !err.signal) return reject(err);
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : -1) : 0, signal: err?.signal ?? null, stdout, stderr });
    });
    if (input !== undefined) child.stdin.end(input);
    else child.stdin.end();
  });
}

/** Like warrant() but fails with the CLI's stderr when it does not exit 0. */
export async function warrantOk(args, opts) {
  const r = await warrant(args, opts);
  if (r.code !== 0) throw new Error(`warrant ${args.join(' ')} exited ${r.code}: ${r.stderr.trim()}`);
  return r;
}

/**
 * A temporary world: a workspace the sandbox (which drops to `nobody` when we
 * run as root) can read and write, a state dir, a policy and a token file.
 * Everything lives under one mkdtemp directory that cleanup() removes.
 */
export function makeWorld({ approvers = [], agents = ['agent-sdk'], extraPolicy = '' } = {}) {
  const root = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'warrant-sdk-')));
  fs.chmodSync(root, 0o755);
  const ws = path.join(root, 'ws');
  fs.mkdirSync(ws, { mode: 0o777 });
  fs.chmodSync(ws, 0o777);
  fs.writeFileSync(path.join(ws, 'hello.txt'), 'hello from the warrant workspace\n', { mode: 0o644 });
  const state = path.join(root, 'state');
  fs.mkdirSync(state, { mode: 0o700 });

  const policy = path.join(root, 'policy.yaml');
  fs.writeFileSync(policy, policyYaml({ ws, approvers }) + extraPolicy);

  const tokens = Object.fromEntries(agents.map((a) => [a, randomBytes(24).toString('hex')]));
  const tokenFile = path.join(root, 'tokens');
  fs.writeFileSync(tokenFile, '# agent token\n' + agents.map((a) => `${a} ${tokens[a]}\n`).join(''), { mode: 0o600 });

  return {
    root, ws, state, policy, tokenFile, tokens, agent: agents[0],
    /** Rewrites the policy file, e.g. to declare approvers made after the world. */
    setPolicy(opts) { fs.writeFileSync(policy, policyYaml({ ws, ...opts }) + extraPolicy); },
    cleanup() { fs.rmSync(root, { recursive: true, force: true }); },
  };
}

function yamlList(items, indent) {
  return items.map((i) => `${' '.repeat(indent)}- ${JSON.stringify(i)}\n`).join('');
}

export function policyYaml({ ws, approvers = [] }) {
  let y = `policy_schema_version: csc.policy.v0.1
name: sdk-test
allow_commands:
${yamlList(['cat', 'echo', 'sleep', 'ls', 'true', 'false'], 2)}deny_argv_prefixes:
  - ["sh", "-c"]
  - ["bash", "-c"]
allowed_effect_types:
${yamlList(['observe', 'transform_local'], 2)}allowed_risk_classes:
${yamlList(['low', 'medium'], 2)}max_timeout_sec: 120
network: deny
allow_secret_refs: false
require_write_paths_empty: false
allowed_cwd_prefixes:
  - ${ws}
allowed_read_prefixes:
  - ${ws}
allowed_write_prefixes:
  - ${ws}
classify:
  - argv_prefix: [sleep]
    effect: observe
  - argv_prefix: [cat]
    effect: observe
  - argv_prefix: [echo]
    effect: observe
`;
  if (approvers.length) {
    y += 'approvers:\n';
    for (const a of approvers) {
      y += `  - identity: ${a.identity}\n    public_key: |\n`;
      y += a.publicKey.trim().split('\n').map((l) => `      ${l}\n`).join('');
      y += '    may_approve: {risk_classes: [low, medium], effect_types: [observe, transform_local]}\n';
    }
    y += 'approval:\n  max_lifetime_sec: 3600\n  allow_time_window: false\n';
  }
  return y;
}

let contractSeq = 0;
/** A CSC v0.1 contract running `argv` in the world's workspace. */
export function contract(world, argv, { agent = world.agent, timeout = 60, mode = 'policy_only', risk = 'low', effect = 'observe' } = {}) {
  contractSeq += 1;
  return {
    version: 'csc.v0.1',
    contract_id: `sdk-${process.pid}-${Date.now()}-${contractSeq}`,
    intent: `sdk test: ${argv.join(' ')}`,
    actor: { agent_id: agent, session_id: 'sdk-session', initiating_user: 'sdk-user', delegation_scope: 'test' },
    commands: [{
      id: 'cmd_1',
      exec: { argv },
      cwd: world.ws,
      read_paths: [`${world.ws}/**`],
      write_paths: [],
      network: 'deny',
      env_allow: [],
      secret_refs: [],
      timeout_sec: timeout,
      proposed_effect_type: effect,
    }],
    risk_class: risk,
    approval_mode: mode,
    expected_outputs: [],
    justification: 'exercised by tests/sdk',
  };
}

export async function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

/** A warrantd child that is killed (SIGTERM, then SIGKILL) by stop(). */
export class Daemon {
  constructor(child, port) {
    this.child = child;
    this.port = port;
    this.stderr = '';
    this.exit = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
    child.stderr?.on('data', (d) => {
      if (this.stderr.length < 1 << 20) this.stderr += d;
    });
  }

  get pid() { return this.child.pid; }

  alive() { return this.child.exitCode === null && this.child.signalCode === null; }

  /** stop(), then fail unless warrantd exited 0 without a sanitizer report
   * (CI runs it under ASan/UBSan/LeakSanitizer: a leak fails the test). */
  async stopClean(graceMs) {
    const r = await this.stop(graceMs);
    assertCleanExit('warrantd', r.code, r.signal, this.stderr);
    return r;
  }

  /** SIGTERM, wait up to graceMs, then SIGKILL. Resolves to {code, signal}. */
  async stop(graceMs = 5000) {
    if (this.alive()) {
      this.child.kill('SIGTERM');
      const t = setTimeout(() => this.alive() && this.child.kill('SIGKILL'), graceMs);
      const r = await this.exit;
      clearTimeout(t);
      return r;
    }
    return this.exit;
  }
}

/** Spawns warrantd --stdio for the world's agent, with raw pipes (no SDK). */
export function spawnStdio(world, { stdin = 'pipe', stdout = 'pipe', stderr = 'pipe', extraArgs = [] } = {}) {
  return spawn(WARRANTD, ['--stdio', '--policy', world.policy, '--state-dir', world.state, '--agent-id', world.agent, ...extraArgs],
    { stdio: [stdin, stdout, stderr] });
}

/** Calls onLine(text) for each newline-terminated line read from a stream. */
export function onLines(stream, onLine) {
  let buf = '';
  stream.setEncoding('utf8');
  stream.on('data', (chunk) => {
    buf += chunk;
    let i;
    while ((i = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, i);
      buf = buf.slice(i + 1);
      onLine(line);
    }
  });
}

const SANITIZER = /ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:|SUMMARY: \w+Sanitizer/;

/** Throws unless a warrantd process exited 0 and printed no sanitizer report. */
export function assertCleanExit(what, code, signal, stderr) {
  const report = SANITIZER.exec(stderr);
  if (code !== 0 || signal || report) {
    const at = report ? stderr.slice(Math.max(0, report.index - 200), report.index + 3000) : stderr.slice(-3000);
    throw new Error(`${what} exited ${signal ?? code}${report ? ' with a sanitizer report' : ''}:\n${at}`);
  }
}

/** Starts warrantd --listen on a free loopback port and waits until it accepts. */
export async function startNetworkDaemon(world, { auth = 'token', extraArgs = [], readyMs = 15_000 } = {}) {
  const port = await freePort();
  const args = ['--listen', `127.0.0.1:${port}`, '--policy', world.policy, '--state-dir', world.state];
  if (auth === 'none') args.push('--auth', 'none');
  else args.push('--token-file', world.tokenFile);
  args.push(...extraArgs);
  const child = spawn(WARRANTD, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  const d = new Daemon(child, port);
  const deadline = Date.now() + readyMs;
  while (Date.now() < deadline) {
    if (!d.alive()) {
      const { code, signal } = await d.exit;
      throw new Error(`warrantd exited (${code ?? signal}) before listening: ${d.stderr.trim()}`);
    }
    if (await canConnect(port)) return d;
    await sleep(50);
  }
  await d.stop();
  throw new Error(`warrantd did not listen on 127.0.0.1:${port} within ${readyMs} ms: ${d.stderr.trim()}`);
}

function canConnect(port) {
  return new Promise((resolve) => {
    const s = net.connect({ port, host: '127.0.0.1' });
    s.once('connect', () => { s.destroy(); resolve(true); });
    s.once('error', () => resolve(false));
  });
}

export function wsUrl(d, token) {
  return `ws://127.0.0.1:${d.port}/ws` + (token === undefined ? '' : `?access_token=${encodeURIComponent(token)}`);
}

export function httpUrl(d) {
  return `http://127.0.0.1:${d.port}/mcp`;
}

function newClient(capabilities = {}) {
  return new Client({ name: 'warrant-sdk-tests', version: '1.0.0' }, { capabilities });
}

/** Records the protocol version the server answered in initialize (the SDK
 * hands it to transport.setProtocolVersion when the transport has one). */
function recordVersion(transport) {
  const orig = transport.setProtocolVersion?.bind(transport);
  transport.setProtocolVersion = (v) => { transport.negotiatedVersion = v; orig?.(v); };
  return transport;
}

/** Connects an SDK client over stdio; closing the client ends warrantd. */
export async function connectStdio(world, { agent = world.agent, extraArgs = [] } = {}) {
  const transport = new StdioClientTransport({
    command: WARRANTD,
    args: ['--stdio', '--policy', world.policy, '--state-dir', world.state, '--agent-id', agent, ...extraArgs],
    // The SDK passes only a few variables by default; keep ASAN_OPTIONS etc.
    env: { ...process.env },
    stderr: 'pipe',
  });
  recordVersion(transport);
  let stderr = '';
  transport.stderr?.on('data', (d) => { if (stderr.length < 1 << 20) stderr += d; });
  const client = newClient();
  try {
    await client.connect(transport);
  } catch (e) {
    await client.close().catch(() => {});
    throw new Error(`stdio connect failed: ${e.message}; warrantd stderr: ${stderr.trim()}`);
  }
  // The SDK keeps the child private; we need it to see how warrantd ended.
  const proc = transport._process;
  return {
    client, transport, stderr: () => stderr,
    /** Closes stdin (EOF ends warrantd) and fails unless it exited cleanly. */
    async close() {
      const closed = new Promise((r) => (proc.exitCode !== null ? r() : proc.once('close', r)));
      await client.close();
      await closed;
      assertCleanExit('warrantd --stdio', proc.exitCode, proc.signalCode, stderr);
    },
  };
}

export async function connectWs(daemon, token) {
  const client = newClient();
  const transport = recordVersion(new WebSocketClientTransport(new URL(wsUrl(daemon, token))));
  await client.connect(transport);
  return { client, transport, close: () => client.close() };
}

export async function connectHttp(daemon, token) {
  const requestInit = token === undefined ? {} : { headers: { Authorization: `Bearer ${token}` } };
  const transport = recordVersion(new StreamableHTTPClientTransport(new URL(httpUrl(daemon)), { requestInit }));
  const client = newClient();
  await client.connect(transport);
  return {
    client, transport,
    async close() {
      await transport.terminateSession().catch(() => {});
      await client.close();
    },
  };
}

/**
 * One MCP session over the named transport ('stdio' | 'ws' | 'http').
 * Returns {client, close(), daemon?}; for network transports the daemon is
 * started here and stopped by close().
 */
export async function openSession(kind, world) {
  if (kind === 'stdio') return connectStdio(world);
  const daemon = await startNetworkDaemon(world);
  try {
    const s = kind === 'ws' ? await connectWs(daemon, world.tokens[world.agent])
      : await connectHttp(daemon, world.tokens[world.agent]);
    return {
      ...s, daemon,
      async close() { await s.close().catch(() => {}); await daemon.stopClean(); },
    };
  } catch (e) {
    await daemon.stop();
    throw new Error(`${kind} connect failed: ${e.message}; warrantd stderr: ${daemon.stderr.trim()}`);
  }
}

/** Runs every cleanup step even when one fails, then throws the first error
 * (so a warrantd that leaked still fails the suite, and temp dirs still go). */
export async function teardown(...steps) {
  let first;
  for (const step of steps) {
    try {
      await step();
    } catch (e) {
      first ??= e;
    }
  }
  if (first) throw first;
}

/** The text of a tool result's text blocks, for error messages. */
export function resultText(r) {
  return (r?.content ?? []).filter((c) => c.type === 'text').map((c) => c.text).join('\n');
}

/** The first value found under `key` anywhere inside `obj` (depth-first). */
export function findKey(obj, key) {
  if (obj === null || typeof obj !== 'object') return undefined;
  if (Object.hasOwn(obj, key)) return obj[key];
  for (const v of Object.values(obj)) {
    const f = findKey(v, key);
    if (f !== undefined) return f;
  }
  return undefined;
}

/** A FIFO in the workspace that the sandboxed user can open. */
export function makeFifo(world, name) {
  const p = path.join(world.ws, name);
  execFileSync('mkfifo', ['-m', '0666', p]);
  return p;
}

/** Writes a JSON value to a file in the world and returns the path. */
export function writeJson(world, name, value) {
  const p = path.join(world.root, name);
  fs.writeFileSync(p, JSON.stringify(value, null, 2));
  return p;
}

/** The server's receipt-signing public key (PEM), saved in the world. */
export async function serverPubkey(world) {
  const r = await warrantOk(['pubkey', '--state-dir', world.state]);
  assertPem(r.stdout);
  const p = path.join(world.root, 'server.pub');
  fs.writeFileSync(p, r.stdout);
  return p;
}

function assertPem(s) {
  if (!/-----BEGIN PUBLIC KEY-----/.test(s)) throw new Error(`warrant pubkey printed no PEM public key: ${s.slice(0, 200)}`);
}

export { deadline, sleep, execFileP, WsWebSocket };
