/**
 * What Redis did during a benchmark window, read from Redis itself and from /proc: the commands each
 * master ran (INFO commandstats: calls per command), the reads it made from client sockets (INFO stats
 * total_reads_processed: one per batch of bytes a client wrote, so close to the client round trips), and
 * the CPU time of each redis-server's main thread — the one that runs every command, so the one whose
 * 100 % of a core is Redis's ceiling.
 */
import { readFileSync } from 'node:fs';
import { CLK_TCK } from './proc.js';
import { admin } from './redis-server.js';

export interface RedisCounters {
  /** Calls per command name (lower case), summed over the servers read. */
  calls: Record<string, number>;
  /** Reads from client sockets, summed over the servers read. */
  reads: number;
}

/** INFO's `name:value` lines → a map. */
function infoFields(info: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of info.split('\n')) {
    const i = line.indexOf(':');
    if (i > 0) out.set(line.slice(0, i), line.slice(i + 1).trim());
  }
  return out;
}

/** The servers among `ports` that are masters now (INFO replication). */
export async function masters(ports: readonly number[]): Promise<number[]> {
  const roles = await Promise.all(
    ports.map(async (port) => {
      const [info] = (await admin(port, [['info', 'replication']])) as [string];
      return infoFields(info).get('role') === 'master' ? port : null;
    }),
  );
  return roles.filter((p): p is number => p !== null);
}

/** The counters of every server of `ports`, summed. */
export async function redisCounters(ports: readonly number[]): Promise<RedisCounters> {
  const calls: Record<string, number> = {};
  let reads = 0;
  for (const port of ports) {
    const [commandstats, stats] = (await admin(port, [
      ['info', 'commandstats'],
      ['info', 'stats'],
    ])) as [string, string];
    for (const [field, value] of infoFields(commandstats)) {
      const m = /^cmdstat_(.+)$/.exec(field);
      const n = /(?:^|,)calls=(\d+)/.exec(value);
      if (m && n) calls[m[1]!] = (calls[m[1]!] ?? 0) + Number(n[1]);
    }
    reads += Number(infoFields(stats).get('total_reads_processed') ?? 0);
  }
  return { calls, reads };
}

/** What happened between two readings; the INFO calls of the readings themselves are left out. */
export function countersDelta(before: RedisCounters, after: RedisCounters): RedisCounters {
  const calls: Record<string, number> = {};
  for (const [name, n] of Object.entries(after.calls)) {
    if (name === 'info') continue;
    const d = n - (before.calls[name] ?? 0);
    if (d > 0) calls[name] = d;
  }
  return { calls, reads: after.reads - before.reads };
}

/** utime + stime of a process's main thread (/proc/<pid>/task/<pid>/stat), s; null when it is gone. */
export function mainThreadSeconds(pid: number): number | null {
  try {
    const text = readFileSync(`/proc/${pid}/task/${pid}/stat`, 'utf8');
    // The fields after the command name, which is in parentheses: utime and stime are fields 14 and 15.
    const rest = text.slice(text.lastIndexOf(')') + 2).split(' ');
    return (Number(rest[11]) + Number(rest[12])) / CLK_TCK;
  } catch {
    return null;
  }
}
