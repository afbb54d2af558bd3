/**
 * Where pullnix-ctl keeps Node's module compile cache (module.enableCompileCache): a directory only
 * the user running it can write, or none. The cache holds code V8 runs without compiling the source
 * again, so whoever can write it can run code as that user: never Node's default (a directory under
 * /tmp that anyone could have made first), never under $HOME (sudo can keep another user's HOME);
 * under the home directory in the password database of the effective user, when that user owns it,
 * in `.cache/pullnix-ctl`, made 0700 and checked to be a real directory owned by the user and
 * writable by nobody else.
 */
import { lstatSync, mkdirSync } from 'node:fs';
import { userInfo } from 'node:os';
import { join } from 'node:path';

function ownedPrivately(path: string, uid: number, exact: boolean): boolean {
  try {
    const st = lstatSync(path);
    return st.isDirectory() && st.uid === uid && (st.mode & (exact ? 0o077 : 0o022)) === 0;
  } catch {
    return false;
  }
}

export function compileCacheDir(home: string = userInfo().homedir, uid: number | undefined = process.geteuid?.()): string | null {
  try {
    if (uid === undefined) return null;
    if (!home || !ownedPrivately(home, uid, false)) return null;
    const cache = join(home, '.cache');
    if (!ownedPrivately(cache, uid, false)) {
      mkdirSync(cache, { mode: 0o700 });
      if (!ownedPrivately(cache, uid, false)) return null;
    }
    const dir = join(cache, 'pullnix-ctl');
    try {
      mkdirSync(dir, { mode: 0o700 });
    } catch {
      // there already (checked below)
    }
    return ownedPrivately(dir, uid, true) ? dir : null;
  } catch {
    return null;
  }
}
