/** `switchboard token <user>`: an HS256 JWT for a server started with --auth-secret. */
import type { Command } from 'commander';
import { SignJWT } from 'jose';
import { checkId, durationFlag, EXIT, fail } from '../client-options.js';

export async function makeToken(user: string, secret: string, ttlMs: number): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  return new SignJWT({})
    .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
    .setSubject(user)
    .setIssuedAt(now)
    .setExpirationTime(now + Math.max(1, Math.round(ttlMs / 1000)))
    .sign(new TextEncoder().encode(secret));
}

export function registerToken(program: Command): void {
  program
    .command('token')
    .description('print a signed token (JWT, HS256) for a user')
    .argument('<user>', 'the user id the token is for (its sub)')
    .option('--secret <secret>', 'the server secret (or SWITCHBOARD_AUTH_SECRET)')
    .option('--ttl <duration>', 'how long the token is valid', '30d')
    .action(async (user: string, flags: { secret?: string; ttl: string }) => {
      checkId(user, 'user');
      const secret = flags.secret ?? process.env.SWITCHBOARD_AUTH_SECRET;
      if (!secret) fail('USAGE', 'no secret: pass --secret or set SWITCHBOARD_AUTH_SECRET', EXIT.usage);
      const ttl = durationFlag(flags.ttl, '--ttl');
      if (ttl <= 0) fail('USAGE', '--ttl must be positive', EXIT.usage);
      process.stdout.write(`${await makeToken(user, secret, ttl)}\n`);
    });
}
