import { describe, expect, it } from 'vitest';
import { encodeTable, type DatasetSchema } from '../data/index.ts';
import { assertSchemaFitsModel, featureGroups, featureValue, sumByGroup } from './features.ts';

const schema: DatasetSchema = {
  label: 'y',
  positive: ['yes'],
  features: [
    { name: 'age', type: 'numeric', mean: 40.9, std: 10.6 },
    { name: 'contact', type: 'categorical', categories: ['cellular', 'telephone', 'unknown'] },
    { name: 'balance', type: 'numeric', mean: 1362.27, std: 3044.73 },
    { name: 'poutcome', type: 'categorical', categories: ['failure', 'other', 'success', 'unknown'] },
  ],
};

describe('feature groups', () => {
  it('map encoded columns back to original features, one-hot groups to their categories', () => {
    // Arrange: real encoding of three customers, one with an unlisted contact value and a missing balance
    const enc = encodeTable({ columns: ['age', 'contact', 'balance', 'poutcome', 'y'], rows: [['58', 'telephone', '2143', 'success', 'yes'], ['33', 'unknown', '-17', 'failure', 'no'], ['41', 'fax', '', 'unknown', 'no']] }, schema);
    // Act
    const groups = featureGroups(schema);
    const rows = [0, 1, 2].map((r) => groups.map((g) => featureValue(g, enc.x, r * enc.d)));
    // Assert
    expect(groups.map((g) => [g.feature, g.start, g.width])).toEqual([['age', 0, 1], ['contact', 1, 3], ['balance', 4, 1], ['poutcome', 5, 4]]);
    expect(enc.featureNames.slice(1, 4)).toEqual(['contact=cellular', 'contact=telephone', 'contact=unknown']);
    expect(rows[0]).toEqual([58, 'telephone', 2143, 'success']);
    expect(rows[1]).toEqual([33, 'unknown', -17, 'failure']);
    expect(rows[2]).toEqual([41, null, 1362.27, 'unknown']); // unlisted category → null; missing number → the mean
  });

  it('sum per-column attributions into one number per feature', () => {
    const groups = featureGroups(schema);
    const perColumn = [0.5, 1, 2, 3, -0.25, 10, 20, 30, 40];
    expect(Array.from(sumByGroup(groups, perColumn))).toEqual([0.5, 6, -0.25, 100]);
  });

  it('refuse a model of another input width', () => {
    expect(() => assertSchemaFitsModel(9, schema)).not.toThrow();
    expect(() => assertSchemaFitsModel(8, schema)).toThrow(/takes 8 encoded columns but its data schema encodes to 9/);
  });
});
