/** Exponential moving average as TensorBoard draws it: debiased, so the first points are not
 * pulled towards zero, and gaps (null/NaN) pass through without resetting the average.
 * `weight` 0 returns the input unchanged; 0.99 is very smooth. */
export function ema(values: ArrayLike<number | null>, weight: number): (number | null)[] {
  const out: (number | null)[] = new Array(values.length);
  if (!(weight > 0)) {
    for (let i = 0; i < values.length; i++) {
      const v = values[i];
      out[i] = v === null || !Number.isFinite(v) ? null : v;
    }
    return out;
  }
  const w = Math.min(weight, 0.999);
  let last = 0;
  let n = 0;
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (v === null || !Number.isFinite(v)) {
      out[i] = null;
      continue;
    }
    last = last * w + (1 - w) * v;
    n++;
    out[i] = last / (1 - Math.pow(w, n));
  }
  return out;
}
