/**
 * The demo's training pipeline (scripts/demo/train.ts) is reproducible: from its seed it
 * regenerates exactly the committed held-out sets and tokenizer, and two short training runs
 * (a few steps of each stage, never the whole recipe) give bit-identical weights.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { repoRoot } from './helpers/paths.js';

const ROOT = repoRoot();
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'demo-train-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** scripts/demo/train.ts with a short recipe, its held-out sets written under `dir`. */
async function shortRun(dir: string): Promise<string> {
  const { stdout } = await promisify(execFile)(
    process.execPath,
    ['--import', 'tsx', path.join(ROOT, 'scripts', 'demo', 'train.ts'), '--out', path.join(dir, 'model'), '--work', path.join(dir, 'work'), '--heldout', path.join(dir, 'heldout'), '--corpus-sample', path.join(dir, 'generated.txt'), '--pretrain-steps', '1', '--chat-steps', '1', '--shield-steps', '1', '--no-eval'],
    { cwd: ROOT, encoding: 'utf8' },
  );
  return stdout;
}

const sha = (file: string): string => crypto.createHash('sha256').update(fs.readFileSync(file)).digest('hex');

test('demo training: same seed, same held-out sets, same tokenizer, bit-identical weights', async () => {
  const a = path.join(tmp, 'a'), b = path.join(tmp, 'b');
  // Two independent processes, side by side.
  const [log] = await Promise.all([shortRun(a), shortRun(b)]);
  assert.match(log, /pretrain step 1\/1/);
  // The held-out sets the shipped model was scored on are exactly what the seed generates.
  for (const f of fs.readdirSync(path.join(ROOT, 'scripts', 'demo', 'heldout'))) {
    assert.equal(sha(path.join(a, 'heldout', f)), sha(path.join(ROOT, 'scripts', 'demo', 'heldout', f)), `heldout/${f}`);
  }
  assert.equal(sha(path.join(a, 'generated.txt')), sha(path.join(ROOT, 'scripts', 'demo-corpus', 'generated.txt')));
  // So is the shipped tokenizer (tokenizer.model records its input paths; tokenizer.json does not).
  assert.equal(sha(path.join(a, 'model', 'tokenizer.json')), sha(path.join(ROOT, 'models', 'demo', 'tokenizer.json')));
  // Training is deterministic: two runs give the same bytes.
  assert.equal(sha(path.join(a, 'model', 'model.safetensors')), sha(path.join(b, 'model', 'model.safetensors')));
  assert.notEqual(sha(path.join(a, 'model', 'model.safetensors')), sha(path.join(a, 'work', 'init', 'model.safetensors')), 'the weights changed');
});
