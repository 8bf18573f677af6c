/**
 * `npm run docs`: TypeDoc over the public entry points builds the API reference with no warning
 * (broken links, unresolvable types), and the contract's functions carry TSDoc.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { repoRoot } from './helpers/paths.js';

const exec = promisify(execFile);
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'gemma-ts-docs-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

test('docs: `npm run docs` (TypeDoc over the public entry points) builds with no warning', async () => {
  const typedoc = path.join(repoRoot(), 'node_modules', 'typedoc', 'bin', 'typedoc');
  const out = path.join(tmp, 'api.json');
  const r = await exec(process.execPath, [typedoc, '--out', path.join(tmp, 'html'), '--json', out, '--treatWarningsAsErrors'], { cwd: repoRoot(), timeout: 300_000 });
  assert.doesNotMatch(r.stdout + r.stderr, /\[warning\]|\[error\]/);
  assert.ok(fs.existsSync(path.join(tmp, 'html', 'index.html')));
  // The contract's functions are documented in the generated reference.
  const api = JSON.parse(fs.readFileSync(out, 'utf8')) as { children: Array<{ name: string; children?: Array<{ name: string; signatures?: Array<{ comment?: unknown }> }> }> };
  const root = api.children.find((m) => m.name === 'gemma-ts')!;
  for (const fn of ['loadModel', 'generate', 'encodeChat', 'loadTokenizer', 'createWasmBackend']) {
    assert.ok(root.children!.find((c) => c.name === fn)?.signatures?.[0]?.comment, `${fn} has TSDoc`);
  }
});
