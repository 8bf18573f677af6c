import fs from 'node:fs';
import path from 'node:path';
import { packageRoot } from './util/package-root.js';

/** The installed gemma-ts version (package.json's `version`). */
export const VERSION: string = JSON.parse(fs.readFileSync(path.join(packageRoot(), 'package.json'), 'utf8')).version;
