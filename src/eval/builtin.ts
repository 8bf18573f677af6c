/** The built-in tasks: copies of lm-evaluation-harness task YAMLs (see builtin-tasks.ts). */
export { BUILTIN_TASK_FILES } from './builtin-tasks.js';
