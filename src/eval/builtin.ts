/** The built-in tasks: copies of lm-evaluation-harness task YAMLs (see builtin-tasks.ts) and gemma-ts's own (own-tasks.ts). */
import { BUILTIN_TASK_FILES as HARNESS_TASK_FILES } from './builtin-tasks.js';
import { OWN_TASK_FILES } from './own-tasks.js';

export const BUILTIN_TASK_FILES: Record<string, string> = { ...HARNESS_TASK_FILES, ...OWN_TASK_FILES };
