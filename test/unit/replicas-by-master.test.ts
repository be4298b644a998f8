/**
 * Which masters of a Redis Cluster have a replica that could take over (durability full waits for one):
 * read from CLUSTER NODES. A replica counts until the cluster flags it failed, and after that for as long
 * as Redis would still promote it (its last pong younger than the window).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { promotableForMs, replicasByMaster } from '../../src/store/redis/replica-ack.js';

const NOW = 1_000_000;
const NODES = [
  'a1 127.0.0.1:7001@17001 myself,master - 0 0 1 connected 0-5460',
  'a2 127.0.0.1:7002@17002,host-b master - 0 1 2 connected 5461-10922',
  'a3 127.0.0.1:7003@17003 master,fail - 0 1 3 disconnected',
  'a4 127.0.0.1:7004@17004 master - 0 1 5 connected 10923-16383',
  `r1 127.0.0.1:7101@17101 slave a1 0 ${NOW - 100} 1 connected`,
  `r1b 127.0.0.1:7102@17102 slave,fail? a1 0 ${NOW - 50_000} 1 connected`,
  `r2 127.0.0.1:7201@17201 slave,fail a2 0 ${NOW - 40_000} 2 disconnected`,
  `r4 127.0.0.1:7401@17401 slave,fail a4 0 ${NOW - 20_000} 5 disconnected`,
  '',
].join('\n');

describe('replicasByMaster', () => {
  it('counts replicas not flagged fail, and failed ones while they could still be promoted', () => {
    assert.deepEqual(
      [...replicasByMaster(NODES, NOW, 30_000)].sort(),
      [
        ['127.0.0.1:7001', 2],
        ['127.0.0.1:7004', 1],
      ],
      'a2’s replica failed 40 s ago (past the 30 s window), a4’s 20 s ago; a3 has none',
    );
    assert.deepEqual(
      [...replicasByMaster(NODES, NOW, Number.POSITIVE_INFINITY)].sort(),
      [
        ['127.0.0.1:7001', 2],
        ['127.0.0.1:7002', 1],
        ['127.0.0.1:7004', 1],
      ],
      'with a validity factor of 0 a failed replica counts for good',
    );
  });

  it('reads nothing from an empty answer', () => {
    assert.equal(replicasByMaster('', NOW, 30_000).size, 0);
  });

  it('takes the window from the cluster settings (Redis promotes a replica whose data is younger)', () => {
    assert.equal(promotableForMs(15_000, 10, 10), 160_000);
    assert.equal(promotableForMs(2_000, 10, 10), 30_000);
    assert.equal(promotableForMs(2_000, 0, 10), Number.POSITIVE_INFINITY);
  });
});
