import type { WeightMatrix } from './backend.js';
import { DTYPE_LAYOUT, dtypeByteLength, type DType } from '../formats/dtype.js';
import { ModelError } from '../errors.js';

/** Shape, dtype and byte length of a weight matrix, else a ModelError naming the problem. */
export function checkWeight({ dtype, rows, cols, data }: WeightMatrix): void {
  if (!(dtype in DTYPE_LAYOUT)) throw new ModelError(`unknown weight dtype ${String(dtype)}`);
  if (!Number.isInteger(rows) || !Number.isInteger(cols) || rows <= 0 || cols <= 0) throw new ModelError(`bad matrix shape [${rows}, ${cols}]`);
  const { blockSize } = DTYPE_LAYOUT[dtype];
  if (cols % blockSize !== 0) throw new ModelError(`${dtype} matrix needs cols divisible by ${blockSize}, got ${cols}`);
  const need = rows * dtypeByteLength(dtype, cols);
  if (data.byteLength !== need) throw new ModelError(`${dtype} matrix [${rows}, ${cols}] needs ${need} bytes, got ${data.byteLength}`);
}

/** The parts of a stacked matrix: at least one, each valid, all of one dtype and width (returned). */
export function checkStackedParts(parts: readonly WeightMatrix[]): { dtype: DType; cols: number } {
  if (parts.length === 0) throw new ModelError('prepareStacked needs at least one matrix');
  const { dtype, cols } = parts[0]!;
  for (const w of parts) {
    if (w.dtype !== dtype || w.cols !== cols) throw new ModelError(`stacked matrices differ: ${w.dtype} [${w.rows}, ${w.cols}] after ${dtype} [*, ${cols}]`);
    checkWeight(w);
  }
  return { dtype, cols };
}
