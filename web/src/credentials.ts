/**
 * The signed-in user, device and token, kept in localStorage so that a reload goes straight back in,
 * and this browser's default device name. localStorage may be unavailable (a private window on some
 * browsers): then nothing is remembered, and the app still works.
 */

export interface Credentials {
  user: string;
  device: string;
  /** Empty for a server in open mode. */
  token: string;
}

const SESSION_KEY = 'switchboard.session';
const DEVICE_KEY = 'switchboard.device';

/** The ids of PROTOCOL.md section 2. */
export const ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

export function rememberedCredentials(): Credentials | null {
  try {
    const raw = JSON.parse(localStorage.getItem(SESSION_KEY) ?? 'null') as Partial<Credentials> | null;
    if (!raw || !ID_PATTERN.test(raw.user ?? '') || !ID_PATTERN.test(raw.device ?? '')) return null;
    return { user: raw.user!, device: raw.device!, token: typeof raw.token === 'string' ? raw.token : '' };
  } catch {
    return null;
  }
}

export function remember(credentials: Credentials): void {
  try {
    localStorage.setItem(SESSION_KEY, JSON.stringify(credentials));
    localStorage.setItem(DEVICE_KEY, credentials.device);
  } catch {
    // not remembered: the next visit signs in again
  }
}

export function forget(): void {
  try {
    localStorage.removeItem(SESSION_KEY);
  } catch {
    // nothing was remembered
  }
}

/**
 * The device name this browser used last, else a new `web-` name. Random, because two browsers of one
 * user with the same device name would replace each other's session (PROTOCOL.md section 4).
 */
export function defaultDevice(): string {
  try {
    const kept = localStorage.getItem(DEVICE_KEY);
    if (kept && ID_PATTERN.test(kept)) return kept;
  } catch {
    // fall through to a new name
  }
  const bytes = crypto.getRandomValues(new Uint8Array(4));
  const device = `web-${Array.from(bytes, (b) => b.toString(36).padStart(2, '0'))
    .join('')
    .slice(0, 6)}`;
  try {
    localStorage.setItem(DEVICE_KEY, device);
  } catch {
    // a new name next time
  }
  return device;
}
