/**
 * Whose fault a failed nix command is (issue 21, part 3), for both daemons: the watcher's builds
 * and the executor's nix-env/nix-store (a nix-daemon restarting under the commit phase's
 * `nix-env --set` is the machine's fault, retried, never the commit's). The commit's (an evaluation error, a build error,
 * a refused signature): remembered, not tried again until the branch moves or an operator says
 * retry. The machine's (the nix-daemon, the network, the disk, a timeout): never remembered
 * against the commit, tried again with back-off, and reported as such (`lastError.kind` "machine").
 *
 * The messages are Nix's own (NixOS/nix, the 2.x line Debian and NixOS ship):
 * - `cannot connect to socket at '<path>': Connection refused` / `No such file or directory`:
 *   src/libstore/uds-remote-store.cc → src/libutil/unix-domain-socket.cc `connect()`
 *   (`throw SysError("cannot connect to socket at '%s'", path)`), the nix-daemon restarting or stopped;
 *   reproduced here with Nix 2.8 against a socket nobody listens on.
 * - `unexpected end-of-file`: src/libutil/serialise.cc `FdSource::readUnbuffered` (`throw
 *   EndOfFile("unexpected end-of-file")`), the daemon's connection closed mid-build (daemon killed).
 * - strerror texts of SysError (`No space left on device`, `Too many open files`, `Cannot allocate
 *   memory`) and `std::bad_alloc`: the machine ran out of something.
 * - curl's texts in `unable to download` errors (src/libstore/filetransfer.cc: `curl_easy_strerror`):
 *   `Couldn't resolve host name`, `Couldn't connect to server`, `Timeout was reached`, and HTTP 5xx
 *   answers (`HTTP error 503`) — the network or a cache, not the commit. A 404 stays the commit's
 *   (a wrong URL or hash in the configuration).
 * Anything else (an evaluation or builder error) is the commit's.
 */
export type Fault = 'commit' | 'machine';

const MACHINE_PATTERNS: readonly RegExp[] = [
  /cannot connect to socket at '[^']*'/,
  /\bunexpected end-of-file\b/,
  /\bNo space left on device\b/,
  /\bDisk quota exceeded\b/,
  /\bToo many open files\b/,
  /\bCannot allocate memory\b/,
  /std::bad_alloc/,
  /Couldn't resolve (host|proxy) name|Could not resolve host/,
  /Couldn't connect to server/,
  /Timeout was reached|Connection timed out/,
  /HTTP error 5\d\d/,
];

export interface CommandFailure {
  stderr: string;
  timedOut: boolean;
  signal: string | null;
  spawnError: string | null;
}

/** Whose fault a failed nix command is, and why (for the journal and status); `timeoutSetting` names the limit a timeout hit. */
export function faultOf(r: CommandFailure, timeoutSetting = 'build.timeoutSec'): { fault: Fault; why: string } {
  if (r.spawnError) return { fault: 'machine', why: `nix could not be started (${r.spawnError})` };
  if (r.timedOut) return { fault: 'machine', why: `it timed out (${timeoutSetting})` };
  // Killed from outside (the OOM killer, an operator), not an exit of its own.
  if (r.signal) return { fault: 'machine', why: `nix was killed by ${r.signal}` };
  for (const pattern of MACHINE_PATTERNS) {
    const m = pattern.exec(r.stderr);
    if (m) return { fault: 'machine', why: m[0] };
  }
  return { fault: 'commit', why: 'an evaluation or build error' };
}
