/**
 * Scores a trained demo checkpoint on the held-out sets through the `gemma` CLI (scripts/demo/score.ts)
 * and writes the scores into its training.json and README.md. Called at the end of
 * scripts/demo/train.ts; on its own (to rescore a model):
 *
 *   npx tsx scripts/demo/evaluate.ts [--model DIR] [--heldout DIR]
 */
import fs from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { pathToFileURL } from 'node:url';
import { writeReadme, type TrainingSummary } from './readme.js';
import { HELDOUT, percent, readJsonl, ROOT, scoreAboutSet, scoreArithmetic, scoreJson, shieldEval } from './score.js';

/** What train.ts records about a run (training.json before scoring). */
export type TrainingRecord = Omit<TrainingSummary, 'scores' | 'shield' | 'samples' | 'eval_seconds'>;

export function evaluateModel(dir: string, heldout: string, log: (s: string) => void): TrainingSummary {
  const t0 = performance.now();
  const record = JSON.parse(fs.readFileSync(path.join(dir, 'training.json'), 'utf8')) as TrainingRecord;
  const scores = [
    scoreArithmetic(dir, readJsonl(path.join(heldout, 'arithmetic.jsonl'))),
    scoreJson(dir, readJsonl(path.join(heldout, 'json.jsonl'))),
    scoreAboutSet(dir, readJsonl(path.join(heldout, 'about.jsonl'))),
  ];
  for (const s of scores) log(`held-out ${s.skill}: ${s.correct}/${s.total} = ${percent(s).toFixed(1)}%${s.extra ? ' ' + JSON.stringify(s.extra) : ''}`);
  const perPolicy = shieldEval(dir, path.join(heldout, 'shield.jsonl'));
  const anyPolicy = shieldEval(dir, path.join(heldout, 'shield-any.jsonl'));
  log(`held-out shield (gemma shield eval): AU-PRC ${perPolicy.overall.auprc.toFixed(3)} per policy (${perPolicy.examples} lines), ${anyPolicy.overall.auprc.toFixed(3)} against all four (${anyPolicy.examples} prompts)`);
  const summary: TrainingSummary = {
    ...record,
    eval_seconds: Math.round((performance.now() - t0) / 1000),
    scores: scores.map((s) => ({ skill: s.skill, correct: s.correct, total: s.total, percent: Math.round(percent(s) * 10) / 10, ...s.extra })),
    shield: { per_policy: perPolicy.overall, any_policy: anyPolicy.overall },
    samples: scores.map((s) => ({ skill: s.skill, examples: s.examples.slice(0, 4) })),
  };
  fs.writeFileSync(path.join(dir, 'training.json'), JSON.stringify(summary, null, 2) + '\n');
  writeReadme(dir, summary);
  return summary;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const { values } = parseArgs({ options: { model: { type: 'string', default: path.join(ROOT, 'models', 'demo') }, heldout: { type: 'string', default: HELDOUT } } });
  evaluateModel(path.resolve(values.model!), path.resolve(values.heldout!), (s) => console.log(s));
}
