/**
 * The spec of a vertical federation between real partners (issue 16): who
 * holds the label and which columns, which columns each feature holder
 * declares, the customer-ID column and how IDs are normalised before PSI,
 * the model (`lr`: vertical logistic regression under CKKS; `splitnn`: a split
 * neural network with optional Gaussian embedding noise) and its training
 * settings. Stored in `FederationConfig.vertical` (with `mode: 'vertical'`),
 * checked at creation; each party checks its own file against it on join.
 *
 * The held-out split is a function of the normalised ID (SHA-256 of the
 * federation id and the ID), so every party puts the same customers in the
 * test set without exchanging anything.
 *
 * Pure: no I/O.
 */
import { z } from 'zod';

const PARTY = z.string().regex(/^[A-Za-z0-9._:-]{1,128}$/, 'party names are letters, digits and . _ : - (as enrolled)');
const COLUMN = z.string().min(1).max(200);

/** How a party turns its raw ID cells into the IDs it aligns on (all parties the same). */
export const ID_NORMALISATIONS = ['exact', 'trim', 'trim-lower'] as const;
export type IdNormalisation = (typeof ID_NORMALISATIONS)[number];

/** What PSI may reveal (see `psi` below). */
export const PSI_POLICIES = ['ids', 'size'] as const;
export type PsiPolicy = (typeof PSI_POLICIES)[number];

/** The vertical spec of a federation. */
export const VerticalSpecSchema = z
  .object({
    labelHolder: z.object({ party: PARTY, label: COLUMN, positive: z.string().min(1).optional(), columns: z.array(COLUMN).min(1).max(10_000) }).strict(),
    featureHolders: z.array(z.object({ party: PARTY, columns: z.array(COLUMN).min(1).max(10_000) }).strict()).min(1).max(16),
    idColumn: COLUMN,
    idNormalisation: z.enum(ID_NORMALISATIONS).default('trim'),
    model: z.enum(['lr', 'splitnn']),
    /**
     * What PSI reveals (issue 8's PSI items; `client-node/src/vertical/align.ts`). "ids": every party learns
     * the customers shared with it (both models need this: each party must know which of its rows is
     * aligned row i). "size": an overlap check — rounds run a multi-party PSI cardinality, the label holder
     * learns only how many customers all parties share (and the pairwise counts), no party receives an
     * ID of the intersection, nothing is trained and no model version is committed.
     */
    psi: z.enum(PSI_POLICIES).default('ids'),
    /** Fraction of customers (by a hash of the ID) held out for the reported test metrics. */
    testFraction: z.number().min(0.01).max(0.5).default(0.2),
    epochs: z.number().int().min(1).max(1000),
    batchSize: z.number().int().min(16).max(1_000_000).optional(),
    learningRate: z.number().gt(0).max(10).optional(),
    seed: z.number().int().min(0).max(2 ** 31 - 1).default(42),
    protections: z
      .object({
        /** Vertical LR: residuals encrypted under CKKS (always on; the field documents it). */
        ckks: z.boolean().optional(),
        /** Split NN: std of the Gaussian noise feature holders add to the embeddings they send. */
        embeddingNoise: z.number().min(0).max(100).optional(),
        /**
         * Split NN: differential privacy of each feature holder's customers against the label holder
         * (`shared/src/vertical-embedding-dp.ts`): every released embedding row clipped to L2 norm `clip` and
         * noised, the bottom model trained with DP-SGD (per-row gradients clipped to `gradientClip`), both
         * with Gaussian noise std noiseMultiplier × (2 × clip); charged to the privacy ledger per round.
         */
        embeddingDp: z
          .object({
            noiseMultiplier: z.number().min(0.05).max(1000),
            clip: z.number().gt(0).max(1e6).default(1),
            gradientClip: z.number().gt(0).max(1e6).default(1),
            delta: z.number().gt(0).max(0.1).default(1e-5),
          })
          .strict()
          .optional(),
      })
      .strict()
      .default({}),
    /** A round that has not committed after this many seconds fails. */
    roundTimeoutSeconds: z.number().int().min(10).max(86_400).default(3600),
  })
  .strict()
  .superRefine((s, ctx) => {
    const parties = [s.labelHolder.party, ...s.featureHolders.map((f) => f.party)];
    const dupParty = parties.find((p, i) => parties.indexOf(p) !== i);
    if (dupParty) ctx.addIssue({ code: 'custom', path: ['featureHolders'], message: `party "${dupParty}" is named twice; each party is one partner` });
    const owner = new Map<string, string>();
    const all: [string, readonly string[]][] = [[s.labelHolder.party, s.labelHolder.columns], ...s.featureHolders.map((f) => [f.party, f.columns] as [string, readonly string[]])];
    for (const [party, cols] of all) {
      for (const c of cols) {
        if (c === s.idColumn) ctx.addIssue({ code: 'custom', path: ['idColumn'], message: `"${c}" is the ID column; it cannot also be a feature of ${party}` });
        else if (c === s.labelHolder.label) ctx.addIssue({ code: 'custom', path: ['labelHolder', 'label'], message: `"${c}" is the label; it cannot also be a feature of ${party}` });
        else if (owner.has(c)) ctx.addIssue({ code: 'custom', path: ['featureHolders'], message: `column "${c}" is declared by both ${owner.get(c)} and ${party}; each column belongs to exactly one party` });
        else owner.set(c, party);
      }
    }
    if (s.labelHolder.label === s.idColumn) ctx.addIssue({ code: 'custom', path: ['idColumn'], message: 'the ID column cannot be the label' });
    if (s.model === 'lr' && s.protections.embeddingNoise !== undefined) ctx.addIssue({ code: 'custom', path: ['protections', 'embeddingNoise'], message: 'embedding noise applies to model splitnn; vertical LR is protected by CKKS' });
    if (s.model === 'splitnn' && s.protections.ckks !== undefined) ctx.addIssue({ code: 'custom', path: ['protections', 'ckks'], message: 'CKKS protects vertical LR residuals; split NN exchanges embeddings (use embeddingNoise)' });
    if (s.model === 'lr' && s.protections.embeddingDp !== undefined) ctx.addIssue({ code: 'custom', path: ['protections', 'embeddingDp'], message: 'embedding DP applies to model splitnn; vertical LR is protected by CKKS' });
    if (s.protections.embeddingDp !== undefined && (s.protections.embeddingNoise ?? 0) > 0) ctx.addIssue({ code: 'custom', path: ['protections', 'embeddingNoise'], message: 'give either embeddingNoise (unaccounted) or embeddingDp (noise set by its noiseMultiplier and clip, accounted), not both' });
    if (s.psi === 'size') {
      // Both models need row-level alignment at every party, which size-only PSI withholds by design.
      const training: string[] = (['batchSize', 'learningRate'] as const).filter((k) => s[k] !== undefined);
      if ((s.protections.embeddingNoise ?? 0) > 0) training.push('protections.embeddingNoise');
      if (s.protections.embeddingDp !== undefined) training.push('protections.embeddingDp');
      if (training.length) ctx.addIssue({ code: 'custom', path: ['psi'], message: `psi "size" reveals only how many customers are shared, so no party knows which of its rows to train on: ${s.model} cannot train and rounds are overlap checks; remove the training settings (${training.join(', ')}) or use psi "ids"` });
    }
    if (s.model === 'lr' && s.protections.ckks === false) ctx.addIssue({ code: 'custom', path: ['protections', 'ckks'], message: 'vertical LR always encrypts residuals under CKKS; it cannot be turned off' });
  });
export type VerticalSpec = z.infer<typeof VerticalSpecSchema>;

/** Every party's name, label holder first. */
export function verticalParties(s: VerticalSpec): string[] {
  return [s.labelHolder.party, ...s.featureHolders.map((f) => f.party)];
}

/**
 * Normalise one raw ID cell.
 * @param raw - the cell
 * @param rule - the federation's rule
 */
export function normaliseId(raw: string, rule: IdNormalisation): string {
  if (rule === 'exact') return raw;
  const t = raw.trim();
  return rule === 'trim-lower' ? t.toLowerCase() : t;
}

/**
 * Parse `--parties "NAME:col,col;NAME:col"` into feature holders.
 * @returns [{ party, columns }] in order
 */
export function parsePartiesFlag(spec: string): { party: string; columns: string[] }[] {
  return spec.split(';').map((g) => g.trim()).filter(Boolean).map((g) => {
    const i = g.indexOf(':');
    const party = i < 0 ? '' : g.slice(0, i).trim();
    const columns = i < 0 ? [] : g.slice(i + 1).split(',').map((c) => c.trim()).filter(Boolean);
    return { party, columns };
  });
}
