// Conformance 0.1.16 imports { globSync } from 'fs', which exists from Node 22
// on. On Node 20 the 'fs' ESM facade is fixed before any preload runs, so a
// resolve hook sends the suite's 'fs' imports to a shim that adds globSync
// (from the glob package). Usage: node --import ./conformance/polyfill.mjs ...
import fs from 'node:fs';
import { register } from 'node:module';

if (typeof fs.globSync !== 'function') {
  register('./fs-hook.mjs', import.meta.url);
}
