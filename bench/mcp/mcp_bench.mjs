// MCP benchmarks for warrantd: `check` round-trip latency and throughput over
// stdio and WebSocket (1, 32 and 200 clients), pipelined check/s over one
// stdio connection, resident memory idle and with 1 000 idle WebSocket
// sessions, and resident memory before and after a hostile-load round.
// Raw newline/frame JSON-RPC clients, so that SDK overhead is not measured.
// Prints figures; it is not a test. Run through bench/mcp/run.sh.
//
// The pipelined figures are the median of BENCH_PIPE_RUNS runs. With
// BENCH_BASELINE=<build dir> (e.g. main's) each run of this build is
// interleaved with one of the baseline's, and both medians and their ratio
// are printed, so a busy machine skews both alike; BENCH_INSTRUCTIONS=1 adds
// CPU instructions per check of each build (callgrind, independent of load).
// BENCH_ONLY=pipelined skips the other scenarios.
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

import {
  BUILD, contract, makeWorld, onLines, spawnStdio, startNetworkDaemon, wsUrl, WsWebSocket,
} from '../../tests/sdk/lib/harness.mjs';

const env = (name, dflt) => Number(process.env[name] ?? dflt);
const SEQ_N = env('BENCH_SEQ_N', 3000);       // requests per single client
const MULTI_N = env('BENCH_MULTI_N', 300);    // requests per client with 32 clients
const PIPE_N = env('BENCH_PIPE_N', 50000);    // pipelined requests on one stdio connection
const IDLE_WS = env('BENCH_IDLE_WS', 1000);   // idle WebSocket sessions for the RSS figure
const MANY_WS = env('BENCH_MANY_WS', 200);    // concurrent WebSocket clients for the p99 figure
const MANY_N = env('BENCH_MANY_N', 100);      // checks per client with MANY_WS clients
const PIPE_RUNS = env('BENCH_PIPE_RUNS', 5);  // pipelined runs per build (median)
const INSN_N = env('BENCH_INSN_N', 2000);     // checks under callgrind for instructions per check
const BASELINE = process.env.BENCH_BASELINE;  // another build directory, measured interleaved
const ONLY = process.env.BENCH_ONLY ?? '';    // "pipelined": only the pipelined figures
const QUIET = ['--log-level', 'warning'];
const INIT = { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'bench', version: '1' } };

/** JSON-RPC over some framing: send(text), and feed(text) per received message. */
class Rpc {
  constructor(sendText) {
    this.sendText = sendText;
    this.nextId = 1;
    this.pending = new Map();
  }

  feed(text) {
    const m = JSON.parse(text);
    const p = this.pending.get(m.id);
    if (!p) return;
    this.pending.delete(m.id);
    if (m.error) p.reject(new Error(`${m.error.code} ${m.error.message}`));
    else p.resolve(m.result);
  }

  request(method, params) {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.sendText(JSON.stringify({ jsonrpc: '2.0', id, method, params }));
    });
  }

  async initialize() {
    await this.request('initialize', INIT);
    this.sendText(JSON.stringify({ jsonrpc: '2.0', method: 'notifications/initialized' }));
  }
}

function stdioServer(world) {
  const child = spawnStdio(world, { stderr: 'inherit', extraArgs: QUIET });
  const rpc = new Rpc((t) => child.stdin.write(t + '\n'));
  onLines(child.stdout, (line) => rpc.feed(line));
  const exited = new Promise((r) => child.once('exit', r));
  return { child, rpc, async close() { child.stdin.end(); const t = setTimeout(() => child.kill('SIGKILL'), 5000); await exited; clearTimeout(t); } };
}

function wsClient(daemon, token) {
  return new Promise((resolve, reject) => {
    const ws = new WsWebSocket(wsUrl(daemon, token), 'mcp');
    const rpc = new Rpc((t) => ws.send(t));
    ws.on('message', (d) => rpc.feed(d.toString('utf8')));
    ws.once('open', () => resolve({ ws, rpc, close() { ws.terminate(); } }));
    ws.once('error', reject);
  });
}

function checkParams(world) {
  return { name: 'check', arguments: { contract: contract(world, ['cat', 'hello.txt']) } };
}

function quantile(sorted, q) {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
}

/** Each client sends n sequential checks; returns latency stats and rate. */
async function roundTrips(rpcs, n, params) {
  for (const rpc of rpcs) {
    for (let i = 0; i < 50; i++) await rpc.request('tools/call', params); // warm-up
  }
  const lat = [];
  const t0 = performance.now();
  await Promise.all(rpcs.map(async (rpc) => {
    for (let i = 0; i < n; i++) {
      const s = performance.now();
      const r = await rpc.request('tools/call', params);
      lat.push(performance.now() - s);
      if (i === 0 && r.structuredContent?.decision !== 'allow') throw new Error(`check did not allow: ${JSON.stringify(r).slice(0, 300)}`);
    }
  }));
  const wall = (performance.now() - t0) / 1000;
  lat.sort((a, b) => a - b);
  return { n: lat.length, median: quantile(lat, 0.5), p99: quantile(lat, 0.99), rate: lat.length / wall };
}

/** warrantd --stdio of build directory `build` (this one by default). */
function spawnBuild(world, build, stdio) {
  return spawn(path.join(build, 'server', 'warrantd'),
    ['--stdio', '--policy', world.policy, '--state-dir', world.state, '--agent-id', world.agent, ...QUIET],
    { stdio });
}

/** initialize, initialized, then n checks, one per line. */
function pipelinedLines(world, n) {
  const lines = [];
  lines.push(JSON.stringify({ jsonrpc: '2.0', id: 0, method: 'initialize', params: INIT }));
  lines.push(JSON.stringify({ jsonrpc: '2.0', method: 'notifications/initialized' }));
  const body = JSON.stringify(checkParams(world));
  for (let i = 1; i <= n; i++) lines.push(`{"jsonrpc":"2.0","id":${i},"method":"tools/call","params":${body}}`);
  return lines.join('\n') + '\n';
}

/** Writes n requests at once on one stdio connection and counts the replies. */
async function pipelined(world, n, build = BUILD) {
  const child = spawnBuild(world, build, ['pipe', 'pipe', 'inherit']);
  const payload = Buffer.from(pipelinedLines(world, n));

  let seen = 0;
  let lastAt = 0;
  let first = null;
  let last = '';
  let t0 = 0;
  let done0 = () => {};
  const done = new Promise((resolve, reject) => {
    let tail = '';
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (chunk) => {
      let from = 0;
      let i;
      while ((i = chunk.indexOf('\n', from)) >= 0) {
        seen += 1;
        lastAt = performance.now();
        if (seen === 2) first = tail + chunk.slice(from, i);
        if (seen === n + 1) { last = tail + chunk.slice(from, i); resolve(performance.now() - t0); }
        tail = '';
        from = i + 1;
      }
      tail += chunk.slice(from);
    });
    child.once('exit', (code) => reject(new Error(`warrantd exited ${code} after ${seen} replies`)));
    // Give up when replies stop for 5 s: report the rate up to the last one.
    const watch = setInterval(() => {
      if (performance.now() - Math.max(lastAt, t0) > 5000) {
        clearInterval(watch);
        const got = Math.max(0, seen - 1);
        reject(Object.assign(new Error(`stalled: ${got} of ${n} replies, then none for 5 s`),
          { rate: got / ((lastAt - t0) / 1000) }));
      }
    }, 500);
    done0 = () => clearInterval(watch);
  });
  t0 = performance.now();
  child.stdin.write(payload);
  const ms = await done.catch((e) => { child.kill('SIGKILL'); throw e; }).finally(() => done0());
  child.stdin.end();
  for (const l of [first, last]) {
    const m = JSON.parse(l);
    if (!m.result || m.result.isError) throw new Error(`pipelined reply is not a check result: ${l.slice(0, 300)}`);
  }
  await new Promise((r) => (child.exitCode === null ? child.once('exit', r) : r()));
  return { n, rate: n / (ms / 1000), ms };
}

/** The same requests from a file to /dev/null: warrantd alone, no client.
 * Also its CPU time (user + system, all threads; the shell's `times`),
 * which a busy machine inflates far less than the wall clock. */
async function pipelinedFromFile(world, n, build = BUILD) {
  const file = `${world.root}/pipelined-${n}.jsonl`;
  if (!fs.existsSync(file)) fs.writeFileSync(file, pipelinedLines(world, n));
  const fd = fs.openSync(file, 'r');
  const t0 = performance.now();
  const child = spawn('sh', ['-c', '"$@" >/dev/null; s=$?; times; exit $s', 'sh',
    path.join(build, 'server', 'warrantd'), '--stdio', '--policy', world.policy, '--state-dir', world.state,
    '--agent-id', world.agent, ...QUIET], { stdio: [fd, 'pipe', 'inherit'] });
  let out = '';
  child.stdout.on('data', (d) => { out += d; });
  const code = await new Promise((r) => child.once('close', r));
  const ms = performance.now() - t0;
  fs.closeSync(fd);
  if (code !== 0) throw new Error(`warrantd exited ${code}`);
  // times: the shell's user/system, then its children's: "0m1.540s 0m0.050s"
  const secs = (out.trim().split('\n')[1] ?? '').split(/\s+/)
    .map((t) => /^(\d+)m([\d.]+)s$/.exec(t)).map((m) => (m ? Number(m[1]) * 60 + Number(m[2]) : NaN));
  return { n, rate: n / (ms / 1000), cpuUs: ((secs[0] + secs[1]) * 1e6) / n };
}

/** CPU instructions per check (all threads; callgrind): n checks less none. */
function instructionsPerCheck(world, n, build) {
  const count = (k) => {
    const file = `${world.root}/pipelined-${k}.jsonl`;
    if (!fs.existsSync(file)) fs.writeFileSync(file, pipelinedLines(world, k));
    const r = spawnSync('valgrind', ['--tool=callgrind', '--callgrind-out-file=/dev/null',
      path.join(build, 'server', 'warrantd'), '--stdio', '--policy', world.policy, '--state-dir', world.state,
      '--agent-id', world.agent, ...QUIET], { input: fs.readFileSync(file), encoding: 'utf8', maxBuffer: 1 << 26 });
    const m = /Collected : (\d+)/.exec(r.stderr ?? '');
    if (r.status !== 0 || !m) throw new Error(`callgrind of ${build} failed: ${(r.stderr ?? r.error ?? '').slice(-300)}`);
    return Number(m[1]);
  };
  return (count(n) - count(0)) / n;
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const spread = (xs) => `${fmt(Math.min(...xs), 0)}–${fmt(Math.max(...xs), 0)}`;

/** PIPE_RUNS runs of fn(build) per build, the builds interleaved: each
 * build's results. */
async function interleaved(fn, builds) {
  const results = builds.map(() => []);
  for (let r = 0; r < PIPE_RUNS; r++) {
    for (const [i, b] of builds.entries()) results[i].push(await fn(b));
  }
  return results;
}

/** The pipelined figures (and the baseline's, interleaved). */
async function pipelinedFigures(world, extra) {
  const builds = BASELINE ? [BUILD, path.resolve(BASELINE)] : [BUILD];
  const names = ['stdio check pipelined', 'stdio check pipelined, file→/dev/null'];
  const scenarios = [(b) => pipelined(world, PIPE_N, b), (b) => pipelinedFromFile(world, PIPE_N, b)];
  for (const [k, fn] of scenarios.entries()) {
    let results;
    try {
      results = await interleaved(fn, builds);
    } catch (e) {
      rows.push([`${names[k]} (failed)`, '1', String(PIPE_N), '-', '-', e.rate ? fmt(e.rate, 0) : 'n/a']);
      extra.push([names[k], e.message]);
      continue;
    }
    const rates = results.map((rs) => rs.map((x) => x.rate));
    rows.push([names[k], '1', `${PIPE_RUNS}×${PIPE_N}`, '-', '-', fmt(median(rates[0]), 0)]);
    extra.push([`${names[k]}: check/s over ${PIPE_RUNS} runs`, `median ${fmt(median(rates[0]), 0)}, ${spread(rates[0])}`]);
    if (BASELINE) {
      rows.push([`${names[k]} (baseline)`, '1', `${PIPE_RUNS}×${PIPE_N}`, '-', '-', fmt(median(rates[1]), 0)]);
      extra.push([`${names[k]}: baseline ${builds[1]}`, `median ${fmt(median(rates[1]), 0)}, ${spread(rates[1])}; `
        + `this build / baseline = ${fmt(median(rates[0]) / median(rates[1]))}`]);
    }
    if (results[0][0].cpuUs !== undefined) {
      const cpu = results.map((rs) => median(rs.map((x) => x.cpuUs)));
      extra.push([`${names[k]}: CPU time per check (user + system, median)`, BASELINE
        ? `${fmt(cpu[0], 1)} µs, baseline ${fmt(cpu[1], 1)} µs (${fmt(cpu[0] / cpu[1])} ×)`
        : `${fmt(cpu[0], 1)} µs`]);
    }
  }
  if (process.env.BENCH_INSTRUCTIONS === '1') {
    const insn = builds.map((b) => instructionsPerCheck(world, INSN_N, b));
    extra.push(['instructions per check (callgrind, all threads)', BASELINE
      ? `${fmt(insn[0] / 1000, 1)} k, baseline ${fmt(insn[1] / 1000, 1)} k (${fmt(insn[0] / insn[1])} ×)`
      : `${fmt(insn[0] / 1000, 1)} k`]);
  }
  extra.push(['load average while measuring (1 min)', `${fmt(os.loadavg()[0])} on ${os.cpus().length} cores`]);
}

function rssKiB(pid) {
  const s = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(/VmRSS:\s+(\d+)/.exec(s)[1]);
}

/** Raw HTTP/1.1 bytes to the daemon; resolves with what came back when it closes or after ms. */
function rawHttp(daemon, bytes, ms) {
  return new Promise((resolve) => {
    const s = net.connect({ port: daemon.port, host: '127.0.0.1' });
    let got = '';
    const done = () => { s.destroy(); resolve(got); };
    const t = setTimeout(done, ms);
    s.on('data', (d) => { got += d.toString('latin1'); });
    s.on('error', () => {});
    s.on('close', () => { clearTimeout(t); resolve(got); });
    s.write(bytes);
  });
}

function post(daemon, token, body, extra = {}) {
  const h = { Host: `127.0.0.1:${daemon.port}`, Authorization: `Bearer ${token}`, 'Content-Type': 'application/json',
    Accept: 'application/json, text/event-stream', 'Content-Length': String(Buffer.byteLength(body)), ...extra };
  return `POST /mcp HTTP/1.1\r\n${Object.entries(h).map(([k, v]) => `${k}: ${v}\r\n`).join('')}\r\n${body}`;
}

/** The issue-13 attacks at once, from one token: trickled 4 MiB bodies,
 * HTTP sessions never deleted, WebSocket connections held, pipelined
 * requests. Returns how the server answered. */
async function hostileRound(daemon, token) {
  const init = JSON.stringify({ jsonrpc: '2.0', id: 0, method: 'initialize', params: INIT });
  const statuses = {};
  const count = (text) => { const st = /^HTTP\/1\.1 (\d+)/.exec(text)?.[1] ?? 'closed'; statuses[st] = (statuses[st] ?? 0) + 1; };
  const trickles = Array.from({ length: 100 }, () => rawHttp(daemon,
    post(daemon, token, '', { 'Content-Length': String(4 * 1024 * 1024) }) + '[' + ' '.repeat(512 * 1024), 15_000));
  const sessions = [];
  for (let i = 0; i < 300; i++) sessions.push(rawHttp(daemon, post(daemon, token, init), 5000));
  const pipes = Array.from({ length: 20 }, () => rawHttp(daemon, post(daemon, token, init) + post(daemon, token, init), 3000));
  const held = (await Promise.allSettled(Array.from({ length: 200 }, () => wsClient(daemon, token))))
    .filter((r) => r.status === 'fulfilled').map((r) => r.value);
  for (const t of await Promise.all([...trickles, ...sessions, ...pipes])) count(t);
  held.forEach((c) => c.close());
  return { statuses, held: held.length };
}

const fmt = (x, d = 2) => (x === undefined ? '-' : x.toFixed(d));
const rows = [];
function row(name, clients, r) {
  rows.push([name, String(clients), String(r.n), fmt(r.median, 3), fmt(r.p99, 3), fmt(r.rate, 0)]);
}

/** Round trips over stdio and WebSocket, memory, and the hostile round. */
async function otherFigures(world, params, extra) {
  // stdio: one warrantd per client (stdio serves exactly one client).
  {
    const s = stdioServer(world);
    await s.rpc.initialize();
    const idle = rssKiB(s.child.pid);
    row('stdio check', 1, await roundTrips([s.rpc], SEQ_N, params));
    extra.push(['warrantd --stdio RSS idle (after initialize)', `${(idle / 1024).toFixed(1)} MiB`]);
    await s.close();
  }
  {
    const ss = Array.from({ length: 32 }, () => stdioServer(world));
    await Promise.all(ss.map((s) => s.rpc.initialize()));
    row('stdio check (32 processes)', 32, await roundTrips(ss.map((s) => s.rpc), MULTI_N, params));
    await Promise.all(ss.map((s) => s.close()));
  }
  // WebSocket: one warrantd, many connections.
  // One identity may hold half the connections: room for IDLE_WS of its own.
  const cap = 2 * (Math.max(IDLE_WS, MANY_WS) + 64);
  const daemon = await startNetworkDaemon(world, {
    extraArgs: [...QUIET, '--max-connections', String(cap), '--max-connections-per-client', String(cap / 2),
      '--max-sessions', String(cap), '--max-sessions-per-client', String(cap / 2)],
  });
  try {
    const token = world.tokens[world.agent];
    await new Promise((r) => setTimeout(r, 300));
    extra.push(['warrantd --listen RSS idle', `${(rssKiB(daemon.pid) / 1024).toFixed(1)} MiB`]);
    {
      const c = await wsClient(daemon, token);
      await c.rpc.initialize();
      row('ws check', 1, await roundTrips([c.rpc], SEQ_N, params));
      c.close();
    }
    {
      const cs = await Promise.all(Array.from({ length: 32 }, () => wsClient(daemon, token)));
      await Promise.all(cs.map((c) => c.rpc.initialize()));
      row('ws check', 32, await roundTrips(cs.map((c) => c.rpc), MULTI_N, params));
      cs.forEach((c) => c.close());
    }
    {
      const cs = await Promise.all(Array.from({ length: MANY_WS }, () => wsClient(daemon, token)));
      await Promise.all(cs.map((c) => c.rpc.initialize()));
      row('ws check', MANY_WS, await roundTrips(cs.map((c) => c.rpc), MANY_N, params));
      cs.forEach((c) => c.close());
    }
    {
      const cs = [];
      let refused = '';
      for (let i = 0; i < IDLE_WS; i += 50) {
        const batch = await Promise.allSettled(Array.from({ length: Math.min(50, IDLE_WS - i) }, async () => {
          const c = await wsClient(daemon, token);
          await c.rpc.initialize();
          return c;
        }));
        for (const b of batch) {
          if (b.status === 'fulfilled') cs.push(b.value);
          else refused ||= String(b.reason?.message ?? b.reason);
        }
      }
      await new Promise((r) => setTimeout(r, 500));
      extra.push([`warrantd RSS with ${cs.length} idle WebSocket sessions`, `${(rssKiB(daemon.pid) / 1024).toFixed(1)} MiB`
        + (cs.length < IDLE_WS ? ` (${IDLE_WS - cs.length} refused: ${refused})` : '')]);
      cs.forEach((c) => c.close());
    }
  } finally {
    await daemon.stop();
  }

  // Hostile load against the default limits: memory must come back.
  const hostile = await startNetworkDaemon(world, { extraArgs: [...QUIET, '--body-timeout-sec', '3'] });
  try {
    const token = world.tokens[world.agent];
    const c = await wsClient(hostile, token);
    await c.rpc.initialize();
    await roundTrips([c.rpc], 200, params);
    c.close();
    await new Promise((r) => setTimeout(r, 300));
    const before = rssKiB(hostile.pid);
    let peak = before;
    const sampler = setInterval(() => { peak = Math.max(peak, rssKiB(hostile.pid)); }, 50);
    const round = await hostileRound(hostile, token);
    clearInterval(sampler);
    await new Promise((r) => setTimeout(r, 6000)); // past the server's 5 s heap trim
    const after = rssKiB(hostile.pid);
    extra.push(['hostile round (100 trickled 4 MiB POSTs, 300 sessions never deleted, 200 WebSockets held, 20 pipelined pairs)',
      `answers ${JSON.stringify(round.statuses)}, ${round.held} WebSockets admitted`]);
    extra.push(['warrantd RSS before / peak / after the hostile round',
      `${(before / 1024).toFixed(1)} / ${(peak / 1024).toFixed(1)} / ${(after / 1024).toFixed(1)} MiB`]);
  } finally {
    await hostile.stop();
  }
}

async function main() {
  const world = makeWorld({ agents: ['agent-sdk'] });
  const params = checkParams(world);
  const extra = [];
  try {
    await pipelinedFigures(world, extra);
    if (ONLY !== 'pipelined') await otherFigures(world, params, extra);
  } finally {
    world.cleanup();
  }

  const head = ['scenario', 'clients', 'requests', 'median ms', 'p99 ms', 'req/s'];
  const w = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (r) => r.map((c, i) => (i === 0 ? c.padEnd(w[i]) : c.padStart(w[i]))).join('  ');
  console.log(line(head));
  for (const r of rows) console.log(line(r));
  console.log();
  for (const [k, v] of extra) console.log(`${k}: ${v}`);
  console.log('targets: pipelined stdio >= 40000 check/s; p99 < 5 ms at 32 WebSocket clients; idle RSS < 16 MiB;'
    + ' RSS after the hostile round within 2 MiB of before');
}

await main();
