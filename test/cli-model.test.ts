/**
 * The model commands (run, forward, info, chat) on the golden checkpoints (real loadModel, no
 * tokenizer) and on a fake model with a tokenizer (streaming text, chat).
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { CommanderError } from 'commander';
import { registerChatCommand } from '../src/cli/chat.js';
import { registerForwardCommand } from '../src/cli/forward.js';
import { registerInfoCommand } from '../src/cli/info.js';
import type { CliIO } from '../src/cli/options.js';
import { registerRunCommand } from '../src/cli/run.js';
import { GemmaError, ModelError, UsageError } from '../src/errors.js';
import type { LoadedModel } from '../src/model/load.js';
import { FakeModel, FakeTokenizer, row } from './generate-fakes.js';
import { runCli } from './helpers/cli.js';
import { goldenDir, readGolden, repoRoot } from './helpers/paths.js';

type Register = Parameters<typeof runCli>[0];
const cli = runCli;

const golden = (v: string): string => path.join(goldenDir(), v);

test('forward --all-positions --json matches the golden all-position logits (gemma2)', async () => {
  const g = readGolden('gemma2');
  for (const seq of g.sequences.filter((s) => s.name !== 'len1')) {
    const r = await cli(registerForwardCommand, ['forward', '--model', golden('gemma2'), '--ids', seq.input_ids.join(','), '--all-positions', '--json']);
    assert.equal(r.error, undefined, String(r.error));
    assert.equal(r.stdout.split('\n').filter(Boolean).length, 1, 'one JSON line');
    const out = JSON.parse(r.stdout) as { logits: number[][] };
    assert.equal(out.logits.length, seq.input_ids.length);
    let worst = 0;
    out.logits.forEach((rowV, t) => {
      assert.equal(rowV.length, seq.all_logits[t]!.length);
      rowV.forEach((v, j) => (worst = Math.max(worst, Math.abs(v - seq.all_logits[t]![j]!))));
    });
    assert.ok(worst <= 1e-4, `${seq.name}: max diff ${worst}`);
  }
  // Without --all-positions: the last position only.
  const seq = g.sequences.find((s) => s.name === 'len7')!;
  const r = await cli(registerForwardCommand, ['forward', '-m', golden('gemma2'), '--ids', seq.input_ids.join(','), '--json']);
  const out = JSON.parse(r.stdout) as { logits: number[][] };
  assert.equal(out.logits.length, 1);
  out.logits[0]!.forEach((v, j) => assert.ok(Math.abs(v - seq.last_logits[j]!) <= 1e-4));
});

test('forward prints floats that round-trip to the exact float32 logits', async () => {
  const r = await cli(registerForwardCommand, ['forward', '-m', golden('gemma1_mqa'), '--ids', '2,17', '--json']);
  const values = (JSON.parse(r.stdout) as { logits: number[][] }).logits[0]!;
  // Every printed value is exactly a float32 (fround is the identity) and not rounded to fewer digits.
  assert.ok(values.every((v) => Math.fround(v) === v));
  assert.ok(values.some((v) => String(v).replace(/^-?0\.0*/, '').replace('.', '').length > 7), 'full precision');
});

test('run --prompt-ids --temperature 0 --json gives the golden greedy tokens', async () => {
  for (const variant of ['gemma2', 'gemma1_mha']) {
    const g = readGolden(variant);
    for (const seq of g.sequences) {
      const r = await cli(registerRunCommand, ['run', '--model', golden(variant), '--prompt-ids', seq.input_ids.join(','), '--max-tokens', '20', '--temperature', '0', '--json']);
      assert.equal(r.error, undefined, String(r.error));
      const out = JSON.parse(r.stdout) as { ids: number[]; text: string };
      assert.deepEqual(Object.keys(out), ['ids', 'text']);
      assert.deepEqual(out.ids, seq.greedy.new_token_ids, `${variant} ${seq.name}`);
      assert.equal(out.text, '', 'no tokenizer: empty text');
    }
  }
});

test('run --kv-type f16 decodes through an f16 KV cache (wasm backend)', async () => {
  const seq = readGolden('gemma2').sequences[0]!;
  const r = await cli(registerRunCommand, ['run', '--model', golden('gemma2'), '--backend', 'wasm', '--kv-type', 'f16', '--prompt-ids', seq.input_ids.join(','), '--max-tokens', '20', '--ignore-eos', '--temperature', '0', '--json']);
  assert.equal(r.error, undefined, String(r.error));
  const out = JSON.parse(r.stdout) as { ids: number[] };
  assert.equal(out.ids.length, 20);
  // f16 keys / values round at the 4th significant digit: the first greedy token still agrees
  assert.equal(out.ids[0], seq.greedy.new_token_ids[0]);
  // the js backend has no f16 cache: it says so and runs in f32
  const js = await cli(registerRunCommand, ['run', '--model', golden('gemma2'), '--backend', 'js', '--kv-type', 'f16', '--prompt-ids', seq.input_ids.join(','), '--max-tokens', '3', '--temperature', '0', '--json']);
  assert.equal(js.error, undefined, String(js.error));
  assert.match(js.stderr, /note: the js backend keeps the KV cache in f32/);
});

test('run stops at the config eos ids unless --ignore-eos (gemma3: eos 1 and 106)', async () => {
  const seq = readGolden('gemma3').sequences.find((s) => s.name === 'len40')!;
  const want = seq.greedy.new_token_ids;
  const base = ['run', '-m', golden('gemma3'), '--prompt-ids', seq.input_ids.join(','), '-n', '20', '-t', '0', '--json'];
  const all = JSON.parse((await cli(registerRunCommand, [...base, '--ignore-eos'])).stdout) as { ids: number[] };
  assert.deepEqual(all.ids, want);
  const stopped = JSON.parse((await cli(registerRunCommand, base)).stdout) as { ids: number[] };
  assert.ok(want.includes(106));
  assert.deepEqual(stopped.ids, want.slice(0, want.indexOf(106)));
});

test('info --json: sizes, layer pattern, parameter count and bytes from the checkpoint', async () => {
  const r = await cli(registerInfoCommand, ['info', '--model', golden('gemma2'), '--json']);
  assert.equal(r.error, undefined, String(r.error));
  const info = JSON.parse(r.stdout) as Record<string, unknown>;
  // Independent reference: the safetensors header itself.
  const file = path.join(golden('gemma2'), 'model.safetensors');
  const buf = fs.readFileSync(file);
  const n = Number(buf.readBigUInt64LE(0));
  const header = JSON.parse(buf.subarray(8, 8 + n).toString('utf8')) as Record<string, { shape: number[] }>;
  const tensors = Object.entries(header).filter(([k]) => k !== '__metadata__');
  const params = tensors.reduce((a, [, t]) => a + t.shape.reduce((x, y) => x * y, 1), 0);
  assert.equal(info.parameters, params);
  assert.equal(info.weightBytes, buf.length - 8 - n);
  assert.deepEqual(info.dtypes, { f32: tensors.length });
  assert.equal(info.layerPattern, 'LGLG');
  assert.equal(info.slidingWindow, 8);
  assert.equal(info.family, 'gemma2');
  assert.equal(info.layers, 4);
  assert.equal(info.attnSoftcap, 10);
  assert.equal(info.finalSoftcap, 1.5);
  // KV cache at 256 tokens: 2 local layers hold 8, 2 global hold 256; 2 kv heads x 32 x (k+v) x 4 bytes.
  assert.equal(info.kvCacheBytes, (8 + 8 + 256 + 256) * 2 * 32 * 2 * 4);
  assert.equal(info.memoryBytes, (info.weightBytes as number) + (info.kvCacheBytes as number));
  assert.equal(info.kvType, 'f32');
  const half = JSON.parse((await cli(registerInfoCommand, ['info', '--model', golden('gemma2'), '--json', '--kv-type', 'f16'])).stdout) as Record<string, unknown>;
  assert.equal(half.kvType, 'f16');
  assert.equal(half.kvCacheBytes, (8 + 8 + 256 + 256) * 2 * 32 * 2 * 2, 'f16: 2 bytes per value');
  const text = await cli(registerInfoCommand, ['info', '--model', golden('gemma3_rope_scaled')]);
  assert.match(text.stdout, /LLGLL/);
  assert.match(text.stdout, /linear scaling x8/);
  assert.match(text.stdout, /parameters:/);
});

test('bad flags and inputs give errors that name the problem', async () => {
  const m = golden('gemma2');
  const flagError = async (argv: string[], flag: string) => {
    const r = await cli(registerRunCommand, argv);
    assert.ok(r.error instanceof CommanderError, `${argv.join(' ')}: ${String(r.error)}`);
    assert.equal(r.error.exitCode, 1);
    assert.ok(r.stderr.includes(flag), `stderr names ${flag}: ${r.stderr}`);
  };
  await flagError(['run', '-m', m, '--prompt-ids', '2', '--top-p', '2'], '--top-p');
  await flagError(['run', '-m', m, '--prompt-ids', '2', '--top-k', '1.5'], '--top-k');
  await flagError(['run', '-m', m, '--prompt-ids', '2,x'], '--prompt-ids');
  await flagError(['run', '-m', m, '--prompt-ids', '2', '--temperature', '-1'], '--temperature');
  await flagError(['run', '-m', m, '--prompt-ids', '2', '--backend', 'gpu'], '--backend');
  await flagError(['run', '-m', m, '--prompt-ids', '2', '--kv-type', 'q8'], '--kv-type');
  await flagError(['run', '--prompt-ids', '2'], '--model');

  const gemmaError = async (register: Register, argv: string[], type: new (...a: never[]) => GemmaError, re: RegExp) => {
    const r = await cli(register, argv);
    assert.ok(r.error instanceof type, `${argv.join(' ')}: ${String(r.error)}`);
    assert.match((r.error as Error).message, re);
  };
  await gemmaError(registerRunCommand, ['run', '-m', m, 'hello'], UsageError, /--prompt-ids/);
  await gemmaError(registerRunCommand, ['run', '-m', m, '--prompt-ids', '2,999'], UsageError, /999/);
  await gemmaError(registerForwardCommand, ['forward', '-m', m, '--ids', '2,512'], UsageError, /512/);
  await gemmaError(registerRunCommand, ['run', '-m', '/nonexistent/model', '--prompt-ids', '2'], ModelError, /not found/);
  await gemmaError(registerRunCommand, ['run', '-m', m, '--prompt-ids', '2', 'text'], UsageError, /not both/);
});

// ---------------------------------------------------------------- text and chat on a fake model

const PIECES = ['<pad>', '<eos>', '<bos>', '<start_of_turn>', '<end_of_turn>', 'user', 'model', '\n', ' ', 'H', 'e', 'l', 'o', '!', 'E', 'ND', 'W'];
const pid = (p: string): number => PIECES.indexOf(p);

/** Echo-ish fake: after "model\n" answers "Hello!" then <end_of_turn>; outside chat "W" forever. */
function fakeLoader(record?: number[][]): CliIO['loadModel'] {
  return async () => {
    const answer = ['H', 'e', 'l', 'l', 'o', '!', 'E', 'ND', 'W'];
    const model = new FakeModel(PIECES.length, (ctx) => {
      let start = -1;
      for (let i = ctx.length - 3; i >= 0; i--) {
        if (ctx[i] === pid('<start_of_turn>') && ctx[i + 1] === pid('model') && ctx[i + 2] === pid('\n')) {
          start = i + 3;
          break;
        }
      }
      const next = start < 0 ? 'W' : answer[ctx.length - start] ?? '<end_of_turn>';
      return row(PIECES.length, { [pid(next)]: 5 });
    });
    if (record) model.calls.push = (...items: number[][]) => record.push(...items);
    const loaded: LoadedModel = {
      model,
      tokenizer: new FakeTokenizer(PIECES),
      config: model.config,
      path: 'fake',
      format: 'safetensors',
      dtypes: { f32: 1 },
      weightBytes: 0,
      notices: ['a notice'],
    };
    return loaded;
  };
}

test('run streams text; prompt from the arguments or stdin; --chat; --stop', async () => {
  const loadModel = fakeLoader();
  let r = await cli(registerRunCommand, ['run', '-m', 'x', '-n', '3', 'Hello'], { loadModel });
  assert.equal(r.error, undefined, String(r.error));
  assert.equal(r.stdout, 'WWW\n');
  assert.match(r.stderr, /note: a notice/);
  r = await cli(registerRunCommand, ['run', '-m', 'x', '-n', '2', '--json'], { loadModel, stdin: 'Hello\n' });
  assert.deepEqual(JSON.parse(r.stdout), { ids: [pid('W'), pid('W')], text: 'WW' });
  r = await cli(registerRunCommand, ['run', '-m', 'x', '--chat', '-t', '0', 'Hello'], { loadModel });
  assert.equal(r.stdout, 'Hello!EN' + 'DW\n');
  r = await cli(registerRunCommand, ['run', '-m', 'x', '--chat', '-t', '0', '--stop', 'END', '--stop', '!!', 'Hello'], { loadModel });
  assert.equal(r.stdout, 'Hello!\n');
  r = await cli(registerRunCommand, ['run', '-m', 'x', '--chat', '-t', '0', '--stop', 'END', '--json', '-v', 'Hello'], { loadModel });
  assert.equal((JSON.parse(r.stdout) as { text: string }).text, 'Hello!');
  assert.match(r.stderr, /finish: stop_string/);
  // The prompt actually given to the model: the Gemma chat turn.
  const calls: number[][] = [];
  await cli(registerRunCommand, ['run', '-m', 'x', '--chat', '-n', '1', 'He'], { loadModel: fakeLoader(calls) });
  const ids = (s: string[]) => s.map(pid);
  assert.deepEqual(calls[0], ids(['<bos>', '<start_of_turn>', 'user', '\n', 'H', 'e', '<end_of_turn>', '\n', '<start_of_turn>', 'model', '\n']));
});

test('chat with piped stdin: one turn per line, /reset, /exit; the cache carries over', async () => {
  const calls: number[][] = [];
  const r = await cli(registerChatCommand, ['chat', '-m', 'x', '-t', '0', '--stop', 'END'], {
    loadModel: fakeLoader(calls),
    stdin: 'Hello\nHe\n/reset\nHe\n/exit\nnever\n',
  });
  assert.equal(r.error, undefined, String(r.error));
  assert.equal(r.stdout, 'Hello!\nHello!\nHello!\n');
  // Prefill calls are the ones with more than one id: turn 1 (full), turn 2 (only the new turn), after /reset (full).
  const prefills = calls.filter((c) => c.length > 1);
  assert.equal(prefills.length, 3);
  assert.equal(prefills[0]![0], pid('<bos>'));
  assert.notEqual(prefills[1]![0], pid('<bos>'), 'turn 2 prefills only its new tokens');
  assert.equal(prefills[2]![0], pid('<bos>'), '/reset starts over');
  assert.ok(prefills[1]!.length < prefills[0]!.length + 8);
});

// ---------------------------------------------------------------- the embedded demo model

test('run on the demo model: streamed text is the decoded ids; same seed, same output; --chat prompt', async () => {
  const { loadTokenizer } = await import('../src/tokenizer/load.js');
  const { loadModel } = await import('../src/model/load.js');
  const tok = await loadTokenizer(path.join(repoRoot(), 'models', 'demo'));
  const argv = ['run', '-m', 'demo', '--seed', '7', '-n', '12', '--ignore-eos', 'Hello there'];
  const a = await cli(registerRunCommand, argv);
  assert.equal(a.error, undefined, String(a.error));
  const b = await cli(registerRunCommand, argv);
  assert.equal(a.stdout, b.stdout, 'same seed, same text');
  const j = await cli(registerRunCommand, [...argv, '--json']);
  const out = JSON.parse(j.stdout) as { ids: number[]; text: string };
  assert.equal(out.ids.length, 12);
  assert.ok(out.ids.every((i) => i >= 0 && i < tok.vocabSize));
  assert.equal(out.text, tok.decode(out.ids, { skipSpecial: true }));
  assert.equal(a.stdout, out.text + '\n');
  const other = await cli(registerRunCommand, ['run', '-m', 'demo', '--seed', '8', '-n', '12', '--ignore-eos', '--json', 'Hello there']);
  assert.notDeepEqual((JSON.parse(other.stdout) as { ids: number[] }).ids, out.ids);

  // --chat: the model sees the Gemma chat turn, encoded by the reference tokenizer.
  const calls: number[][] = [];
  const recording: CliIO['loadModel'] = async (spec, o) => {
    const loaded = await loadModel(spec, o);
    const forward = loaded.model.forwardAsync.bind(loaded.model);
    loaded.model.forwardAsync = (ids, cache, fo) => (calls.push([...ids]), forward(ids, cache, fo));
    return loaded;
  };
  const c = await cli(registerRunCommand, ['run', '-m', 'demo', '--chat', '-n', '2', 'Hi'], { loadModel: recording });
  assert.equal(c.error, undefined, String(c.error));
  const want = tok.encode('<start_of_turn>user\nHi<end_of_turn>\n<start_of_turn>model\n', { parseSpecial: true });
  assert.equal(want[0], tok.bosId);
  assert.deepEqual(calls[0], want);
});
