#!/usr/bin/env node
// Builds the web bundle: dist/web/index.js, an ES module with no `node:` imports (test/web-bundle
// checks it), from src/platform/web.ts. Node-only modules are swapped for their browser twins:
//   - src/platform/NAME.ts -> src/platform/NAME.browser.ts when that file exists (threads, kernels);
//   - src/version.ts -> the version from package.json;
//   - the globals Buffer and setImmediate -> src/platform/globals.browser.ts;
//   - the kernel .wasm files (from scripts/build-kernels.mjs) are embedded, base64;
//   - a `node:` import left in a module that the browser build reaches only for Node-only
//     functions (loading an SAE from a path, building a token table in a worker thread) becomes a
//     stub that throws a clear error when called. Any other `node:` import fails the build.
import * as esbuild from 'esbuild';
import { existsSync, mkdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const outDir = path.join(root, 'dist', 'web');
const kernelsDir = path.join(root, 'dist', 'src', 'backend', 'wasm');

// Modules allowed to keep a `node:` import (stubbed), and why.
const STUBBED = {
  'src/interpret/sae.ts': 'loadSae(path) reads files; build a JumpReluSae from weights instead',
  'src/generate/constraint/vocab.ts': 'token tables are built on the calling thread in browsers',
  'src/formats/npz.ts': 'npz files are read from paths',
  'src/formats/gguf.ts': 'readGGUF / writeGGUF take paths; browsers parse headers with parseGGUF over fetched bytes',
  'src/formats/safetensors.ts': 'openSafetensors / writeSafetensors take paths; browsers read headers with parseSafetensorsHeader',
};

function kernelsModule() {
  const out = {};
  for (const v of ['simd', 'relaxed']) {
    const file = path.join(kernelsDir, `kernels-${v}.wasm`);
    if (!existsSync(file)) throw new Error(`${file} is missing: run node scripts/build-kernels.mjs first`);
    out[v] = readFileSync(file).toString('base64');
  }
  return `export const KERNEL_WASM_BASE64 = ${JSON.stringify(out)};`;
}

const platformSwap = {
  name: 'gemma-ts-browser',
  setup(build) {
    build.onResolve({ filter: /^gemma-ts:embedded-kernels$/ }, () => ({ path: 'embedded-kernels', namespace: 'gemma-ts' }));
    build.onLoad({ filter: /^embedded-kernels$/, namespace: 'gemma-ts' }, () => ({ contents: kernelsModule(), loader: 'js' }));
    build.onResolve({ filter: /^node:/ }, (args) => {
      const importer = path.relative(root, args.importer);
      if (!(importer in STUBBED)) return { errors: [{ text: `${importer} imports ${args.path}: the web build allows node: imports only in ${Object.keys(STUBBED).join(', ')}` }] };
      // One stub per importer: each exports the names its importer uses.
      return { path: `${args.path}|${importer}`, namespace: 'node-stub' };
    });
    build.onLoad({ filter: /.*/, namespace: 'node-stub' }, (args) => {
      const [builtin, importer] = args.path.split('|');
      const why = STUBBED[importer];
      const fail = `() => { throw new Error(${JSON.stringify(`${builtin} is not available in the browser (${why})`)}); }`;
      // Property reads give the stub again (modules may read a member at load time); calls throw.
      const stub = `new Proxy(${fail}, { get: (_t, k) => (k === 'then' ? undefined : stub), apply: ${fail}, construct: ${fail} })`;
      // The names the importer takes from the module, each bound to the stub.
      const source = readFileSync(path.join(root, importer), 'utf8');
      const names = new Set();
      for (const m of source.matchAll(new RegExp(`import\\s*(?:type\\s*)?\\{([^}]*)\\}\\s*from\\s*'${builtin}'`, 'g'))) {
        for (const part of m[1].split(',')) {
          const name = part.trim().replace(/^type\s+/, '').split(/\s+as\s+/)[0];
          if (name) names.add(name);
        }
      }
      // A namespace import (import * as fs): every member the module reads.
      for (const m of source.matchAll(new RegExp(`import\\s*\\*\\s*as\\s+(\\w+)\\s+from\\s*'${builtin}'`, 'g'))) {
        for (const use of source.matchAll(new RegExp(`\\b${m[1]}\\.(\\w+)`, 'g'))) names.add(use[1]);
      }
      const named = [...names].map((n) => `export const ${n} = stub;`).join('\n');
      return { contents: `const stub = ${stub};\nexport default stub;\n${named}`, loader: 'js' };
    });
    build.onResolve({ filter: /\.js$/ }, (args) => {
      if (!args.importer.startsWith(path.join(root, 'src'))) return undefined;
      const ts = path.resolve(path.dirname(args.importer), args.path.replace(/\.js$/, '.ts'));
      if (ts === path.join(root, 'src', 'version.ts')) return { path: 'version', namespace: 'gemma-ts' };
      const twin = ts.replace(/\.ts$/, '.browser.ts');
      if (ts.startsWith(path.join(root, 'src', 'platform') + path.sep) && existsSync(twin)) return { path: twin };
      return existsSync(ts) ? { path: ts } : undefined;
    });
    build.onLoad({ filter: /^version$/, namespace: 'gemma-ts' }, () => ({
      contents: `export const VERSION = ${JSON.stringify(JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8')).version)};`,
      loader: 'js',
    }));
  },
};

mkdirSync(outDir, { recursive: true });
const result = await esbuild.build({
  entryPoints: { index: path.join(root, 'src', 'platform', 'web.ts') },
  outdir: outDir,
  bundle: true,
  format: 'esm',
  platform: 'browser',
  target: 'es2022',
  sourcemap: true,
  minifySyntax: true,
  legalComments: 'none',
  plugins: [platformSwap],
  // Code that names Node's globals Buffer / setImmediate gets small stand-ins instead.
  inject: [path.join(root, 'src', 'platform', 'globals.browser.ts')],
  logLevel: 'warning',
  metafile: true,
});
const bytes = statSync(path.join(outDir, 'index.js')).size;
console.log(`build-web: wrote dist/web/index.js (${(bytes / 1024).toFixed(0)} KiB, ${Object.keys(result.metafile.inputs).length} inputs)`);
