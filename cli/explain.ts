/**
 * Explanations of a federation's joint model, as `simulate --explain`
 * reports them: global permutation importance computed by each partner on
 * its own validation rows and combined by row count, plus a completeness
 * check of the per-row attributions on each partner's rows.
 *
 * In a simulation every partner runs in this process, but each step below
 * uses only that partner's own rows, and what crosses between partners is
 * exactly what a deployed partner would send: its importance vector, its
 * row counts, its per-column sums (for the baseline) and the largest
 * completeness error it saw. See `shared/src/explain/permutation.ts` for the
 * threat model.
 */
import { featureGroups, assertSchemaFitsModel, denseModel, partnerPermutationImportance, aggregatePermutationImportance, encodedColumnSums, baselineFromColumnSums, explainRow, type AttributionMethod, type BaselineKind } from '@fedmart/shared/explain/index';
import type { DatasetSchema } from '@fedmart/shared/data/index';
import type { ModelSpec } from '@fedmart/shared/model';
import { FedmartError } from '@fedmart/shared/errors';

/** One partner's rows, as the partner holds them (`LocalData` fits). */
export interface ExplainPartner {
  /** Name shown in the per-partner summary (default `partner-<i+1>`). */
  id?: string;
  valX: Float32Array;
  valY: Float32Array;
  valN: number;
  /** Training rows, used only for the baseline's category base rates (default: the validation rows). */
  trainX?: Float32Array;
  trainN?: number;
}

/** Arguments of {@link explainFederatedModel}. */
export interface ExplainFederatedArgs {
  spec: ModelSpec;
  weights: Float32Array;
  /** The schema the rows were encoded with (with its numeric statistics). */
  schema: DatasetSchema;
  partners: readonly ExplainPartner[];
  /** Seed of the permutations; partner i uses seed + i. */
  seed: number;
  /** Permutations per feature and partner. Default 5. */
  repeats?: number;
  /** Validation rows per partner whose attributions are checked for completeness. Default 20. */
  checkRows?: number;
}

/** What `simulate --explain` adds under `"explanations"`. */
export interface FederatedExplanation {
  /** Global importance method. */
  method: 'permutation-importance';
  /** What importance measures. */
  metric: 'log-loss increase';
  repeats: number;
  /** Validation rows behind the importance (sum over partners). */
  validationRows: number;
  /** Original features, most important first; `aucDrop` is absent when no partner had both classes. */
  global: { feature: string; importance: number; aucDrop?: number }[];
  /** Rows each partner used (validation rows). */
  partners: { id: string; rows: number }[];
  /** Per-row attributions: how they are computed and how well they add up. */
  attributions: { method: AttributionMethod; baseline: BaselineKind; rowsChecked: number; maxCompletenessError: number };
  /** The baseline row (encoded), for `writeModelFile` so `fedmart predict` explains against the same reference. */
  baseline: number[];
}

/**
 * Explain a joint model over the partners' own validation rows.
 *
 * Contract: the model must take `featureDim(schema)` inputs and the rows
 * must be encoded with `schema`. Each partner (i) computes permutation
 * importance on its validation rows with seed `seed + i`, (ii) sums its
 * training rows' encoded columns for the baseline, and (iii) explains up to
 * `checkRows` of its validation rows and reports the largest completeness
 * error; only those results are combined. Deterministic given the seed.
 *
 * @param args - model, schema, partners' rows, seed
 * @returns the explanation (see {@link FederatedExplanation})
 * @throws FedmartError `CONFIG_ERROR` if the model and schema disagree on the input width
 * @throws FedmartError `DATA_ERROR` if there are no partners or a partner has no validation rows
 * @example
 * const explanations = explainFederatedModel({ spec, weights: fed.weights, schema: exp.schema, partners: exp.partners.map((p) => ({ id: p.id, ...p.data })), seed });
 */
export function explainFederatedModel(args: ExplainFederatedArgs): FederatedExplanation {
  assertSchemaFitsModel(args.spec.inputDim, args.schema);
  if (args.partners.length === 0) throw new FedmartError('DATA_ERROR', 'explainFederatedModel: no partners; explanations are computed on the partners\' validation rows');
  const model = denseModel(args.spec, args.weights);
  const groups = featureGroups(args.schema);
  const d = args.spec.inputDim;
  const checkRows = args.checkRows ?? 20;

  const baseline = baselineFromColumnSums(groups, args.partners.map((p) => (p.trainX !== undefined && p.trainN !== undefined ? encodedColumnSums(p.trainX, p.trainN, d) : encodedColumnSums(p.valX, p.valN, d))));
  const reports = args.partners.map((p, i) => {
    const importance = partnerPermutationImportance(model, groups, { x: p.valX, y: p.valY, n: p.valN }, { seed: args.seed + i, ...(args.repeats !== undefined ? { repeats: args.repeats } : {}) });
    let maxError = 0;
    const rows = Math.min(checkRows, p.valN);
    for (let r = 0; r < rows; r++) maxError = Math.max(maxError, explainRow(model, groups, baseline, p.valX, r * d).completenessError);
    return { id: p.id ?? `partner-${i + 1}`, importance, rows, maxError };
  });
  const agg = aggregatePermutationImportance(reports.map((r) => r.importance));
  return {
    method: 'permutation-importance',
    metric: 'log-loss increase',
    repeats: agg.repeats,
    validationRows: agg.n,
    global: agg.global.map((f) => ({ feature: f.feature, importance: f.importance, ...(Number.isFinite(f.aucDrop) ? { aucDrop: f.aucDrop } : {}) })),
    partners: reports.map((r) => ({ id: r.id, rows: r.importance.n })),
    attributions: { method: args.spec.hidden.length === 0 ? 'linear-exact' : 'integrated-gradients', baseline: baseline.kind, rowsChecked: reports.reduce((s, r) => s + r.rows, 0), maxCompletenessError: Math.max(...reports.map((r) => r.maxError)) },
    baseline: Array.from(baseline.x),
  };
}

const round5 = (x: number) => Math.round(x * 1e5) / 1e5;

/**
 * The `"explanations"` object of `simulate --json`: {@link FederatedExplanation}
 * without the encoded baseline (it goes into the model file, not the report),
 * importances rounded to 1e-5 and the completeness error to 3 significant digits.
 *
 * @param e - from {@link explainFederatedModel}
 * @returns a JSON-ready object: `{ method, metric, repeats, validationRows, global: [{ feature, importance, aucDrop? }], partners, attributions }`
 * @example
 * const result = { ...result, explanations: explanationsJson(explainFederatedModel({ spec, weights: fed.weights, schema: exp.schema, partners: exp.partners.map((p) => ({ id: p.id, ...p.data })), seed })) };
 */
export function explanationsJson(e: FederatedExplanation): Omit<FederatedExplanation, 'baseline'> {
  const { baseline: _baseline, ...rest } = e;
  return {
    ...rest,
    global: e.global.map((g) => ({ feature: g.feature, importance: round5(g.importance), ...(g.aucDrop !== undefined ? { aucDrop: round5(g.aucDrop) } : {}) })),
    attributions: { ...e.attributions, maxCompletenessError: Number(e.attributions.maxCompletenessError.toPrecision(3)) },
  };
}
