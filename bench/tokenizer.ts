/**
 * Tokenizer benchmark: ours vs the transformers.js tokenizer (@lenml/tokenizers, the same code
 * without onnxruntime) on the Gemma 3 tokenizer.json (33 MB) and ~1 MB of mixed text.
 *   npm run bench:tokenizer            (MB=4 npm run bench:tokenizer for a bigger text)
 */
import fs from 'node:fs';
import path from 'node:path';
import { TokenizerLoader } from '@lenml/tokenizers';
import { loadTokenizerSync } from '../src/tokenizer/load.js';
import { mixedText } from '../test/tokenizer-corpus.js';
import { packageRoot } from '../src/util/package-root.js';

interface RefTokenizer {
  encode(text: string): number[];
}

function loadRef(dir: string): RefTokenizer {
  const tokenizerJSON = JSON.parse(fs.readFileSync(path.join(dir, 'tokenizer.json'), 'utf8')) as Record<string, unknown>;
  const tokenizerConfig = JSON.parse(fs.readFileSync(path.join(dir, 'tokenizer_config.json'), 'utf8')) as Record<string, unknown>;
  return TokenizerLoader.fromPreTrained({ tokenizerJSON, tokenizerConfig } as never) as unknown as RefTokenizer;
}

function time<T>(f: () => T): [T, number] {
  const t = performance.now();
  const v = f();
  return [v, performance.now() - t];
}

const root = packageRoot();
const runs = 3;
for (const pkg of ['tokenizer-gemma3', 'tokenizer-gemini']) {
  const dir = path.join(root, 'node_modules', '@lenml', pkg, 'models');
  // Load: alternate the two so neither gets a warm-cache advantage; best of `runs`.
  let oursLoad = Infinity;
  let refLoad = Infinity;
  let ours = loadTokenizerSync(dir);
  let ref = loadRef(dir);
  for (let i = 0; i < runs; i++) {
    const [o, to] = time(() => loadTokenizerSync(dir));
    ours = o;
    oursLoad = Math.min(oursLoad, to);
    const [r, tr] = time(() => loadRef(dir));
    ref = r;
    refLoad = Math.min(refLoad, tr);
  }
  const mb = Number(process.env.MB ?? '1');
  const text = mixedText(Math.round(mb * 1024 * 1024));
  const bytes = Buffer.byteLength(text);
  // Cold = first encode of this text (transformers.js caches words < 256 chars), warm = best of runs.
  const [idsOurs, oursCold] = time(() => ours.encode(text, { parseSpecial: true }));
  const [idsRef, refCold] = time(() => Array.from(ref.encode(text)));
  let oursWarm = oursCold;
  let refWarm = refCold;
  for (let i = 0; i < runs; i++) {
    oursWarm = Math.min(oursWarm, time(() => ours.encode(text, { parseSpecial: true }))[1]);
    refWarm = Math.min(refWarm, time(() => ref.encode(text))[1]);
  }
  const same = idsOurs.length === idsRef.length && idsOurs.every((v, i) => v === idsRef[i]);
  const mbps = (ms: number): string => (bytes / 1048576 / (ms / 1000)).toFixed(2) + ' MB/s';
  console.log(`\n${pkg} (${path.relative(root, path.join(dir, 'tokenizer.json'))}, ${(fs.statSync(path.join(dir, 'tokenizer.json')).size / 1048576).toFixed(1)} MB)`);
  console.log(`  load        ours ${oursLoad.toFixed(0)} ms   transformers.js ${refLoad.toFixed(0)} ms   ours/theirs time ${(oursLoad / refLoad).toFixed(2)}x (target <= 1x)`);
  console.log(`  encode cold ours ${mbps(oursCold)}   transformers.js ${mbps(refCold)}   throughput ratio ${(refCold / oursCold).toFixed(2)}x (target >= 2x)`);
  console.log(`  encode warm ours ${mbps(oursWarm)}   transformers.js ${mbps(refWarm)}   throughput ratio ${(refWarm / oursWarm).toFixed(2)}x (target >= 2x)`);
  console.log(`  ${(bytes / 1048576).toFixed(2)} MB text, ${idsOurs.length} tokens, identical ids: ${same}`);
  if (!same) process.exitCode = 1;
}
