/**
 * Install as users do: `npm pack` the project, install the tarball into a fresh project without
 * dev dependencies (from the local npm cache where it can), and use it from there - the public
 * ESM imports, a strict TypeScript (nodenext) compile against the shipped types, and
 * `npx gemma run --model demo` (also on Node 24). The tarball must hold no tests, fixtures or
 * benchmarks and stay under MAX_PACKED_BYTES.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { builtinModules } from 'node:module';
import { promisify } from 'node:util';
import { repoRoot } from './helpers/paths.js';
import { NODE_RUNTIMES } from './runtime-util.js';

const exec = promisify(execFile);
/** The packed size today is ~3.5 MB (4 MB of it the demo model); this is the stated ceiling. */
const MAX_PACKED_BYTES = 8 * 1024 * 1024;
const NPM = process.platform === 'win32' ? 'npm.cmd' : 'npm';

interface PackResult {
  filename: string;
  size: number;
  unpackedSize: number;
  files: Array<{ path: string; size: number }>;
}

const pkg = JSON.parse(fs.readFileSync(path.join(repoRoot(), 'package.json'), 'utf8')) as {
  version: string;
  exports: Record<string, string | { types: string; default: string }>;
  devDependencies: Record<string, string>;
};
let tmp = '';
let project = '';
let packed: PackResult;

before(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'gemma-ts-pack-'));
  // --ignore-scripts: `prepare` would rebuild dist/ under the feet of the other tests (npm test built it).
  const { stdout } = await exec(NPM, ['pack', '--ignore-scripts', '--json', '--pack-destination', tmp], { cwd: repoRoot(), maxBuffer: 64 << 20 });
  packed = (JSON.parse(stdout) as PackResult[])[0]!;
  project = path.join(tmp, 'app');
  fs.mkdirSync(project);
  fs.writeFileSync(path.join(project, 'package.json'), JSON.stringify({ name: 'app', private: true, type: 'module' }));
  await exec(NPM, ['install', '--omit=dev', '--prefer-offline', '--no-audit', '--no-fund', '--no-package-lock', path.join(tmp, packed.filename)], {
    cwd: project,
    timeout: 300_000,
  });
});

after(() => {
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
});

test('pack: the tarball holds the build, the demo model and the CLI, and no tests, fixtures, benchmarks or source maps', () => {
  const paths = packed.files.map((f) => f.path);
  const bad = paths.filter((p) => /(^|\/)(test|tests|__tests__|fixtures|bench|benchmarks|scripts|kernels)\/|\.test\.[jt]s$|\.map$|^src\/.*\.ts$/.test(p));
  assert.deepEqual(bad, []);
  for (const need of ['package.json', 'README.md', 'CHANGELOG.md', 'bin/gemma.js', 'dist/src/index.js', 'dist/src/index.d.ts', 'models/demo/model.safetensors', 'dist/src/backend/wasm/kernels-simd.wasm', 'dist/src/backend/wasm/kernels-relaxed.wasm']) {
    assert.ok(paths.includes(need), `${need} is in the tarball`);
  }
  for (const [sub, target] of Object.entries(pkg.exports)) {
    for (const file of typeof target === 'string' ? [target] : [target.types, target.default]) {
      assert.ok(paths.includes(file.replace(/^\.\//, '')), `exports["${sub}"] -> ${file} is in the tarball`);
    }
  }
  assert.ok(packed.size < MAX_PACKED_BYTES, `packed ${packed.size} bytes < ${MAX_PACKED_BYTES}`);
});

test('install: no dev dependency came along (unless a production dependency needs the same package)', () => {
  const nm = path.join(project, 'node_modules');
  const installed = fs.readdirSync(nm).flatMap((d) => (d.startsWith('@') ? fs.readdirSync(path.join(nm, d)).map((s) => `${d}/${s}`) : [d]));
  const neededByOthers = new Set<string>();
  for (const name of installed) {
    if (name === 'gemma-ts' || name.startsWith('.')) continue;
    const manifest = path.join(nm, name, 'package.json');
    if (!fs.existsSync(manifest)) continue;
    const m = JSON.parse(fs.readFileSync(manifest, 'utf8')) as Record<string, Record<string, string> | undefined>;
    for (const deps of [m.dependencies, m.optionalDependencies, m.peerDependencies]) for (const d of Object.keys(deps ?? {})) neededByOthers.add(d);
  }
  const devOnly = Object.keys(pkg.devDependencies).filter((d) => installed.includes(d) && !neededByOthers.has(d));
  assert.deepEqual(devOnly, []);
  // The heavy development tools never come along.
  for (const dev of ['typescript', 'assemblyscript', 'node-llama-cpp', 'node24', 'node26', 'deno', 'bun', 'typedoc']) assert.ok(!installed.includes(dev), `${dev} installed`);
});

test('install: the public API from ESM - the contract loadModel / encodeChat / generate, every subpath, and no deep imports', async () => {
  const script = `
import { loadModel, generate, encodeChat, VERSION, GemmaError, UsageError } from 'gemma-ts';
const subpaths = {};
for (const s of ${JSON.stringify(Object.keys(pkg.exports).filter((k) => k !== '.' && k !== './package.json'))}) {
  subpaths[s] = Object.keys(await import('gemma-ts/' + s.slice(2))).length;
}
let deep = 'resolved';
try { await import('gemma-ts/dist/src/model/load.js'); } catch (e) { deep = e.code; }
const loaded = await loadModel('demo');
const { model, tokenizer } = loaded;
const ids = encodeChat(tokenizer, [{ role: 'user', content: 'Hi' }]);
const chunks = [];
for await (const c of generate(model, tokenizer, ids, { maxTokens: 6, temperature: 0 })) chunks.push(c);
let err;
try { await loadModel('/nonexistent/model'); } catch (e) { err = { name: e.name, gemma: e instanceof GemmaError, code: e.code }; }
model.dispose();
console.log(JSON.stringify({ keys: Object.keys(loaded).sort(), ids, chunks, VERSION, subpaths, deep, err, usage: typeof UsageError }));
`;
  fs.writeFileSync(path.join(project, 'contract.mjs'), script);
  const { stdout } = await exec(process.execPath, ['contract.mjs'], { cwd: project, timeout: 120_000 });
  const r = JSON.parse(stdout) as {
    keys: string[]; ids: unknown[]; chunks: Array<{ id: unknown; text: unknown }>; VERSION: string;
    subpaths: Record<string, number>; deep: string; err: { name: string; gemma: boolean; code: string };
  };
  for (const k of ['model', 'tokenizer', 'config', 'format', 'dtypes', 'weightBytes', 'notices']) assert.ok(r.keys.includes(k), `loadModel result has ${k}`);
  assert.ok(r.ids.length > 5 && r.ids.every((i) => Number.isInteger(i)), 'encodeChat returns ids');
  assert.equal(r.ids[0], 2, 'the chat starts with <bos>');
  assert.ok(r.chunks.length > 0 && r.chunks.length <= 6);
  for (const c of r.chunks) assert.ok(Number.isInteger(c.id) && typeof c.text === 'string', JSON.stringify(c));
  assert.equal(r.VERSION, pkg.version);
  for (const [s, n] of Object.entries(r.subpaths)) assert.ok(n > 0, `${s} exports something`);
  assert.equal(r.deep, 'ERR_PACKAGE_PATH_NOT_EXPORTED');
  assert.equal(r.err.gemma, true, `a missing model is a GemmaError (${r.err.name})`);
});

test('install: a strict TypeScript file (moduleResolution nodenext) type-checks against the shipped types', async () => {
  fs.writeFileSync(path.join(project, 'use.ts'), `
import { loadModel, generate, encodeChat, type GenerationChunk, type LoadedModel, type Tokenizer } from 'gemma-ts';
import { createServer, type ServerOptions } from 'gemma-ts/server';
import { readGGUF } from 'gemma-ts/formats';
import { loadTokenizer } from 'gemma-ts/tokenizer';
import { ShieldClassifier } from 'gemma-ts/safety';
import { loadSae } from 'gemma-ts/interpret';

const loaded: LoadedModel = await loadModel('demo', { backend: 'wasm', threads: 1 });
const tokenizer: Tokenizer | undefined = loaded.tokenizer;
const ids: number[] = encodeChat(tokenizer!, [{ role: 'user', content: 'Hi' }]);
for await (const chunk of generate(loaded.model, tokenizer, ids, { maxTokens: 4, temperature: 0 })) {
  const c: GenerationChunk = chunk;
  const id: number = c.id;
  const text: string = c.text;
  console.log(id, text);
}
const options: Partial<ServerOptions> = { modelId: 'x' };
export const used = [createServer, readGGUF, loadTokenizer, ShieldClassifier, loadSae, options];
`);
  // A deliberate type error must be reported (so a passing compile means the types were read).
  fs.writeFileSync(path.join(project, 'wrong.ts'), `import { encodeChat } from 'gemma-ts';\nexport const n: string = encodeChat(undefined as never, []);\n`);
  const tsconfig = (files: string[]) => JSON.stringify({
    compilerOptions: {
      strict: true, module: 'nodenext', moduleResolution: 'nodenext', target: 'es2022', noEmit: true, skipLibCheck: false,
      // @types/node is a dev dependency of the app (not of gemma-ts): take the repository's.
      types: ['node'], typeRoots: [path.join(repoRoot(), 'node_modules', '@types')],
    },
    files,
  });
  const tsc = path.join(repoRoot(), 'node_modules', 'typescript', 'bin', 'tsc');
  fs.writeFileSync(path.join(project, 'tsconfig.json'), tsconfig(['use.ts']));
  fs.writeFileSync(path.join(project, 'tsconfig.wrong.json'), tsconfig(['wrong.ts']));
  await exec(process.execPath, [tsc, '-p', 'tsconfig.json'], { cwd: project, timeout: 180_000 });
  await assert.rejects(exec(process.execPath, [tsc, '-p', 'tsconfig.wrong.json'], { cwd: project, timeout: 180_000 }), (e: { stdout: string }) => {
    assert.match(e.stdout, /wrong\.ts.*TS2322: Type 'number\[\]' is not assignable to type 'string'/);
    return true;
  });
});

test('install: npx gemma run --model demo, gemma --version, and the installed CLI on Node 24', async () => {
  const run = await exec(NPM, ['exec', '--no', '--', 'gemma', 'run', '--model', 'demo', '-n', '6', '-t', '0', '--json', 'Hello'], { cwd: project, timeout: 120_000 });
  const out = JSON.parse(run.stdout) as { ids: number[]; text: string };
  assert.ok(out.ids.length > 0 && out.ids.length <= 6 && typeof out.text === 'string');
  const version = await exec(NPM, ['exec', '--no', '--', 'gemma', '--version'], { cwd: project });
  assert.equal(version.stdout.trim(), pkg.version);
  const node24 = NODE_RUNTIMES[0]!;
  if (!fs.existsSync(node24.bin)) return assert.fail(`${node24.bin} missing (npm ci installs node24)`);
  const bin = path.join(project, 'node_modules', '.bin', 'gemma');
  const r24 = await exec(node24.bin, [bin, 'run', '--model', 'demo', '-n', '6', '-t', '0', '--json', 'Hello'], { cwd: project, timeout: 120_000 });
  assert.deepEqual(JSON.parse(r24.stdout), out, 'Node 24 generates the same greedy ids as this Node');
  assert.equal(r24.stderr, '', 'no V8 flag warnings on Node 24');
});

test('every package the shipped code imports is a production dependency', () => {
  const deps = new Set(Object.keys((JSON.parse(fs.readFileSync(path.join(repoRoot(), 'package.json'), 'utf8')) as { dependencies: Record<string, string> }).dependencies));
  const missing: string[] = [];
  const walk = (dir: string): void => {
    for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
      const p = path.join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.name.endsWith('.js')) {
        // Runtime imports only (type imports are gone from the .js files); gemma-ts:* are the web bundler's virtual modules.
        for (const m of fs.readFileSync(p, 'utf8').matchAll(/(?:\bfrom|\bimport\(?)\s*['"]([^'".][^'"]*)['"]/g)) {
          const spec = m[1]!;
          const name = spec.startsWith('@') ? spec.split('/').slice(0, 2).join('/') : spec.split('/')[0]!;
          if (spec.startsWith('node:') || builtinModules.includes(name) || deps.has(name) || name === 'gemma-ts' || spec.startsWith('gemma-ts:')) continue;
          missing.push(`${path.relative(repoRoot(), p)} imports ${spec}`);
        }
      }
    }
  };
  walk(path.join(repoRoot(), 'dist', 'src'));
  assert.deepEqual(missing, []);
});
