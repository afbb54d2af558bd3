/** Users and groups by name, from the system's files (no libc lookups in Node). */
import { readFileSync } from 'node:fs';

/** getgrnam for the one thing we need: a group's id, from /etc/group. */
export function lookupGid(group: string): number {
  const text = readFileSync('/etc/group', 'utf8');
  for (const line of text.split('\n')) {
    const [name, , gid] = line.split(':');
    if (name === group && gid !== undefined && /^\d+$/.test(gid)) return Number(gid);
  }
  throw new Error(`operator group ${JSON.stringify(group)} does not exist (create it, or set operators.group)`);
}

/** A user's uid and primary gid, from /etc/passwd (NixOS's users are there, static or not). */
export function lookupUser(user: string, passwdFile = '/etc/passwd'): { uid: number; gid: number } {
  const text = readFileSync(passwdFile, 'utf8');
  for (const line of text.split('\n')) {
    const [name, , uid, gid] = line.split(':');
    if (name === user && uid !== undefined && gid !== undefined && /^\d+$/.test(uid) && /^\d+$/.test(gid)) return { uid: Number(uid), gid: Number(gid) };
  }
  throw new Error(`user ${JSON.stringify(user)} (watcher.user) does not exist: create it (the NixOS module does), or set watcher.user to null`);
}
