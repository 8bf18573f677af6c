/** --report: a self-contained HTML page whose Vega-Lite charts (SVG) render in headless Chromium; keeps a screenshot. */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { renderReport } from '../src/eval/report.js';
import { summarize } from '../src/eval/sxs.js';
import type { EvalResults } from '../src/eval/evaluate.js';
import type { PerplexityReport } from '../src/eval/perplexity.js';
import { repoRoot } from './helpers/paths.js';

const chromium = '/usr/bin/chromium';

function results(model: string, acc: number): EvalResults {
  return {
    results: { arc_easy: { alias: 'arc_easy', 'acc,none': acc, 'acc_stderr,none': 0.02, 'acc_norm,none': acc - 0.05, 'acc_norm_stderr,none': 0.02 }, hellaswag: { alias: 'hellaswag', 'acc,none': acc - 0.1, 'acc_stderr,none': 0.01 } },
    group_subtasks: {}, configs: {}, versions: {}, 'n-shot': {}, higher_is_better: {}, 'n-samples': {}, config: { model }, date: 0,
  };
}

test('report.html: score, KL and side-by-side charts render in headless Chromium', async (t) => {
  if (!fs.existsSync(chromium)) {
    t.skip('notice: /usr/bin/chromium is missing (Debian package chromium); the report rendering check did not run');
    return;
  }
  const ppl: PerplexityReport = {
    mode: 'chunks', ctx: 64, chunks: 3, tokens: 200, tokens_scored: 93, nll: 6.4, ppl: 600, ppl_stderr: 10, seconds: 1, tokens_per_second: 100,
    kl: { mean: 3e-4, stderr: 1e-5, max: 2e-3, p99_9: 2e-3, p99: 1e-3, p95: 8e-4, p90: 6e-4, median: 2e-4, p10: 5e-5, p5: 3e-5, p1: 1e-5, min: 5e-6, top1_agreement: 0.93, mean_delta_p: 0, rms_delta_p: 0.001, reference_ppl: 598, delta_ppl: 2, ln_ppl_ratio: 0.003, histogram: { edges: [1e-6, 1e-5, 1e-4, 1e-3, 1e-2], counts: [3, 20, 60, 10] } },
  };
  const sxs = summarize([{ id: '1', prompt: '', answerA: '', answerB: '', verdict: 'A' }, { id: '2', prompt: '', answerA: '', answerB: '', verdict: 'tie' }, { id: '3', prompt: '', answerA: '', answerB: '', verdict: 'B' }, { id: '4', prompt: '', answerA: '', answerB: '', verdict: 'A' }], { resamples: 1000 });
  const html = await renderReport({ results: { 'model-a': results('model-a', 0.7), 'model-b': results('model-b', 0.6) }, perplexity: ppl, sxs });
  assert.ok(!/<script/i.test(html), 'no scripts: readable offline');
  assert.ok(!/https?:\/\/(?!vega\.github\.io|www\.w3\.org)/.test(html.replace(/xmlns[^"]*"[^"]*"/g, '')), 'no network references');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'eval-report-'));
  const file = path.join(dir, 'report.html');
  fs.writeFileSync(file, html);
  const { chromium: pw } = await import('playwright-core');
  const browser = await pw.launch({ executablePath: chromium, args: ['--headless', '--no-sandbox', '--disable-gpu'] });
  try {
    const page = await browser.newPage({ viewport: { width: 1100, height: 900 } });
    await page.goto(`file://${file}`);
    const charts = await page.$$eval('figure.chart > svg', (svgs) => svgs.map((s) => ({ w: s.getBoundingClientRect().width, h: s.getBoundingClientRect().height, marks: s.querySelectorAll('path').length, text: s.textContent ?? '' })));
    assert.equal(charts.length, 3);
    for (const c of charts) {
      assert.ok(c.w > 200 && c.h > 50, `chart size ${c.w}x${c.h}`);
      assert.ok(c.marks > 3, `chart marks ${c.marks}`);
    }
    assert.match(charts[0]!.text, /arc_easy/);
    assert.match(charts[1]!.text, /KL/);
    assert.match(charts[2]!.text, /win rate/);
    const shot = path.join(repoRoot(), 'dist', 'test', 'eval-report.png');
    fs.mkdirSync(path.dirname(shot), { recursive: true });
    await page.screenshot({ path: shot, fullPage: true });
    assert.ok(fs.statSync(shot).size > 10000);
    console.log(`screenshot kept at ${shot}`);
  } finally {
    await browser.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
