/**
 * `npm run demo`: pullnix doing its job on this machine, narrated. On the system test bed (a
 * throw-away systemd container with a real Nix and an SSH git server inside, see lib/bed.ts):
 * a good commit is deployed, then a commit whose new service crash-loops is rolled back by the checks; it ends with
 * `pullnix-ctl status`, `pullnix-ctl history` and the pullnix journal. Needs root. Cleans up after
 * itself, also on Ctrl-C.
 */
import { TestBed, short, shortPath, type JournalEntry } from './lib/bed.ts';
import { CRASH_LOOP_UNIT } from './lib/units.ts';

const t0 = Date.now();
const useColor = process.stdout.isTTY && !process.env.NO_COLOR;
const paint = (code: string, s: string) => (useColor ? `\x1b[${code}m${s}\x1b[0m` : s);
const clock = (at = Date.now()) => paint('2', `[+${((at - t0) / 1000).toFixed(1).padStart(5)}s]`);
const say = (s: string) => console.log(`${clock()} ${paint('1', s)}`);
const note = (s: string) => console.log(`${clock()}   ${s}`);

if (process.getuid?.() !== 0) {
  console.error('npm run demo needs root: it boots a systemd container (systemd-nspawn) with its own /nix and cgroup.');
  console.error('Run it as root, e.g. `sudo npm run demo`. Needs: apt-get install -y systemd-container nix-bin openssh-server git');
  process.exit(2);
}

const machine: { bed: TestBed | null } = { bed: null };
let cleaning: Promise<void> | null = null;
const cleanup = () => (cleaning ??= (machine.bed ? machine.bed.destroy() : Promise.resolve()).catch((e: Error) => console.error(`cleanup: ${e.message}`)));
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    console.log(`\n${clock()} ${signal}: stopping the machine and removing it...`);
    void cleanup().then(() => process.exit(130));
  });
}

/** Prints the pullnix journal as it grows (info and above), one line per event. */
class Follower {
  private seen = 0;
  private timer: NodeJS.Timeout | null = null;
  private busy = false;
  private readonly bed: TestBed;
  constructor(bed: TestBed) {
    this.bed = bed;
  }
  start(): void {
    this.timer = setInterval(() => void this.tick(), 300);
  }
  async tick(): Promise<void> {
    if (this.busy || !this.bed.container.running) return;
    this.busy = true;
    try {
      const entries = await this.bed.journal();
      for (const e of entries.slice(this.seen)) print(e);
      this.seen = entries.length;
    } catch {
      // the machine may be between states; the next tick catches up
    } finally {
      this.busy = false;
    }
  }
  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    while (this.busy) await new Promise((r) => setTimeout(r, 50));
    await this.tick();
  }
}

function print(e: JournalEntry): void {
  if (!e.event || e.priority > 6 || e.event === 'request.accepted') return;
  const who = e.unit.replace(/^pullnix-|\.service$/g, '').padEnd(8);
  const color = e.priority <= 3 ? '31' : e.priority === 4 ? '33' : '36';
  const text = e.message.replace(/\b([0-9a-f]{40})\b/g, (c) => short(c)).replace(/\/nix\/store\/[a-z0-9]{32}-[^\s"]+/g, (p) => shortPath(p));
  console.log(`${clock(e.at.getTime())}     ${paint('2', who)} ${paint(color, text.length > 160 ? `${text.slice(0, 157)}...` : text)}`);
}

async function main(): Promise<void> {
  say('pullnix demo: a NixOS-like machine that deploys itself from git');
  note('real here: systemd (PID 1 of a container), Nix and its system profile, sshd + git with a read-only deploy key,');
  note('the pullnix daemons and units. Stand-in: the content of switch-to-configuration (no real NixOS, no nixpkgs).');
  const bed = await TestBed.create({ name: 'demo', verifyTimeoutSec: 8, log: (l) => note(paint('2', l)) });
  machine.bed = bed;

  say('1. Install the machine from the first commit and boot it');
  const c1 = await bed.commit({ label: 'gen1' }, 'initial configuration');
  await bed.boot();
  const top1 = await bed.install(c1);
  const follower = new Follower(bed);
  follower.start();
  await bed.waitForPullnix();
  note(`pullnix is up; the watcher adopts the installed commit ${short(c1)} as its first deployment`);
  await bed.waitForOutcome(c1);
  await bed.waitForPullnix();

  say('2. Someone pushes a good commit: pullnix builds, activates, verifies over SSH, commits');
  const c2 = await bed.commit(
    {
      label: 'gen2',
      extraUnits: {
        'motd.service': '[Unit]\nDescription=say hello\n\n[Service]\nType=oneshot\nRemainAfterExit=yes\nExecStart=/bin/echo hello from generation 2\n\n[Install]\nWantedBy=multi-user.target\n',
      },
    },
    'add a motd service',
  );
  const good = await bed.waitForOutcome(c2);
  await bed.waitForPullnix();
  await follower.tick();
  note(`=> ${good.outcome}: generation ${good.generation}, boot default ${shortPath(bed.bootDefault() ?? '-')}, live ${shortPath(await bed.liveSystem())}`);

  say('3. Someone pushes a commit whose new service crash-loops: the failed-units check rolls it back');
  const c3 = await bed.commit({ label: 'gen3-crashy', extraUnits: { 'crashy.service': CRASH_LOOP_UNIT } }, 'add crashy.service');
  const bad = await bed.waitForOutcome(c3);
  await bed.waitForPullnix();
  await follower.stop();
  note(`=> ${bad.outcome}: ${bad.error?.message.split('\n')[0] ?? '-'}`);
  note(`   checks: ${(bad.checks ?? []).map((c) => `${c.name}=${c.passed === null ? 'not run' : c.passed ? 'passed' : 'FAILED'}`).join(', ')}`);
  note(`   live system is back on ${shortPath(await bed.liveSystem())}`);
  note(`   boot default never moved: ${shortPath(bed.bootDefault() ?? '-')} (the last good system, ${shortPath(good.toplevel)})`);
  void top1;

  say('4. What an operator sees: pullnix-ctl status');
  console.log(indent((await bed.ctl(['status'])).stdout));
  say('   pullnix-ctl history');
  console.log(indent((await bed.ctl(['history'])).stdout));
  say('   journalctl -u pullnix-executor -u pullnix-watcher -p info (this boot)');
  const journal = await bed.container.exec(['journalctl', '--no-pager', '-o', 'short-precise', '-p', 'info', '-u', 'pullnix-executor', '-u', 'pullnix-watcher', '-b']);
  console.log(indent(journal.stdout.split('\n').filter((l) => !/ request\.accepted /.test(l)).join('\n')));
  say('   journalctl -u pullnix-executor -p warning: the list of problems');
  console.log(indent((await bed.container.exec(['journalctl', '--no-pager', '-o', 'short-precise', '-p', 'warning', '-u', 'pullnix-executor', '-b'])).stdout));
}

function indent(text: string): string {
  return text
    .trimEnd()
    .split('\n')
    .map((l) => `      ${l}`)
    .join('\n');
}

let code = 0;
try {
  await main();
  say('done; removing the machine');
} catch (error) {
  code = 1;
  console.error(`\ndemo failed: ${(error as Error).stack ?? String(error)}`);
  if (machine.bed) {
    const { path } = await machine.bed.dumpJournal('demo');
    console.error(`the machine's journal: ${path}`);
    cleaning ??= machine.bed.destroy({ keepLogs: true });
  }
} finally {
  await cleanup();
}
process.exit(code);
