/**
 * Smoke suite on the other runtimes: Node 26, Deno and Bun (the whole suite runs on the Node that
 * runs `npm test`, Node 24 from node_modules). On each: the library (demo greedy tokens and the
 * golden forward pass on the wasm backend), `gemma run --model demo`, and `gemma serve` (health,
 * a streamed chat completion, a clean stop on SIGTERM). Results must equal this process's.
 */
import { before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import { generateText, loadModel } from '../src/index.js';
import { goldenDir, repoRoot } from './helpers/paths.js';
import { BUN, DENO, NODE_RUNTIMES, missing, type Runtime } from './runtime-util.js';

const exec = promisify(execFile);
const BIN = path.join(repoRoot(), 'bin', 'gemma.js');
const SCRIPT = path.join(repoRoot(), 'dist', 'test', 'runtime-smoke-script.js');
const RUN_ARGS = ['run', '--model', 'demo', '-n', '8', '-t', '0', '--json', 'Hello'];

let demoIds: number[] = [];
let runOutput: unknown;

before(async () => {
  const { model, tokenizer } = await loadModel('demo', { backend: 'wasm', threads: 2 });
  demoIds = (await generateText(model, tokenizer, tokenizer!.encode('Once upon a time'), { maxTokens: 12, temperature: 0, ignoreEos: true })).ids;
  model.dispose();
  runOutput = JSON.parse((await exec(process.execPath, [BIN, ...RUN_ARGS], { cwd: repoRoot() })).stdout);
});

function runWith(rt: Runtime, file: string, args: string[]) {
  return exec(rt.bin, [...rt.args, file, ...args], { cwd: repoRoot(), timeout: 120_000 });
}

/** `gemma serve --model demo --port 0` under rt; resolves to its URL and the process. */
function startServe(rt: Runtime): Promise<{ url: string; child: ReturnType<typeof spawn>; stderr: () => string }> {
  const child = spawn(rt.bin, [...rt.args, BIN, 'serve', '--model', 'demo', '--port', '0'], { cwd: repoRoot(), stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${rt.name}: gemma serve did not start within 60 s:\n${err}`)), 60_000);
    child.stderr!.on('data', (d: Buffer) => {
      err += d.toString();
      const m = /(http:\/\/[^\s,]+)/.exec(err);
      if (m) {
        clearTimeout(timer);
        resolve({ url: m[1]!, child, stderr: () => err });
      }
    });
    child.on('exit', (code) => reject(new Error(`${rt.name}: gemma serve exited (${code}):\n${err}`)));
  });
}

for (const rt of [NODE_RUNTIMES[1]!, DENO, BUN]) {
  describe(`runtime ${rt.name}`, () => {
    const why = missing(rt);
    if (why) {
      // npm ci installs every runtime (devDependencies); a checkout without them cannot run this.
      test(`${rt.name} is installed`, () => assert.fail(why));
      return;
    }

    test('library: demo greedy tokens equal this Node\'s, golden forward on wasm within 1e-4', async () => {
      const { stdout } = await runWith(rt, SCRIPT, [goldenDir()]);
      const r = JSON.parse(stdout) as { version: string; variant: string; ids: number[]; golden: Record<string, number> };
      assert.deepEqual(r.ids, demoIds);
      assert.deepEqual(Object.keys(r.golden), ['gemma2', 'gemma3']);
      for (const [v, d] of Object.entries(r.golden)) assert.ok(d <= 1e-4, `${rt.name} ${v}: max |logit diff| ${d}`);
      // Every supported runtime has relaxed SIMD (by default, or through bin/gemma.js's probe).
      assert.equal(r.variant, 'relaxed');
    });

    test('CLI: gemma run --model demo --json gives this Node\'s greedy output, nothing on stderr', async () => {
      const { stdout, stderr } = await runWith(rt, BIN, RUN_ARGS);
      assert.deepEqual(JSON.parse(stdout), runOutput);
      assert.equal(stderr.replace(/\x1b\[[0-9;]*m/g, ''), '');
    });

    test('CLI: gemma serve answers /health and a streamed chat completion, stops on SIGTERM', async () => {
      const { url, child, stderr } = await startServe(rt);
      try {
        // /health is 503 until the model is loaded (readiness), then 200.
        let health = 0;
        for (let i = 0; i < 120 && health !== 200; i++) {
          if (i > 0) await new Promise((r) => setTimeout(r, 500));
          health = (await fetch(`${url}/health`)).status;
          assert.ok(health === 200 || health === 503, `/health ${health}`);
        }
        assert.equal(health, 200);
        const res = await fetch(`${url}/v1/chat/completions`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ model: 'demo', messages: [{ role: 'user', content: 'Hi' }], max_tokens: 5, temperature: 0, stream: true }),
        });
        assert.equal(res.status, 200);
        const events = (await res.text()).split('\n\n').filter((e) => e.startsWith('data: '));
        assert.equal(events.at(-1), 'data: [DONE]');
        const finish = events.slice(0, -1).map((e) => JSON.parse(e.slice(6)) as { choices: Array<{ finish_reason: string | null }> }).at(-1)!;
        assert.ok(['length', 'stop'].includes(finish.choices[0]!.finish_reason!));
      } finally {
        const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
        child.kill('SIGTERM');
        assert.equal(await exited, 0, stderr());
      }
    });
  });
}
