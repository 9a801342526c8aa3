#!/usr/bin/env python3
"""Reference (epsilon, delta) values for the Poisson-subsampled Gaussian
mechanism, computed independently of fedmart's accountant.

fedmart's RDP accountant (shared/src/dp/rdp.ts) evaluates A_alpha with the
series of Mironov, Talwar & Zhang 2019 ("Renyi Differential Privacy of the
Sampled Gaussian Mechanism", Sec. 3.3), as TF Privacy and Opacus do. This
script does not use that series: it integrates the definition

    A_alpha = E_{z ~ N(0, s^2)} [ ((1 - q) + q * exp((2z - 1) / (2 s^2)))^alpha ]

numerically with mpmath (arbitrary precision, tanh-sinh quadrature), takes
RDP(alpha) = log(A_alpha) / (alpha - 1) per step, composes over steps, and
converts to epsilon with Balle et al. 2020, Thm 21 (the conversion Opacus'
get_privacy_spent uses):

    eps = rdp - (log(delta) + log(alpha)) / (alpha - 1) + log((alpha - 1) / alpha)

minimised over the same order grid fedmart uses. Output:
test/vectors/dp/rdp-grid-mpmath.json. Run: python3 scripts/dp-reference-grid.py
(needs python3-mpmath; takes a few minutes).
"""
import json
import math
import os
import sys

import mpmath as mp

mp.mp.dps = 30

ORDERS = [1 + x / 10 for x in range(1, 100)] + list(range(12, 64)) + [128, 256, 512, 1024]
QS = [0.001, 0.01, 0.1, 0.5, 1.0]
SIGMAS = [0.5, 1.0, 2.0, 5.0]
STEPS = [1, 10, 100, 1000, 10000]
DELTAS = [1e-5, 1e-6]


def log_a(q, s, alpha):
    q, s, alpha = mp.mpf(q), mp.mpf(s), mp.mpf(alpha)
    if q == 1:
        return alpha * (alpha - 1) / (2 * s * s)

    def f(z):
        ratio = (1 - q) + q * mp.exp((2 * z - 1) / (2 * s * s))
        return mp.npdf(z, 0, s) * ratio ** alpha

    # Split where the integrand has its mass: around 0 (the base Gaussian) and
    # out to where exp(alpha * z / s^2) * N(z; 0, s^2) peaks (z ~ alpha).
    pts = [-mp.inf, -12 * s, 0, 1, alpha / 2, alpha, alpha + 12 * s, mp.inf]
    pts = sorted(set(pts))
    return mp.log(mp.quad(f, pts))


def main():
    out = []
    for q in QS:
        for s in SIGMAS:
            rdp1 = []
            for a in ORDERS:
                la = log_a(q, s, a)
                rdp1.append(float(la / (mp.mpf(a) - 1)))
            for steps in STEPS:
                for delta in DELTAS:
                    best = (math.inf, None)
                    for a, r in zip(ORDERS, rdp1):
                        r *= steps
                        eps = r - (math.log(delta) + math.log(a)) / (a - 1) + math.log((a - 1) / a)
                        if eps < best[0]:
                            best = (eps, a)
                    out.append({"q": q, "sigma": s, "steps": steps, "delta": delta, "epsilon": max(0.0, best[0]), "order": best[1]})
            print(f"q={q} sigma={s} done", file=sys.stderr)
    here = os.path.dirname(os.path.abspath(__file__))
    path = os.path.join(here, "..", "test", "vectors", "dp", "rdp-grid-mpmath.json")
    with open(path, "w") as fh:
        json.dump({
            "description": "Epsilon of the Poisson-subsampled Gaussian mechanism over a grid, from RDP computed by numerical integration of the definition of A_alpha with mpmath (independent of the Mironov et al. series used by fedmart, TF Privacy and Opacus), converted with Balle et al. 2020 Thm 21 over fedmart's default order grid.",
            "source": "scripts/dp-reference-grid.py (mpmath " + mp.__version__ + ", 30 digits)",
            "tolerance": {"relative": 0.01},
            "orders": ORDERS,
            "cases": out,
        }, fh, indent=1)
    print(f"wrote {len(out)} cases to {path}", file=sys.stderr)


if __name__ == "__main__":
    main()
