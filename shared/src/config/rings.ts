/**
 * pullnix-promote's two files (docs/rings.md): `rings.json` in the configuration repository and
 * its own configuration. Shapes and defaults live in shared/schema/rings.schema.json and
 * promote.schema.json; the validators are generated ahead of time like the config's.
 */
import { validatePromoteConfig, validateRingsFile } from '../generated/rings-validators.ts';
import type { Validator } from '../protocol/validators.ts';
import { ConfigError, describeConfigError, type AllowedSigner } from './config.ts';

export interface RingSpec {
  name: string;
  /** Resolved: rings/<name> when unset. */
  branch: string;
  hosts: string[];
  soakSec: number;
  /** Resolved: the number of hosts when unset. */
  successes: number;
  maxFailures: number;
}

export interface RingsFile {
  rings: RingSpec[];
}

export interface PromoteConfig {
  repository: { url: string; firstRingBranch: string; sshKeyFile: string | null; knownHostsFile: string | null };
  prometheus: { url: string; hostLabel: string; timeoutSec: number };
  trust: { allowedSigners: AllowedSigner[]; openpgpKeys: string[] };
  workDir: string;
}

function parseWith(validate: Validator, text: string, file: string): unknown {
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (cause) {
    throw new ConfigError(file, [`not valid JSON: ${(cause as Error).message}`], { cause });
  }
  if (!validate(data)) throw new ConfigError(file, (validate.errors ?? []).map(describeConfigError));
  return data;
}

/** rings.json, with branches and success counts resolved; names, branches and hosts unique across rings. */
export function parseRingsFile(text: string, file = 'rings.json'): RingsFile {
  const raw = parseWith(validateRingsFile as unknown as Validator, text, file) as { rings: (Omit<RingSpec, 'branch' | 'successes'> & { branch: string | null; successes: number | null })[] };
  const rings = raw.rings.map((r) => ({ ...r, branch: r.branch ?? `rings/${r.name}`, successes: r.successes ?? r.hosts.length }));
  const problems: string[] = [];
  const seen = { name: new Map<string, number>(), branch: new Map<string, number>(), host: new Map<string, number>() };
  rings.forEach((r, i) => {
    for (const [kind, value] of [['name', r.name], ['branch', r.branch]] as const) {
      const j = seen[kind].get(value);
      if (j !== undefined) problems.push(`rings.${i}.${kind}: ${JSON.stringify(value)} is also ring ${j}'s`);
      seen[kind].set(value, i);
    }
    for (const h of r.hosts) {
      const j = seen.host.get(h);
      if (j !== undefined) problems.push(`rings.${i}.hosts: ${JSON.stringify(h)} is also in ring ${j} (${rings[j]!.name}); a host belongs to one ring`);
      seen.host.set(h, i);
    }
    if (r.successes > r.hosts.length) problems.push(`rings.${i}.successes: ${r.successes} is more than the ring's ${r.hosts.length} hosts; the ring could never be healthy`);
  });
  if (problems.length > 0) throw new ConfigError(file, problems);
  return { rings };
}

export function parsePromoteConfig(text: string, file = '<promote config>'): PromoteConfig {
  const raw = parseWith(validatePromoteConfig as unknown as Validator, text, file) as PromoteConfig;
  const trust = { allowedSigners: raw.trust.allowedSigners ?? [], openpgpKeys: raw.trust.openpgpKeys ?? [] };
  if (trust.allowedSigners.length + trust.openpgpKeys.length === 0) {
    throw new ConfigError(file, ['trust: no key; rings.json is read only from a commit signed by a trusted key (trust.allowedSigners or trust.openpgpKeys)']);
  }
  return { ...raw, trust };
}
