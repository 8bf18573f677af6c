/** The built-in tasks: copies of lm-evaluation-harness task YAMLs (see builtin-tasks.ts). */
export const BUILTIN_TASK_FILES: Record<string, string> = {};
