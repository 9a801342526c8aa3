"""Known-answer vectors for Integrated Gradients on one-hidden-layer ReLU networks.

Closed form (independent of fedmart's Riemann sum): along the straight path
b + a(x - b), hidden unit h has pre-activation z_h(a) = z_h(b) + a (z_h(x) - z_h(b)),
linear in a, so the share of [0, 1] on which it is active is exact:
    frac_h = |{a in [0,1] : z_h(a) > 0}|.
The logit gradient is sum_h W1[j,h] v_h [z_h > 0], hence
    IG_j = (x_j - b_j) * sum_h W1[j,h] v_h frac_h        (Sundararajan et al. 2017, eq. 3)
and completeness sum_j IG_j = f(x) - f(b) holds exactly.
Run: python3 make-ig-vectors.py > integrated-gradients.json   (numpy, fixed seed)
"""
import json
import numpy as np

rng = np.random.default_rng(20170304)

def frac_active(z0, z1):
    # measure of a in [0,1] with z0 + a (z1 - z0) > 0
    if z0 > 0 and z1 > 0: return 1.0
    if z0 <= 0 and z1 <= 0: return 0.0
    t = z0 / (z0 - z1)  # crossing point
    return 1.0 - t if z1 > 0 else t

cases = []
for k, (d, h) in enumerate([(2, 1), (3, 2), (4, 3), (5, 4), (6, 8), (3, 5)]):
    while True:  # draw until at least one hidden unit switches on or off along the path
        w1 = rng.normal(size=(d, h)).round(3)
        b1 = rng.normal(size=h).round(3)
        v = rng.normal(size=h).round(3)
        c = round(float(rng.normal()), 3)
        x = rng.normal(size=d).round(3)
        base = rng.normal(size=d).round(3) * (0 if k == 0 else 1)  # case 0: the all-zero baseline
        z0 = base @ w1 + b1
        z1 = x @ w1 + b1
        frac = np.array([frac_active(z0[i], z1[i]) for i in range(h)])
        if np.any((frac > 0) & (frac < 1)): break
    ig = (x - base) * (w1 @ (v * frac))
    f = lambda z: float(np.maximum(z, 0) @ v + c)
    weights = np.concatenate([w1.ravel(), b1, v, [c]])
    cases.append({
        "name": f"d={d} hidden=[{h}]",
        "spec": {"kind": "mlp", "inputDim": d, "hidden": [h]},
        "weights": weights.tolist(),
        "x": x.tolist(),
        "baseline": base.tolist(),
        "logit": f(z1),
        "baselineLogit": f(z0),
        "attributions": ig.tolist(),
        "activeFraction": frac.tolist(),
        "source": "closed form per hidden unit (see make-ig-vectors.py), numpy float64",
    })

print(json.dumps({
    "primitive": "integrated-gradients",
    "description": "Integrated Gradients of the logit of a one-hidden-layer ReLU MLP, exact; weights in fedmart wire order (W1 row-major in x hidden, b1, W2, b2). Float32 weights: values have 3 decimals so float32 rounding stays below 1e-7 relative.",
    "reference": "M. Sundararajan, A. Taly, Q. Yan, Axiomatic Attribution for Deep Networks, ICML 2017",
    "cases": cases,
}, indent=1))
