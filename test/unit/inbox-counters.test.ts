import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { InboxCounterTable } from '../../src/store/inbox-counters.js';

/** A table whose inbox rows are `rows` (user → highest seq of removed rows), counting the reads. */
function table(rows: Record<string, number> = {}) {
  const reads: string[] = [];
  const counters = new InboxCounterTable((user) => {
    reads.push(user);
    return rows[user] ?? 0;
  });
  return { counters, reads };
}

describe('InboxCounterTable', () => {
  it('rebuilds from live rows in any order, raised by the inbox row', () => {
    const { counters, reads } = table();
    counters.addLive('amy', 3, 10);
    counters.addLive('amy', 2, 5);
    counters.addLive('bob', 1, 7);
    counters.raiseLastSeq('amy', 9);
    counters.raiseLastSeq('bob', 0);
    counters.raiseLastSeq('cat', 4); // no live rows: read from its row when needed
    assert.deepEqual(pick(counters.get('amy')), { lastSeq: 9, count: 2, bytes: 15 });
    assert.equal(counters.get('bob').lastSeq, 1);
    assert.deepEqual(reads, []);
  });

  it('reads an inbox not held from its row, once', () => {
    const { counters, reads } = table({ cat: 4 });
    assert.equal(counters.get('cat').lastSeq, 4);
    assert.equal(counters.get('cat').count, 0);
    assert.equal(counters.get('dan').lastSeq, 0);
    counters.get('cat');
    assert.deepEqual(reads, ['cat', 'dan']);
  });

  it('puts back what a rolled-back transaction changed, and keeps what a committed one did', () => {
    const { counters } = table();
    counters.addLive('amy', 1, 10);
    counters.begin();
    const amy = counters.touch('amy');
    amy.lastSeq = 2;
    amy.count++;
    amy.bytes += 4;
    assert.equal(counters.touch('amy'), amy, 'touched twice, saved once');
    amy.lastSeq = 3;
    assert.equal(counters.committedLastSeq('amy'), 1);
    counters.rollback();
    assert.deepEqual(pick(counters.get('amy')), { lastSeq: 1, count: 1, bytes: 10 });

    counters.begin();
    counters.touch('amy').lastSeq = 5;
    counters.commit();
    assert.equal(counters.committedLastSeq('amy'), 5, 'after the commit, the committed value is the new one');
    counters.begin();
    counters.touch('amy').lastSeq = 6;
    counters.rollback();
    assert.deepEqual(pick(counters.get('amy')), { lastSeq: 5, count: 1, bytes: 10 });
  });

  it('drops idle inboxes past its size, keeping those with live messages', () => {
    const { counters, reads } = table();
    counters.addLive('busy', 1, 1);
    for (let i = 0; i < 50_001; i++) counters.get(`idle${i}`);
    reads.length = 0;
    counters.begin();
    counters.commit();
    counters.get('idle0');
    assert.deepEqual(reads, ['idle0'], 'an idle inbox is read again');
    assert.deepEqual(pick(counters.get('busy')), { lastSeq: 1, count: 1, bytes: 1 });
    assert.deepEqual(reads, ['idle0'], 'an inbox with live messages stays held');
  });
});

function pick(c: { lastSeq: number; count: number; bytes: number }) {
  return { lastSeq: c.lastSeq, count: c.count, bytes: c.bytes };
}
