/**
 * A cheap LL-HLS load generator, so that thousands of viewers fit next to the servers on a small
 * machine: each client is one keep-alive TCP socket speaking just enough HTTP/1.1 (GET, a
 * Content-Length body, no chunking, no gzip), and scans playlists with indexOf instead of
 * parsing them. Two modes:
 *
 * - `live`: like a player, a plain media playlist first, then blocking reloads
 *   (`_HLS_msn`/`_HLS_part` for the next part) and a GET of each part listed since the last one. Receipt
 *   times per part URI are reported; the caller knows when each part was listed.
 * - `replay` (reference): the same requests on a fixed schedule against static files (nginx):
 *   at each part's time, the playlist snapshot then the part; delay = receipt − schedule.
 *
 * Run as a process: `node llhls-loadgen.ts <json options>`; prints one JSON line when done.
 */
import net from 'node:net';

interface Pending {
  resolve: (r: { status: number; body: Buffer }) => void;
}

/** One keep-alive HTTP/1.1 connection; one request at a time (as a player's loader does). */
export class RawHttpClient {
  readonly #host: string;
  readonly #port: number;
  #socket: net.Socket | undefined;
  #pending: Pending | undefined;
  #buf: Buffer = Buffer.alloc(0);
  #need = -1;
  #status = 0;
  #headerEnd = -1;

  constructor(host: string, port: number) {
    this.#host = host;
    this.#port = port;
  }

  get(path: string): Promise<{ status: number; body: Buffer }> {
    return new Promise((resolve) => {
      this.#pending = { resolve };
      const socket = this.#socket ?? this.#connect();
      socket.write(`GET ${path} HTTP/1.1\r\nHost: ${this.#host}:${this.#port}\r\nUser-Agent: llhls-loadgen\r\n\r\n`);
    });
  }

  close(): void {
    this.#socket?.destroy();
  }

  #connect(): net.Socket {
    const socket = net.connect(this.#port, this.#host);
    socket.setNoDelay(true);
    socket.on('data', (d: Buffer) => this.#onData(d));
    const fail = () => {
      if (this.#socket === socket) this.#socket = undefined;
      this.#buf = Buffer.alloc(0);
      this.#headerEnd = -1;
      const p = this.#pending;
      this.#pending = undefined;
      p?.resolve({ status: 0, body: Buffer.alloc(0) });
    };
    socket.on('error', fail);
    socket.on('close', fail);
    this.#socket = socket;
    return socket;
  }

  #onData(d: Buffer): void {
    this.#buf = this.#buf.length === 0 ? d : Buffer.concat([this.#buf, d]);
    if (this.#headerEnd < 0) {
      const end = this.#buf.indexOf('\r\n\r\n');
      if (end < 0) return;
      const head = this.#buf.subarray(0, end).toString('latin1');
      this.#status = Number(head.slice(9, 12));
      const m = /\r\ncontent-length:\s*(\d+)/i.exec(head);
      this.#need = m ? Number(m[1]) : 0;
      this.#headerEnd = end + 4;
    }
    if (this.#buf.length < this.#headerEnd + this.#need) return;
    const body = this.#buf.subarray(this.#headerEnd, this.#headerEnd + this.#need);
    const rest = this.#buf.subarray(this.#headerEnd + this.#need);
    this.#buf = rest.length > 0 ? Buffer.from(rest) : Buffer.alloc(0);
    this.#headerEnd = -1;
    const p = this.#pending;
    this.#pending = undefined;
    p?.resolve({ status: this.#status, body });
  }
}

/** Next part to block on and the newest part listed, by scanning (no full parse). */
export function scanPlaylist(text: string): { msn: number; part: number; newest: string | undefined } {
  const seqAt = text.indexOf('#EXT-X-MEDIA-SEQUENCE:');
  const sequence = seqAt >= 0 ? parseInt(text.slice(seqAt + 22, seqAt + 40), 10) : 0;
  let segments = 0;
  let lastInf = -1;
  for (let i = text.indexOf('#EXTINF:'); i >= 0; i = text.indexOf('#EXTINF:', i + 8)) {
    segments++;
    lastInf = i;
  }
  let partsAfter = 0;
  for (let i = text.indexOf('#EXT-X-PART:', Math.max(0, lastInf)); i >= 0; i = text.indexOf('#EXT-X-PART:', i + 12)) partsAfter++;
  const lastPart = text.lastIndexOf('#EXT-X-PART:');
  let newest: string | undefined;
  if (lastPart >= 0) {
    const u = text.indexOf('URI="', lastPart);
    if (u >= 0) newest = text.slice(u + 5, text.indexOf('"', u + 5));
  }
  return { msn: sequence + segments, part: partsAfter, newest };
}

/**
 * Parts listed after `last` (a part URI), oldest first: a player that fell behind fetches each.
 * Only the newest when `last` is not listed (the first playlist, or the client fell out of it).
 */
export function partsAfter(text: string, last: string, newest: string): string[] {
  const at = last ? text.indexOf(`URI="${last}"`) : -1;
  if (at < 0) return [newest];
  const out: string[] = [];
  for (let i = text.indexOf('#EXT-X-PART:', at); i >= 0; i = text.indexOf('#EXT-X-PART:', i + 12)) {
    const u = text.indexOf('URI="', i);
    if (u >= 0) out.push(text.slice(u + 5, text.indexOf('"', u + 5)));
  }
  return out;
}

export interface LiveOptions {
  mode: 'live';
  /** Media playlist URLs; client i follows urls[i % n]. */
  urls: string[];
  clients: number;
  /** Clients start spread over this many ms. */
  rampMs: number;
  /** Stop at this wall time (ms). */
  until: number;
}

export interface ReplayOptions {
  mode: 'replay';
  base: string;
  clients: number;
  /** Wall time (ms) of schedule offset 0. */
  t0: number;
  schedule: Array<{ playlist: string; part: string; at: number }>;
}

/** Per URL index: receipt times (ms) per part URI, and error counts. */
export interface LoadgenReport {
  receipts: Array<Record<string, number[]>>;
  errors: number[];
  /** Error answers by status (0: the connection failed), over every URL. */
  statuses: Record<string, number>;
  requests: number;
}

async function runLive(o: LiveOptions): Promise<LoadgenReport> {
  const report: LoadgenReport = { receipts: o.urls.map(() => ({})), errors: o.urls.map(() => 0), statuses: {}, requests: 0 };
  const failed = (k: number, status: number) => {
    report.errors[k]!++;
    report.statuses[status] = (report.statuses[status] ?? 0) + 1;
  };
  const one = async (i: number) => {
    await new Promise((r) => setTimeout(r, (i * o.rampMs) / o.clients));
    const k = i % o.urls.length;
    const url = new URL(o.urls[k]!);
    const client = new RawHttpClient(url.hostname, Number(url.port));
    const receipts = report.receipts[k]!;
    const dir = url.pathname.slice(0, url.pathname.lastIndexOf('/') + 1);
    let text: string | undefined;
    let fetched = '';
    while (Date.now() < o.until) {
      let path = url.pathname;
      if (text !== undefined) {
        const s = scanPlaylist(text);
        if (s.newest && s.newest !== fetched) {
          for (const part of partsAfter(text, fetched, s.newest)) {
            const r = await client.get(dir + part);
            report.requests++;
            if (r.status === 200) (receipts[part] ??= []).push(Date.now());
            else failed(k, r.status);
          }
          fetched = s.newest;
        }
        path = `${url.pathname}?_HLS_msn=${s.msn}&_HLS_part=${s.part}`;
      }
      const r = await client.get(path);
      report.requests++;
      if (r.status === 200) text = r.body.toString('latin1');
      else {
        failed(k, r.status);
        text = undefined;
        await new Promise((res) => setTimeout(res, 100));
      }
    }
    client.close();
  };
  await Promise.all(Array.from({ length: o.clients }, (_, i) => one(i)));
  return report;
}

async function runReplay(o: ReplayOptions): Promise<LoadgenReport> {
  const report: LoadgenReport = { receipts: [{}], errors: [0], statuses: {}, requests: 0 };
  const url = new URL(o.base);
  const clients = Array.from({ length: o.clients }, () => new RawHttpClient(url.hostname, Number(url.port)));
  const receipts = report.receipts[0]!;
  // One request at a time per client: a client still busy with the last part queues the next.
  const chains = clients.map(() => Promise.resolve());
  const tick = (step: { playlist: string; part: string }) => {
    clients.forEach((c, i) => {
      chains[i] = chains[i]!.then(async () => {
        const p = await c.get(`${url.pathname}${step.playlist}`);
        const r = await c.get(`${url.pathname}${step.part}`);
        report.requests += 2;
        if (p.status === 200 && r.status === 200) (receipts[step.part] ??= []).push(Date.now());
        else {
          report.errors[0]!++;
          const status = p.status === 200 ? r.status : p.status;
          report.statuses[status] = (report.statuses[status] ?? 0) + 1;
        }
      });
    });
  };
  for (const step of o.schedule) {
    const wait = o.t0 + step.at - Date.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    tick(step);
  }
  await Promise.all(chains);
  for (const c of clients) c.close();
  return report;
}

if (import.meta.main) {
  const o = JSON.parse(process.argv[2] ?? '{}') as LiveOptions | ReplayOptions;
  const report = o.mode === 'live' ? await runLive(o) : await runReplay(o);
  // A pipe is written asynchronously: exit only once the whole report is out.
  process.stdout.write(`${JSON.stringify(report)}\n`, () => process.exit(0));
}
