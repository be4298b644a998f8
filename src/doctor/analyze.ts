/**
 * `switchboard doctor`, the pure part: from the machine's readings (open-file limits, sysctls, memory,
 * cores) to the number of connections it can hold, what caps that number, and for each limit whether
 * it is fine and the exact commands that raise it. No I/O here: readings come in, a report comes out.
 *
 * The model (ARCHITECTURE.md, "OS tuning"): each worker process holds at most its open-file limit
 * minus the descriptors it keeps for itself; the system holds at most fs.file-max descriptors; memory
 * holds at most available ÷ bytes per connection. The smallest of these is the capacity. A limit is
 * "fine" when it does not cap the machine below the goal, which by default is what memory allows.
 */

export type Status = 'ok' | 'low' | 'info';

/** What was read from the machine; null = could not be read (not Linux, not permitted). */
export interface Readings {
  /** Open-file limit of the process (RLIMIT_NOFILE); null = unlimited or unknown. */
  nofileSoft: number | null;
  nofileHard: number | null;
  /** fs.file-max: open files of the whole system. */
  fileMax: number | null;
  /** fs.nr_open: the highest open-file limit a process may be given. */
  nrOpen: number | null;
  somaxconn: number | null;
  tcpMaxSynBacklog: number | null;
  /** net.ipv4.ip_local_port_range. */
  portRange: [number, number] | null;
  tcpFinTimeout: number | null;
  tcpTwReuse: number | null;
  netdevMaxBacklog: number | null;
  memTotalBytes: number;
  /** Memory available for new allocations (MemAvailable), bytes. */
  memAvailableBytes: number;
  cores: number;
  isRoot: boolean;
}

export interface DoctorOptions {
  /** Worker processes the server will run (default: one per core). */
  workers: number;
  /** Server memory per held connection, bytes (default 6 KiB). */
  bytesPerConnection: number;
  /** Connections to plan for; null = what memory allows. */
  connections: number | null;
  /** The server's listen backlog (src/server/limits.ts): somaxconn caps it. */
  listenBacklog: number;
  /** Descriptors each worker keeps for its store, logs and listeners. */
  reservedFds: number;
}

export const DEFAULT_BYTES_PER_CONNECTION = 6 * 1024;
export const SYSCTL_CONF = '/etc/sysctl.d/99-switchboard.conf';
/** Descriptors left for everything else on the machine when sizing fs.file-max. */
const SYSTEM_FD_HEADROOM = 65_536;
/** Ports per source address below which a load generator needs many more addresses. */
const MIN_EPHEMERAL_PORTS = 28_000;
const WANT_FIN_TIMEOUT = 30;
const MIN_NETDEV_BACKLOG = 4096;
const RECOMMENDED_NETDEV_BACKLOG = 16_384;
const RECOMMENDED_PORT_RANGE: [number, number] = [10_240, 65_535];

/** A limit that --apply can set: the sysctl key and the value to write. */
export interface SysctlChange {
  key: string;
  value: string;
}

export interface Finding {
  id: string;
  title: string;
  /** The value as read, for people (null: unknown). */
  value: string | null;
  status: Status;
  /** What "fine" means for this limit. */
  want: string;
  why: string;
  /** Commands that raise it now (empty when it is fine). */
  raise: string[];
  /** How to keep the raised value across reboots and restarts. */
  persist: string[];
  /** Set when --apply can change it (a sysctl that is low). */
  change?: SysctlChange;
}

export interface CapacityCap {
  id: 'open-files' | 'file-max' | 'memory';
  /** Connections this limit allows; null = no limit (unlimited or unknown). */
  connections: number | null;
  detail: string;
}

export interface DoctorReport {
  readings: Readings;
  options: DoctorOptions;
  capacity: { connections: number | null; cappedBy: CapacityCap['id'] | null; caps: CapacityCap[] };
  /** The connection count the findings are judged against. */
  goal: number;
  findings: Finding[];
  generator: {
    portRange: [number, number] | null;
    portsPerSource: number | null;
    /** Source addresses a load generator needs for `goal` connections to one server port. */
    sourcesForGoal: number | null;
  };
}

/** The smallest power of two ≥ n (kernel limits are usually set to one). */
export function nextPowerOfTwo(n: number): number {
  let p = 1;
  while (p < n) p *= 2;
  return p;
}

const fmt = (n: number): string => Math.round(n).toLocaleString('en-US');

function gib(bytes: number): string {
  return `${(bytes / 1024 ** 3).toFixed(1)} GiB`;
}

function sysctlCommands(key: string, value: string): { raise: string[]; persist: string[] } {
  return {
    raise: [`sysctl -w ${key}=${shellWord(value)}`],
    persist: [`echo '${key} = ${value}' >> ${SYSCTL_CONF}`],
  };
}

/** A value as one shell word (the port range has a space). */
function shellWord(value: string): string {
  return /^[\w.-]+$/.test(value) ? value : `"${value}"`;
}

/** The per-process open-file limit a Node.js server actually gets: Node raises its soft limit to the hard one at start. */
export function effectiveNofile(r: Readings): number | null {
  return r.nofileHard ?? r.nofileSoft;
}

export function analyze(r: Readings, o: DoctorOptions): DoctorReport {
  const workers = Math.max(1, o.workers);
  const nofile = effectiveNofile(r);
  const usablePerWorker = nofile === null ? null : Math.max(0, nofile - o.reservedFds);

  const memoryCap = Math.floor(r.memAvailableBytes / o.bytesPerConnection);
  const caps: CapacityCap[] = [
    {
      id: 'open-files',
      connections: usablePerWorker === null ? null : usablePerWorker * workers,
      detail:
        usablePerWorker === null
          ? 'no open-file limit'
          : `${fmt(usablePerWorker)} per worker (open-file limit ${fmt(nofile!)} − ${o.reservedFds} kept) × ${workers} worker(s)`,
    },
    {
      id: 'file-max',
      connections: r.fileMax === null || r.fileMax >= Number.MAX_SAFE_INTEGER ? null : r.fileMax,
      detail:
        r.fileMax === null ? 'fs.file-max unknown' : `fs.file-max ${fmt(r.fileMax)} for the whole system`,
    },
    {
      id: 'memory',
      connections: memoryCap,
      detail: `${gib(r.memAvailableBytes)} available ÷ ${fmt(o.bytesPerConnection)} bytes per connection`,
    },
  ];
  let cappedBy: CapacityCap | null = null;
  for (const c of caps) {
    if (c.connections !== null && (cappedBy === null || c.connections < cappedBy.connections!)) cappedBy = c;
  }
  const goal = o.connections ?? memoryCap;

  const findings: Finding[] = [];

  // ---- open files per process, and fs.nr_open above it
  const perWorkerNeed = Math.ceil(goal / workers) + o.reservedFds;
  const nrOpenOk = r.nrOpen === null || r.nrOpen >= perWorkerNeed;
  // A round value, but never above an fs.nr_open that is already high enough (setrlimit would fail).
  const nofileTarget = nrOpenOk
    ? Math.min(nextPowerOfTwo(perWorkerNeed), r.nrOpen ?? Number.POSITIVE_INFINITY)
    : nextPowerOfTwo(perWorkerNeed);
  const nofileOk = nofile === null || nofile >= perWorkerNeed;
  findings.push({
    id: 'nofile',
    title: 'open files per process (RLIMIT_NOFILE)',
    value:
      r.nofileSoft === null && r.nofileHard === null
        ? null
        : `soft ${r.nofileSoft === null ? 'unlimited' : fmt(r.nofileSoft)}, hard ${r.nofileHard === null ? 'unlimited' : fmt(r.nofileHard)}`,
    status: nofileOk ? 'ok' : 'low',
    want: `≥ ${fmt(perWorkerNeed)} per worker (${fmt(goal)} connections ÷ ${workers} worker(s) + ${o.reservedFds} kept)`,
    why: 'every connection is one file descriptor; beyond the limit a worker answers SERVER_FULL (Node raises its soft limit to the hard one at start)',
    raise: nofileOk
      ? []
      : [
          ...(nrOpenOk ? [] : [`sysctl -w fs.nr_open=${nofileTarget}   # first: see fs.nr_open`]),
          `ulimit -Hn ${nofileTarget} && ulimit -Sn ${nofileTarget}   # in the shell that starts the server (as root for the hard limit)`,
        ],
    persist: nofileOk
      ? []
      : [
          `printf '* soft nofile ${nofileTarget}\\n* hard nofile ${nofileTarget}\\nroot soft nofile ${nofileTarget}\\nroot hard nofile ${nofileTarget}\\n' >> /etc/security/limits.conf   # new login sessions`,
          `LimitNOFILE=${nofileTarget}   # in the [Service] section of a systemd unit (systemctl edit switchboard)`,
        ],
  });
  findings.push({
    id: 'fs.nr_open',
    title: 'fs.nr_open (the highest open-file limit a process may get)',
    value: r.nrOpen === null ? null : fmt(r.nrOpen),
    status: nrOpenOk ? 'ok' : 'low',
    want: `≥ ${fmt(perWorkerNeed)} (the open-file limit each worker needs)`,
    why: 'a hard open-file limit above fs.nr_open cannot be set',
    ...(nrOpenOk ? { raise: [], persist: [] } : sysctlCommands('fs.nr_open', String(nofileTarget))),
    ...(nrOpenOk ? {} : { change: { key: 'fs.nr_open', value: String(nofileTarget) } }),
  });

  // ---- fs.file-max
  const fileMaxNeed = goal + SYSTEM_FD_HEADROOM;
  const fileMaxOk = r.fileMax === null || r.fileMax >= fileMaxNeed;
  const fileMaxTarget = String(nextPowerOfTwo(fileMaxNeed));
  findings.push({
    id: 'fs.file-max',
    title: 'fs.file-max (open files of the whole system)',
    value: r.fileMax === null ? null : fmt(r.fileMax),
    status: fileMaxOk ? 'ok' : 'low',
    want: `≥ ${fmt(fileMaxNeed)} (${fmt(goal)} connections + ${fmt(SYSTEM_FD_HEADROOM)} for the rest of the system)`,
    why: 'all workers together, plus a load generator on the same machine, share this one pool',
    ...(fileMaxOk ? { raise: [], persist: [] } : sysctlCommands('fs.file-max', fileMaxTarget)),
    ...(fileMaxOk ? {} : { change: { key: 'fs.file-max', value: fileMaxTarget } }),
  });

  // ---- accept queues
  const backlogFinding = (
    id: string,
    title: string,
    value: number | null,
    min: number,
    recommended: number,
    want: string,
    why: string,
  ): Finding => {
    const ok = value === null || value >= min;
    const target = String(Math.max(recommended, value ?? 0));
    return {
      id,
      title,
      value: value === null ? null : fmt(value),
      status: ok ? 'ok' : 'low',
      want,
      why,
      ...(ok ? { raise: [], persist: [] } : sysctlCommands(id, target)),
      ...(ok ? {} : { change: { key: id, value: target } }),
    };
  };
  findings.push(
    backlogFinding(
      'net.core.somaxconn',
      'net.core.somaxconn (longest accept queue)',
      r.somaxconn,
      o.listenBacklog,
      o.listenBacklog,
      `≥ ${fmt(o.listenBacklog)} (the server's listen backlog)`,
      'the kernel cuts every listen backlog to this; a full accept queue drops SYNs and clients wait 1 s or more to retry',
    ),
    backlogFinding(
      'net.ipv4.tcp_max_syn_backlog',
      'net.ipv4.tcp_max_syn_backlog (half-open connections per listener)',
      r.tcpMaxSynBacklog,
      o.listenBacklog,
      o.listenBacklog,
      `≥ ${fmt(o.listenBacklog)} (the server's listen backlog)`,
      'a reconnect storm (every client after a restart) arrives as a burst of SYNs',
    ),
    backlogFinding(
      'net.core.netdev_max_backlog',
      'net.core.netdev_max_backlog (packets queued per CPU before the stack takes them)',
      r.netdevMaxBacklog,
      MIN_NETDEV_BACKLOG,
      RECOMMENDED_NETDEV_BACKLOG,
      `≥ ${fmt(MIN_NETDEV_BACKLOG)}`,
      'bursts of packets (loopback included) beyond it are dropped and retransmitted',
    ),
  );

  // ---- TCP teardown
  const finOk = r.tcpFinTimeout === null || r.tcpFinTimeout <= WANT_FIN_TIMEOUT;
  findings.push({
    id: 'net.ipv4.tcp_fin_timeout',
    title: 'net.ipv4.tcp_fin_timeout (seconds an orphaned socket waits in FIN-WAIT-2)',
    value: r.tcpFinTimeout === null ? null : `${r.tcpFinTimeout} s`,
    status: finOk ? 'ok' : 'low',
    want: `≤ ${WANT_FIN_TIMEOUT} s`,
    why: 'when many clients go at once, sockets waiting for a FIN hold memory and ports this long',
    ...(finOk
      ? { raise: [], persist: [] }
      : sysctlCommands('net.ipv4.tcp_fin_timeout', String(WANT_FIN_TIMEOUT))),
    ...(finOk ? {} : { change: { key: 'net.ipv4.tcp_fin_timeout', value: String(WANT_FIN_TIMEOUT) } }),
  });
  const twOk = r.tcpTwReuse === null || r.tcpTwReuse !== 0;
  findings.push({
    id: 'net.ipv4.tcp_tw_reuse',
    title: 'net.ipv4.tcp_tw_reuse (reuse of TIME-WAIT ports for new outgoing connections)',
    value:
      r.tcpTwReuse === null
        ? null
        : `${r.tcpTwReuse}${r.tcpTwReuse === 2 ? ' (loopback only)' : r.tcpTwReuse === 1 ? ' (on)' : ' (off)'}`,
    status: twOk ? 'ok' : 'low',
    want: '1 on a load-generator machine (2, loopback only, is enough when the generator and the server share a machine)',
    why: 'a generator that reconnects many clients otherwise runs out of ports held in TIME-WAIT',
    ...(twOk ? { raise: [], persist: [] } : sysctlCommands('net.ipv4.tcp_tw_reuse', '1')),
    ...(twOk ? {} : { change: { key: 'net.ipv4.tcp_tw_reuse', value: '1' } }),
  });

  // ---- ephemeral ports (load generators)
  const portsPerSource = r.portRange === null ? null : r.portRange[1] - r.portRange[0] + 1;
  const portsOk = portsPerSource === null || portsPerSource >= MIN_EPHEMERAL_PORTS;
  const portTarget = RECOMMENDED_PORT_RANGE.join(' ');
  findings.push({
    id: 'net.ipv4.ip_local_port_range',
    title: 'net.ipv4.ip_local_port_range (ephemeral ports per source address, for load generators)',
    value:
      r.portRange === null ? null : `${r.portRange[0]}–${r.portRange[1]} (${fmt(portsPerSource!)} ports)`,
    status: portsOk ? 'ok' : 'low',
    want: `≥ ${fmt(MIN_EPHEMERAL_PORTS)} ports; more connections to one server port need more source addresses`,
    why: 'a client machine opens at most this many connections to one server address:port per source address',
    ...(portsOk ? { raise: [], persist: [] } : sysctlCommands('net.ipv4.ip_local_port_range', portTarget)),
    ...(portsOk ? {} : { change: { key: 'net.ipv4.ip_local_port_range', value: portTarget } }),
  });

  // ---- memory and cores (what the machine is)
  findings.push({
    id: 'memory',
    title: 'memory',
    value: `${gib(r.memAvailableBytes)} available of ${gib(r.memTotalBytes)}`,
    status: 'info',
    want: `${fmt(o.bytesPerConnection)} bytes per connection (--bytes-per-connection) → ${fmt(memoryCap)} connections`,
    why: 'each held connection costs socket buffers in the kernel and session state in the worker',
    raise: [],
    persist: [],
  });
  findings.push({
    id: 'cores',
    title: 'cores',
    value: String(r.cores),
    status: 'info',
    want: `${workers} worker(s) planned (--workers; default one per core)`,
    why: 'each worker is one event loop on one core',
    raise: [],
    persist: [],
  });

  return {
    readings: r,
    options: { ...o, workers },
    capacity: { connections: cappedBy?.connections ?? null, cappedBy: cappedBy?.id ?? null, caps },
    goal,
    findings,
    generator: {
      portRange: r.portRange,
      portsPerSource,
      sourcesForGoal: portsPerSource === null ? null : Math.ceil(goal / portsPerSource),
    },
  };
}

// ------------------------------------------------------------------ --apply

export type ApplyAction =
  | { kind: 'sysctl'; key: string; value: string; path: string }
  | { kind: 'file'; path: string; content: string };

/** /proc/sys path of a sysctl key (what `sysctl -w` writes). */
export function sysctlPath(key: string): string {
  return `/proc/sys/${key.replaceAll('.', '/')}`;
}

/**
 * What --apply does: write each low sysctl now, and persist them in SYSCTL_CONF. The file keeps
 * every line it had, with the values of these keys replaced or appended. Empty when nothing is low.
 * Open-file limits are not sysctls: they are only printed.
 */
export function planApply(report: DoctorReport, existingConf: string | null): ApplyAction[] {
  const changes = report.findings.flatMap((f) => (f.change ? [f.change] : []));
  if (changes.length === 0) return [];
  const actions: ApplyAction[] = changes.map((c) => ({
    kind: 'sysctl',
    key: c.key,
    value: c.value,
    path: sysctlPath(c.key),
  }));
  const pending = new Map(changes.map((c) => [c.key, c.value]));
  const lines =
    existingConf === null || existingConf === ''
      ? ['# Written by `switchboard doctor --apply`: kernel limits for many connections.']
      : existingConf.replace(/\n$/, '').split('\n');
  const out = lines.map((line) => {
    const m = /^\s*([\w.-]+)\s*=/.exec(line);
    const key = m?.[1]?.replaceAll('/', '.');
    if (key === undefined || !pending.has(key)) return line;
    const value = pending.get(key)!;
    pending.delete(key);
    return `${key} = ${value}`;
  });
  for (const [key, value] of pending) out.push(`${key} = ${value}`);
  actions.push({ kind: 'file', path: SYSCTL_CONF, content: `${out.join('\n')}\n` });
  return actions;
}

/** The exact writes of an action, as lines for people. */
export function describeAction(a: ApplyAction): string[] {
  if (a.kind === 'sysctl') {
    return [`write ${a.path}: ${a.value}   (= sysctl -w ${a.key}=${shellWord(a.value)})`];
  }
  return [
    `write ${a.path}:`,
    ...a.content
      .replace(/\n$/, '')
      .split('\n')
      .map((l) => `    ${l}`),
  ];
}

// ------------------------------------------------------------------ text report

export function formatReport(report: DoctorReport): string {
  const { capacity, readings: r, options: o } = report;
  const out: string[] = [];
  out.push(
    `switchboard doctor: ${r.cores} core(s), ${gib(r.memAvailableBytes)} of ${gib(r.memTotalBytes)} memory available; ` +
      `planning ${o.workers} worker(s) at ${fmt(o.bytesPerConnection)} bytes per connection`,
    '',
  );
  const capped = capacity.caps.find((c) => c.id === capacity.cappedBy);
  if (capacity.connections === null || capped === undefined) {
    out.push('This machine has no known limit on connections.');
  } else {
    out.push(
      `This machine can hold about ${fmt(capacity.connections)} connections, capped by ${capName(capped.id)}: ${capped.detail}.`,
    );
    for (const c of capacity.caps) {
      if (c === capped) continue;
      out.push(
        `  ${capName(c.id)}: ${c.connections === null ? 'no limit' : `${fmt(c.connections)} connections`} (${c.detail})`,
      );
    }
  }
  out.push(
    '',
    `Limits, judged for ${fmt(report.goal)} connections (--connections; default: what memory allows):`,
  );
  for (const f of report.findings) {
    const mark = f.status === 'ok' ? 'ok  ' : f.status === 'low' ? 'LOW ' : 'info';
    out.push(`  ${mark} ${f.title}: ${f.value ?? 'unknown'}`);
    out.push(`       want ${f.want}`);
    if (f.status === 'low') {
      out.push(`       why: ${f.why}`);
      for (const c of f.raise) out.push(`       raise:   ${c}`);
      for (const c of f.persist) out.push(`       persist: ${c}`);
    }
  }
  const g = report.generator;
  if (g.portsPerSource !== null) {
    out.push(
      '',
      `Load generators: ${fmt(g.portsPerSource)} ephemeral ports per source address → ${fmt(g.sourcesForGoal!)} ` +
        `source address(es) (127.0.0.2, 127.0.0.3, … on loopback) for ${fmt(report.goal)} connections to one server port.`,
    );
  }
  const changes = report.findings.filter((f) => f.change);
  if (changes.length > 0) {
    out.push(
      '',
      `Persisted sysctls take effect with: sysctl -p ${SYSCTL_CONF}`,
      `\`switchboard doctor --apply\` (as root) sets the ${changes.length} low sysctl(s) above and persists them; add --dry-run to see the exact writes first.`,
    );
  }
  out.push('');
  return out.join('\n');
}

function capName(id: CapacityCap['id']): string {
  return id === 'open-files' ? 'open files per process' : id === 'file-max' ? 'fs.file-max' : 'memory';
}
