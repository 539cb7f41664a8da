// Where rootfs-tools/fetch-fixtures.sh caches the foreign binaries (same rule as the script).
import { homedir } from 'node:os';
import { join } from 'node:path';

export const fixturesDir = () =>
  process.env.XRUN_FIXTURES || join(process.env.XDG_CACHE_HOME || join(process.env.HOME || homedir(), '.cache'), 'xrun', 'fixtures');
export const busyboxStatic = (debarch) => join(fixturesDir(), 'busybox-static', debarch, 'busybox');
export const rootfs = (debarch) => join(fixturesDir(), 'rootfs', debarch);
export const tree = (debarch) => join(fixturesDir(), 'tree', debarch);
