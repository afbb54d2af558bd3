import type { JSONSchemaType } from 'ajv';

/**
 * The schema of a required field of type `T | null`: `schema` with `nullable: true` (and null among
 * its enum, which ajv requires). ajv's JSONSchemaType allows `nullable` only on optional fields, so
 * the result is typed as the schema of `T | null` without the keyword; `schema` itself is checked
 * against T, enum and all.
 */
export function orNull<T>(schema: JSONSchemaType<T> & { enum?: readonly NoInfer<T>[] }): JSONSchemaType<T> & { nullable?: false } {
  const nullable: Record<string, unknown> = { ...schema, nullable: true };
  if (Array.isArray(nullable.enum)) nullable.enum = [...(nullable.enum as unknown[]), null];
  return nullable as JSONSchemaType<T> & { nullable?: false };
}
