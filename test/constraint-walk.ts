/** Random walks through a constraint grammar's states, shared by the constraint tests. */
import type { GrammarState, Grammar } from '../src/generate/constraint/index.js';
import type { Rng } from '../src/generate/sampler.js';

/** A random live, unfinished state reached from the start by up to `maxSteps` allowed bytes. */
export function randomState(g: Grammar, rng: Rng, maxSteps: number): GrammarState {
  let s = g.initial()!;
  const steps = Math.floor(rng.next() * maxSteps);
  for (let k = 0; k < steps; k++) {
    const next: GrammarState[] = [];
    for (let b = 0; b < 256; b++) {
      const n = s.step(b);
      if (n && !n.finished) next.push(n);
    }
    if (!next.length) break;
    s = next[Math.floor(rng.next() * next.length)]!;
  }
  return s;
}
