/**
 * Scale-out figures: blocking-reload LL-HLS viewers on one node versus spread over three nodes
 * that share one Redis (nodes B and C relay the stream from its owner A), and nginx serving the
 * same playlist and part files to the same number of clients at the same times (reference), in
 * one invocation; plus memory per live session and per waiting viewer (process RSS deltas).
 *
 *   node scripts/bench/cluster-viewers.ts [--counts 500,1000,2000] [--window 10] [--loadgens 2]
 *                                         [--layouts 1,3] [--reference nginx|none]
 *
 * Viewers run in `--loadgens` load-generator processes (scripts/bench/llhls-loadgen.ts: one raw
 * keep-alive socket per client, playlists scanned, not parsed), the same processes for every
 * layout; clients are dealt to the nodes in turn. Each client blocks on the next part
 * (`_HLS_msn`/`_HLS_part`) and fetches every part listed since its last one after each reload. A probe on the owner
 * records when each part is first listed; part delivery delay = a client has the part's last
 * byte − the probe saw it listed. The reference replays what a recorder saw (each playlist
 * snapshot and part, at the time it was listed) from nginx (one worker, static files): its delay
 * = receipt − the scheduled time. Everything shares this machine: CPU of the servers and of the
 * load generators is shown; figures are upper bounds under the printed load average.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { startServer, createLiveInput, type TestServer } from '../../test/helpers/server.ts';
import { startTestRedis } from '../../test/helpers/redis.ts';
import { parseMaster } from '../../test/helpers/probe.ts';
import { cpuTicks, descendants, freePort, printTable, sleep } from './bench-lib.ts';
import { followParts, getText, paintedClip, percentile, publishPainted } from './latency-lib.ts';
import { scanPlaylist, type LiveOptions, type LoadgenReport, type ReplayOptions } from './llhls-loadgen.ts';

const { values } = parseArgs({
  options: {
    counts: { type: 'string', default: '500,1000,2000' },
    window: { type: 'string', default: '10' },
    loadgens: { type: 'string', default: '2' },
    layouts: { type: 'string', default: '1,3' },
    ramp: { type: 'string', default: '4' },
    reference: { type: 'string', default: 'nginx' },
    // e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof": where the nodes spend their CPU.
    'node-options': { type: 'string', default: '' },
  },
});
const windowS = Number(values.window);
const rampS = Number(values.ramp);
const loadgenCount = Number(values.loadgens);
const LOADGEN = path.join(import.meta.dirname, 'llhls-loadgen.ts');
const load = () => os.loadavg().map((l) => l.toFixed(2)).join(' ');

function rssBytes(pid: number): number {
  const line = readFileSync(`/proc/${pid}/status`, 'utf8').split('\n').find((l) => l.startsWith('VmRSS:'));
  return Number(line?.match(/(\d+)/)?.[1] ?? 0) * 1024;
}

/** Runs the load generators (clients split between them); resolves with their merged reports. */
function loadgens(make: (share: number) => LiveOptions | ReplayOptions, clients: number, slots: number): { pids: number[]; done: Promise<LoadgenReport> } {
  const children: ChildProcess[] = [];
  const runs = Array.from({ length: loadgenCount }, (_, i) => {
    const share = Math.floor(clients / loadgenCount) + (i < clients % loadgenCount ? 1 : 0);
    const child = spawn(process.execPath, [LOADGEN, JSON.stringify(make(share))], { stdio: ['ignore', 'pipe', 'inherit'] });
    children.push(child);
    let out = '';
    child.stdout!.setEncoding('utf8').on('data', (d: string) => (out += d));
    return new Promise<string>((resolve) => child.on('exit', () => resolve(out)));
  });
  const done = Promise.all(runs).then((outs) => {
    const all: LoadgenReport = { receipts: Array.from({ length: slots }, () => ({})), errors: Array.from({ length: slots }, () => 0), statuses: {}, requests: 0 };
    for (const text of outs) {
      const r = JSON.parse(text.trim().split('\n').at(-1) ?? '{}') as LoadgenReport;
      r.receipts.forEach((rec, k) => {
        for (const [uri, times] of Object.entries(rec)) (all.receipts[k]![uri] ??= []).push(...times);
        all.errors[k]! += r.errors[k]!;
      });
      all.requests += r.requests;
      for (const [status, n] of Object.entries(r.statuses)) all.statuses[status] = (all.statuses[status] ?? 0) + n;
    }
    return all;
  });
  return { pids: children.map((c) => c.pid!), done };
}

/** Delays (s) of every part listed inside [from, to − 1 s], and the share of expected receipts that arrived. */
function delays(listed: Map<string, number>, receipts: Record<string, number[]>, clients: number, from: number, to: number) {
  const out: number[] = [];
  let expected = 0;
  for (const [uri, at] of listed) {
    if (at < from || at > to - 1000) continue;
    expected += clients;
    for (const t of receipts[uri] ?? []) out.push((t - at) / 1000);
  }
  return { delays: out, delivered: expected > 0 ? out.length / expected : 0 };
}

const ticksOf = (pids: number[]) => pids.reduce((a, p) => a + cpuTicks(p), 0);
const pct = (ticks: number, ms: number) => Math.round((ticks / 100 / (ms / 1000)) * 100);

/**
 * Records `seconds` of the stream as a player sees it (each blocking-reload playlist and the
 * newest part), into `dir`, with when each was listed: what the nginx reference serves.
 */
async function record(mediaUrl: string, dir: string, seconds: number): Promise<ReplayOptions['schedule']> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const schedule: ReplayOptions['schedule'] = [];
  let text = (await getText(mediaUrl, agent)).text;
  const start = Date.now();
  let last = '';
  while (Date.now() - start < seconds * 1000) {
    const s = scanPlaylist(text);
    const r = await getText(`${mediaUrl}?_HLS_msn=${s.msn}&_HLS_part=${s.part}`, agent);
    if (r.status !== 200) continue;
    text = r.text;
    const newest = scanPlaylist(text).newest;
    if (!newest || newest === last) continue;
    last = newest;
    const name = `pl-${schedule.length}.m3u8`;
    writeFileSync(path.join(dir, name), text, { mode: 0o644 });
    const part = await new Promise<Buffer>((resolve) => {
      http.get(new URL(newest, mediaUrl), { agent }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c)).on('end', () => resolve(Buffer.concat(chunks)));
      });
    });
    writeFileSync(path.join(dir, newest), part, { mode: 0o644 });
    schedule.push({ playlist: name, part: newest, at: r.at - start });
  }
  agent.destroy();
  return schedule;
}

async function startNginx(root: string): Promise<{ port: number; pids: () => number[]; stop: () => Promise<void> }> {
  const port = await freePort();
  const dir = mkdtempSync(path.join(os.tmpdir(), 'trib-nginx-'));
  const conf = path.join(dir, 'nginx.conf');
  writeFileSync(conf, `worker_processes 1;
error_log ${dir}/error.log warn;
pid ${dir}/nginx.pid;
events { worker_connections 8192; }
http {
  access_log off;
  sendfile on;
  tcp_nodelay on;
  keepalive_requests 1000000;
  keepalive_timeout 120s;
  open_file_cache max=10000 inactive=60s;
  types { application/vnd.apple.mpegurl m3u8; video/mp4 m4s mp4; }
  default_type application/octet-stream;
  server {
    listen 127.0.0.1:${port};
    root ${root};
    add_header Cache-Control "no-cache";
  }
}
`);
  const child = spawn('nginx', ['-p', dir, '-c', conf, '-g', 'daemon off;'], { stdio: 'ignore' });
  for (let i = 0; i < 100; i++) {
    const ok = await new Promise<boolean>((resolve) => {
      http.get(`http://127.0.0.1:${port}/`, (res) => {
        res.resume();
        resolve(true);
      }).on('error', () => resolve(false));
    });
    if (ok) break;
    await sleep(100);
  }
  return {
    port,
    pids: () => [child.pid!, ...descendants(child.pid!)],
    stop: async () => {
      child.kill('SIGTERM');
      await new Promise((r) => child.once('exit', r));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

const redis = await startTestRedis();
const env = {
  TRIBUTARY_REDIS_URL: redis.url,
  TRIBUTARY_TRANSCODE_MAX_RENDITIONS: '1',
  ...(values['node-options'] ? { NODE_OPTIONS: values['node-options'] } : {}),
};
const nodes: TestServer[] = [];
const results: Record<string, unknown> = {};
const layouts = values.layouts.split(',').map(Number);
process.stdout.write(`cluster-viewers: ${os.cpus().length} cores, load average ${load()} at start; ${loadgenCount} load-generator processes` +
  ' (the nodes, their FFmpeg, the load generators and nginx share this machine with other work: figures are upper bounds)\n');
const rows: Array<Array<string | number>> = [];
const work = mkdtempSync(path.join(os.tmpdir(), 'trib-cv-'));
try {
  const nodeCount = Math.max(...layouts);
  for (let i = 0; i < nodeCount; i++) nodes.push(await startServer({ env, startTimeoutMs: 120_000, apiKey: nodes[0]?.apiKey }));
  const a = nodes[0]!;
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

    // The reference's files: the stream as a player saw it, for as long as one run lasts.
    const refDir = path.join(work, 'ref');
    let schedule: ReplayOptions['schedule'] = [];
    if (values.reference === 'nginx') {
      rmSync(refDir, { recursive: true, force: true });
      mkdirSync(refDir, { recursive: true });
      // nginx workers of a root master run as nobody: the files must be readable by anyone.
      chmodSync(work, 0o755);
      chmodSync(refDir, 0o755);
      schedule = await record(media(a), refDir, rampS + windowS + 2);
    }
    const nginx = values.reference === 'nginx' ? await startNginx(refDir) : undefined;

    for (const n of values.counts.split(',').map(Number)) {
      for (const count of layouts) {
        const targets = nodes.slice(0, count);
        const layout = count === 1 ? '1 node' : `${count} nodes`;
        const listed = new Map<string, number>();
        const abort = new AbortController();
        const probe = followParts(media(a), abort.signal, (p) => {
          if (!listed.has(p.uri)) listed.set(p.uri, p.listedAt);
        });
        const rss0 = targets.map((s) => rssBytes(s.process.pid!));
        const until = Date.now() + (rampS + windowS + 1) * 1000;
        const run = loadgens((share) => ({ mode: 'live', urls: targets.map(media), clients: share, rampMs: rampS * 1000, until }), n, targets.length);
        await sleep(rampS * 1000);
        const from = Date.now();
        const srv0 = targets.map((s) => cpuTicks(s.process.pid!));
        const lg0 = ticksOf(run.pids);
        await sleep(windowS * 1000);
        const to = Date.now();
        const srvPct = targets.map((s, i) => pct(cpuTicks(s.process.pid!) - srv0[i]!, to - from));
        const lgPct = pct(ticksOf(run.pids) - lg0, to - from);
        const rss1 = targets.map((s) => rssBytes(s.process.pid!));
        const loadNow = os.loadavg()[0]!;
        const report = await run.done;
        abort.abort();
        await probe;
        const all: number[] = [];
        let delivered = 0;
        const per: Record<string, unknown> = {};
        targets.forEach((_, i) => {
          const share = Math.floor(n / targets.length) + (i < n % targets.length ? 1 : 0);
          const d = delays(listed, report.receipts[i]!, share, from, to);
          all.push(...d.delays);
          delivered += d.delivered * share;
          const label = String.fromCharCode(65 + i);
          const rssPerViewer = Math.round((rss1[i]! - rss0[i]!) / Math.max(1, share));
          per[label] = { clients: share, p50: percentile(d.delays, 50), p99: percentile(d.delays, 99), delivered: d.delivered, serverCpuPct: srvPct[i], rssDeltaPerViewerBytes: rssPerViewer, errors: report.errors[i] };
          rows.push([n, layout, label, share, percentile(d.delays, 50), percentile(d.delays, 99), `${(d.delivered * 100).toFixed(1)} %`, `${srvPct[i]} %`, '', Math.round(rssPerViewer / 1024), report.errors[i]!, '']);
        });
        rows.push([n, layout, 'all', n, percentile(all, 50), percentile(all, 99), `${((delivered / n) * 100).toFixed(1)} %`,
          `${srvPct.reduce((x, y) => x + y, 0)} %`, `${lgPct} %`, '', report.errors.reduce((x, y) => x + y, 0), loadNow.toFixed(2)]);
        results[`${n} ${layout}`] = { nodes: per, p50: percentile(all, 50), p99: percentile(all, 99), delivered: delivered / n, loadgenCpuPct: lgPct, requests: report.requests, errorStatuses: report.statuses, loadAvg1: loadNow };
        if (Object.keys(report.statuses).length > 0) process.stdout.write(`${n} ${layout}: error answers by status ${JSON.stringify(report.statuses)}\n`);
        await sleep(2000);
      }

      if (nginx && schedule.length > 0) {
        // Same clients, same playlist and part bytes, at the times the parts were listed live.
        const t0 = Date.now() + 1000;
        const run = loadgens((share) => ({ mode: 'replay', base: `http://127.0.0.1:${nginx.port}/`, clients: share, t0, schedule }), n, 1);
        const from = t0 + rampS * 1000;
        await sleep(from - Date.now());
        const ng0 = ticksOf(nginx.pids());
        const lg0 = ticksOf(run.pids);
        await sleep(windowS * 1000);
        const to = Date.now();
        const ngPct = pct(ticksOf(nginx.pids()) - ng0, to - from);
        const lgPct = pct(ticksOf(run.pids) - lg0, to - from);
        const loadNow = os.loadavg()[0]!;
        const report = await run.done;
        const listed = new Map(schedule.map((s) => [s.part, t0 + s.at]));
        const d = delays(listed, report.receipts[0]!, n, from, to);
        rows.push([n, 'nginx (ref)', 'ref', n, percentile(d.delays, 50), percentile(d.delays, 99), `${(d.delivered * 100).toFixed(1)} %`, `${ngPct} %`, `${lgPct} %`, '', report.errors[0]!, loadNow.toFixed(2)]);
        results[`${n} nginx`] = { p50: percentile(d.delays, 50), p99: percentile(d.delays, 99), delivered: d.delivered, serverCpuPct: ngPct, loadgenCpuPct: lgPct, requests: report.requests, loadAvg1: loadNow };
        await sleep(2000);
      }
    }
    await nginx?.stop();
    process.stdout.write(`\nMemory: one live session (copy-only, 1280x720) on its owner: ${((rssLive - rssIdle) / 1048576).toFixed(1)} MiB RSS\n`);
    printTable(
      `Blocking-reload viewers, ${windowS} s window after a ${rampS} s ramp; delay = client has the part − probe saw it listed on the owner (A); B and C relay from A. ` +
        'Reference: nginx (1 worker) serving the same playlist snapshots and parts at the times they were listed',
      ['clients', 'layout', 'node', 'viewers', 'p50 s', 'p99 s', 'delivered', 'server CPU', 'loadgen CPU', 'RSS Δ/viewer KiB', 'errors', 'load 1m'],
      rows,
    );
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
  rmSync(work, { recursive: true, force: true });
}
process.stdout.write(`\n${JSON.stringify({ bench: 'cluster-viewers', machine: { cpus: os.cpus().length, loadAvgEnd: os.loadavg() }, ...results })}\n`);
