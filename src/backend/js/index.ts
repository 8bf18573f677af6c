/**
 * The reference backend: plain TypeScript, written to be read. Every other backend must agree
 * with it (test/backend-conformance). Accumulation happens in JS numbers (f64), so it is at
 * least as accurate as f32 kernels. The element-wise kernels live in ../elementwise.ts, shared
 * with the wasm backend.
 */
import type { Backend, Matrix, WeightMatrix } from '../backend.js';
import * as elementwise from '../elementwise.js';
import { ModelError } from '../../errors.js';
import { DTYPE_LAYOUT } from '../../formats/dtype.js';
import { decodeRow, rowBytes } from './decode.js';

interface JsMatrix extends Matrix {
  readonly data: Uint8Array;
}

function asJs(w: Matrix): JsMatrix {
  if (!(w as JsMatrix).data) throw new ModelError('matrix was prepared by another backend');
  return w as JsMatrix;
}

/** The readable reference backend: plain TypeScript over typed arrays, one thread (slow, exact; the wasm backend is tested against it). */
export function createJsBackend(): Backend {
  return {
    name: 'js',

    prepareMatrix(w: WeightMatrix): Matrix {
      const { blockSize } = DTYPE_LAYOUT[w.dtype];
      if (w.cols % blockSize !== 0) throw new ModelError(`${w.dtype} matrix needs cols divisible by ${blockSize}, got ${w.cols}`);
      const need = w.rows * rowBytes(w.dtype, w.cols);
      if (w.data.byteLength !== need) throw new ModelError(`${w.dtype} matrix [${w.rows}, ${w.cols}] needs ${need} bytes, got ${w.data.byteLength}`);
      // f32 rows are viewed as Float32Array: make sure the bytes are 4-aligned.
      const data = w.dtype === 'f32' && w.data.byteOffset % 4 !== 0 ? w.data.slice() : w.data;
      const m: JsMatrix = { dtype: w.dtype, rows: w.rows, cols: w.cols, data };
      return m;
    },

    matmul(w, x, n, out, rowLimit, softcap) {
      const m = asJs(w);
      const rows = rowLimit ?? m.rows;
      const cols = m.cols;
      const row = new Float32Array(cols);
      // Decode each weight row once and use it for every token.
      for (let r = 0; r < rows; r++) {
        decodeRow(m.dtype, m.data, r, cols, row);
        for (let t = 0; t < n; t++) {
          const xo = t * cols;
          let s = 0;
          for (let c = 0; c < cols; c++) s += row[c]! * x[xo + c]!;
          out[t * rows + r] = s;
        }
      }
      if (softcap && softcap > 0) this.softcap(out, n * rows, softcap);
    },

    getRow(w, r, out) {
      const m = asJs(w);
      if (r < 0 || r >= m.rows) throw new ModelError(`row ${r} outside [0, ${m.rows})`);
      decodeRow(m.dtype, m.data, r, m.cols, out);
    },

    rmsNorm: elementwise.rmsNorm,
    geluMul: elementwise.geluMul,
    rope: elementwise.rope,
    attention: elementwise.attention,
    softcap: elementwise.softcap,

    dispose() {},
  };
}
