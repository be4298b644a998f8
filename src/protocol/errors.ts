/**
 * SBP/1 error codes (PROTOCOL.md section 7) and the one error type that carries them.
 * Codes 1–31 are fatal (the connection is closed), 32–63 are request-level.
 */
export const ErrorCode = {
  MALFORMED: 1,
  FRAME_TOO_LARGE: 2,
  UNSUPPORTED_VERSION: 3,
  UNAUTHORIZED: 4,
  HANDSHAKE_TIMEOUT: 5,
  PROTOCOL_VIOLATION: 6,
  IDLE_TIMEOUT: 7,
  SESSION_REPLACED: 8,
  SERVER_FULL: 9,
  SHUTTING_DOWN: 10,
  INTERNAL: 11,
  PAYLOAD_TOO_LARGE: 32,
  INVALID_ADDRESS: 33,
  INBOX_FULL: 34,
  RATE_LIMITED: 35,
  NOT_A_MEMBER: 36,
  STORE_UNAVAILABLE: 37,
} as const;

export type ErrorName = keyof typeof ErrorCode;
export type ErrorCodeValue = (typeof ErrorCode)[ErrorName];

const namesByCode = new Map<number, ErrorName>(
  Object.entries(ErrorCode).map(([name, code]) => [code, name as ErrorName]),
);

/** The name of a code, or a range name for a code this version does not know. */
export function errorName(code: number): string {
  return namesByCode.get(code) ?? (isFatalCode(code) ? `FATAL_${code}` : `ERROR_${code}`);
}

/** A client treats a code it does not know by its range (section 7). */
export function isFatalCode(code: number): boolean {
  return code >= 1 && code <= 31;
}

/**
 * A protocol-level failure with its wire code. The decoder throws it; the session turns it into an
 * ERROR frame. `ref` is the clientMsgId/ref the error answers (0 when none).
 */
export class SbpError extends Error {
  readonly code: ErrorCodeValue;
  readonly ref: number;

  constructor(code: ErrorCodeValue, message: string, ref = 0) {
    super(message);
    this.name = 'SbpError';
    this.code = code;
    this.ref = ref;
  }

  get codeName(): ErrorName {
    return namesByCode.get(this.code)!;
  }

  get fatal(): boolean {
    return isFatalCode(this.code);
  }
}
