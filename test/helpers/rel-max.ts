/** Largest absolute difference relative to the largest reference magnitude (kernel checks). */
export function relMax(got: Float32Array, want: Float32Array): number {
  let m = 0, s = 0;
  for (let i = 0; i < want.length; i++) {
    m = Math.max(m, Math.abs(got[i]! - want[i]!));
    s = Math.max(s, Math.abs(want[i]!));
  }
  return m / s;
}
