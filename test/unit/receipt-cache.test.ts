import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ReceiptSourceCache } from '../../src/store/receipt-cache.js';

const source = (seq: number) => ({ seq, from: 'amy', fromDevice: 'phone', clientMsgId: 100 + seq });

describe('ReceiptSourceCache', () => {
  it('holds the last entries added, the oldest making room first', () => {
    const cache = new ReceiptSourceCache(3);
    for (let id = 1; id <= 5; id++) cache.add(id, source(id));
    assert.equal(cache.size, 3);
    assert.equal(cache.get(1), undefined);
    assert.equal(cache.get(2), undefined);
    assert.deepEqual(
      [3, 4, 5].map((id) => cache.get(id)?.seq),
      [3, 4, 5],
    );
  });

  it('forgets a deleted entry; a slot freed early is reused in turn', () => {
    const cache = new ReceiptSourceCache(2);
    cache.add(1, source(1));
    cache.add(2, source(2));
    cache.delete(1);
    assert.equal(cache.get(1), undefined);
    assert.equal(cache.size, 1);
    cache.add(3, source(3)); // takes the slot of 1
    assert.deepEqual([cache.get(2)?.seq, cache.get(3)?.seq], [2, 3]);
    cache.add(4, source(4)); // takes the slot of 2
    assert.equal(cache.get(2), undefined);
    assert.deepEqual([cache.get(3)?.seq, cache.get(4)?.seq], [3, 4]);
  });
});
