import type { JSONSchemaType } from 'ajv';

export type Role = 'watcher' | 'operator';

/**
 * One protocol method: its name, who may call it, the JSON Schema of its params (typed against
 * the TypeScript type, so the two cannot drift) and, as a phantom, its result type.
 */
export interface MethodSpec<Name extends string, Params, Result> {
  readonly name: Name;
  readonly roles: readonly Role[];
  readonly params: JSONSchemaType<Params>;
  readonly summary: string;
  /** Phantom field: never set, only carries the result type. */
  readonly __result?: Result;
}

export function defineMethod<Params, Result>() {
  return <Name extends string>(spec: Omit<MethodSpec<Name, Params, Result>, '__result'>): MethodSpec<Name, Params, Result> => spec;
}

export type ParamsOf<M> = M extends MethodSpec<string, infer P, unknown> ? P : never;
export type ResultOf<M> = M extends MethodSpec<string, infer _P, infer R> ? R : never; // `unknown` params would never match: JSONSchemaType<P> is invariant in P
