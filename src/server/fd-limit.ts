/** The process's soft open-file limit (Node has no getrlimit): read from /proc on Linux. */
import { readFileSync } from 'node:fs';

export function openFileLimit(): number | null {
  try {
    const text = readFileSync('/proc/self/limits', 'utf8');
    const m = /^Max open files\s+(\d+|unlimited)\s+(\d+|unlimited)/m.exec(text);
    if (!m) return null;
    return m[1] === 'unlimited' ? null : Number(m[1]);
  } catch {
    return null;
  }
}
