/**
 * What the SDK keeps across restarts (PROTOCOL.md section 5): the last clientMsgId it drew, the
 * highest seq it has processed, and the durable SENDs not yet ACCEPTED. The app supplies where it
 * lives through a ClientStorage hook (a file for the CLI, IndexedDB/localStorage for a browser).
 */

export interface PendingSend {
  clientMsgId: number;
  /** Address: a user id or `#group`. */
  to: string;
  /** The payload, base64 (arrays of byte values are accepted on load too). */
  payload: string | number[];
  ephemeral?: false;
}

export interface ClientState {
  lastClientMsgId: number;
  processedSeq: number;
  pending: PendingSend[];
}

export interface ClientStorage {
  /** The saved state, or null/undefined for a fresh device. */
  load(): Promise<ClientState | null | undefined> | ClientState | null | undefined;
  /** Saves the state; the SDK never runs two saves at once and awaits this before writing a SEND. */
  save(state: ClientState): Promise<void> | void;
}

export function emptyState(): ClientState {
  return { lastClientMsgId: 0, processedSeq: 0, pending: [] };
}

/** Keeps the state in memory only (tests, load generators, throwaway clients). */
export class MemoryStorage implements ClientStorage {
  state: ClientState;

  constructor(initial?: ClientState) {
    this.state = initial ? structuredClone(initial) : emptyState();
  }

  load(): ClientState {
    return structuredClone(this.state);
  }

  save(state: ClientState): void {
    this.state = structuredClone(state);
  }
}

/** Checks a loaded state's shape; anything unusable is replaced by defaults. */
export function normalizeState(raw: unknown): ClientState {
  const s = (raw ?? {}) as Partial<ClientState>;
  const n = (v: unknown): number => (Number.isSafeInteger(v) && (v as number) >= 0 ? (v as number) : 0);
  const pending = Array.isArray(s.pending)
    ? s.pending.filter(
        (p): p is PendingSend =>
          !!p &&
          Number.isSafeInteger(p.clientMsgId) &&
          p.clientMsgId > 0 &&
          typeof p.to === 'string' &&
          (typeof p.payload === 'string' || Array.isArray(p.payload)),
      )
    : [];
  pending.sort((a, b) => a.clientMsgId - b.clientMsgId);
  const maxPending = pending.length ? pending[pending.length - 1]!.clientMsgId : 0;
  return {
    lastClientMsgId: Math.max(n(s.lastClientMsgId), maxPending),
    processedSeq: n(s.processedSeq),
    pending,
  };
}

export function toBase64(bytes: Uint8Array): string {
  let s = '';
  for (let i = 0; i < bytes.length; i += 0x8000) {
    s += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000) as unknown as number[]);
  }
  return btoa(s);
}

export function fromBase64(text: string): Uint8Array {
  const bin = atob(text);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

export function payloadBytes(p: string | number[]): Uint8Array {
  return typeof p === 'string' ? fromBase64(p) : Uint8Array.from(p);
}
