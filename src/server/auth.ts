/** HELLO authentication: HS256 JWTs whose `sub` is the user (PROTOCOL.md section 4.2). */
import { jwtVerify, SignJWT } from 'jose';

export interface Authenticator {
  /** Resolves true when `token` lets `user` in. Open mode (no secret) lets everyone in. */
  verify(user: string, token: string): Promise<boolean>;
  readonly open: boolean;
}

export function makeAuthenticator(secret: string | undefined): Authenticator {
  if (!secret) return { open: true, verify: async () => true };
  const key = new TextEncoder().encode(secret);
  return {
    open: false,
    async verify(user, token) {
      if (!token) return false;
      try {
        const { payload } = await jwtVerify(token, key, { algorithms: ['HS256'] });
        return payload.sub === user && typeof payload.exp === 'number';
      } catch {
        return false;
      }
    },
  };
}

/** A token for `user` valid for `ttlMs` (what `switchboard token` prints). */
export async function signToken(secret: string, user: string, ttlMs: number): Promise<string> {
  return new SignJWT({})
    .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
    .setSubject(user)
    .setIssuedAt()
    .setExpirationTime(Math.floor((Date.now() + ttlMs) / 1000))
    .sign(new TextEncoder().encode(secret));
}

/** Open mode is only allowed on loopback: anyone who can reach the port could claim any user. */
export function isLoopbackHost(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\.\d+\.\d+\.\d+$/.test(host);
}
