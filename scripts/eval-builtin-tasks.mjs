#!/usr/bin/env node
// Copies the task YAMLs of the built-in tasks from an lm-evaluation-harness checkout (MIT license,
// (c) EleutherAI) into src/eval/builtin-tasks.ts. Usage:
//   node scripts/eval-builtin-tasks.mjs /path/to/lm-evaluation-harness(.git)
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';

const repo = process.argv[2] ?? '/work/.mirror/EleutherAI+lm-evaluation-harness/repo';
const git = (...a) => execFileSync('git', ['-C', repo, ...a], { encoding: 'utf8', maxBuffer: 1 << 26 });
const commit = git('rev-parse', 'HEAD').trim();
const dirs = ['mmlu/default', 'hellaswag', 'arc', 'piqa', 'super_glue/boolq', 'winogrande', 'gsm8k', 'truthfulqa', 'lambada', 'wikitext', 'crows_pairs', 'winogender', 'toxigen', 'bbq', 'realtoxicityprompts'];
const skip = /(_chat|-cot|seq2seq|t5-prompt|truthfulqa_gen|lambada_standard)/;
const files = {};
for (const d of dirs) {
  for (const f of git('ls-tree', '-r', '--name-only', 'HEAD', `lm_eval/tasks/${d}`).split('\n')) {
    if (!f || skip.test(f) || !(/\.yaml$/.test(f) || /_yaml$/.test(f))) continue;
    files[f.replace('lm_eval/tasks/', '')] = git('show', `HEAD:${f}`);
  }
}
const out = `/**
 * Built-in tasks: task YAMLs copied from EleutherAI's lm-evaluation-harness (MIT license,
 * Copyright (c) 2020 EleutherAI), commit ${commit}, by scripts/eval-builtin-tasks.mjs.
 * Their Python hooks have TypeScript versions in hooks.ts. Generated: do not edit.
 */
export const BUILTIN_TASK_FILES: Record<string, string> = ${JSON.stringify(files, null, 1)};
`;
fs.writeFileSync(new URL('../src/eval/builtin-tasks.ts', import.meta.url), out);
console.log(`wrote ${Object.keys(files).length} task files from ${commit}`);
