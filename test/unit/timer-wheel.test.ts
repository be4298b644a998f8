import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { type TimerEntry, TimerWheel } from '../../src/server/timer-wheel.js';

/** A wheel on a clock the test moves by hand (no sleeping). */
function wheelAt(start: number) {
  let now = start;
  const wheel = new TimerWheel(100, 16, () => now);
  const fired: [string, number][] = [];
  const entry = (name: string): TimerEntry => ({
    timerDeadline: 0,
    timerSlot: -1,
    onTimer: (at) => fired.push([name, at]),
  });
  const advance = (to: number, step = 37) => {
    while (now < to) {
      now = Math.min(to, now + step);
      wheel.tick(now);
    }
  };
  return { wheel, entry, fired, advance, setNow: (t: number) => (now = t) };
}

describe('TimerWheel', () => {
  it('fires a deadline never early and at most one resolution late, whatever the tick timing', () => {
    for (const start of [0, 1, 50, 99, 12_345]) {
      for (const delay of [1, 99, 100, 101, 250, 2_000]) {
        const { wheel, entry, fired, advance } = wheelAt(start);
        wheel.schedule(entry('x'), start + delay);
        advance(start + delay + 300);
        assert.equal(fired.length, 1, `start ${start} delay ${delay}`);
        const at = fired[0]![1];
        assert.ok(at >= start + delay, `early: ${at} < ${start + delay}`);
        assert.ok(at <= start + delay + 100 + 37, `late: ${at}`);
      }
    }
  });

  it('keeps deadlines beyond one lap of the wheel until they are due', () => {
    const { wheel, entry, fired, advance } = wheelAt(0);
    wheel.schedule(entry('far'), 5_000); // the wheel spans 16 × 100 ms
    advance(4_900);
    assert.equal(fired.length, 0);
    advance(5_200);
    assert.equal(fired.length, 1);
  });

  it('cancels, and rescheduling moves an entry', () => {
    const { wheel, entry, fired, advance } = wheelAt(0);
    const a = entry('a');
    const b = entry('b');
    wheel.schedule(a, 500);
    wheel.schedule(b, 500);
    wheel.cancel(a);
    wheel.schedule(b, 1_000);
    advance(800);
    assert.equal(fired.length, 0);
    advance(1_200);
    assert.deepEqual(
      fired.map(([n]) => n),
      ['b'],
    );
  });

  it('reads the clock for now, not the time of the last tick', () => {
    const { wheel, setNow } = wheelAt(1_000);
    setNow(1_750); // a busy loop: no tick for 750 ms
    assert.equal(wheel.now, 1_750);
  });

  it('after a long stall fires everything that came due, once', () => {
    const { wheel, entry, fired, setNow } = wheelAt(0);
    for (let i = 1; i <= 50; i++) wheel.schedule(entry(`e${i}`), i * 97);
    setNow(60_000);
    wheel.tick(60_000);
    assert.equal(fired.length, 50);
  });
});
