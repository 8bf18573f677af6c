/**
 * A streamed response's handle for cancelling one of its choices, for code that wraps the stream
 * (the guard's stream screening): a blocked choice stops generating at once instead of running to
 * its end unseen. Keyed by a symbol on the raw response so that the HTTP layer needs no new API.
 */
import type { ServerResponse } from 'node:http';

const ABORT_CHOICE = Symbol.for('gemma-ts.abortChoice');

type WithAbort = ServerResponse & { [ABORT_CHOICE]?: (index: number) => void };

/** Register how to cancel choice `index` of the response (the server does this per request). */
export function setChoiceAborter(res: ServerResponse, abort: (index: number) => void): void {
  (res as WithAbort)[ABORT_CHOICE] = abort;
}

/** Cancel choice `index` of the response's generation; no-op when nothing is registered. */
export function abortChoice(res: ServerResponse, index: number): void {
  (res as WithAbort)[ABORT_CHOICE]?.(index);
}
