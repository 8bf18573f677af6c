/**
 * ShieldGemma guardrails, independent of any HTTP framework.
 *
 *   const guard = new ShieldGuard({ classifier, mode: 'block', threshold: 0.5, onDecision: log });
 *   const d = await guard.screenPrompt(userText);            // before generation
 *   if (d.action === 'block') -> answer guard.refusal(d) instead of generating
 *   const s = guard.responseScreen(userText);                 // while streaming
 *   for each text delta: const c = await s.push(delta); if (c?.action === 'block') stop
 *   const end = await s.finish();                             // at the end
 *
 * Every screen produces a GuardDecision, passed to onDecision (the decision log) and counted in
 * `counters` (exported as Prometheus text by metricsText()). In block mode the guard fails
 * closed: a classifier error blocks. In flag mode nothing is blocked; flagged decisions carry
 * the scores so the caller can attach them.
 *
 * While streaming, text is held back until it has been screened: push() returns the text that
 * may be sent to the client now (screened in chunks of `chunkChars`).
 */
import { UsageError } from '../errors.js';
import type { ClassifyRequest, ClassifyResult } from './classifier.js';
import { DEFAULT_THRESHOLD } from './classifier.js';
import type { ShieldPolicy } from './templates.js';

export type GuardMode = 'block' | 'flag';
export type GuardStage = 'prompt' | 'response_chunk' | 'response';

export interface GuardClassifier {
  classify(req: ClassifyRequest): ClassifyResult | Promise<ClassifyResult>;
  /** Used instead of classify when present (ShieldClassifier: works on every backend, webgpu included). */
  classifyAsync?(req: ClassifyRequest): Promise<ClassifyResult>;
}

/** classifyAsync when the classifier has it (every backend), else classify. */
export function classifyWith(c: GuardClassifier, req: ClassifyRequest): ClassifyResult | Promise<ClassifyResult> {
  return c.classifyAsync ? c.classifyAsync(req) : c.classify(req);
}

export interface GuardDecision {
  /** The caller's request id (or a generated one). */
  requestId: string;
  stage: GuardStage;
  mode: GuardMode;
  /** block: do not serve this text. allow: serve it (in flag mode even when flagged). */
  action: 'allow' | 'block';
  flagged: boolean;
  categories: Record<string, boolean>;
  category_scores: Record<string, number>;
  threshold: number;
  /** Characters of text screened (the response so far for response stages). */
  chars: number;
  /** The classifier failed: in block mode this blocks (fail closed). */
  error?: string;
  elapsedMs: number;
  /** ISO time of the decision. */
  time: string;
}

export interface ShieldGuardOptions {
  classifier: GuardClassifier;
  /** P(Yes) at or above which a policy counts as violated (default 0.5, ours). */
  threshold?: number;
  /** block (default) or flag. */
  mode?: GuardMode;
  /** Policies to screen against (default the four official ones). */
  policies?: ReadonlyArray<string | ShieldPolicy>;
  /** The decision log: called for every decision. */
  onDecision?: (d: GuardDecision) => void;
  /** Screen a streamed answer every this many new characters (default 400). */
  chunkChars?: number;
  /** Text of the refusal sent instead of blocked content. */
  refusalMessage?: string;
}

export const DEFAULT_REFUSAL = 'I can’t help with that: the request was blocked by the safety policy.';

interface StageCounters {
  allowed: number;
  blocked: number;
  flagged: number;
  errors: number;
}

export interface GuardCounters {
  stages: Record<GuardStage, StageCounters>;
  /** Flagged decisions per policy id. */
  flaggedByCategory: Record<string, number>;
  /** Total classification time. */
  seconds: number;
}

let seq = 0;
function nextId(): string {
  seq = (seq + 1) % Number.MAX_SAFE_INTEGER;
  return `guard-${Date.now().toString(36)}-${seq}`;
}

/** Guardrails around generation: screens prompts and (streamed) answers with a classifier, blocks or flags, fails closed. */
export class ShieldGuard {
  readonly mode: GuardMode;
  readonly threshold: number;
  readonly chunkChars: number;
  readonly refusalMessage: string;
  readonly counters: GuardCounters;
  private readonly classifier: GuardClassifier;
  private readonly policies: ReadonlyArray<string | ShieldPolicy> | undefined;
  private readonly onDecision: ((d: GuardDecision) => void) | undefined;

  constructor(options: ShieldGuardOptions) {
    if (!options || typeof options.classifier?.classify !== 'function') throw new UsageError('ShieldGuard needs a classifier');
    const mode = options.mode ?? 'block';
    if (mode !== 'block' && mode !== 'flag') throw new UsageError(`guard mode must be block or flag, got "${String(mode)}"`);
    const threshold = options.threshold ?? DEFAULT_THRESHOLD;
    if (typeof threshold !== 'number' || !(threshold >= 0 && threshold <= 1)) throw new UsageError(`guard threshold must be in [0, 1], got ${String(threshold)}`);
    const chunk = options.chunkChars ?? 400;
    if (!Number.isInteger(chunk) || chunk < 1) throw new UsageError(`guard chunk size must be a positive integer, got ${String(chunk)}`);
    this.mode = mode;
    this.threshold = threshold;
    this.chunkChars = chunk;
    this.refusalMessage = options.refusalMessage ?? DEFAULT_REFUSAL;
    this.classifier = options.classifier;
    this.policies = options.policies;
    this.onDecision = options.onDecision;
    const zero = (): StageCounters => ({ allowed: 0, blocked: 0, flagged: 0, errors: 0 });
    this.counters = { stages: { prompt: zero(), response_chunk: zero(), response: zero() }, flaggedByCategory: {}, seconds: 0 };
  }

  /** Screen a user prompt (prompt-only use case). */
  screenPrompt(prompt: string, options: { requestId?: string } = {}): Promise<GuardDecision> {
    return this.screen('prompt', { prompt }, options.requestId);
  }

  /** Screen a model answer to a prompt (prompt-response use case). */
  screenResponse(prompt: string, response: string, options: { requestId?: string; final?: boolean } = {}): Promise<GuardDecision> {
    return this.screen(options.final === false ? 'response_chunk' : 'response', { prompt, response }, options.requestId);
  }

  /** Incremental screening of a streamed answer; see ResponseScreen. */
  responseScreen(prompt: string, options: { requestId?: string } = {}): ResponseScreen {
    return new ResponseScreen(this, prompt, options.requestId ?? nextId());
  }

  /** The refusal text for a blocked decision. */
  refusal(_decision?: GuardDecision): string {
    return this.refusalMessage;
  }

  /**
   * Record a decision for text that cannot be screened (e.g. a prompt given as token ids):
   * blocked in block mode (fail closed), allowed in flag mode; logged and counted like any other.
   */
  unscreenable(stage: GuardStage, reason: string, options: { requestId?: string } = {}): GuardDecision {
    const d: GuardDecision = {
      requestId: options.requestId ?? nextId(),
      stage,
      mode: this.mode,
      action: this.mode === 'block' ? 'block' : 'allow',
      flagged: false,
      categories: {},
      category_scores: {},
      threshold: this.threshold,
      chars: 0,
      error: reason,
      elapsedMs: 0,
      time: new Date().toISOString(),
    };
    this.record(d);
    return d;
  }

  private record(d: GuardDecision): void {
    this.count(d);
    try {
      this.onDecision?.(d);
    } catch {
      // A failing logger must not change the decision.
    }
  }

  private async screen(stage: GuardStage, req: { prompt: string; response?: string }, requestId: string | undefined): Promise<GuardDecision> {
    const t0 = performance.now();
    const base = { requestId: requestId ?? nextId(), stage, mode: this.mode, threshold: this.threshold, chars: (req.response ?? req.prompt).length };
    let decision: GuardDecision;
    try {
      if (typeof req.prompt !== 'string' || (req.response !== undefined && typeof req.response !== 'string')) throw new UsageError('guard: text must be a string');
      const request = { ...req, threshold: this.threshold, ...(this.policies ? { policies: this.policies } : {}) };
      const r = await classifyWith(this.classifier, request);
      decision = {
        ...base,
        action: r.flagged && this.mode === 'block' ? 'block' : 'allow',
        flagged: r.flagged,
        categories: r.categories,
        category_scores: r.category_scores,
        elapsedMs: performance.now() - t0,
        time: new Date().toISOString(),
      };
    } catch (e) {
      decision = {
        ...base,
        action: this.mode === 'block' ? 'block' : 'allow',
        flagged: false,
        categories: {},
        category_scores: {},
        error: e instanceof Error ? e.message : String(e),
        elapsedMs: performance.now() - t0,
        time: new Date().toISOString(),
      };
    }
    this.record(decision);
    return decision;
  }

  private count(d: GuardDecision): void {
    const c = this.counters.stages[d.stage];
    if (d.action === 'block') c.blocked++;
    else c.allowed++;
    if (d.flagged) c.flagged++;
    if (d.error !== undefined) c.errors++;
    for (const [k, v] of Object.entries(d.categories)) if (v) this.counters.flaggedByCategory[k] = (this.counters.flaggedByCategory[k] ?? 0) + 1;
    this.counters.seconds += d.elapsedMs / 1000;
  }

  /** Prometheus text (format 0.0.4) of the counters, to append to /metrics. */
  metricsText(prefix = 'gemma_guard'): string {
    const lines: string[] = [];
    const esc = (v: string): string => v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');
    lines.push(`# HELP ${prefix}_decisions_total Guard decisions by stage and action.`, `# TYPE ${prefix}_decisions_total counter`);
    for (const [stage, c] of Object.entries(this.counters.stages)) {
      lines.push(`${prefix}_decisions_total{stage="${stage}",action="allow"} ${c.allowed}`);
      lines.push(`${prefix}_decisions_total{stage="${stage}",action="block"} ${c.blocked}`);
    }
    lines.push(`# HELP ${prefix}_flagged_total Decisions with at least one policy at or above the threshold.`, `# TYPE ${prefix}_flagged_total counter`);
    for (const [stage, c] of Object.entries(this.counters.stages)) lines.push(`${prefix}_flagged_total{stage="${stage}"} ${c.flagged}`);
    lines.push(`# HELP ${prefix}_errors_total Classifier failures (blocked in block mode).`, `# TYPE ${prefix}_errors_total counter`);
    for (const [stage, c] of Object.entries(this.counters.stages)) lines.push(`${prefix}_errors_total{stage="${stage}"} ${c.errors}`);
    lines.push(`# HELP ${prefix}_category_flagged_total Flagged decisions by policy.`, `# TYPE ${prefix}_category_flagged_total counter`);
    for (const [k, v] of Object.entries(this.counters.flaggedByCategory)) lines.push(`${prefix}_category_flagged_total{category="${esc(k)}"} ${v}`);
    lines.push(`# HELP ${prefix}_seconds_total Time spent classifying.`, `# TYPE ${prefix}_seconds_total counter`, `${prefix}_seconds_total ${this.counters.seconds}`);
    lines.push(`# HELP ${prefix}_threshold Decision threshold on P(Yes).`, `# TYPE ${prefix}_threshold gauge`, `${prefix}_threshold ${this.threshold}`);
    return lines.join('\n') + '\n';
  }
}

/**
 * A streamed answer under screening. push(delta) returns the text that is now safe to send
 * (held back until its chunk has been screened) and the chunk decision when one was made;
 * finish() screens the whole answer and releases the rest. After a block nothing more is
 * released.
 */
export class ResponseScreen {
  private text = '';
  private released = 0;
  private lastScreened = 0;
  blocked: GuardDecision | undefined;
  readonly decisions: GuardDecision[] = [];

  constructor(
    private readonly guard: ShieldGuard,
    private readonly prompt: string,
    readonly requestId: string,
  ) {}

  /** The whole answer received so far. */
  get received(): string {
    return this.text;
  }

  async push(delta: string): Promise<{ release: string; decision?: GuardDecision }> {
    if (this.blocked) return { release: '' };
    this.text += delta;
    if (this.text.length - this.lastScreened < this.guard.chunkChars) return { release: '' };
    const end = this.text.length;
    const d = await this.guard.screenResponse(this.prompt, this.text.slice(0, end), { requestId: this.requestId, final: false });
    this.decisions.push(d);
    this.lastScreened = end;
    if (d.action === 'block') {
      this.blocked = d;
      return { release: '', decision: d };
    }
    const release = this.text.slice(this.released, end);
    this.released = end;
    return { release, decision: d };
  }

  async finish(): Promise<{ release: string; decision: GuardDecision }> {
    if (this.blocked) return { release: '', decision: this.blocked };
    const d = await this.guard.screenResponse(this.prompt, this.text, { requestId: this.requestId, final: true });
    this.decisions.push(d);
    if (d.action === 'block') {
      this.blocked = d;
      return { release: '', decision: d };
    }
    const release = this.text.slice(this.released);
    this.released = this.text.length;
    return { release, decision: d };
  }
}

/** A decision-log callback writing one JSON line per decision (e.g. to stderr). */
export function jsonLineDecisionLog(out: { write(s: string): unknown }): (d: GuardDecision) => void {
  return (d) => {
    out.write(JSON.stringify({ event: 'guard_decision', ...d }) + '\n');
  };
}
