import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { LiveIndex } from '../../src/store/live-index.js';

/** Shared by every call, as the store's are: what an earlier, longer range left in them must not show. */
const seqs: number[] = [];
const ids: number[] = [];

/** The index's answer for one range, as [seq, id] pairs. */
function rangeOf(index: LiveIndex, user: string, after: number, upTo: number, limit: number) {
  const n = index.range(user, after, upTo, limit, seqs, ids);
  return seqs.slice(0, n).map((seq, i) => [seq, ids[i]!]);
}

describe('LiveIndex', () => {
  it('maps each inbox seq to its row id, in seq order, within a range and a limit', () => {
    const index = new LiveIndex();
    index.add('alice', 1, 10);
    index.add('bob', 1, 11);
    index.add('alice', 2, 12);
    index.add('alice', 3, 14);
    assert.deepEqual(rangeOf(index, 'alice', 0, Infinity, 10), [
      [1, 10],
      [2, 12],
      [3, 14],
    ]);
    assert.deepEqual(rangeOf(index, 'alice', 1, 2, 10), [[2, 12]]);
    assert.deepEqual(rangeOf(index, 'alice', 0, Infinity, 2), [
      [1, 10],
      [2, 12],
    ]);
    assert.deepEqual(rangeOf(index, 'bob', 0, Infinity, 10), [[1, 11]]);
    assert.deepEqual(rangeOf(index, 'carol', 0, Infinity, 10), []);
    assert.equal(index.size, 4);
  });

  it('removes through a seq, one seq (a hole), and forgets an emptied inbox', () => {
    const index = new LiveIndex();
    for (let seq = 1; seq <= 5; seq++) index.add('alice', seq, 100 + seq);
    index.removeThrough('alice', 2);
    index.remove('alice', 4);
    assert.deepEqual(rangeOf(index, 'alice', 0, Infinity, 10), [
      [3, 103],
      [5, 105],
    ]);
    index.remove('alice', 3); // the leading hole goes too
    assert.deepEqual(rangeOf(index, 'alice', 0, Infinity, 10), [[5, 105]]);
    index.removeThrough('alice', 5);
    assert.equal(index.size, 0);
    // An inbox starts again from the next seq it is given, and a gap before it stays empty.
    index.add('alice', 9, 200);
    index.add('alice', 12, 201);
    assert.deepEqual(rangeOf(index, 'alice', 0, Infinity, 10), [
      [9, 200],
      [12, 201],
    ]);
  });

  it('refuses a seq that is not past the inbox’s last', () => {
    const index = new LiveIndex();
    index.add('alice', 3, 1);
    assert.throws(() => index.add('alice', 3, 2), /seq 3/);
  });

  it('answers like a plain map under any mix of adds and removals (compaction included)', () => {
    type Step =
      | { kind: 'add'; user: number; gap: number }
      | { kind: 'through'; user: number; back: number }
      | { kind: 'remove'; user: number; back: number };
    const step: fc.Arbitrary<Step> = fc.oneof(
      {
        weight: 6,
        arbitrary: fc.record({ kind: fc.constant('add' as const), user: fc.nat(2), gap: fc.nat(2) }),
      },
      {
        weight: 1,
        arbitrary: fc.record({ kind: fc.constant('through' as const), user: fc.nat(2), back: fc.nat(40) }),
      },
      {
        weight: 2,
        arbitrary: fc.record({ kind: fc.constant('remove' as const), user: fc.nat(2), back: fc.nat(40) }),
      },
    );
    fc.assert(
      fc.property(
        fc.array(step, { maxLength: 3000, size: 'max' }),
        fc.nat(60),
        fc.nat(60),
        (steps, after, span) => {
          const index = new LiveIndex();
          const model = new Map<string, Map<number, number>>();
          const last = [0, 0, 0];
          let nextId = 1;
          for (const s of steps) {
            const user = `u${s.user}`;
            const inbox = model.get(user) ?? new Map<number, number>();
            model.set(user, inbox);
            if (s.kind === 'add') {
              last[s.user]! += 1 + s.gap;
              index.add(user, last[s.user]!, nextId);
              inbox.set(last[s.user]!, nextId++);
            } else if (s.kind === 'through') {
              const through = last[s.user]! - s.back;
              index.removeThrough(user, through);
              for (const seq of inbox.keys()) if (seq <= through) inbox.delete(seq);
            } else {
              const seq = last[s.user]! - s.back;
              index.remove(user, seq);
              inbox.delete(seq);
            }
          }
          let size = 0;
          for (const [user, inbox] of model) {
            size += inbox.size;
            const expected = [...inbox.entries()].sort((a, b) => a[0] - b[0]);
            assert.deepEqual(rangeOf(index, user, 0, Infinity, Infinity), expected);
            const from = after * 50;
            const to = from + span * 50;
            const window = expected.filter(([seq]) => seq > from && seq <= to).slice(0, 7);
            assert.deepEqual(rangeOf(index, user, from, to, 7), window);
          }
          assert.equal(index.size, size);
        },
      ),
      { numRuns: 100, endOnFailure: true },
    );
  });
});
