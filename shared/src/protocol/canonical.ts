/**
 * Canonical JSON: object keys sorted by UTF-16 code unit, no whitespace, only JSON values.
 * Both ends sign and verify these exact bytes, so any value JSON cannot round-trip
 * (undefined, NaN, Infinity, functions, cycles) is an error rather than silently dropped.
 */
export function canonicalJson(value: unknown): string {
  return encode(value, new Set());
}

function encode(value: unknown, seen: Set<object>): string {
  if (value === null) return 'null';
  switch (typeof value) {
    case 'string':
    case 'boolean':
      return JSON.stringify(value);
    case 'number':
      if (!Number.isFinite(value)) throw new TypeError(`canonical JSON: non-finite number ${value}`);
      return JSON.stringify(value);
    case 'object': {
      if (seen.has(value)) throw new TypeError('canonical JSON: cycle');
      seen.add(value);
      let out: string;
      if (Array.isArray(value)) {
        out = `[${value.map((v) => encode(v, seen)).join(',')}]`;
      } else {
        const obj = value as Record<string, unknown>;
        const keys = Object.keys(obj).sort();
        out = `{${keys
          .map((k) => {
            if (obj[k] === undefined) throw new TypeError(`canonical JSON: undefined at key ${k}`);
            return `${JSON.stringify(k)}:${encode(obj[k], seen)}`;
          })
          .join(',')}}`;
      }
      seen.delete(value);
      return out;
    }
    default:
      throw new TypeError(`canonical JSON: cannot encode ${typeof value}`);
  }
}
