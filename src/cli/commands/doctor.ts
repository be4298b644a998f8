/**
 * `switchboard doctor`: how many connections this machine can hold, what caps it, and the exact
 * commands that raise each limit (ARCHITECTURE.md, "OS tuning"). `--apply` (root) sets the low sysctls
 * and persists them; `--apply --dry-run` prints exactly those writes and changes nothing.
 */
import type { Command } from 'commander';
import {
  analyze,
  DEFAULT_BYTES_PER_CONNECTION,
  describeAction,
  formatReport,
  planApply,
  SYSCTL_CONF,
} from '../../doctor/analyze.js';
import { executeActions } from '../../doctor/apply.js';
import { readFileOrNull, readMachine } from '../../doctor/readings.js';
import { DEFAULT_LIMITS } from '../../server/limits.js';
import { parseBytes } from '../../util/duration.js';
import { EXIT, fail } from '../client-options.js';

interface DoctorFlags {
  workers?: string;
  bytesPerConnection: string;
  connections?: string;
  json?: boolean;
  apply?: boolean;
  dryRun?: boolean;
}

function positiveInt(text: string, flag: string): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n <= 0)
    fail('USAGE', `${flag} must be a positive integer, not "${text}"`, EXIT.usage);
  return n;
}

export function registerDoctor(program: Command): void {
  program
    .command('doctor')
    .description('check the OS limits that cap the number of connections, and how to raise them')
    .option('--workers <n>', 'worker processes the server will run (default: one per core)')
    .option(
      '--bytes-per-connection <size>',
      'server memory per connection',
      `${DEFAULT_BYTES_PER_CONNECTION / 1024}KiB`,
    )
    .option('--connections <n>', 'connections to plan for (default: what memory allows)')
    .option('--json', 'print one JSON object')
    .option('--apply', `as root: set the low sysctls now and persist them in ${SYSCTL_CONF}`)
    .option('--dry-run', 'with --apply: print exactly what would be written, change nothing')
    .action((flags: DoctorFlags) => {
      if (flags.dryRun && !flags.apply) fail('USAGE', '--dry-run goes with --apply', EXIT.usage);
      let bytesPerConnection: number;
      try {
        bytesPerConnection = parseBytes(flags.bytesPerConnection);
      } catch (err) {
        return fail('USAGE', `--bytes-per-connection: ${(err as Error).message}`, EXIT.usage);
      }
      if (bytesPerConnection <= 0) fail('USAGE', '--bytes-per-connection must be positive', EXIT.usage);
      const readings = readMachine();
      const report = analyze(readings, {
        workers: flags.workers === undefined ? readings.cores : positiveInt(flags.workers, '--workers'),
        bytesPerConnection,
        connections: flags.connections === undefined ? null : positiveInt(flags.connections, '--connections'),
        listenBacklog: DEFAULT_LIMITS.listenBacklog,
        reservedFds: DEFAULT_LIMITS.reservedFds,
      });

      if (!flags.apply) {
        process.stdout.write(flags.json ? `${JSON.stringify(report)}\n` : formatReport(report));
        return;
      }

      const actions = planApply(report, readFileOrNull(SYSCTL_CONF));
      const dryRun = flags.dryRun === true;
      if (!dryRun && actions.length > 0 && !readings.isRoot) {
        fail(
          'DOCTOR',
          '--apply changes kernel settings and needs root (add --dry-run to see the changes)',
          EXIT.error,
        );
      }
      const outcome = dryRun || actions.length === 0 ? null : executeActions(actions);
      if (flags.json) {
        process.stdout.write(
          `${JSON.stringify({
            ...report,
            apply: {
              dryRun,
              actions,
              done: outcome?.done.length ?? 0,
              failed: outcome?.failed.map((f) => ({ ...f.action, error: f.error })) ?? [],
            },
          })}\n`,
        );
      } else {
        const out: string[] = [formatReport(report)];
        if (actions.length === 0) {
          out.push('--apply: every sysctl is fine; nothing to change.');
        } else if (dryRun) {
          out.push('--apply --dry-run: would make exactly these writes (nothing was changed):');
          for (const a of actions) out.push(...describeAction(a).map((l) => `  ${l}`));
        } else {
          out.push('--apply: made these writes:');
          for (const a of outcome!.done) out.push(...describeAction(a).map((l) => `  ${l}`));
          for (const f of outcome!.failed) out.push(`  FAILED ${describeAction(f.action)[0]}: ${f.error}`);
        }
        const nofile = report.findings.find((f) => f.id === 'nofile');
        if (nofile?.status === 'low') {
          out.push(
            'Open-file limits are not sysctls: raise them as shown above (limits.conf or LimitNOFILE=).',
          );
        }
        process.stdout.write(`${out.join('\n')}\n`);
      }
      if (outcome && outcome.failed.length > 0) process.exitCode = EXIT.error;
    });
}
