/**
 * What the store's random-call tests (sqlite-counters, differential) share: caps small and a retention
 * short enough that random calls reach them, a base time, and the acks and device sightings among the
 * calls they draw.
 */
import fc from 'fast-check';

export const RANDOM_CAPS = { maxMessages: 6, maxBytes: 60, retentionMs: 10_000 };
/** Every timestamp is T0 plus an offset drawn from `offset`. */
export const T0 = 1_700_000_000_000;
export const offset = fc.integer({ min: 0, max: 30_000 });
export const deviceIndex = fc.integer({ min: 0, max: 1 });

export type AckOp = { k: 'ack'; user: number; device: number; seq: number };
export type OpenOp = { k: 'open'; user: number; device: number; t: number };

/** An ACK (weight 2) and a device's HELLO (weight 2) of a user drawn from `user`, for fc.oneof. */
export function ackAndOpenOps(
  user: fc.Arbitrary<number>,
  seq: fc.Arbitrary<number>,
): [fc.WeightedArbitrary<AckOp>, fc.WeightedArbitrary<OpenOp>] {
  return [
    { weight: 2, arbitrary: fc.record({ k: fc.constant('ack' as const), user, device: deviceIndex, seq }) },
    {
      weight: 2,
      arbitrary: fc.record({ k: fc.constant('open' as const), user, device: deviceIndex, t: offset }),
    },
  ];
}
