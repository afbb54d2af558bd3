/**
 * The protocol's JSON Schema validators, compiled ahead of time from envelopeSchema and each
 * method's params schema (shared/scripts/generate-validators.ts writes shared/src/generated/):
 * the executor validates every request without loading ajv's compiler.
 */
import type { ErrorObject } from 'ajv';
import * as generated from '../generated/protocol-validators.ts';
import { METHODS, paramsExportName, type MethodName } from './methods/index.ts';

/** What ajv's compiled (and standalone-generated) validate functions are: a predicate that leaves its errors on itself. */
export interface Validator {
  (data: unknown): boolean;
  errors?: ErrorObject[] | null;
}

export const validateEnvelope = generated.envelope as unknown as Validator;

const byName = generated as unknown as Record<string, Validator | undefined>;

/** One validator per method; a method without a generated validator is a stale build, named at load. */
export const validateParams = Object.fromEntries(
  Object.keys(METHODS).map((name) => {
    const validate = byName[paramsExportName(name)];
    if (typeof validate !== 'function') throw new Error(`no generated params validator for method ${name}: run npm run generate`);
    return [name, validate];
  }),
) as Record<MethodName, Validator>;
