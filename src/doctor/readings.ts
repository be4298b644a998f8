/** `switchboard doctor`, the edge: reads the machine (/proc on Linux, os) into Readings. */
import { readFileSync } from 'node:fs';
import os from 'node:os';
import type { Readings } from './analyze.js';
import { sysctlPath } from './analyze.js';

function readText(path: string): string | null {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return null;
  }
}

/** A sysctl as a number; null when it cannot be read. */
function sysctlNumber(key: string): number | null {
  const text = readText(sysctlPath(key))?.trim();
  if (!text) return null;
  const n = Number(text.split(/\s+/)[0]);
  return Number.isFinite(n) ? n : null;
}

/** Soft and hard "Max open files" of this process; null = unlimited or unreadable. */
export function parseLimits(text: string): { soft: number | null; hard: number | null } {
  const m = /^Max open files\s+(\d+|unlimited)\s+(\d+|unlimited)/m.exec(text);
  if (!m) return { soft: null, hard: null };
  const value = (v: string): number | null => (v === 'unlimited' ? null : Number(v));
  return { soft: value(m[1]!), hard: value(m[2]!) };
}

/** MemAvailable of /proc/meminfo in bytes, or null. */
export function parseMemAvailable(text: string): number | null {
  const m = /^MemAvailable:\s+(\d+)\s+kB/m.exec(text);
  return m ? Number(m[1]) * 1024 : null;
}

export function readMachine(): Readings {
  const limits = parseLimits(readText('/proc/self/limits') ?? '');
  const range = readText(sysctlPath('net.ipv4.ip_local_port_range'))?.trim().split(/\s+/).map(Number);
  const meminfo = readText('/proc/meminfo');
  return {
    nofileSoft: limits.soft,
    nofileHard: limits.hard,
    fileMax: sysctlNumber('fs.file-max'),
    nrOpen: sysctlNumber('fs.nr_open'),
    somaxconn: sysctlNumber('net.core.somaxconn'),
    tcpMaxSynBacklog: sysctlNumber('net.ipv4.tcp_max_syn_backlog'),
    portRange: range && range.length === 2 && range.every(Number.isInteger) ? [range[0]!, range[1]!] : null,
    tcpFinTimeout: sysctlNumber('net.ipv4.tcp_fin_timeout'),
    tcpTwReuse: sysctlNumber('net.ipv4.tcp_tw_reuse'),
    netdevMaxBacklog: sysctlNumber('net.core.netdev_max_backlog'),
    memTotalBytes: os.totalmem(),
    memAvailableBytes: (meminfo === null ? null : parseMemAvailable(meminfo)) ?? os.freemem(),
    cores: os.availableParallelism(),
    isRoot: process.getuid?.() === 0,
  };
}

/** The current text of a file, or null when it does not exist. */
export function readFileOrNull(path: string): string | null {
  return readText(path);
}
