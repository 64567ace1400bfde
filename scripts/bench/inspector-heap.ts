/**
 * A minimal Chrome DevTools Protocol client for a server started with `--inspect=127.0.0.1:0`:
 * forces a full GC, reads `process.memoryUsage()` and takes heap snapshots summarised by
 * constructor, so a bench can tell a V8 heap that grows per round (a leak) from RSS the
 * allocator keeps (not a leak). Benchmarks only: the server itself needs no change for it.
 */

export interface HeapFigures {
  heapUsedMb: number;
  heapTotalMb: number;
  externalMb: number;
  arrayBuffersMb: number;
  rssMb: number;
}

/** Objects of one kind in a heap snapshot: `type:name` (e.g. `object:LiveSession`). */
export interface HeapClass {
  key: string;
  count: number;
  selfBytes: number;
}

export class InspectorHeap {
  readonly #ws: WebSocket;
  #nextId = 1;
  readonly #pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  #chunks: string[] | undefined;

  private constructor(ws: WebSocket) {
    this.#ws = ws;
    ws.addEventListener('message', (ev) => {
      const msg = JSON.parse(String(ev.data)) as { id?: number; result?: unknown; error?: { message: string }; method?: string; params?: { chunk?: string } };
      if (msg.method === 'HeapProfiler.addHeapSnapshotChunk' && this.#chunks) this.#chunks.push(msg.params?.chunk ?? '');
      if (msg.id === undefined) return;
      const p = this.#pending.get(msg.id);
      this.#pending.delete(msg.id);
      if (msg.error) p?.reject(new Error(msg.error.message));
      else p?.resolve(msg.result);
    });
  }

  /** The inspector URL from the server's stderr ("Debugger listening on ws://…"). */
  static urlFrom(output: string): string | undefined {
    return /Debugger listening on (ws:\/\/\S+)/.exec(output)?.[1];
  }

  static async connect(url: string): Promise<InspectorHeap> {
    const ws = new WebSocket(url);
    await new Promise<void>((resolve, reject) => {
      ws.addEventListener('open', () => resolve(), { once: true });
      ws.addEventListener('error', () => reject(new Error(`inspector: cannot connect to ${url}`)), { once: true });
    });
    const client = new InspectorHeap(ws);
    await client.#send('HeapProfiler.enable');
    return client;
  }

  #send(method: string, params: Record<string, unknown> = {}): Promise<unknown> {
    const id = this.#nextId++;
    return new Promise((resolve, reject) => {
      this.#pending.set(id, { resolve, reject });
      this.#ws.send(JSON.stringify({ id, method, params }));
    });
  }

  /** Full GC (twice: weak callbacks of the first free more on the second), then the figures. */
  async measure(): Promise<HeapFigures> {
    await this.#send('HeapProfiler.collectGarbage');
    await this.#send('HeapProfiler.collectGarbage');
    const res = (await this.#send('Runtime.evaluate', { expression: 'JSON.stringify(process.memoryUsage())', returnByValue: true })) as { result: { value: string } };
    const m = JSON.parse(res.result.value) as { rss: number; heapTotal: number; heapUsed: number; external: number; arrayBuffers: number };
    const mb = (n: number) => Math.round((n / 2 ** 20) * 10) / 10;
    return { heapUsedMb: mb(m.heapUsed), heapTotalMb: mb(m.heapTotal), externalMb: mb(m.external), arrayBuffersMb: mb(m.arrayBuffers), rssMb: mb(m.rss) };
  }

  /** A heap snapshot (taken after a GC), summarised as count and self size per constructor. */
  async snapshotSummary(): Promise<Map<string, HeapClass>> {
    this.#chunks = [];
    await this.#send('HeapProfiler.takeHeapSnapshot', { reportProgress: false });
    const text = this.#chunks.join('');
    this.#chunks = undefined;
    return summarise(JSON.parse(text) as RawSnapshot);
  }

  close(): void {
    this.#ws.close();
  }
}

interface RawSnapshot {
  snapshot: { meta: { node_fields: string[]; node_types: [string[], ...unknown[]] } };
  nodes: number[];
  strings: string[];
}

function summarise(s: RawSnapshot): Map<string, HeapClass> {
  const fields = s.snapshot.meta.node_fields;
  const types = s.snapshot.meta.node_types[0];
  const width = fields.length;
  const iType = fields.indexOf('type');
  const iName = fields.indexOf('name');
  const iSize = fields.indexOf('self_size');
  const out = new Map<string, HeapClass>();
  for (let i = 0; i < s.nodes.length; i += width) {
    const type = types[s.nodes[i + iType]!] ?? '?';
    // Strings, code and numbers are keyed by type only: their names are their contents.
    const named = type === 'object' || type === 'closure' || type === 'native';
    const key = named ? `${type}:${s.strings[s.nodes[i + iName]!] ?? '?'}` : type;
    const e = out.get(key) ?? { key, count: 0, selfBytes: 0 };
    e.count++;
    e.selfBytes += s.nodes[i + iSize]!;
    out.set(key, e);
  }
  return out;
}

/** The kinds whose count grew most from `a` to `b`. */
export function snapshotGrowth(a: Map<string, HeapClass>, b: Map<string, HeapClass>, top = 15): Array<{ key: string; countDelta: number; bytesDelta: number; countAfter: number }> {
  const rows = [...b.values()].map((e) => {
    const before = a.get(e.key);
    return { key: e.key, countDelta: e.count - (before?.count ?? 0), bytesDelta: e.selfBytes - (before?.selfBytes ?? 0), countAfter: e.count };
  });
  return rows.sort((x, y) => y.countDelta - x.countDelta).slice(0, top);
}
