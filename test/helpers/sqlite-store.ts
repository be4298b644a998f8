import { SqliteInboxStore } from '../../src/store/sqlite.js';
import { DEFAULT_CAPS } from '../store/conformance.js';

/**
 * One SQLite shard in `dir` that may not grow past ~0.5 MiB (128 pages of 4 KiB): appends that do not
 * fit fail their commit with SQLITE_FULL, while small ones still fit. For the tests of a failed commit.
 */
export function openFillableStore(dir: string): Promise<SqliteInboxStore> {
  return SqliteInboxStore.open({
    dir,
    shardCount: 1,
    durability: 'normal',
    caps: DEFAULT_CAPS,
    pragmas: { max_page_count: 128 },
  });
}
