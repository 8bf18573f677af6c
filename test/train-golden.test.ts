/**
 * Training against the golden oracle (../shared/golden/VARIANT/train_sgd): the CLI contract
 * `gemma finetune --method full --optimizer sgd ... --json` must reproduce PyTorch's float64 losses
 * (1e-5 relative, the oracle's tolerance) and weight updates (per tensor within 2.5e-4 relative L2:
 * the oracle measured up to 1.6e-4 for a float32 run against its float64 one, on a norm weight
 * whose update is small; median within 1e-4), with the output written under
 * the input's tensor names and dtype; and the training forward's logits must equal gemma.ts's.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { describe, test } from 'node:test';
import { openSafetensors } from '../src/formats/safetensors.js';
import { createModel } from '../src/model/load.js';
import { loadTrainModel } from '../src/train/checkpoint-io.js';
import { modelForward, sequenceContext } from '../src/train/forward.js';
import { headLogits } from '../src/train/loss.js';
import { GOLDEN_VARIANTS, goldenDir, readGolden, repoRoot } from './helpers/paths.js';

const run = promisify(execFile);

function f32(source: ReturnType<typeof openSafetensors>, name: string): Float32Array {
  const b = source.read(name);
  return new Float32Array(b.buffer, b.byteOffset, b.byteLength / 4);
}

for (const variant of GOLDEN_VARIANTS) {
  describe(`train ${variant}`, () => {
    const dir = path.join(goldenDir(), variant);

    test('training forward logits equal the inference forward pass', async () => {
      const { model } = await loadTrainModel(dir);
      const source = openSafetensors(path.join(dir, 'model.safetensors'));
      const infer = await createModel(source, model.config, { backend: 'js' });
      source.close();
      for (const seq of readGolden(variant).sequences) {
        const ids = seq.input_ids;
        const xs = modelForward(model, sequenceContext(model, ids.length), ids);
        const got = headLogits(model, xs[xs.length - 1]!, ids.length);
        const want = infer.forward(ids, infer.createCache(128), { allPositions: true }).logits;
        let worst = 0;
        for (let i = 0; i < want.length; i++) worst = Math.max(worst, Math.abs(got[i]! - want[i]!));
        assert.ok(worst <= 2e-5, `${seq.name}: max |logit diff| ${worst}`);
        // and the reference's
        seq.all_logits.forEach((row, t) => row.forEach((v, i) => assert.ok(Math.abs(got[t * row.length + i]! - v) <= 1e-4, `${seq.name} [${t}, ${i}]`)));
      }
    });

    test('gemma finetune --method full --optimizer sgd reproduces train_sgd', async () => {
      const expected = JSON.parse(fs.readFileSync(path.join(dir, 'train_sgd', 'expected.json'), 'utf8')) as { lr: number; steps: number; losses: number[] };
      const out = fs.mkdtempSync(path.join(os.tmpdir(), 'gemma-train-'));
      try {
        const { stdout } = await run(process.execPath, [
          path.join(repoRoot(), 'bin', 'gemma.js'), 'finetune', '--model', dir, '--data', path.join(dir, 'train_sgd', 'data.jsonl'),
          '--method', 'full', '--optimizer', 'sgd', '--lr', String(expected.lr), '--steps', String(expected.steps), '--batch-size', '1',
          '--no-shuffle', '--max-grad-norm', '0', '--out', out, '--json',
        ]);
        const lines = stdout.trim().split('\n').map((l) => JSON.parse(l) as { step: number; loss: number });
        assert.equal(lines.length, expected.steps);
        lines.forEach((l, i) => {
          assert.equal(l.step, i + 1);
          const rel = Math.abs(l.loss - expected.losses[i]!) / Math.abs(expected.losses[i]!);
          assert.ok(rel <= 1e-5, `step ${i + 1}: loss ${l.loss} vs ${expected.losses[i]} (rel ${rel})`);
        });
        assert.ok(fs.existsSync(path.join(out, 'config.json')));
        const before = openSafetensors(path.join(dir, 'model.safetensors'));
        const after = openSafetensors(path.join(out, 'model.safetensors'));
        const delta = openSafetensors(path.join(dir, 'train_sgd', 'expected.safetensors'));
        try {
          assert.deepEqual(after.list().map((t) => t.name).sort(), before.list().map((t) => t.name).sort(), 'tensor names');
          const rels: number[] = [];
          for (const t of delta.list()) {
            assert.equal(after.get(t.name)!.dtype, before.get(t.name)!.dtype, `${t.name} dtype`);
            const w0 = f32(before, t.name), w1 = f32(after, t.name), want = f32(delta, t.name);
            let num = 0, den = 0;
            for (let i = 0; i < want.length; i++) {
              const d = w1[i]! - w0[i]! - want[i]!;
              num += d * d;
              den += want[i]! * want[i]!;
            }
            const rel = Math.sqrt(num / den);
            assert.ok(rel <= 2.5e-4, `${t.name}: update differs by ${rel} relative L2`);
            rels.push(rel);
          }
          rels.sort((a, b) => a - b);
          const median = rels[rels.length >> 1]!;
          assert.ok(median <= 1e-4, `median relative L2 of the updates ${median}`);
        } finally {
          before.close();
          after.close();
          delta.close();
        }
      } finally {
        fs.rmSync(out, { recursive: true, force: true });
      }
    });
  });
}
