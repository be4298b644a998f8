/**
 * `switchboard doctor`: the pure analysis (readings → capacity, findings, --apply plan) with unit
 * tests, and the command as a child process. The command runs only with --apply --dry-run here: the
 * sysctls of this machine are shared, so nothing may write them.
 */
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { describe, test } from 'node:test';
import {
  analyze,
  type DoctorOptions,
  type DoctorReport,
  describeAction,
  formatReport,
  nextPowerOfTwo,
  planApply,
  type Readings,
  SYSCTL_CONF,
  sysctlPath,
} from '../../src/doctor/analyze.js';
import { parseLimits, parseMemAvailable } from '../../src/doctor/readings.js';
import { type NodeRun, runNode } from '../helpers/run-node.js';
import { BIN } from '../helpers/server-process.js';

const GiB = 1024 ** 3;

/** A machine like the one these tests were written on: 2 cores, 20 000 open files, stock sysctls. */
function readings(over: Partial<Readings> = {}): Readings {
  return {
    nofileSoft: 20_000,
    nofileHard: 20_000,
    fileMax: 2_466_170,
    nrOpen: 1_048_576,
    somaxconn: 4096,
    tcpMaxSynBacklog: 2048,
    portRange: [32768, 60999],
    tcpFinTimeout: 60,
    tcpTwReuse: 2,
    netdevMaxBacklog: 1000,
    memTotalBytes: 24 * GiB,
    memAvailableBytes: 20 * GiB,
    cores: 2,
    isRoot: false,
    ...over,
  };
}

function options(over: Partial<DoctorOptions> = {}): DoctorOptions {
  return {
    workers: 2,
    bytesPerConnection: 6 * 1024,
    connections: null,
    listenBacklog: 4096,
    reservedFds: 512,
    ...over,
  };
}

function finding(report: DoctorReport, id: string) {
  const f = report.findings.find((x) => x.id === id);
  assert.ok(f, `finding ${id}`);
  return f;
}

/** A machine tuned well beyond what 20 GiB at 6 KiB needs (≈ 3.5 M connections). */
const TUNED: Partial<Readings> = {
  nofileSoft: 4_194_304,
  nofileHard: 4_194_304,
  nrOpen: 4_194_304,
  fileMax: 8_388_608,
  tcpMaxSynBacklog: 8192,
  netdevMaxBacklog: 16_384,
  tcpFinTimeout: 15,
};

describe('doctor analysis (pure)', () => {
  test('the per-process open-file limit × workers caps a stock machine', () => {
    const r = analyze(readings(), options());
    assert.equal(r.capacity.cappedBy, 'open-files');
    assert.equal(r.capacity.connections, 2 * (20_000 - 512));
    const memory = r.capacity.caps.find((c) => c.id === 'memory')!;
    assert.equal(memory.connections, Math.floor((20 * GiB) / 6144));
    // Judged against what memory allows by default.
    assert.equal(r.goal, memory.connections);
    const nofile = finding(r, 'nofile');
    assert.equal(nofile.status, 'low');
    assert.equal(nofile.value, 'soft 20,000, hard 20,000');
    assert.equal(nofile.change, undefined, 'open-file limits are not sysctls');
    const perWorker = nextPowerOfTwo(Math.ceil(r.goal / 2) + 512);
    assert.ok(nofile.persist.some((c) => c.includes(`LimitNOFILE=${perWorker}`)));
    assert.ok(
      nofile.persist.some(
        (c) => c.includes('/etc/security/limits.conf') && c.includes(`nofile ${perWorker}`),
      ),
    );
    // 1.75 M per worker is over fs.nr_open: that must be raised first.
    const nrOpen = finding(r, 'fs.nr_open');
    assert.equal(nrOpen.status, 'low');
    assert.deepEqual(nrOpen.raise, [`sysctl -w fs.nr_open=${perWorker}`]);
    assert.deepEqual(nrOpen.persist, [`echo 'fs.nr_open = ${perWorker}' >> ${SYSCTL_CONF}`]);
  });

  test('workers multiply the open-file cap', () => {
    const r = analyze(readings(), options({ workers: 8 }));
    assert.equal(r.capacity.connections, 8 * (20_000 - 512));
  });

  test('memory caps a tuned machine, and the tuned limits are fine', () => {
    const r = analyze(readings(TUNED), options());
    assert.equal(r.capacity.cappedBy, 'memory');
    assert.equal(r.capacity.connections, Math.floor((20 * GiB) / 6144));
    for (const id of [
      'nofile',
      'fs.nr_open',
      'fs.file-max',
      'net.core.somaxconn',
      'net.ipv4.tcp_max_syn_backlog',
      'net.core.netdev_max_backlog',
      'net.ipv4.tcp_fin_timeout',
      'net.ipv4.tcp_tw_reuse',
      'net.ipv4.ip_local_port_range',
    ]) {
      const f = finding(r, id);
      assert.equal(f.status, 'ok', id);
      assert.deepEqual(f.raise, [], id);
      assert.equal(f.change, undefined, id);
    }
    assert.deepEqual(planApply(r, null), []);
  });

  test('--bytes-per-connection changes the memory cap', () => {
    const r = analyze(readings(TUNED), options({ bytesPerConnection: 64 * 1024 }));
    assert.equal(r.capacity.connections, Math.floor((20 * GiB) / (64 * 1024)));
  });

  test('a small goal makes the stock open-file limit fine', () => {
    const r = analyze(readings(), options({ connections: 30_000 }));
    assert.equal(r.goal, 30_000);
    assert.equal(finding(r, 'nofile').status, 'ok');
    assert.equal(finding(r, 'fs.nr_open').status, 'ok');
    assert.equal(finding(r, 'fs.file-max').status, 'ok');
  });

  test('an accept queue below the listen backlog is low, with the sysctl that raises it', () => {
    const r = analyze(readings({ somaxconn: 128 }), options());
    const f = finding(r, 'net.core.somaxconn');
    assert.equal(f.status, 'low');
    assert.equal(f.value, '128');
    assert.deepEqual(f.raise, ['sysctl -w net.core.somaxconn=4096']);
    assert.deepEqual(f.persist, [`echo 'net.core.somaxconn = 4096' >> ${SYSCTL_CONF}`]);
    assert.deepEqual(f.change, { key: 'net.core.somaxconn', value: '4096' });
    assert.equal(finding(r, 'net.ipv4.tcp_max_syn_backlog').status, 'low');
  });

  test('TCP teardown: fin_timeout above 30 s and tw_reuse 0 are low; tw_reuse 2 is fine', () => {
    const r = analyze(readings({ tcpTwReuse: 0 }), options());
    assert.deepEqual(finding(r, 'net.ipv4.tcp_fin_timeout').change, {
      key: 'net.ipv4.tcp_fin_timeout',
      value: '30',
    });
    assert.deepEqual(finding(r, 'net.ipv4.tcp_tw_reuse').change, {
      key: 'net.ipv4.tcp_tw_reuse',
      value: '1',
    });
    assert.equal(finding(analyze(readings(), options()), 'net.ipv4.tcp_tw_reuse').status, 'ok');
  });

  test('ephemeral ports: sources a generator needs, and a narrow range is low', () => {
    const r = analyze(readings(), options({ connections: 100_000 }));
    assert.equal(r.generator.portsPerSource, 28_232);
    assert.equal(r.generator.sourcesForGoal, 4);
    assert.equal(finding(r, 'net.ipv4.ip_local_port_range').status, 'ok');
    const narrow = finding(
      analyze(readings({ portRange: [50000, 60000] }), options()),
      'net.ipv4.ip_local_port_range',
    );
    assert.equal(narrow.status, 'low');
    assert.deepEqual(narrow.raise, ['sysctl -w net.ipv4.ip_local_port_range="10240 65535"']);
  });

  test('unknown readings (not Linux) are never reported low', () => {
    const r = analyze(
      readings({
        nofileSoft: null,
        nofileHard: null,
        fileMax: null,
        nrOpen: null,
        somaxconn: null,
        tcpMaxSynBacklog: null,
        portRange: null,
        tcpFinTimeout: null,
        tcpTwReuse: null,
        netdevMaxBacklog: null,
      }),
      options(),
    );
    assert.equal(r.capacity.cappedBy, 'memory');
    assert.ok(r.findings.every((f) => f.status !== 'low'));
    assert.match(formatReport(r), /unknown/);
  });

  test('the --apply plan: each low sysctl, then the persisted file', () => {
    const r = analyze(readings(), options());
    const actions = planApply(r, null);
    const sysctls = actions.filter((a) => a.kind === 'sysctl');
    assert.deepEqual(
      sysctls.map((a) => a.key),
      [
        'fs.nr_open',
        'fs.file-max',
        'net.ipv4.tcp_max_syn_backlog',
        'net.core.netdev_max_backlog',
        'net.ipv4.tcp_fin_timeout',
      ],
    );
    for (const a of sysctls) assert.equal(a.path, sysctlPath(a.key));
    assert.equal(sysctlPath('net.core.somaxconn'), '/proc/sys/net/core/somaxconn');
    const file = actions.at(-1)!;
    assert.equal(file.kind, 'file');
    assert.equal(file.path, SYSCTL_CONF);
    assert.ok(file.kind === 'file' && file.content.includes('net.ipv4.tcp_max_syn_backlog = 4096\n'));
    assert.deepEqual(describeAction(sysctls[2]!), [
      'write /proc/sys/net/ipv4/tcp_max_syn_backlog: 4096   (= sysctl -w net.ipv4.tcp_max_syn_backlog=4096)',
    ]);
  });

  test('the persisted file keeps its other lines and replaces the keys it sets', () => {
    const existing = '# mine\nvm.swappiness = 10\nnet.core.netdev_max_backlog = 2000\n';
    const r = analyze(readings(), options({ connections: 30_000 }));
    const file = planApply(r, existing).find((a) => a.kind === 'file');
    assert.ok(file && file.kind === 'file');
    assert.equal(
      file.content,
      '# mine\nvm.swappiness = 10\nnet.core.netdev_max_backlog = 16384\n' +
        'net.ipv4.tcp_max_syn_backlog = 4096\nnet.ipv4.tcp_fin_timeout = 30\n',
    );
  });

  test('readings parsers', () => {
    assert.deepEqual(
      parseLimits(
        'Limit Soft Limit Hard Limit Units\nMax open files            1024                 524288               files\n',
      ),
      { soft: 1024, hard: 524288 },
    );
    assert.deepEqual(parseLimits('Max open files unlimited unlimited files'), { soft: null, hard: null });
    assert.equal(parseMemAvailable('MemTotal: 100 kB\nMemAvailable:    2048 kB\n'), 2048 * 1024);
  });
});

// ------------------------------------------------------------------ the command

function cli(args: string[]): Promise<NodeRun> {
  return runNode(BIN, args, { timeoutMs: 30_000 });
}

const SYSCTLS = [
  'fs.file-max',
  'fs.nr_open',
  'net.core.somaxconn',
  'net.ipv4.tcp_max_syn_backlog',
  'net.ipv4.ip_local_port_range',
  'net.ipv4.tcp_fin_timeout',
  'net.ipv4.tcp_tw_reuse',
  'net.core.netdev_max_backlog',
];

/** The sysctls and the persisted file as they are now (to prove a run changed nothing). */
function snapshot(): Record<string, string | null> {
  const read = (path: string): string | null => {
    try {
      return fs.readFileSync(path, 'utf8');
    } catch {
      return null;
    }
  };
  const out: Record<string, string | null> = { [SYSCTL_CONF]: read(SYSCTL_CONF) };
  for (const key of SYSCTLS) out[key] = read(sysctlPath(key));
  return out;
}

describe('switchboard doctor (command)', () => {
  test('--json: one object with the capacity and this machine’s readings', async () => {
    const run = await cli(['doctor', '--json', '--workers', '3']);
    assert.equal(run.code, 0, run.stderr);
    const report = JSON.parse(run.stdout) as DoctorReport;
    assert.equal(report.options.workers, 3);
    assert.equal(report.options.bytesPerConnection, 6144);
    assert.ok(report.capacity.connections === null || report.capacity.connections > 0);
    assert.ok(report.findings.length >= 9);
    for (const f of report.findings) assert.ok(['ok', 'low', 'info'].includes(f.status), f.id);
    if (process.platform === 'linux') {
      const somaxconn = Number(fs.readFileSync('/proc/sys/net/core/somaxconn', 'utf8'));
      assert.equal(report.readings.somaxconn, somaxconn);
    }
  });

  test('the text report names the cap and, for each low limit, the command that raises it', async () => {
    const run = await cli(['doctor', '--bytes-per-connection', '8KiB']);
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stdout, /can hold about [\d,]+ connections, capped by/);
    assert.match(run.stdout, /8,192 bytes per connection/);
    const report = JSON.parse(
      (await cli(['doctor', '--json', '--bytes-per-connection', '8KiB'])).stdout,
    ) as DoctorReport;
    for (const f of report.findings.filter((x) => x.status === 'low')) {
      for (const c of f.raise) assert.ok(run.stdout.includes(c), `missing: ${c}`);
    }
  });

  test('--apply --dry-run prints the exact writes and changes nothing', async () => {
    const before = snapshot();
    const run = await cli(['doctor', '--apply', '--dry-run']);
    assert.equal(run.code, 0, run.stderr);
    const report = JSON.parse(
      (await cli(['doctor', '--apply', '--dry-run', '--json'])).stdout,
    ) as DoctorReport & {
      apply: {
        dryRun: boolean;
        actions: { kind: string; key?: string; path: string; value?: string }[];
        done: number;
      };
    };
    assert.deepEqual(snapshot(), before);
    assert.equal(report.apply.dryRun, true);
    assert.equal(report.apply.done, 0);
    const low = report.findings.filter((f) => f.change);
    if (low.length === 0) {
      assert.deepEqual(report.apply.actions, []);
      assert.match(run.stdout, /nothing to change/);
      return;
    }
    assert.match(run.stdout, /would make exactly these writes \(nothing was changed\)/);
    for (const f of low) {
      assert.ok(run.stdout.includes(`write ${sysctlPath(f.change!.key)}: ${f.change!.value}`), f.id);
    }
    assert.ok(run.stdout.includes(`write ${SYSCTL_CONF}:`));
    assert.deepEqual(
      report.apply.actions.filter((a) => a.kind === 'sysctl').map((a) => a.key),
      low.map((f) => f.change!.key),
    );
  });

  test('--dry-run without --apply is a usage error', async () => {
    const run = await cli(['doctor', '--dry-run']);
    assert.equal(run.code, 1);
    assert.match(run.stderr, /--dry-run goes with --apply/);
  });
});
