/**
 * Special functions the DP accountants need in float64: erfc, its scaled
 * form erfcx, a log-erfc that stays accurate deep in the tail, and the normal
 * CDF/survival function.
 *
 * `Math` has no erf, and the accountants evaluate erfc at arguments where
 * erfc underflows (|x| > 26), so we port W. J. Cody's rational Chebyshev
 * approximations (CALERF, SPECFUN; Cody, "Rational Chebyshev approximations
 * for the error function", Math. Comp. 23 (1969) 631–637), whose relative
 * error is below 1e-16 on all three intervals.
 *
 * Pure: no I/O.
 */

const THRESH = 0.46875;
const SQRPI = 5.6418958354775628695e-1; // 1/sqrt(pi)
const XBIG = 26.543;
const XHUGE = 6.71e7;
const XMAX = 2.53e307;

const A = [3.1611237438705656, 1.13864154151050156e2, 3.77485237685302021e2, 3.20937758913846947e3, 1.85777706184603153e-1];
const B = [2.36012909523441209e1, 2.44024637934444173e2, 1.28261652607737228e3, 2.84423683343917062e3];
const C = [
  5.64188496988670089e-1, 8.88314979438837594, 6.61191906371416295e1, 2.98635138197400131e2, 8.8195222124176909e2,
  1.71204761263407058e3, 2.05107837782607147e3, 1.23033935479799725e3, 2.15311535474403846e-8,
];
const D = [
  1.57449261107098347e1, 1.17693950891312499e2, 5.37181101862009858e2, 1.62138957456669019e3, 3.29079923573345963e3,
  4.36261909014324716e3, 3.43936767414372164e3, 1.23033935480374942e3,
];
const P = [3.05326634961232344e-1, 3.60344899949804439e-1, 1.25781726111229246e-1, 1.60837851487422766e-2, 6.58749161529837803e-4, 1.63153871373020978e-2];
const Q = [2.56852019228982242, 1.87295284992346047, 5.27905102951428412e-1, 6.05183413124413191e-2, 2.33520497626869185e-3];

/** exp(-y²) computed as exp(-ysq²)·exp(-del) with ysq = y rounded to 1/16, as Cody does, to avoid cancellation in y². */
function expNegSquare(y: number): number {
  const ysq = Math.trunc(y * 16) / 16;
  const del = (y - ysq) * (y + ysq);
  return Math.exp(-ysq * ysq) * Math.exp(-del);
}

/**
 * Cody's CALERF for x ≥ 0 only: returns erfc(x) (scaled = false) or
 * exp(x²)·erfc(x) (scaled = true).
 */
function calerfPositive(y: number, scaled: boolean): number {
  if (y <= THRESH) {
    const ysq = y > 1.11e-16 ? y * y : 0;
    let xnum = A[4]! * ysq;
    let xden = ysq;
    for (let i = 0; i < 3; i++) {
      xnum = (xnum + A[i]!) * ysq;
      xden = (xden + B[i]!) * ysq;
    }
    const erf = (y * (xnum + A[3]!)) / (xden + B[3]!);
    const erfc = 1 - erf;
    return scaled ? Math.exp(ysq) * erfc : erfc;
  }
  if (y <= 4) {
    let xnum = C[8]! * y;
    let xden = y;
    for (let i = 0; i < 7; i++) {
      xnum = (xnum + C[i]!) * y;
      xden = (xden + D[i]!) * y;
    }
    const r = (xnum + C[7]!) / (xden + D[7]!);
    return scaled ? r : expNegSquare(y) * r;
  }
  if (y >= XBIG) {
    if (!scaled || y >= XMAX) return 0;
    if (y >= XHUGE) return SQRPI / y;
  }
  const ysq = 1 / (y * y);
  let xnum = P[5]! * ysq;
  let xden = ysq;
  for (let i = 0; i < 4; i++) {
    xnum = (xnum + P[i]!) * ysq;
    xden = (xden + Q[i]!) * ysq;
  }
  let r = (ysq * (xnum + P[4]!)) / (xden + Q[4]!);
  r = (SQRPI - r) / y;
  return scaled ? r : expNegSquare(y) * r;
}

/**
 * Complementary error function erfc(x) = 1 − erf(x), relative error < 1e-15.
 * @param x - any real
 * @returns erfc(x) in [0, 2]
 */
export function erfc(x: number): number {
  if (Number.isNaN(x)) return NaN;
  if (x >= 0) return calerfPositive(x, false);
  return 2 - calerfPositive(-x, false);
}

/**
 * Scaled complementary error function erfcx(x) = exp(x²)·erfc(x) for x ≥ 0,
 * which stays representable where erfc(x) underflows.
 * @param x - a non-negative real
 * @returns exp(x²)·erfc(x)
 * @throws RangeError when x is negative or NaN (the scaled form overflows there)
 */
export function erfcx(x: number): number {
  if (!(x >= 0)) throw new RangeError(`erfcx: expected x >= 0, got ${x}`);
  return calerfPositive(x, true);
}

/**
 * log(erfc(x)), accurate for large positive x where erfc underflows
 * (the job `math.log(2) + scipy.special.log_ndtr(-x·√2)` does in TF Privacy).
 * @param x - any real
 * @returns log erfc(x) (−∞ only for x = +∞)
 */
export function logErfc(x: number): number {
  if (Number.isNaN(x)) return NaN;
  if (x === Infinity) return -Infinity;
  if (x <= 0.5) return Math.log(erfc(x));
  return Math.log(calerfPositive(x, true)) - x * x;
}

/**
 * Standard normal survival function Φc(t) = P(Z > t), accurate in the upper tail.
 * @param t - any real
 * @returns P(Z > t)
 */
export function normalSf(t: number): number {
  return 0.5 * erfc(t * Math.SQRT1_2);
}

/**
 * Standard normal CDF Φ(t) = P(Z ≤ t), accurate in the lower tail.
 * @param t - any real
 * @returns P(Z ≤ t)
 */
export function normalCdf(t: number): number {
  return 0.5 * erfc(-t * Math.SQRT1_2);
}

/**
 * log(exp(a) + exp(b)) without overflow; −∞ is the log of zero.
 * @param a - log of the first addend
 * @param b - log of the second addend
 * @returns log of the sum
 */
export function logAddExp(a: number, b: number): number {
  const hi = a > b ? a : b;
  const lo = a > b ? b : a;
  if (lo === -Infinity) return hi;
  if (hi === Infinity) return Infinity;
  return hi + Math.log1p(Math.exp(lo - hi));
}
