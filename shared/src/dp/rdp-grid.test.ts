/**
 * The accountant against an independent reference over the grid of the
 * acceptance criteria: q 0.001–1, σ 0.5–5, steps 1–10,000, δ 1e-5 and 1e-6.
 * The reference (test/vectors/dp/rdp-grid-mpmath.json, made by
 * scripts/dp-reference-grid.py) integrates the definition of A_α with 30-digit
 * mpmath quadrature instead of summing the Mironov et al. series, and converts
 * with Balle et al. 2020 Thm 21 over the same order grid.
 * Tolerance: 1% relative (plus 1e-6 absolute for ε ≈ 0).
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { computeEpsilon } from './rdp.ts';

interface GridCase { q: number; sigma: number; steps: number; delta: number; epsilon: number; order: number }
const grid = JSON.parse(readFileSync(new URL('../../../test/vectors/dp/rdp-grid-mpmath.json', import.meta.url), 'utf8')) as { orders: number[]; cases: GridCase[]; tolerance: { relative: number } };

describe('RDP accountant vs numerically integrated reference', () => {
  it(`agrees within 1% on all ${grid.cases.length} grid points`, () => {
    const off: string[] = [];
    for (const c of grid.cases) {
      const { epsilon } = computeEpsilon({ q: c.q, sigma: c.sigma, steps: c.steps, delta: c.delta, orders: grid.orders });
      if (!Number.isFinite(c.epsilon)) continue;
      const tol = grid.tolerance.relative * Math.abs(c.epsilon) + 1e-6;
      if (Math.abs(epsilon - c.epsilon) > tol) off.push(`q=${c.q} σ=${c.sigma} T=${c.steps} δ=${c.delta}: ours ${epsilon}, reference ${c.epsilon}`);
    }
    expect(off).toEqual([]);
    expect(grid.cases.length).toBeGreaterThanOrEqual(200);
  });

  it('never reports less than the reference by more than float noise (no under-reporting)', () => {
    for (const c of grid.cases) {
      if (!Number.isFinite(c.epsilon)) continue;
      const { epsilon } = computeEpsilon({ q: c.q, sigma: c.sigma, steps: c.steps, delta: c.delta, orders: grid.orders });
      expect(epsilon).toBeGreaterThanOrEqual(c.epsilon * (1 - 1e-6) - 1e-9);
    }
  });
});
