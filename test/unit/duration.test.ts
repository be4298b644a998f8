import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseBytes, parseDuration } from '../../src/util/duration.js';

describe('command-line durations and sizes', () => {
  it('takes ms or a unit', () => {
    assert.deepEqual(
      ['500', '500ms', '5s', '1.5s', '2m', '1h', '7d'].map(parseDuration),
      [500, 500, 5000, 1500, 120_000, 3_600_000, 604_800_000],
    );
  });

  it('refuses what is not a duration', () => {
    for (const bad of ['', 'soon', '5 minutes', '-1s', '1y'])
      assert.throws(() => parseDuration(bad), /not a duration/);
  });

  it('takes bytes or a binary unit', () => {
    assert.deepEqual(['100', '64KiB', '64k', '1MiB', '1m', '2GiB'].map(parseBytes), [
      100,
      65536,
      65536,
      1048576,
      1048576,
      2 * 1024 ** 3,
    ]);
    assert.throws(() => parseBytes('big'), /not a size/);
  });
});
