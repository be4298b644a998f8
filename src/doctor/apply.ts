/**
 * `switchboard doctor --apply`, the edge that changes the machine: writes sysctls under /proc/sys and
 * the persisted sysctl file. Only called for a real --apply (never for --dry-run), as root.
 */
import { writeFileSync } from 'node:fs';
import type { ApplyAction } from './analyze.js';

export interface ApplyOutcome {
  done: ApplyAction[];
  failed: { action: ApplyAction; error: string }[];
}

export function executeActions(actions: ApplyAction[]): ApplyOutcome {
  const outcome: ApplyOutcome = { done: [], failed: [] };
  for (const action of actions) {
    try {
      if (action.kind === 'sysctl') writeFileSync(action.path, `${action.value}\n`);
      else writeFileSync(action.path, action.content, { mode: 0o644 });
      outcome.done.push(action);
    } catch (err) {
      outcome.failed.push({ action, error: err instanceof Error ? err.message : String(err) });
    }
  }
  return outcome;
}
