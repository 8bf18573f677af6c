import { GemmaError } from '../errors.js';

/**
 * A task cannot be read or run: its YAML (unknown key, unsupported output_type, missing field),
 * its dataset (missing column, unreachable Hub repo) or a hook it names. The message is one line
 * that names the task and the field.
 */
export class TaskError extends GemmaError {
  readonly task: string | undefined;
  readonly field: string | undefined;
  constructor(task: string | undefined, field: string | undefined, message: string, options?: { cause?: unknown }) {
    const where = [task !== undefined ? `task "${task}"` : '', field ?? ''].filter((s) => s !== '').join(', ');
    super('CONFIG_ERROR', `${where ? `${where}: ` : ''}${message}`.replace(/\s*\n\s*/g, ' '), options);
    this.task = task;
    this.field = field;
  }
}
