import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { AppendBatcher } from '../../src/server/append-batcher.js';
import type { AppendRequest, AppendResult } from '../../src/store/inbox-store.js';

function request(inbox: string, clientMsgId: number): AppendRequest {
  return {
    inbox,
    from: 'amy',
    fromDevice: 'phone',
    clientMsgId,
    to: inbox,
    payload: new Uint8Array(1),
    timestamp: 1,
  };
}

/** A batcher over an append that answers each request with its position, recording every call. */
function recording(answer: (requests: readonly AppendRequest[]) => Promise<AppendResult[]>, gather = true) {
  const calls: number[][] = [];
  const settled: [string, AppendResult][] = [];
  const failed: [string, unknown][] = [];
  const batcher = new AppendBatcher<string>(
    (requests) => {
      calls.push(requests.map((r) => r.clientMsgId));
      return answer(requests);
    },
    (items, results) => {
      for (let i = 0; i < items.length; i++) settled.push([items[i]!, results[i]!]);
    },
    (items, err) => {
      for (const item of items) failed.push([item, err]);
    },
    gather,
  );
  return { batcher, calls, settled, failed };
}

const stored = (requests: readonly AppendRequest[]): Promise<AppendResult[]> =>
  Promise.resolve(requests.map((r, i) => ({ status: 'stored', seq: i + 1, timestamp: r.clientMsgId })));

const turn = () => new Promise((resolve) => setImmediate(resolve));

describe('AppendBatcher', () => {
  it('sends the requests of one turn in one call, in order, and answers each item with its result', async () => {
    const { batcher, calls, settled } = recording(stored);
    batcher.add(request('ben', 1), 'one');
    batcher.add(request('cat', 2), 'two');
    batcher.add(request('ben', 3), 'three');
    assert.deepEqual(calls, [], 'not sent before the turn ends');
    await turn();
    assert.deepEqual(calls, [[1, 2, 3]]);
    assert.deepEqual(
      settled.map(([item, r]) => [item, r.status === 'stored' && r.seq]),
      [
        ['one', 1],
        ['two', 2],
        ['three', 3],
      ],
    );
  });

  it('sends requests of later turns in later calls', async () => {
    const { batcher, calls } = recording(stored);
    batcher.add(request('ben', 1), 'one');
    await turn();
    batcher.add(request('ben', 2), 'two');
    batcher.add(request('ben', 3), 'three');
    await turn();
    assert.deepEqual(calls, [[1], [2, 3]]);
  });

  it('fails every item of a call that fails, or that throws before it is made', async () => {
    const boom = new Error('store away');
    const rejecting = recording(() => Promise.reject(boom));
    rejecting.batcher.add(request('ben', 1), 'one');
    rejecting.batcher.add(request('cat', 2), 'two');
    await turn();
    assert.deepEqual(rejecting.failed, [
      ['one', boom],
      ['two', boom],
    ]);
    assert.deepEqual(rejecting.settled, []);

    let calls = 0;
    const throwing = recording((requests) => {
      if (++calls === 1) throw boom;
      return stored(requests);
    });
    throwing.batcher.add(request('ben', 1), 'one');
    await turn();
    assert.deepEqual(throwing.failed, [['one', boom]]);
    // The next turn's call is made as usual.
    throwing.batcher.add(request('ben', 2), 'two');
    await turn();
    assert.deepEqual(throwing.calls, [[1], [2]]);
    assert.deepEqual(
      throwing.settled.map(([item]) => item),
      ['two'],
    );
  });

  it('not gathering (a store that answers each call on its own): one call per request, made at once', async () => {
    const { batcher, calls, settled } = recording(stored, false);
    batcher.add(request('ben', 1), 'one');
    batcher.add(request('cat', 2), 'two');
    assert.deepEqual(calls, [[1], [2]]);
    await turn();
    assert.deepEqual(
      settled.map(([item]) => item),
      ['one', 'two'],
    );
  });
});
