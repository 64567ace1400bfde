/**
 * A minimal LL-HLS viewer for tests: plain playlist first, then blocking reloads for the next
 * part (`_HLS_msn`/`_HLS_part`), fetching each newly listed part, as one client (its own
 * User-Agent, so the origin counts it as one viewer) until stopped.
 */
export interface LlHlsViewer {
  /** Parts received whole (200). */
  readonly parts: number;
  /** Status of the first request (the one that starts a viewer). */
  readonly firstStatus: Promise<number>;
  /** Non-200 answers after the first request. */
  readonly errors: Array<{ url: string; status: number }>;
  /** Resolves once `n` more parts than now have arrived. */
  moreParts(n: number, timeoutMs?: number): Promise<void>;
  stop(): Promise<void>;
}

/** The next part to ask for: the segment being built (sequence + listed segments), its next part. */
export function nextPart(text: string): { msn: number; part: number; newestPart: string | undefined } {
  const sequence = Number(/#EXT-X-MEDIA-SEQUENCE:(\d+)/.exec(text)?.[1] ?? 0);
  const segments = (text.match(/#EXTINF:/g) ?? []).length;
  const tail = text.slice(Math.max(0, text.lastIndexOf('#EXTINF')));
  const partsAfter = (tail.match(/#EXT-X-PART:/g) ?? []).length;
  const uris = [...text.matchAll(/#EXT-X-PART:[^\n]*URI="([^"]+)"/g)].map((m) => m[1]!);
  return { msn: sequence + segments, part: partsAfter, newestPart: uris.at(-1) };
}

export function watchLlHls(mediaUrl: string, userAgent: string): LlHlsViewer {
  const abort = new AbortController();
  const headers = { 'user-agent': userAgent };
  const errors: Array<{ url: string; status: number }> = [];
  let parts = 0;
  const waiters = new Set<{ at: number; resolve: () => void }>();
  let resolveFirst!: (status: number) => void;
  const firstStatus = new Promise<number>((r) => (resolveFirst = r));
  const get = async (url: string) => {
    const res = await fetch(url, { headers, signal: abort.signal });
    const body = await res.text();
    return { status: res.status, body };
  };
  const run = (async () => {
    const first = await get(mediaUrl);
    resolveFirst(first.status);
    if (first.status !== 200) return;
    let text = first.body;
    const fetched = new Set<string>();
    while (!abort.signal.aborted) {
      const { msn, part, newestPart } = nextPart(text);
      if (newestPart && !fetched.has(newestPart)) {
        fetched.add(newestPart);
        const url = new URL(newestPart, mediaUrl).toString();
        const r = await get(url);
        if (r.status === 200) {
          parts++;
          for (const w of waiters) if (parts >= w.at) w.resolve();
        } else errors.push({ url, status: r.status });
      }
      const url = `${mediaUrl}?_HLS_msn=${msn}&_HLS_part=${part}`;
      const r = await get(url);
      if (r.status === 200) text = r.body;
      else {
        errors.push({ url, status: r.status });
        text = (await get(mediaUrl)).body;
      }
    }
  })().catch((error: unknown) => {
    resolveFirst(0);
    if (!abort.signal.aborted) throw error;
  });
  return {
    get parts() {
      return parts;
    },
    firstStatus,
    errors,
    moreParts(n, timeoutMs = 20_000) {
      return new Promise<void>((resolve, reject) => {
        const w = {
          at: parts + n,
          resolve: () => {
            clearTimeout(timer);
            waiters.delete(w);
            resolve();
          },
        };
        const timer = setTimeout(() => {
          waiters.delete(w);
          reject(new Error(`${userAgent}: fewer than ${n} parts in ${timeoutMs} ms (errors: ${JSON.stringify(errors.slice(-3))})`));
        }, timeoutMs);
        waiters.add(w);
        run.catch(reject);
      });
    },
    async stop() {
      abort.abort();
      await run;
    },
  };
}
