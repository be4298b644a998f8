import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { utf8Length } from '../../src/protocol/codec.js';

describe('utf8Length', () => {
  it('equals the length TextEncoder produces, lone surrogates included (10 000 cases)', () => {
    const encoder = new TextEncoder();
    const codeUnits = fc.array(fc.integer({ min: 0, max: 0xffff })).map((a) => String.fromCharCode(...a));
    fc.assert(
      fc.property(fc.oneof(fc.string({ unit: 'binary' }), codeUnits), (s) => {
        assert.equal(utf8Length(s), encoder.encode(s).length);
      }),
      { numRuns: 10_000 },
    );
  });

  it('counts ASCII as one byte, é as two, € as three, 😀 as four', () => {
    assert.deepEqual(['a', 'é', '€', '😀', '\ud800'].map(utf8Length), [1, 2, 3, 4, 3]);
  });
});
