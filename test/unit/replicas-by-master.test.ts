/**
 * Which masters of a Redis Cluster have a replica that could take over (durability full waits for one):
 * read from CLUSTER NODES, counting replicas until the cluster flags them failed.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { replicasByMaster } from '../../src/store/redis/replica-ack.js';

const NODES = [
  'a1 127.0.0.1:7001@17001 myself,master - 0 0 1 connected 0-5460',
  'a2 127.0.0.1:7002@17002,host-b master - 0 1 2 connected 5461-10922',
  'a3 127.0.0.1:7003@17003 master,fail - 0 1 3 disconnected',
  'r1 127.0.0.1:7101@17101 slave a1 0 1 1 connected',
  'r1b 127.0.0.1:7102@17102 slave,fail? a1 0 1 1 connected',
  'r2 127.0.0.1:7201@17201 slave,fail a2 0 1 2 disconnected',
  'r3 127.0.0.1:7301@17301 master - 0 1 4 connected 10923-16383',
  '',
].join('\n');

describe('replicasByMaster', () => {
  it('counts replicas per master address, a replica flagged fail no more (fail? still counts)', () => {
    assert.deepEqual(
      [...replicasByMaster(NODES)].sort(),
      [['127.0.0.1:7001', 2]],
      'a2 has only a failed replica, a3 and r3 none',
    );
  });

  it('reads nothing from an empty answer', () => {
    assert.equal(replicasByMaster('').size, 0);
  });
});
