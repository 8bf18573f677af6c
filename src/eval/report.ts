/**
 * `--report report.html`: one self-contained HTML page (no scripts, no network) with Vega-Lite
 * charts rendered to SVG when the report is written: per-task scores with stderr error bars (model
 * against model when several results are given), the KL-divergence histogram, side-by-side bars
 * with confidence intervals.
 */
import type { EvalResults } from './evaluate.js';
import type { PerplexityReport } from './perplexity.js';
import type { SxsReport } from './sxs.js';

export interface ReportInput {
  title?: string;
  /** One results object per model (label -> results). */
  results?: Record<string, EvalResults>;
  perplexity?: PerplexityReport;
  sxs?: SxsReport;
}

async function toSvg(spec: Record<string, unknown>): Promise<string> {
  const vl = await import('vega-lite');
  const vega = await import('vega');
  const compiled = vl.compile(spec as never).spec;
  const view = new vega.View(vega.parse(compiled), { renderer: 'none' });
  const svg = await view.toSVG();
  view.finalize();
  return svg;
}

const esc = (s: string): string => s.replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]!);

/** Rows (model, task, metric, value, stderr) of the numeric metrics. */
function scoreRows(results: Record<string, EvalResults>): Array<{ model: string; task: string; metric: string; value: number; lo: number; hi: number }> {
  const rows: Array<{ model: string; task: string; metric: string; value: number; lo: number; hi: number }> = [];
  for (const [model, r] of Object.entries(results)) {
    for (const [task, entry] of Object.entries(r.results)) {
      for (const [key, value] of Object.entries(entry)) {
        if (key === 'alias' || key.includes('_stderr,') || typeof value !== 'number') continue;
        const [metric, filter] = key.split(',') as [string, string];
        const se = entry[`${metric}_stderr,${filter}`];
        const s = typeof se === 'number' ? se : 0;
        rows.push({ model, task, metric: filter === 'none' ? metric : `${metric} (${filter})`, value, lo: value - s, hi: value + s });
      }
    }
  }
  return rows;
}

export async function renderReport(input: ReportInput): Promise<string> {
  const sections: string[] = [];
  if (input.results && Object.keys(input.results).length) {
    const rows = scoreRows(input.results);
    const several = Object.keys(input.results).length > 1;
    const svg = await toSvg({
      $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
      data: { values: rows },
      facet: { row: { field: 'metric', type: 'nominal', title: null } },
      spec: {
        width: 480,
        layer: [
          { mark: 'bar', encoding: { y: { field: 'task', type: 'nominal', title: null }, ...(several ? { yOffset: { field: 'model' }, color: { field: 'model' } } : {}), x: { field: 'value', type: 'quantitative', title: 'score' } } },
          { mark: { type: 'rule', color: 'black' }, encoding: { y: { field: 'task', type: 'nominal' }, ...(several ? { yOffset: { field: 'model' } } : {}), x: { field: 'lo', type: 'quantitative' }, x2: { field: 'hi' } } },
        ],
      },
      resolve: { scale: { x: 'independent', y: 'independent' } },
    });
    const table = rows.map((r) => `<tr><td>${esc(r.model)}</td><td>${esc(r.task)}</td><td>${esc(r.metric)}</td><td>${r.value.toFixed(4)}</td><td>± ${(r.hi - r.value).toFixed(4)}</td></tr>`).join('');
    sections.push(`<section id="scores"><h2>Task scores</h2><figure class="chart">${svg}</figure><table><tr><th>model</th><th>task</th><th>metric</th><th>value</th><th>stderr</th></tr>${table}</table></section>`);
  }
  if (input.perplexity) {
    const p = input.perplexity;
    let svg = '';
    if (p.kl) {
      const { edges, counts } = p.kl.histogram;
      svg = await toSvg({
        $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
        width: 480,
        data: { values: counts.map((c, i) => ({ lo: edges[i], hi: edges[i + 1], count: c })) },
        mark: 'rect',
        encoding: { x: { field: 'lo', type: 'quantitative', scale: { type: 'log' }, title: 'KL(P_ref || P_model), nats' }, x2: { field: 'hi' }, y: { field: 'count', type: 'quantitative', title: 'positions' } },
      });
    }
    const kl = p.kl ? `<p>Mean KL ${p.kl.mean.toExponential(3)} ± ${p.kl.stderr.toExponential(2)}, median ${p.kl.median.toExponential(3)}, 99% ${p.kl.p99.toExponential(3)}, max ${p.kl.max.toExponential(3)}; same top token ${(100 * p.kl.top1_agreement).toFixed(2)}%; reference PPL ${p.kl.reference_ppl.toFixed(4)}, Δ PPL ${p.kl.delta_ppl.toFixed(4)}</p>` : '';
    sections.push(`<section id="perplexity"><h2>Perplexity</h2><p>PPL ${p.ppl.toFixed(4)} ± ${p.ppl_stderr.toFixed(4)} (${p.mode}, ctx ${p.ctx}, ${p.tokens_scored} tokens)</p>${kl}${svg ? `<figure class="chart">${svg}</figure>` : ''}</section>`);
  }
  if (input.sxs) {
    const s = input.sxs;
    const svg = await toSvg({
      $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
      width: 480,
      data: { values: [{ what: 'win rate of A (ties split)', value: s.win_rate, lo: s.ci95[0], hi: s.ci95[1] }, { what: 'wins', value: s.wins / s.n, lo: s.wins / s.n, hi: s.wins / s.n }, { what: 'ties', value: s.ties / s.n, lo: s.ties / s.n, hi: s.ties / s.n }, { what: 'losses', value: s.losses / s.n, lo: s.losses / s.n, hi: s.losses / s.n }] },
      layer: [
        { mark: 'bar', encoding: { y: { field: 'what', type: 'nominal', sort: null, title: null }, x: { field: 'value', type: 'quantitative', scale: { domain: [0, 1] }, title: 'share of prompts' } } },
        { mark: { type: 'rule', color: 'black' }, encoding: { y: { field: 'what', type: 'nominal', sort: null }, x: { field: 'lo', type: 'quantitative' }, x2: { field: 'hi' } } },
      ],
    });
    sections.push(`<section id="sxs"><h2>Side by side</h2><p>${s.n} prompts: A wins ${s.wins}, ties ${s.ties}, loses ${s.losses}; win rate ${(100 * s.win_rate).toFixed(1)}% (95% CI ${(100 * s.ci95[0]).toFixed(1)}–${(100 * s.ci95[1]).toFixed(1)}%)</p><figure class="chart">${svg}</figure></section>`);
  }
  const title = esc(input.title ?? 'gemma-ts evaluation report');
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${title}</title>
<style>body{font:14px system-ui,sans-serif;margin:2em;max-width:1000px}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:2px 8px;text-align:left}figure{margin:1em 0}</style>
</head><body><h1>${title}</h1><p>Written ${new Date().toISOString()} by gemma-ts.</p>
${sections.join('\n')}
</body></html>
`;
}
