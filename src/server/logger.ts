/** Logs through pino: JSON lines on stdout, one line per event worth keeping. */
import { type Logger, pino } from 'pino';

export function makeLogger(level: string, name = 'switchboard'): Logger {
  return pino({ name, level, base: { pid: process.pid } });
}
