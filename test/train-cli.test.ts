/**
 * `gemma finetune` end to end: a killed run resumes from its last checkpoint and ends with the
 * same weights as an uninterrupted run (AdamW state included); a data directory with
 * valid.jsonl gives validation lines; --method lora writes a PEFT adapter and a GGUF adapter.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { after, test } from 'node:test';
import { readGGUF } from '../src/formats/gguf.js';
import { goldenDir, repoRoot } from './helpers/paths.js';

const run = promisify(execFile);
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'gemma-ft-cli-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));
const model = path.join(goldenDir(), 'gemma3');
const data = path.join(model, 'train_sgd', 'data.jsonl');

async function finetune(args: string[]): Promise<string> {
  const { stdout } = await run(process.execPath, [path.join(repoRoot(), 'bin', 'gemma.js'), 'finetune', '--model', model, ...args]);
  return stdout;
}

test('a killed run resumes from its last checkpoint with the same result', async () => {
  const common = ['--data', data, '--method', 'full', '--optimizer', 'adamw', '--lr', '1e-3', '--steps', '6', '--save-every', '2', '--schedule', 'cosine', '--warmup', '1', '--json'];
  const a = path.join(tmp, 'a'), b = path.join(tmp, 'b');
  await finetune([...common, '--out', a]);
  await finetune([...common, '--out', b]);
  assert.deepEqual(fs.readdirSync(path.join(b, 'checkpoints')).sort(), ['step-000002', 'step-000004', 'step-000006']);
  // as if killed during step 4: only step 2's checkpoint survived
  for (const d of ['step-000004', 'step-000006']) fs.rmSync(path.join(b, 'checkpoints', d), { recursive: true });
  fs.rmSync(path.join(b, 'model.safetensors'));
  const resumed = await finetune([...common, '--out', b, '--resume']);
  const steps = resumed.trim().split('\n').map((l) => (JSON.parse(l) as { step: number }).step);
  assert.deepEqual(steps, [3, 4, 5, 6]);
  assert.ok(fs.readFileSync(path.join(a, 'model.safetensors')).equals(fs.readFileSync(path.join(b, 'model.safetensors'))), 'resumed weights differ');
});

test('validation loss every K steps from a train.jsonl / valid.jsonl directory; LoRA output files', async () => {
  const dir = path.join(tmp, 'data');
  fs.mkdirSync(dir);
  const lines = fs.readFileSync(data, 'utf8').trim().split('\n');
  fs.writeFileSync(path.join(dir, 'train.jsonl'), lines[1] + '\n');
  fs.writeFileSync(path.join(dir, 'valid.jsonl'), lines[0] + '\n');
  const out = path.join(tmp, 'lora');
  const stdout = await finetune(['--data', dir, '--method', 'lora', '--rank', '4', '--lr', '1e-2', '--steps', '4', '--eval-every', '2', '--out', out, '--json']);
  const rows = stdout.trim().split('\n').map((l) => JSON.parse(l) as Record<string, number>);
  const evals = rows.filter((r) => 'val_loss' in r);
  assert.deepEqual(evals.map((r) => r.step), [2, 4]);
  assert.ok(evals[1]!.val_loss! > 0 && evals[1]!.val_targets === 6);
  const stepsRows = rows.filter((r) => 'loss' in r);
  assert.deepEqual(Object.keys(stepsRows[0]!).slice(0, 4), ['step', 'loss', 'lr', 'tokens']);
  assert.ok(stepsRows[3]!.loss! < stepsRows[0]!.loss!);
  const cfg = JSON.parse(fs.readFileSync(path.join(out, 'adapter_config.json'), 'utf8')) as Record<string, unknown>;
  assert.equal(cfg.r, 4);
  assert.equal(cfg.peft_type, 'LORA');
  const g = readGGUF(path.join(out, 'adapter.gguf'));
  assert.equal(g.metadata.get('general.type'), 'adapter');
  assert.equal(g.metadata.get('adapter.type'), 'lora');
  assert.equal(g.metadata.get('adapter.lora.alpha'), 16);
  assert.ok(g.tensorMap.has('blk.0.attn_q.weight.lora_a') && g.tensorMap.has('blk.3.ffn_down.weight.lora_b'));
  // llama.cpp's layout: lora_a ne = [in, r], lora_b ne = [r, out] (q_proj: in 64, out 4 x 32)
  assert.deepEqual(g.tensorMap.get('blk.0.attn_q.weight.lora_a')!.ne, [64, 4]);
  assert.deepEqual(g.tensorMap.get('blk.0.attn_q.weight.lora_b')!.ne, [4, 128]);
});
