import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { CreateEnrollmentBodySchema } from '@fedmart/shared/protocol';
import { partitionDemandRows, partnerNames } from './partition.ts';
import type { DemandRow } from './demand.ts';

describe('partition names are enrollable', () => {
  it('retailer names with , / = \' become valid, unique partner names (the enrollment API refused them before)', () => {
    const names = partnerNames(["RETAILER ALBANY,NY - PRICE CHOPPER", "RETAILER PHOENIX - FRY'S FOOD STORE", 'RETAILER BALTI/WASH - SAFEWAY', 'RETAILER BALTI_WASH - SAFEWAY', '']);
    expect(names).toEqual(['RETAILER ALBANY_NY - PRICE CHOPPER', 'RETAILER PHOENIX - FRY_S FOOD STORE', 'RETAILER BALTI_WASH - SAFEWAY', 'RETAILER BALTI_WASH - SAFEWAY (2)', 'partner']);
    for (const partner of names) expect(CreateEnrollmentBodySchema.safeParse({ partner }).success, partner).toBe(true);
  });

  it('any values: names pass the enrollment schema and stay distinct', () => {
    fc.assert(fc.property(fc.array(fc.string({ maxLength: 80 }), { minLength: 1, maxLength: 30 }), (raw) => {
      const names = partnerNames(raw);
      expect(new Set(names).size).toBe(names.length);
      for (const partner of names) expect(CreateEnrollmentBodySchema.safeParse({ partner }).success).toBe(true);
    }));
  });

  it('one partner per --partition-by value, under the sanitised value', () => {
    const rows: DemandRow[] = ['A,1', 'A,1', 'B/2'].map((level, index) => ({ product: 'all', level, y: 1, x: [0], price: 1, index }));
    const parts = partitionDemandRows(rows, rows.map((r) => r.level), null, 1, 'RETAILER', true);
    expect(parts.map((p) => [p.id, p.rows.length])).toEqual([['RETAILER A_1', 2], ['RETAILER B_2', 1]]);
  });
});
