import { describe, expect, it } from 'vitest';
import { erfc, erfcx, logAddExp, logErfc, normalCdf, normalSf } from './special-functions.ts';

// Reference values: erfc from Abramowitz & Stegun Table 7.1 / mpmath (30 digits, rounded to float64).
const ERFC: [number, number][] = [
  [0, 1],
  [0.1, 0.8875370839817151],
  [0.5, 0.4795001221869535],
  [1, 0.15729920705028513],
  [2, 0.004677734981047266],
  [3, 2.209049699858544e-5],
  [5, 1.5374597944280349e-12],
  [10, 2.088487583762545e-45],
  [-1, 1.8427007929497148],
];

describe('erfc (Cody CALERF)', () => {
  for (const [x, want] of ERFC) {
    it(`erfc(${x}) to 1e-14 relative`, () => expect(Math.abs(erfc(x) - want)).toBeLessThanOrEqual(1e-14 * want));
  }
  it('logErfc is finite where erfc underflows and follows the asymptotic series', () => {
    const x = 40;
    const asym = -x * x - Math.log(x) - 0.5 * Math.log(Math.PI) + Math.log1p(-1 / (2 * x * x) + 3 / (4 * x ** 4));
    expect(erfc(x)).toBe(0);
    expect(logErfc(x)).toBeCloseTo(asym, 8); // next series term is ~5e-10
    expect(logErfc(1)).toBeCloseTo(Math.log(0.15729920705028513), 14);
  });
  it('erfcx agrees with exp(x²)erfc(x) and rejects negatives', () => {
    expect(erfcx(2)).toBeCloseTo(Math.exp(4) * 0.004677734981047266, 13);
    expect(() => erfcx(-1)).toThrow(RangeError);
  });
  it('normal CDF/SF are complementary and symmetric', () => {
    for (const t of [-3, -0.7, 0, 0.2, 4]) {
      expect(normalCdf(t) + normalSf(t)).toBeCloseTo(1, 15);
      expect(normalCdf(-t)).toBeCloseTo(normalSf(t), 15);
    }
  });
  it('logAddExp handles −∞ and large arguments', () => {
    expect(logAddExp(-Infinity, 3)).toBe(3);
    expect(logAddExp(1000, 1000)).toBeCloseTo(1000 + Math.LN2, 12);
  });
});
