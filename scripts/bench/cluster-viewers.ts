/**
 * Scale-out figures: blocking-reload LL-HLS viewers on one node versus spread over three nodes
 * that share one Redis (nodes B and C relay the stream from its owner A), in one invocation, plus
 * memory per live session and per waiting viewer (process RSS deltas).
 *
 *   node scripts/bench/cluster-viewers.ts [--counts 60,150] [--window 10] [--clients-per-loadgen 250]
 *
 * Viewers run in load-generator processes (this script with `--loadgen`), the same number for
 * both layouts, each client following one node's copy of the rendition with `_HLS_msn`/`_HLS_part`
 * and fetching every new part (clients are dealt to the nodes in turn). A probe client on the
 * owner records when each part is first listed; part delivery delay = a client has the part's
 * last byte − the probe saw it listed. All nodes run on this machine: the three-node figures
 * show what relaying costs and that coalescing holds (each relay node asks the owner once per
 * part, whatever its viewer count), not what three machines would give.
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import { parseArgs } from 'node:util';
import { startServer, createLiveInput, type TestServer } from '../../test/helpers/server.ts';
import { startTestRedis } from '../../test/helpers/redis.ts';
import { parseMaster } from '../../test/helpers/probe.ts';
import { printTable, sleep } from './bench-lib.ts';
import { followParts, getText, paintedClip, percentile, publishPainted } from './latency-lib.ts';

const { values } = parseArgs({
  options: {
    counts: { type: 'string', default: '60,150' },
    window: { type: 'string', default: '10' },
    'clients-per-loadgen': { type: 'string', default: '250' },
    loadgen: { type: 'boolean', default: false },
    urls: { type: 'string', default: '' },
    clients: { type: 'string', default: '0' },
    seconds: { type: 'string', default: '0' },
  },
});
const windowS = Number(values.window);

/** Load generator (child process): clients dealt over `urls` in turn; prints receipts per node index. */
async function loadgen(urls: string[], clients: number, seconds: number): Promise<void> {
  const per = urls.map(() => ({ receipts: {} as Record<string, number[]>, playlistErrors: 0, partErrors: 0 }));
  const abort = new AbortController();
  const one = async (i: number) => {
    await sleep((i * 1000) / clients);
    const url = urls[i % urls.length]!;
    const report = per[i % urls.length]!;
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const queue: string[] = [];
    let busy = false;
    const drain = async () => {
      if (busy) return;
      busy = true;
      while (queue.length > 0 && !abort.signal.aborted) {
        const uri = queue.shift()!;
        const r = await getBytes(new URL(uri, url).toString(), agent);
        if (r.status !== 200) report.partErrors++;
        else (report.receipts[uri] ??= []).push(r.at);
      }
      busy = false;
    };
    const s = await followParts(url, abort.signal, (p) => {
      queue.push(p.uri);
      void drain();
    });
    report.playlistErrors += s.errors;
    agent.destroy();
  };
  const all = Array.from({ length: clients }, (_, i) => one(i));
  await sleep(seconds * 1000);
  abort.abort();
  await Promise.all(all);
  process.stdout.write(`${JSON.stringify(per)}\n`);
}

function getBytes(url: string, agent: http.Agent): Promise<{ status: number; at: number }> {
  return new Promise((resolve) => {
    const req = http.get(url, { agent }, (res) => {
      res.on('data', () => {});
      res.on('end', () => resolve({ status: res.statusCode ?? 0, at: Date.now() }));
      res.on('error', () => resolve({ status: 0, at: Date.now() }));
    });
    req.on('error', () => resolve({ status: 0, at: Date.now() }));
  });
}

if (values.loadgen) {
  await loadgen(values.urls.split(','), Number(values.clients), Number(values.seconds));
  process.exit(0);
}

function rssBytes(pid: number): number {
  const line = readFileSync(`/proc/${pid}/status`, 'utf8').split('\n').find((l) => l.startsWith('VmRSS:'));
  return Number(line?.match(/(\d+)/)?.[1] ?? 0) * 1024;
}

interface Receipts {
  receipts: Record<string, number[]>;
  playlistErrors: number;
  partErrors: number;
}

/**
 * Runs `clients` viewers dealt over `urls` in turn, in as many load-generator processes as the
 * count needs (the same for one node or three); resolves with receipts per URL.
 */
function viewers(urls: string[], clients: number, seconds: number): Promise<Receipts[]> {
  const procs = Math.max(1, Math.ceil(clients / Number(values['clients-per-loadgen'])));
  const runs = Array.from({ length: procs }, (_, i) => {
    const share = Math.floor(clients / procs) + (i < clients % procs ? 1 : 0);
    const child = spawn(process.execPath, [import.meta.filename, '--loadgen', '--urls', urls.join(','), '--clients', String(share), '--seconds', String(seconds)], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      out += d;
    });
    return new Promise<string>((resolve) => child.on('exit', () => resolve(out)));
  });
  return Promise.all(runs).then((outs) => {
    const all: Receipts[] = urls.map(() => ({ receipts: {}, playlistErrors: 0, partErrors: 0 }));
    for (const text of outs) {
      const per = JSON.parse(text.trim().split('\n').at(-1) ?? '[]') as Receipts[];
      per.forEach((r, i) => {
        for (const [uri, times] of Object.entries(r.receipts)) (all[i]!.receipts[uri] ??= []).push(...times);
        all[i]!.playlistErrors += r.playlistErrors;
        all[i]!.partErrors += r.partErrors;
      });
    }
    return all;
  });
}

/** Delays (s) of every part listed inside [from, to − 1 s], and the share of expected receipts that arrived. */
function delays(listed: Map<string, number>, r: Receipts, clients: number, from: number, to: number): { delays: number[]; delivered: number } {
  const out: number[] = [];
  let expected = 0;
  for (const [uri, at] of listed) {
    if (at < from || at > to - 1000) continue;
    expected += clients;
    for (const t of r.receipts[uri] ?? []) out.push((t - at) / 1000);
  }
  return { delays: out, delivered: expected > 0 ? out.length / expected : 0 };
}

const redis = await startTestRedis();
const env = { TRIBUTARY_REDIS_URL: redis.url, TRIBUTARY_TRANSCODE_MAX_RENDITIONS: '1' };
const nodes: TestServer[] = [];
const results: Record<string, unknown> = {};
process.stdout.write(`cluster-viewers: ${os.cpus().length} cores, load average ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}` +
  ' (three nodes, their FFmpeg and the viewers share this machine with other work: every figure is noisy)\n');
try {
  // One after the other: they share the API key (and Redis) of the first.
  for (let i = 0; i < 3; i++) {
    nodes.push(await startServer({ env, startTimeoutMs: 120_000, apiKey: nodes[0]?.apiKey }));
  }
  const [a, b, c] = nodes as [TestServer, TestServer, TestServer];
  const clip = await paintedClip({ seconds: 120, gopSeconds: 1 });
  await sleep(2000);
  const rssIdle = rssBytes(a.process.pid!);
  const input = await createLiveInput(a);
  const pub = publishPainted(clip, 120, `${a.rtmpBase}/${input.streamKey}`);
  try {
    const agent = new http.Agent();
    const masterOf = (s: TestServer) => `${s.httpUrl}/${input.uid}/manifest/video.m3u8`;
    let text = '';
    for (const deadline = Date.now() + 60_000; Date.now() < deadline && !text; await sleep(100)) {
      const r = await getText(masterOf(a), agent);
      if (r.status === 200) text = r.text;
    }
    agent.destroy();
    if (!text) throw new Error('the stream did not become playable');
    const uri = parseMaster(text)[0]!.uri;
    const media = (s: TestServer) => new URL(uri, masterOf(s)).toString();
    await sleep(5000);
    const rssLive = rssBytes(a.process.pid!);
    results.memoryPerLiveSessionBytes = rssLive - rssIdle;

    const rows: Array<Array<string | number>> = [];
    for (const n of values.counts.split(',').map(Number)) {
      for (const layout of ['1 node', '3 nodes'] as const) {
        const targets = layout === '1 node' ? [a] : [a, b, c];
        const listed = new Map<string, number>();
        const abort = new AbortController();
        const probe = followParts(media(a), abort.signal, (p) => {
          if (!listed.has(p.uri)) listed.set(p.uri, p.listedAt);
        });
        const rss0 = targets.map((s) => rssBytes(s.process.pid!));
        const rampS = 3;
        const run = viewers(targets.map(media), n, rampS + windowS + 1);
        await sleep(rampS * 1000);
        const from = Date.now();
        await sleep(windowS * 1000);
        const rss1 = targets.map((s) => rssBytes(s.process.pid!));
        const to = Date.now();
        const receipts = await run;
        abort.abort();
        await probe;
        const all: number[] = [];
        let delivered = 0;
        const per: Record<string, unknown> = {};
        targets.forEach((s, i) => {
          const share = Math.floor(n / targets.length) + (i < n % targets.length ? 1 : 0);
          const d = delays(listed, receipts[i]!, share, from, to);
          all.push(...d.delays);
          delivered += d.delivered * share;
          const label = ['A', 'B', 'C'][i]!;
          per[label] = {
            clients: share,
            p50: percentile(d.delays, 50),
            p99: percentile(d.delays, 99),
            delivered: d.delivered,
            rssDeltaPerViewerBytes: Math.round((rss1[i]! - rss0[i]!) / Math.max(1, share)),
            errors: receipts[i]!.playlistErrors + receipts[i]!.partErrors,
          };
          rows.push([n, layout, label, share, percentile(d.delays, 50), percentile(d.delays, 99), `${(d.delivered * 100).toFixed(1)} %`,
            Math.round((rss1[i]! - rss0[i]!) / Math.max(1, share) / 1024), receipts[i]!.playlistErrors + receipts[i]!.partErrors]);
        });
        rows.push([n, layout, 'all', n, percentile(all, 50), percentile(all, 99), `${((delivered / n) * 100).toFixed(1)} %`, '', '']);
        results[`${n} ${layout}`] = { nodes: per, p50: percentile(all, 50), p99: percentile(all, 99), delivered: delivered / n };
        await sleep(2000);
      }
    }
    process.stdout.write(`\nMemory: one live session (copy-only, 1280x720) on its owner: ${((rssLive - rssIdle) / 1048576).toFixed(1)} MiB RSS\n`);
    printTable(`Blocking-reload viewers, ${windowS} s window; delay = client has the part − probe saw it listed on the owner (A); B and C relay from A`,
      ['clients', 'layout', 'node', 'viewers', 'p50 s', 'p99 s', 'delivered', 'RSS Δ/viewer KiB', 'errors'], rows);
  } finally {
    pub.child.kill('SIGKILL');
    await pub.exited;
  }
} finally {
  for (const s of nodes) {
    await s.stop();
    await s.cleanup();
  }
  await redis.stop();
}
process.stdout.write(`\n${JSON.stringify({ bench: 'cluster-viewers', machine: { cpus: os.cpus().length, loadAvgEnd: os.loadavg() }, ...results })}\n`);
