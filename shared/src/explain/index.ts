/**
 * Explanations of the joint model, in the original feature names and
 * categories: a float64 forward/backward pass of the model, per-prediction
 * attributions (exact for logistic regression, Integrated Gradients for the
 * MLP) and federated permutation importance. Pure: no I/O.
 */
export * from './mlp.ts';
export * from './features.ts';
export * from './attributions.ts';
export * from './permutation.ts';
