// The official MCP conformance suite (0.1.16, Streamable HTTP) against
// warrantd on loopback with --auth none (the suite sends no Authorization).
// Scenarios that need the suite's named fixtures are the expected failures in
// conformance-baseline.yml; everything else must pass, and a listed scenario
// that starts passing fails the run too (so the baseline stays honest).
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';

import { httpUrl, makeWorld, startNetworkDaemon, teardown } from './lib/harness.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const suite = path.join(here, 'node_modules', '@modelcontextprotocol', 'conformance', 'dist', 'index.js');

// The suite (and the glob package behind its fs.globSync shim) needs Node 20;
// Debian 12's own nodejs is 18, which runs every other SDK test.
const nodeMajor = Number(process.versions.node.split('.')[0]);
const skip = nodeMajor < 20 ? `needs Node >= 20 (this is ${process.versions.node})` : false;

describe('MCP conformance suite 0.1.16', { timeout: 240_000, skip }, () => {
  let world;
  let daemon;

  before(async () => {
    world = makeWorld();
    daemon = await startNetworkDaemon(world, { auth: 'none' });
  });

  after(() => teardown(() => daemon?.stopClean(), () => world?.cleanup()));

  test('active scenarios pass, except the fixture-driven baseline', async () => {
    const args = ['--import', path.join(here, 'conformance', 'polyfill.mjs'), suite, 'server',
      '--url', httpUrl(daemon), '--expected-failures', path.join(here, 'conformance-baseline.yml'),
      '-o', path.join(world.root, 'results')];
    const child = spawn(process.execPath, args, {
      cwd: world.root, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, NO_COLOR: '1', FORCE_COLOR: '0' },
    });
    let out = '';
    child.stdout.on('data', (d) => { out += d; });
    child.stderr.on('data', (d) => { out += d; });
    const timer = setTimeout(() => child.kill('SIGKILL'), 200_000);
    const code = await new Promise((r) => child.on('exit', (c, s) => r(c ?? s)));
    clearTimeout(timer);
    // The summary lines are the useful part of the report.
    const summary = out.split('\n').filter((l) => /^[✓✗]|Total:|baseline|expected/i.test(l.trim()));
    for (const l of summary) console.log(`# ${l}`);
    assert.equal(code, 0, `conformance exited ${code}:\n${out.slice(-6000)}`);
  });
});
