/**
 * Hugging Face dataset repos for tasks: the split's Parquet files from the Hub's Parquet
 * conversion (`refs/convert/parquet`), downloaded and verified by the Hub code of `gemma pull`
 * and cached; a later run reads the cache.
 */
import fs from 'node:fs';
import path from 'node:path';
import { pullModel } from '../hub/pull.js';

function parquetFiles(dir: string): string[] {
  const out: string[] = [];
  if (!fs.existsSync(dir)) return out;
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) out.push(...parquetFiles(p));
    else if (e.name.endsWith('.parquet')) out.push(p);
  }
  return out.sort();
}

/** Local paths of `repo`'s Parquet files for config / split (downloaded on first use). */
export async function fetchHubSplit(repo: string, config: string, split: string): Promise<string[]> {
  const dir = await pullModel(repo, { repoType: 'dataset', revision: 'refs/convert/parquet', patterns: [`${config}/${split}/*.parquet`, `${config}/*-${split}.parquet`] });
  const files = parquetFiles(path.join(dir, config)).filter((f) => path.basename(path.dirname(f)) === split || path.basename(f).endsWith(`-${split}.parquet`));
  if (files.length === 0) throw new Error(`the Hub dataset ${repo} has no split "${split}" in config "${config}"`);
  return files;
}
