/**
 * Process figures from /proc (Linux), shared by the benchmarks: the process table (parent, CPU ticks),
 * a process tree's CPU time and resident memory, and the process that listens on a TCP port.
 * Every reader tolerates processes that end while it reads them.
 */
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import os from 'node:os';

export const CLK_TCK = (() => {
  try {
    const n = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim());
    return Number.isInteger(n) && n > 0 ? n : 100;
  } catch {
    return 100;
  }
})();

export interface ProcEntry {
  ppid: number;
  /**
   * utime + stime + cutime + cstime, clock ticks: the process's own CPU time and that of the children
   * it has reaped. A child that ends between two readings (Redis's append-only-file rewrite, a worker
   * restarted) so moves its time into its parent's figure instead of taking it out of the tree's total.
   */
  ticks: number;
}

/** Every process's parent and CPU ticks, from /proc/<pid>/stat. */
export function readProcessTable(): Map<number, ProcEntry> {
  const stats = new Map<number, ProcEntry>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const text = readFileSync(`/proc/${entry}/stat`, 'utf8');
      // Fields after the command name, which is in parentheses and may contain spaces.
      const rest = text.slice(text.lastIndexOf(')') + 2).split(' ');
      // rest[0] is field 3 (state): ppid is field 4, utime 14, stime 15, cutime 16, cstime 17.
      const ticks = Number(rest[11]) + Number(rest[12]) + Number(rest[13]) + Number(rest[14]);
      stats.set(Number(entry), { ppid: Number(rest[1]), ticks });
    } catch {
      // The process ended while we were reading.
    }
  }
  return stats;
}

/** `roots` and all their descendants that exist in `table`, roots first, each once. */
export function processTree(roots: number[], table = readProcessTable()): number[] {
  const children = new Map<number, number[]>();
  for (const [pid, s] of table) {
    const list = children.get(s.ppid);
    if (list) list.push(pid);
    else children.set(s.ppid, [pid]);
  }
  const seen = new Set<number>();
  const out: number[] = [];
  const todo = [...roots];
  while (todo.length > 0) {
    const pid = todo.shift()!;
    if (seen.has(pid) || !table.has(pid)) continue;
    seen.add(pid);
    out.push(pid);
    todo.push(...(children.get(pid) ?? []));
  }
  return out;
}

export interface TreeCpu {
  seconds: number;
  processes: number;
}

/** CPU time (ProcEntry.ticks) of `rootPid` and all its descendants. */
export function treeCpu(rootPid: number): TreeCpu {
  const table = readProcessTable();
  const pids = processTree([rootPid], table);
  let ticks = 0;
  for (const pid of pids) ticks += table.get(pid)!.ticks;
  return { seconds: ticks / CLK_TCK, processes: pids.length };
}

/** CPU time (ProcEntry.ticks) of every process of the trees under `roots` (each process counted once). */
export function treesCpu(roots: number[]): TreeCpu {
  const table = readProcessTable();
  const pids = processTree(roots, table);
  let ticks = 0;
  for (const pid of pids) ticks += table.get(pid)!.ticks;
  return { seconds: ticks / CLK_TCK, processes: pids.length };
}

/**
 * Established TCP connections whose local end is `host:port` (or a wildcard address on that port),
 * from /proc/net/tcp and tcp6: the server side of every connection a server on that port holds
 * (WELCOMEd or not). Null when the tables are unreadable.
 */
export function establishedOnPort(host: string, port: number): number | null {
  const v4 = procHexIpv4(host);
  const portHex = `:${port.toString(16).toUpperCase().padStart(4, '0')}`;
  const accepted = new Set([
    `${v4}${portHex}`,
    `0000000000000000FFFF0000${v4}${portHex}`,
    `00000000000000000000000000000000${portHex}`,
  ]);
  let n = 0;
  let readable = false;
  for (const file of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text: string;
    try {
      text = readFileSync(file, 'latin1');
    } catch {
      continue;
    }
    readable = true;
    // Each line: "  sl: local_address rem_address st ..."; only the local address and state are read.
    let i = text.indexOf('\n') + 1;
    while (i > 0 && i < text.length) {
      const end = text.indexOf('\n', i);
      const line = text.slice(i, end < 0 ? text.length : end);
      i = end < 0 ? -1 : end + 1;
      const f = line.trim().split(/\s+/, 4);
      if (f[3] === '01' && accepted.has(f[1]!.toUpperCase())) n++;
    }
  }
  return readable ? n : null;
}

/** Resident set size of one process, bytes (VmRSS of /proc/<pid>/status); null when it is gone. */
export function rssBytes(pid: number): number | null {
  try {
    const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : null;
  } catch {
    return null;
  }
}

/** The parent pid of `pid`, or null. */
export function parentPid(pid: number): number | null {
  return readProcessTable().get(pid)?.ppid ?? null;
}

/**
 * True when `pid` is a Node.js cluster worker: its environment carries NODE_UNIQUE_ID, which the
 * cluster primary sets for each worker it forks.
 */
export function isClusterWorker(pid: number): boolean {
  try {
    return readFileSync(`/proc/${pid}/environ`, 'latin1')
      .split('\0')
      .some((v) => v.startsWith('NODE_UNIQUE_ID='));
  } catch {
    return false;
  }
}

/** /proc/net/tcp's hex form of an IPv4 address (the kernel prints the 32-bit word in host order). */
function procHexIpv4(ip: string): string {
  const bytes = ip.split('.').map((b) => Number(b).toString(16).padStart(2, '0').toUpperCase());
  return (os.endianness() === 'LE' ? bytes.reverse() : bytes).join('');
}

/**
 * Inodes of the sockets listening on TCP `port` at `host` (an IPv4 address) or at a wildcard address,
 * from /proc/net/tcp and /proc/net/tcp6.
 */
export function listeningSocketInodes(host: string, port: number): Set<string> {
  const v4 = procHexIpv4(host);
  const accepted = new Set([
    v4,
    '00000000', // 0.0.0.0
    '00000000000000000000000000000000', // ::
    `0000000000000000FFFF0000${v4}`, // ::ffff:host
  ]);
  const inodes = new Set<string>();
  for (const file of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n').slice(1)) {
      // sl local_address rem_address st tx_queue:rx_queue tr:tm->when retrnsmt uid timeout inode
      const f = line.trim().split(/\s+/);
      if (f.length < 10 || f[3] !== '0A') continue; // 0A = LISTEN
      const [addr, portHex] = f[1]!.split(':');
      if (Number.parseInt(portHex!, 16) !== port || !accepted.has(addr!.toUpperCase())) continue;
      if (f[9] !== '0') inodes.add(f[9]!);
    }
  }
  return inodes;
}

/** Pids holding an open file descriptor on one of the socket `inodes` (readable /proc/<pid>/fd only). */
export function pidsHoldingSockets(inodes: Set<string>): number[] {
  if (inodes.size === 0) return [];
  const wanted = new Set([...inodes].map((i) => `socket:[${i}]`));
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    let fds: string[];
    try {
      fds = readdirSync(`/proc/${entry}/fd`);
    } catch {
      continue; // Gone, or not ours to read.
    }
    for (const fd of fds) {
      try {
        if (wanted.has(readlinkSync(`/proc/${entry}/fd/${fd}`))) {
          pids.push(Number(entry));
          break;
        }
      } catch {
        // The fd closed while we were reading.
      }
    }
  }
  return pids;
}

/**
 * The root processes of the server listening on `host:port`: each process holding the listening
 * socket, or its parent when it is a cluster worker (the primary then heads the tree). Empty when
 * no readable process holds it.
 */
export function serverRootsForPort(host: string, port: number): number[] {
  const holders = pidsHoldingSockets(listeningSocketInodes(host, port));
  const roots = new Set<number>();
  for (const pid of holders) {
    const ppid = isClusterWorker(pid) ? parentPid(pid) : null;
    roots.add(ppid && ppid > 1 ? ppid : pid);
  }
  // A root that descends from another root is already in that tree.
  const table = readProcessTable();
  return [...roots].filter((pid) => {
    for (let p = table.get(pid)?.ppid; p !== undefined && p > 1; p = table.get(p)?.ppid) {
      if (roots.has(p)) return false;
    }
    return true;
  });
}

/** RSS of every process of the trees under `roots`, bytes, by pid. */
export function treeRss(roots: number[]): Map<number, number> {
  const out = new Map<number, number>();
  for (const pid of processTree(roots)) {
    const rss = rssBytes(pid);
    if (rss !== null) out.set(pid, rss);
  }
  return out;
}

export interface MachineCpu {
  /** Busy time of every CPU together (user, nice, system, irq, softirq, steal), seconds. */
  busySeconds: number;
  /** Busy time of each CPU, seconds, by CPU number. */
  perCpu: Map<number, number>;
}

/** The machine's CPU busy time from /proc/stat (idle and iowait excluded); null when unreadable. */
export function machineCpu(): MachineCpu | null {
  let text: string;
  try {
    text = readFileSync('/proc/stat', 'utf8');
  } catch {
    return null;
  }
  let busySeconds = 0;
  const perCpu = new Map<number, number>();
  for (const line of text.split('\n')) {
    const m = /^cpu(\d*)\s+(.*)$/.exec(line);
    if (!m) continue;
    // user nice system idle iowait irq softirq steal (guest time is already counted in user).
    const f = m[2]!.trim().split(/\s+/).map(Number);
    const busy =
      ((f[0] ?? 0) + (f[1] ?? 0) + (f[2] ?? 0) + (f[5] ?? 0) + (f[6] ?? 0) + (f[7] ?? 0)) / CLK_TCK;
    if (m[1] === '') busySeconds = busy;
    else perCpu.set(Number(m[1]), busy);
  }
  return { busySeconds, perCpu };
}

/** The CPUs `pid` may run on (Cpus_allowed_list of /proc/<pid>/status, e.g. "0-1"); null when gone. */
export function cpusAllowed(pid: number | 'self' = 'self'): string | null {
  try {
    const m = /^Cpus_allowed_list:\s*(\S+)/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? m[1]! : null;
  } catch {
    return null;
  }
}

/** "0-2,5" → [0, 1, 2, 5]. */
export function parseCpuList(list: string): number[] {
  const out: number[] = [];
  for (const part of list.split(',')) {
    const [a, b] = part.split('-').map(Number);
    if (a === undefined || !Number.isInteger(a)) continue;
    for (let c = a; c <= (b ?? a); c++) out.push(c);
  }
  return out;
}

/**
 * The distinct CPU lists the processes of `rootPid`'s tree may run on, joined with " / " (e.g. "0" when
 * the whole tree is pinned to CPU 0); null when the tree is gone.
 */
export function treeCpusAllowed(rootPid: number): string | null {
  const lists = new Set<string>();
  for (const pid of processTree([rootPid])) {
    const list = cpusAllowed(pid);
    if (list !== null) lists.add(list);
  }
  return lists.size === 0 ? null : [...lists].join(' / ');
}

/**
 * The server trees a benchmark measures: `--server-pid` when given (it must exist), else the server
 * found from the port; `warning` says when none was found, so `what` (CPU, memory) is not measured.
 */
export function measuredServerRoots(
  serverPid: number | null,
  host: string,
  port: number,
  what: string,
): { roots: number[]; warning: string | null } {
  if (serverPid !== null) {
    if (!readProcessTable().has(serverPid)) throw new Error(`--server-pid ${serverPid}: no such process`);
    return { roots: [serverPid], warning: null };
  }
  const roots = serverRootsForPort(host, port);
  const warning =
    roots.length === 0
      ? `no readable process listens on ${host}:${port}: server ${what} is not measured (use --server-pid)`
      : null;
  return { roots, warning };
}

/** The total of a tree's RSS readings (from treeRss), bytes. */
export function totalRss(readings: Map<number, number>): number {
  let sum = 0;
  for (const v of readings.values()) sum += v;
  return sum;
}

/**
 * The tree's RSS once it has settled: sampled every 250 ms until the total moved by at most
 * `toleranceBytes` over the last `quietMs` (at most `maxMs` in all). A server that has just started
 * still compiles, grows and then trims its heaps (V8 shrinks an idle heap a few seconds in), so a
 * single reading can be tens of MiB off: measured here, once 18 MiB above the settled figure, which
 * turned 5 000 connections' growth negative.
 */
export async function settledTreeRss(
  roots: number[],
  { quietMs = 2_000, toleranceBytes = 1 << 20, maxMs = 15_000 } = {},
): Promise<Map<number, number>> {
  const samples: { at: number; rss: Map<number, number> }[] = [];
  const start = Date.now();
  for (;;) {
    const now = Date.now();
    samples.push({ at: now, rss: treeRss(roots) });
    while (samples.length > 1 && samples[1]!.at <= now - quietMs) samples.shift();
    const totals = samples.map((s) => totalRss(s.rss));
    const spanned = now - samples[0]!.at >= quietMs;
    if ((spanned && Math.max(...totals) - Math.min(...totals) <= toleranceBytes) || now - start >= maxMs)
      return samples[samples.length - 1]!.rss;
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}
