// 'fs' plus a globSync with Node 22's signature (pattern, {cwd}) -> relative paths.
import fs from 'node:fs';
import { globSync as glob } from 'glob';

export * from 'node:fs';
export default fs;
export const globSync = (pattern, options = {}) => glob(pattern, options);
