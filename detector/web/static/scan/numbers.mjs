// Python's number semantics where the scan depends on them: round() rounds half to even (so does
// OpenCV's cvRound), and round(x, n) of a result record.

/**
 * Round half to even: Python's round(x), C's lrint, OpenCV's cvRound.
 * @param {number} x
 * @returns {number}
 */
export function roundHalfEven(x) {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 ? 2 * Math.round(x / 2) : r;
}

/**
 * round(x, digits) for a JSON record (the shortest decimal of x, rounded; ties are as rare as in Python).
 * @param {number} x
 * @param {number} digits
 * @returns {number}
 */
export function roundTo(x, digits) {
  return Number(x.toFixed(digits));
}

/** The mean of a list of numbers (0 items: NaN). */
export function mean(values) {
  let total = 0;
  for (const v of values) total += v;
  return total / values.length;
}
