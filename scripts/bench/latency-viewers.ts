/**
 * Capacity side of the latency issue: CPU per stream for the default ladder on a 720p30 source,
 * and blocking-reload viewers held per core.
 *
 *   node scripts/bench/latency-viewers.ts [--counts 200,500,1000] [--window 20] [--viewer-ladder copy|default]
 *                                         [--clients-per-loadgen 250] [--rendition 0]
 *
 * Viewers: N concurrent clients in separate load-generator processes (this script with
 * `--loadgen`, at most 250 clients each), so that the server's CPU is measured alone. On a 2-core
 * machine the load generators compete with the server for CPU: check the loadgen CPU column. Each client follows one rendition with
 * blocking reloads (`_HLS_msn`/`_HLS_part` for the part after the last one listed) and fetches
 * every new part. A single probe client in this (otherwise idle) process records when each part is
 * first listed; part delivery delay = the client has the part's last byte − the probe saw it listed.
 * By default the viewer test runs on a copy-only stream (`--viewer-ladder copy`), so that the
 * ladder's x264 work (about one of the two cores) does not starve the server and load generator;
 * the CPU-per-stream test always uses the default ladder.
 */
import { spawn } from 'node:child_process';
import http from 'node:http';
import os from 'node:os';
import { parseArgs } from 'node:util';
import { startServer, createLiveInput, type TestServer } from '../../test/helpers/server.ts';
import { parseMaster } from '../../test/helpers/probe.ts';
import { cpuPercent, cpuTicks, descendants, printTable, sleep } from './bench-lib.ts';
import { followParts, getText, paintedClip, percentile, publishPainted, type CalibratedPublisher } from './latency-lib.ts';

const { values } = parseArgs({
  options: {
    counts: { type: 'string', default: '200,500,1000' },
    window: { type: 'string', default: '20' },
    'viewer-ladder': { type: 'string', default: 'copy' },
    rendition: { type: 'string', default: '0' },
    'clients-per-loadgen': { type: 'string', default: '250' },
    loadgen: { type: 'boolean', default: false },
    url: { type: 'string', default: '' },
    clients: { type: 'string', default: '0' },
    seconds: { type: 'string', default: '0' },
  },
});

// ---------------------------------------------------------------------------------------------
// Load generator (child process).

async function loadgen(url: string, clients: number, seconds: number): Promise<void> {
  const receipts = new Map<string, number[]>();
  let playlistErrors = 0;
  let partErrors = 0;
  let playlistRequests = 0;
  const abort = new AbortController();
  const one = async (startDelayMs: number) => {
    await sleep(startDelayMs);
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const queue: string[] = [];
    let busy = false;
    const drain = async () => {
      if (busy) return;
      busy = true;
      while (queue.length > 0 && !abort.signal.aborted) {
        const uri = queue.shift()!;
        const r = await getBytes(new URL(uri, url).toString(), agent);
        if (r.status !== 200) partErrors++;
        else {
          let list = receipts.get(uri);
          if (!list) receipts.set(uri, (list = []));
          list.push(r.at);
        }
      }
      busy = false;
    };
    // Two sockets per client, as in a player: the blocking playlist request (followParts has its
    // own) and part downloads (this agent) may be in flight together.
    const s = await followParts(url, abort.signal, (p) => {
      queue.push(p.uri);
      void drain();
    });
    playlistRequests += s.requests;
    playlistErrors += s.errors;
    agent.destroy();
  };
  const all = Array.from({ length: clients }, (_, i) => one((i * 1000) / clients));
  await sleep(seconds * 1000);
  abort.abort();
  await Promise.all(all);
  process.stdout.write(`${JSON.stringify({ receipts: Object.fromEntries(receipts), playlistErrors, partErrors, playlistRequests })}\n`);
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

// ---------------------------------------------------------------------------------------------

const windowS = Number(values.window);
const results: Record<string, unknown> = {};

async function liveStream(env: Record<string, string>): Promise<{ server: TestServer; pub: CalibratedPublisher; master: string; variants: string[] }> {
  const clip = await paintedClip({ seconds: 120, gopSeconds: 1 });
  const server = await startServer({ env, startTimeoutMs: 60_000 });
  const input = await createLiveInput(server);
  const pub = publishPainted(clip, 120, `${server.rtmpBase}/${input.streamKey}`);
  const master = `${server.httpUrl}/${input.uid}/manifest/video.m3u8`;
  const agent = new http.Agent();
  let text = '';
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    const r = await getText(master, agent);
    if (r.status === 200) {
      text = r.text;
      break;
    }
    await sleep(50);
  }
  agent.destroy();
  if (!text) throw new Error('the stream did not become playable');
  return { server, pub, master, variants: parseMaster(text).map((v) => new URL(v.uri, master).toString()) };
}

async function stopStream(s: { server: TestServer; pub: CalibratedPublisher }): Promise<void> {
  s.pub.child.kill('SIGKILL');
  await s.pub.exited;
  await s.server.stop();
  await s.server.cleanup();
}

async function cpuPerStream(): Promise<void> {
  const s = await liveStream({});
  try {
    await sleep(3000);
    const pid = s.server.process.pid!;
    const [node, ffmpeg] = await Promise.all([
      cpuPercent(() => [pid], windowS * 1000),
      cpuPercent(() => descendants(pid, 'ffmpeg'), windowS * 1000),
    ]);
    results.cpuPerStream = { renditions: s.variants.length, serverNodePercent: node, ffmpegPercent: ffmpeg, totalPercent: node + ffmpeg };
    printTable(`CPU per stream, default ladder, 1280x720 30 fps source (${s.variants.length} renditions), % of one core over ${windowS} s`,
      ['server (node)', 'ffmpeg child', 'total'], [[node, ffmpeg, node + ffmpeg]]);
  } finally {
    await stopStream(s);
  }
}

async function viewers(counts: number[]): Promise<void> {
  const env: Record<string, string> = values['viewer-ladder'] === 'default' ? {} : { TRIBUTARY_TRANSCODE_MAX_RENDITIONS: '1' };
  const s = await liveStream(env);
  const rows: Array<Array<string | number>> = [];
  const out: Record<string, unknown> = {};
  try {
    const url = s.variants[Number(values.rendition)] ?? s.variants[0]!;
    await sleep(2000);
    for (const n of counts) {
      const listed = new Map<string, number>();
      const abort = new AbortController();
      const probe = followParts(url, abort.signal, (p) => {
        if (!listed.has(p.uri)) listed.set(p.uri, p.listedAt);
      });
      const rampS = 3;
      // Several load-generator processes: one Node process saturates near 250 clients (5 parts/s each).
      const procs = Math.max(1, Math.ceil(n / Number(values['clients-per-loadgen'])));
      const children = Array.from({ length: procs }, (_, i) => {
        const share = Math.floor(n / procs) + (i < n % procs ? 1 : 0);
        const child = spawn(process.execPath, [import.meta.filename, '--loadgen', '--url', url, '--clients', String(share),
          '--seconds', String(rampS + windowS + 1)], { stdio: ['ignore', 'pipe', 'inherit'] });
        let stdout = '';
        child.stdout.setEncoding('utf8').on('data', (d: string) => {
          stdout += d;
        });
        const done = new Promise<string>((resolve) => child.on('exit', () => resolve(stdout)));
        return { child, done };
      });
      await sleep(rampS * 1000);
      const pid = s.server.process.pid!;
      const from = Date.now();
      const ticks0 = children.map((c) => cpuTicks(c.child.pid!));
      const [node, ffmpeg] = await Promise.all([
        cpuPercent(() => [pid], windowS * 1000),
        cpuPercent(() => descendants(pid, 'ffmpeg'), windowS * 1000),
      ]);
      const loadgenCpu = children.reduce((a, c, i) => a + ((cpuTicks(c.child.pid!) - ticks0[i]!) / 100 / windowS) * 100, 0);
      const to = Date.now();
      const outputs = await Promise.all(children.map((c) => c.done));
      abort.abort();
      await probe;
      const report = { receipts: {} as Record<string, number[]>, playlistErrors: 0, partErrors: 0, playlistRequests: 0 };
      for (const text of outputs) {
        const r = JSON.parse(text.trim().split('\n').at(-1) ?? '{}') as typeof report;
        for (const [uri, times] of Object.entries(r.receipts ?? {})) (report.receipts[uri] ??= []).push(...times);
        report.playlistErrors += r.playlistErrors ?? 0;
        report.partErrors += r.partErrors ?? 0;
        report.playlistRequests += r.playlistRequests ?? 0;
      }
      const delays: number[] = [];
      let expected = 0;
      for (const [uri, at] of listed) {
        if (at < from || at > to - 1000) continue;
        expected += n;
        for (const t of report.receipts[uri] ?? []) delays.push((t - at) / 1000);
      }
      const r = {
        clients: n,
        partsInWindow: expected / n,
        delivered: delays.length / expected,
        p50: percentile(delays, 50), p99: percentile(delays, 99), max: percentile(delays, 100),
        serverNodePercent: node, ffmpegPercent: ffmpeg, loadgenPercent: loadgenCpu,
        viewersPerCoreAtThisLoad: n / (node / 100), loadgenProcesses: procs,
        playlistErrors: report.playlistErrors, partErrors: report.partErrors,
      };
      out[String(n)] = r;
      rows.push([n, r.partsInWindow, `${(r.delivered * 100).toFixed(1)} %`, r.p50, r.p99, r.max, node, loadgenCpu, Math.round(r.viewersPerCoreAtThisLoad),
        `${r.playlistErrors}/${r.partErrors}`]);
      await sleep(2000);
    }
  } finally {
    await stopStream(s);
  }
  results.viewers = { ladder: values['viewer-ladder'], rendition: Number(values.rendition), ...out };
  printTable(`Blocking-reload viewers on one rendition (${values['viewer-ladder'] === 'default' ? 'default ladder' : 'copy-only stream'}), ` +
    `${windowS} s window; delay = client has the part − part first listed (probe client)`,
    ['clients', 'parts', 'delivered', 'p50 s', 'p99 s', 'max s', 'server node CPU %', 'loadgen CPU %', 'viewers/core', 'errors pl/part'], rows);
}

if (values.loadgen) {
  await loadgen(values.url, Number(values.clients), Number(values.seconds));
} else {
  process.stdout.write(`latency-viewers: ${os.cpus().length} cores, load average ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}` +
    ' (other work on the machine makes every figure noisy)\n');
  await cpuPerStream();
  await viewers(values.counts.split(',').map(Number));
  process.stdout.write(`\n${JSON.stringify({ bench: 'latency-viewers', machine: { cpus: os.cpus().length, loadAvgEnd: os.loadavg() }, ...results })}\n`);
}
