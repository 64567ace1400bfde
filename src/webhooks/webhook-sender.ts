import http from 'node:http';
import https from 'node:https';
import type { LookupFunction } from 'node:net';

export interface SendRequest {
  url: URL;
  body: string;
  headers: Record<string, string>;
  timeoutMs: number;
  /** The guard's lookup: refuses private addresses at connect time. */
  lookup: LookupFunction;
}

export type SendResult = { ok: true; status: number } | { ok: false; status: number | null; error: string };

const MAX_RESPONSE_BYTES = 64 * 1024;

/**
 * One POST. 2xx is success; anything else (including a redirect, which is never followed) is a
 * failure for the caller to retry. The response body is read (up to a limit) and discarded.
 */
export function sendWebhook(req: SendRequest): Promise<SendResult> {
  return new Promise((resolve) => {
    const client = req.url.protocol === 'https:' ? https : http;
    let settled = false;
    const done = (result: SendResult) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve(result);
    };
    const request = client.request(
      req.url,
      {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          'content-length': String(Buffer.byteLength(req.body)),
          'user-agent': 'Tributary-Webhooks/1',
          ...req.headers,
        },
        lookup: req.lookup,
        // One connection per delivery: a pooled socket would skip the lookup (and its check).
        agent: false,
      },
      (res) => {
        const status = res.statusCode ?? 0;
        let received = 0;
        res.on('data', (chunk: Buffer) => {
          received += chunk.length;
          if (received > MAX_RESPONSE_BYTES) res.destroy();
        });
        const finish = () => {
          if (status >= 200 && status < 300) done({ ok: true, status });
          else if (status >= 300 && status < 400) {
            done({ ok: false, status, error: `redirect (${status}) not followed` });
          } else done({ ok: false, status, error: `target answered ${status}` });
        };
        res.on('end', finish);
        res.on('close', finish);
        res.on('error', finish);
      },
    );
    const timer = setTimeout(() => {
      request.destroy(new Error(`no answer within ${req.timeoutMs} ms`));
    }, req.timeoutMs);
    request.on('error', (error: Error) => done({ ok: false, status: null, error: error.message }));
    request.end(req.body);
  });
}
