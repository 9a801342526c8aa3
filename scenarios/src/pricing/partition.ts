/**
 * Split demand rows into partners so that no fixed-effect level spans two
 * partners (then within-partner demeaning is exactly the pooled within
 * transform, `demand.ts`).
 *
 * - `partitionBy` set: each distinct value of that column is one partner,
 *   or, with `partners`, values are grouped into that many partners
 *   (`partitionByColumn`, row-balanced). A fixed-effect level found in two
 *   partners is refused with the level's name: partition by the
 *   fixed-effect column or a coarser grouping of it (a store group).
 * - only `partners`: whole fixed-effect levels (stores) are dealt to the
 *   partners; without fixed effects, rows are dealt at random (seeded).
 *
 * Pure: no I/O.
 */
import { FedmartError } from '@fedmart/shared/errors';
import { partitionByColumn } from '@fedmart/shared/data/split';
import { createSeededRng, randomInt } from '@fedmart/shared/data/rng';
import type { DemandRow } from './demand.ts';

/** Characters a partner name may hold (the enrollment API's rule: letters, digits, spaces and . @ & ( ) + - _). */
const NAME_UNSAFE = /[^\w .@&()+-]/g;

/**
 * Partner names from partition values: characters the enrollment API refuses (`=`, `,`, `/`, `'`…) become `_`,
 * names are cut to 60 characters, and a name already taken is made unique with a ` (k)` suffix.
 * @param raw - one name per partner
 * @returns enrollable, unique names in the same order
 */
export function partnerNames(raw: readonly string[]): string[] {
  const seen = new Set<string>();
  return raw.map((r) => {
    const base = r.replace(NAME_UNSAFE, '_').trim().slice(0, 60) || 'partner';
    let name = base;
    for (let k = 2; seen.has(name); k++) name = `${base} (${k})`;
    seen.add(name);
    return name;
  });
}

/**
 * @param rows - demand rows
 * @param keys - the partition column's value per row (null: by fixed-effect level, or at random)
 * @param partners - number of partners (null with keys: one per distinct value)
 * @param seed - PRNG seed
 * @param column - names the partition column in errors
 * @returns each partner's name and rows
 * @throws FedmartError CONFIG_ERROR when a fixed-effect level would span partners, or too few values
 */
export function partitionDemandRows(rows: readonly DemandRow[], keys: readonly string[] | null, partners: number | null, seed: number, column = 'partition column', fixedEffects = true): { id: string; rows: DemandRow[] }[] {
  let assign: Int32Array;
  let names: string[];
  if (keys) {
    if (partners === null) {
      const values = [...new Set(keys)].sort();
      if (values.length < 2) throw new FedmartError('CONFIG_ERROR', `pricing: --partition-by ${column} has ${values.length} distinct value; a federation needs at least 2 partners`);
      if (values.length > 200) throw new FedmartError('CONFIG_ERROR', `pricing: --partition-by ${column} has ${values.length} distinct values, more than 200 partners; add --partners N to group them`);
      const idx = new Map(values.map((v, i) => [v, i]));
      assign = Int32Array.from(keys, (k) => idx.get(k)!);
      names = partnerNames(values.map((v) => `${column} ${v}`));
    } else {
      const part = partitionByColumn(keys, partners, seed, { column });
      assign = part.assignment;
      names = part.groups.map((_, i) => `partner-${i + 1}`);
    }
  } else {
    if (partners === null) throw new FedmartError('CONFIG_ERROR', 'pricing: give --partition-by COL or --partners N');
    if (fixedEffects) {
      assign = partitionByColumn(rows.map((r) => r.level), partners, seed, { column: 'the fixed-effect column' }).assignment;
    } else {
      const rng = createSeededRng(seed);
      assign = Int32Array.from(rows, () => randomInt(rng, partners));
    }
    names = Array.from({ length: partners }, (_, i) => `partner-${i + 1}`);
  }
  if (fixedEffects) {
    const owner = new Map<string, number>();
    for (const [i, r] of rows.entries()) {
      const o = owner.get(r.level);
      if (o === undefined) owner.set(r.level, assign[i]!);
      else if (o !== assign[i]) throw new FedmartError('CONFIG_ERROR', `pricing: fixed-effect level "${r.level}" has rows in ${names[o]} and ${names[assign[i]!]}; each level must belong to one partner for exact within-partner demeaning — partition by the fixed-effect column (or a grouping of it), or use --partners N alone`);
    }
  }
  const out = names.map((id) => ({ id, rows: [] as DemandRow[] }));
  for (const [i, r] of rows.entries()) out[assign[i]!]!.rows.push(r);
  const empty = out.find((p) => p.rows.length === 0);
  if (empty) throw new FedmartError('CONFIG_ERROR', `pricing: ${empty.id} got no rows; use fewer partners`);
  return out;
}
