/**
 * Prometheus' HTTP API, instant queries only: GET <url>/api/v1/query?query=… answers
 * {"status":"success","data":{"resultType":"vector","result":[{"metric":{labels},"value":[t,"v"]}]}}
 * (Prometheus docs/querying/api.md, "Instant queries", "Instant vectors"); an error answers
 * {"status":"error","errorType":…,"error":…} with a 4xx/5xx status.
 */
export interface Sample {
  labels: Record<string, string>;
  value: number;
}

export type Query = (promql: string) => Promise<Sample[]>;

export class PrometheusError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'PrometheusError';
  }
}

export function prometheusQuery(baseUrl: string, timeoutMs: number): Query {
  const endpoint = `${baseUrl.replace(/\/+$/, '')}/api/v1/query`;
  return async (promql) => {
    let response: Response;
    try {
      response = await fetch(endpoint, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ query: promql }),
        signal: AbortSignal.timeout(timeoutMs),
      });
    } catch (cause) {
      throw new PrometheusError(`Prometheus at ${endpoint} did not answer: ${(cause as Error).message}`, { cause });
    }
    const text = await response.text();
    let body: { status?: string; error?: string; errorType?: string; data?: { resultType?: string; result?: { metric: Record<string, string>; value: [number, string] }[] } };
    try {
      body = JSON.parse(text) as typeof body;
    } catch (cause) {
      throw new PrometheusError(`Prometheus at ${endpoint} answered ${response.status} with something that is not JSON: ${text.slice(0, 200)}`, { cause });
    }
    if (body.status !== 'success') throw new PrometheusError(`Prometheus refused ${JSON.stringify(promql)}: ${body.errorType ?? response.status}: ${body.error ?? text.slice(0, 200)}`);
    if (body.data?.resultType !== 'vector' || !Array.isArray(body.data.result)) throw new PrometheusError(`Prometheus answered ${JSON.stringify(promql)} with a ${body.data?.resultType ?? 'missing'} result, not a vector`);
    return body.data.result.map((r) => ({ labels: r.metric, value: Number(r.value[1]) }));
  };
}

/** A PromQL string literal. */
export function promString(s: string): string {
  return JSON.stringify(s);
}
