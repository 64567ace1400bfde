/**
 * Soak benchmark: N copy-only publishers (a small pre-encoded clip sent with `-c copy`) connect
 * and disconnect in random order for a while; the server's open file descriptors, child
 * processes and RSS are sampled every few seconds and checked against stated bounds once every
 * publisher is gone. FFmpeg alone receiving the same N streams (`-c copy` to /dev/null) is the
 * reference row. Then: publishers per node (copy-only, and with the default ladder: how many stay
 * real time) and memory per live session.
 *
 *   node scripts/bench/soak-publishers.ts [--minutes 5] [--publishers 50] [--sample 5]
 *     [--rounds 2] [--quiet 70] [--no-heap] [--heap-snapshot] [--malloc-info] [--malloc-trim]
 *     [--malloc-arena-max N] [--server-env K=V …]
 *     [--copy-counts 10,25,50] [--ladder-counts 1,2,3] [--window 20] [--skip-capacity]
 *
 * The server runs with `--inspect=127.0.0.1:0` (unless `--no-heap`) and, after each round's quiet
 * spell, the bench forces a full GC and reads the V8 heap (heapUsed, external, arrayBuffers) through the inspector:
 * a heap that grows round to round is a leak; a flat heap with a high RSS is the allocator keeping
 * freed memory. `--heap-snapshot` also takes a heap snapshot after the first and the last round
 * and prints what grew between them (taking one adds ~200 MB to the server's RSS for good, so
 * the RSS rows of such a run mean nothing).
 * `--malloc-info` (needs gdb) reads glibc's malloc_info() at the same points: memory malloc has
 * handed out and not had back (in use; growing per round = a native leak) and free memory it
 * keeps; `--malloc-trim` then, after the last round, calls malloc_trim(0) and shows the RSS it
 * gave back.
 * `--malloc-arena-max` runs the server with MALLOC_ARENA_MAX set (glibc), to show how much of the
 * RSS left after the churn is malloc arenas; `--server-env` sets any other variable for the
 * server (e.g. MALLOC_MMAP_THRESHOLD_=131072: big buffers always mmapped, so returned when freed).
 *
 * Prints tables and, last, one JSON line with every figure.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { createLiveInput } from '../../test/helpers/server.ts';
import { rssBreakdown, type RssBreakdown } from './rss-breakdown.ts';
import { mallocInfo, type MallocFigures } from './malloc-info.ts';
import { InspectorHeap, snapshotGrowth, type HeapClass, type HeapFigures } from './inspector-heap.ts';
import { descendants, fetchText, freePort, makeClip, median, pollUntil, printTable, publishClip, publishClips, run, sleep, withServer } from './bench-lib.ts';

const { values } = parseArgs({
  allowNegative: true,
  options: {
    minutes: { type: 'string', default: '5' },
    publishers: { type: 'string', default: '50' },
    sample: { type: 'string', default: '5' },
    'copy-counts': { type: 'string', default: '10,25,50' },
    'ladder-counts': { type: 'string', default: '1,2,3' },
    window: { type: 'string', default: '20' },
    'skip-capacity': { type: 'boolean', default: false },
    rounds: { type: 'string', default: '2' },
    quiet: { type: 'string', default: '70' },
    // On by default: the post-GC heap per round is the leak check (--no-heap: no inspector).
    heap: { type: 'boolean', default: true },
    'heap-snapshot': { type: 'boolean', default: false },
    'malloc-arena-max': { type: 'string' },
    'malloc-info': { type: 'boolean', default: false },
    'malloc-trim': { type: 'boolean', default: false },
    'server-env': { type: 'string', multiple: true, default: [] },
    seed: { type: 'string', default: '1' },
  },
});
const minutes = Number(values.minutes);
const publishers = Number(values.publishers);
const sampleS = Number(values.sample);
const windowS = Number(values.window);
const rounds = Math.max(2, Number(values.rounds));
const quietS = Number(values.quiet);

// The bounds this run is held to, once every publisher has gone. RSS stays well above idle after
// the churn (glibc keeps freed memory: see README, Benchmarks), so only its growth from the first
// quiet spell to the last is bounded; the leak checks are post-GC heapUsed and malloc in-use.
const BOUNDS = { fdSlack: 8, childSlack: 0, rssRoundGrowthMb: 32, heapRoundGrowthMb: 4, mallocInUseRoundGrowthMb: 8 };

const work = mkdtempSync(path.join(os.tmpdir(), 'trib-soak-'));
const smallClip = path.join(work, 'small.flv');
const hdClip = path.join(work, 'hd.flv');
const results: Record<string, unknown> = {
  machine: { cpus: os.cpus().length, model: os.cpus()[0]?.model, loadavg: os.loadavg() },
  bounds: BOUNDS,
};

let rngState = Number(values.seed) >>> 0 || 1;
/** xorshift32: a seeded random order, so a run can be repeated. */
function random(): number {
  rngState ^= rngState << 13;
  rngState ^= rngState >>> 17;
  rngState ^= rngState << 5;
  return (rngState >>> 0) / 2 ** 32;
}

interface Sample {
  t: number;
  fds: number;
  children: number;
  /** FFmpeg children: live sessions. */
  ffmpeg: number;
  rssMb: number;
  publishing: number;
}

function fdCount(pid: number): number {
  try {
    return readdirSync(`/proc/${pid}/fd`).length;
  } catch {
    return 0;
  }
}

function rssMb(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) / 1024 : 0;
  } catch {
    return 0;
  }
}

function sampleOf(pid: number, t0: number, publishing: number): Sample {
  return {
    t: Math.round((Date.now() - t0) / 1000),
    fds: fdCount(pid),
    children: descendants(pid).length,
    ffmpeg: descendants(pid, 'ffmpeg').length,
    rssMb: Math.round(rssMb(pid) * 10) / 10,
    publishing,
  };
}

const COPY_ONLY = { TRIBUTARY_TRANSCODE_MAX_RENDITIONS: '1', TRIBUTARY_LIMITS_AUTH_FAILURES_MAX: '0' };

// ---------------------------------------------------------------------------------------------
async function soak(): Promise<void> {
  const env: Record<string, string> = { ...COPY_ONLY };
  if (values.heap || values['heap-snapshot']) env.NODE_OPTIONS = '--inspect=127.0.0.1:0';
  if (values['malloc-arena-max']) env.MALLOC_ARENA_MAX = values['malloc-arena-max'];
  for (const kv of values['server-env']) {
    const eq = kv.indexOf('=');
    if (eq <= 0) throw new Error(`--server-env ${kv}: expected NAME=value`);
    env[kv.slice(0, eq)] = kv.slice(eq + 1);
  }
  const envNote = [values['malloc-arena-max'] ? `MALLOC_ARENA_MAX=${values['malloc-arena-max']}` : '', ...values['server-env']].filter(Boolean).join(' ');
  await withServer(env, async (server) => {
    const pid = server.process.pid!;
    let inspector: InspectorHeap | undefined;
    if (values.heap || values['heap-snapshot']) {
      const url = InspectorHeap.urlFrom(server.output());
      if (!url) throw new Error('--heap: the server printed no inspector URL');
      inspector = await InspectorHeap.connect(url);
    }
    await sleep(3000);
    const t0 = Date.now();
    // Before the inputs are created: the API calls' keep-alive sockets are not part of it.
    const baseline = sampleOf(pid, t0, 0);
    const heaps: HeapFigures[] = [];
    const breakdowns: Array<RssBreakdown | undefined> = [rssBreakdown(pid)];
    const snapshots: Array<Map<string, HeapClass>> = [];
    if (inspector) heaps.push(await inspector.measure());
    const wantMalloc = values['malloc-info'] || values['malloc-trim'];
    const mallocs: Array<MallocFigures & { rssBeforeMb: number; rssAfterMb: number }> = [];
    const readMalloc = async (label: string, last = false) => {
      if (!wantMalloc) return;
      const rssBeforeMb = Math.round(rssMb(pid) * 10) / 10;
      // Trimmed at the end only, so that every round starts from what malloc kept.
      const trim = values['malloc-trim'] && last;
      const m = await mallocInfo(pid, { trim });
      const row = { ...m, rssBeforeMb, rssAfterMb: Math.round(rssMb(pid) * 10) / 10 };
      mallocs.push(row);
      process.stdout.write(`  ${label}, malloc: in use ${m.inUseMb} MB, free ${m.freeMb} MB (${m.arenas} arenas)${trim ? `, RSS ${rssBeforeMb} → ${row.rssAfterMb} MB after malloc_trim` : ''}\n`);
    };
    await readMalloc('start (idle)');
    const inputs = await Promise.all(Array.from({ length: publishers }, () => createLiveInput(server)));
    const samples: Sample[] = [baseline];
    let publishing = 0;
    let sessions = 0;
    let abrupt = 0;

    // Each slot: publish for 15–45 s, go away (SIGKILL half the time: a dropped connection, else
    // SIGINT: FFmpeg closes the stream), stay away for 0.5–5 s, again — until the deadline.
    const slot = async (streamKey: string, deadline: number) => {
      await sleep(random() * 10_000);
      while (Date.now() < deadline) {
        const pub = publishClip(smallClip, `${server.rtmpBase}/${streamKey}`);
        publishing++;
        sessions++;
        await sleep(Math.min(15_000 + random() * 30_000, Math.max(0, deadline - Date.now())));
        const hard = random() < 0.5;
        if (hard) abrupt++;
        pub.child.kill(hard ? 'SIGKILL' : 'SIGINT');
        const killer = setTimeout(() => pub.child.kill('SIGKILL'), 5000);
        await pub.exited;
        clearTimeout(killer);
        publishing--;
        await sleep(500 + random() * 4500);
      }
    };
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        await sleep(sampleS * 1000);
        const s = sampleOf(pid, t0, publishing);
        samples.push(s);
        process.stdout.write(`  t=${s.t}s publishing=${s.publishing} live=${s.ffmpeg} fds=${s.fds} children=${s.children} rss=${s.rssMb} MB\n`);
      }
    })();

    // Rounds of churn, each followed by a quiet spell longer than an ended session stays
    // playable (60 s): growth from the first quiet spell to the last would be a leak; what the
    // first round leaves is the heap's high-water mark.
    const quiet: Sample[] = [];
    let settled = true;
    for (let round = 0; round < rounds; round++) {
      const deadline = Date.now() + (minutes * 60_000) / rounds;
      await Promise.all(inputs.map((i) => slot(i.streamKey, deadline)));
      settled = (await pollUntil(() => (descendants(pid, 'ffmpeg').length === 0 ? true : undefined), 60_000, 200)) === true && settled;
      process.stdout.write(`  round ${round + 1} over; waiting ${quietS} s for ended sessions to be forgotten\n`);
      await sleep(quietS * 1000);
      quiet.push(sampleOf(pid, t0, 0));
      breakdowns.push(rssBreakdown(pid));
      if (inspector) {
        const h = await inspector.measure();
        heaps.push(h);
        process.stdout.write(`  after round ${round + 1}, post-GC: heapUsed=${h.heapUsedMb} MB heapTotal=${h.heapTotalMb} MB external=${h.externalMb} MB arrayBuffers=${h.arrayBuffersMb} MB rss=${h.rssMb} MB\n`);
        if (values['heap-snapshot'] && (round === 0 || round === rounds - 1)) snapshots.push(await inspector.snapshotSummary());
      }
      await readMalloc(`after round ${round + 1}`, round === rounds - 1);
    }
    sampling = false;
    await sampler;
    inspector?.close();
    const after1 = quiet[0]!;
    const after2 = quiet[quiet.length - 1]!;
    samples.push(after2);

    // What the server made of the churn, from its log.
    const events: Record<string, number> = {};
    for (const l of server.logs) {
      if (!['publish accepted', 'rtmp publish refused', 'live', 'session ending', 'transcoder did not start', 'rtmp protocol error, closing publish'].includes(String(l.msg))) continue;
      const key = `${String(l.msg)}${l.code ? ` ${String(l.code)}` : ''}`;
      events[key] = (events[key] ?? 0) + 1;
    }
    process.stdout.write(`  server log: ${JSON.stringify(events)}\n`);

    const max = (k: keyof Sample) => Math.max(...samples.map((x) => x[k]));
    const checks = {
      ffmpegGone: settled,
      fdsBackToBaseline: after2.fds <= baseline.fds + BOUNDS.fdSlack,
      childrenBackToBaseline: after2.children <= baseline.children + BOUNDS.childSlack,
      rssNoGrowthRoundToRound: after2.rssMb - after1.rssMb < BOUNDS.rssRoundGrowthMb,
      ...(heaps.length > 2 ? { heapNoGrowthRoundToRound: heaps[heaps.length - 1]!.heapUsedMb - heaps[1]!.heapUsedMb < BOUNDS.heapRoundGrowthMb } : {}),
      ...(mallocs.length > 2 ? { mallocInUseNoGrowthRoundToRound: mallocs[mallocs.length - 1]!.inUseMb - mallocs[1]!.inUseMb < BOUNDS.mallocInUseRoundGrowthMb } : {}),
    };
    printTable(
      `Soak: ${publishers} copy-only publishers (426x240, -c copy) connecting and disconnecting, ${rounds} rounds of ${(minutes / rounds).toFixed(2)} min (${sessions} publisher runs, ${abrupt} dropped abruptly)${envNote ? `, server env: ${envNote}` : ''}`,
      ['', 'fds', 'children', 'RSS MB', 'publishing', 'live sessions'],
      [
        ['start (idle)', baseline.fds, baseline.children, baseline.rssMb, 0, 0],
        ['max', max('fds'), max('children'), max('rssMb'), max('publishing'), max('ffmpeg')],
        ...quiet.map((q, i) => [`after round ${i + 1} (quiet ${quietS} s)`, q.fds, q.children, q.rssMb, 0, q.ffmpeg]),
      ],
    );
    if (breakdowns.every((b) => b !== undefined)) {
      printTable(
        'Where the RSS is (from /proc/<pid>/smaps, before any forced GC)',
        ['', 'main malloc arena MB', 'malloc thread arenas MB', 'other anon (V8 heap, mmapped buffers) MB', 'files MB', 'total MB'],
        breakdowns.map((b, i) => [i === 0 ? 'start (idle)' : `after round ${i}`, b!.mainArenaMb, b!.threadArenasMb, b!.otherAnonMb, b!.filesMb, b!.totalMb]),
      );
    }
    if (heaps.length > 0) {
      printTable(
        'V8 heap after a forced full GC (through the inspector)',
        ['', 'heapUsed MB', 'heapTotal MB', 'external MB', 'arrayBuffers MB', 'RSS MB (after the GC)'],
        heaps.map((h, i) => [i === 0 ? 'start (idle)' : `after round ${i}`, h.heapUsedMb, h.heapTotalMb, h.externalMb, h.arrayBuffersMb, h.rssMb]),
      );
    }
    if (mallocs.length > 0) {
      printTable(
        `glibc malloc_info() (after the forced GC when --heap)${values['malloc-trim'] ? ', then, after the last round, malloc_trim(0)' : ''}`,
        ['', 'in use MB', 'free (kept) MB', 'mmapped MB', 'arenas', 'RSS MB', ...(values['malloc-trim'] ? ['RSS after trim MB'] : [])],
        mallocs.map((m, i) => [i === 0 ? 'start (idle)' : `after round ${i}`, m.inUseMb, m.freeMb, m.mmappedMb, m.arenas, m.rssBeforeMb, ...(values['malloc-trim'] ? [i === mallocs.length - 1 ? m.rssAfterMb : '-'] : [])]),
      );
    }
    const growth = snapshots.length === 2 ? snapshotGrowth(snapshots[0]!, snapshots[1]!) : [];
    if (growth.length > 0) {
      printTable(
        `Heap snapshot, after round 1 → after round ${rounds}: the kinds of object whose count grew most`,
        ['type:constructor', 'count after', 'count Δ', 'self bytes Δ'],
        growth.map((g) => [g.key, g.countAfter, g.countDelta, g.bytesDelta]),
      );
    }
    printTable(
      'Bounds',
      ['check', 'bound', 'result'],
      [
        ['every FFmpeg child exited', '≤ 60 s after the last publisher', checks.ffmpegGone ? 'pass' : 'FAIL'],
        ['fds back to baseline', `≤ start + ${BOUNDS.fdSlack}`, `${checks.fdsBackToBaseline ? 'pass' : 'FAIL'} (${after2.fds - baseline.fds >= 0 ? '+' : ''}${after2.fds - baseline.fds})`],
        ['child processes back to baseline', `≤ start + ${BOUNDS.childSlack}`, `${checks.childrenBackToBaseline ? 'pass' : 'FAIL'} (${after2.children})`],
        [`RSS growth, after round 1 → after round ${rounds}`, `< ${BOUNDS.rssRoundGrowthMb} MB`, `${checks.rssNoGrowthRoundToRound ? 'pass' : 'FAIL'} (${(after2.rssMb - after1.rssMb).toFixed(1)} MB)`],
        ...(checks.heapNoGrowthRoundToRound === undefined
          ? []
          : [[`post-GC heapUsed growth, after round 1 → after round ${rounds}`, `< ${BOUNDS.heapRoundGrowthMb} MB`, `${checks.heapNoGrowthRoundToRound ? 'pass' : 'FAIL'} (${(heaps[heaps.length - 1]!.heapUsedMb - heaps[1]!.heapUsedMb).toFixed(1)} MB)`]]),
        ...(checks.mallocInUseNoGrowthRoundToRound === undefined
          ? []
          : [[`malloc in-use growth, after round 1 → after round ${rounds}`, `< ${BOUNDS.mallocInUseRoundGrowthMb} MB`, `${checks.mallocInUseNoGrowthRoundToRound ? 'pass' : 'FAIL'} (${(mallocs[mallocs.length - 1]!.inUseMb - mallocs[1]!.inUseMb).toFixed(1)} MB)`]]),
        [`RSS, start → after round ${rounds} (allocator high-water mark; not a bound)`, '-', `${(after2.rssMb - baseline.rssMb).toFixed(1)} MB`],
      ],
    );
    results.soak = { minutes, publishers, rounds, quietS, serverEnv: envNote, sessions, abrupt, serverLog: events, start: baseline, afterRound1: after1, afterLastRound: after2, afterRounds: quiet, rssBreakdown: breakdowns, heap: heaps, malloc: mallocs, heapGrowth: growth, max: { fds: max('fds'), children: max('children'), rssMb: max('rssMb'), live: max('ffmpeg') }, checks, samples };
  });
}

// ---------------------------------------------------------------------------------------------
/** FFmpeg alone receiving the same N streams, copying them to /dev/null: its fds and memory. */
async function reference(): Promise<void> {
  const ports = await Promise.all(Array.from({ length: publishers }, () => freePort()));
  const refs = ports.map((port) =>
    run('ffmpeg', ['-hide_banner', '-loglevel', 'error', '-listen', '1', '-i', `rtmp://127.0.0.1:${port}/live/x`, '-c', 'copy', '-f', 'null', '/dev/null']),
  );
  await sleep(1000);
  const pubs = ports.map((port) => publishClip(smallClip, `rtmp://127.0.0.1:${port}/live/x`));
  await sleep(10_000);
  const pids = refs.map((r) => r.child.pid).filter((p): p is number => p !== undefined);
  const alive = pids.filter((p) => rssMb(p) > 0);
  const rss = alive.reduce((a, p) => a + rssMb(p), 0);
  const fds = alive.reduce((a, p) => a + fdCount(p), 0);
  for (const p of pubs) p.child.kill('SIGKILL');
  for (const r of refs) r.child.kill('SIGKILL');
  await Promise.all([...pubs.map((p) => p.exited), ...refs.map((r) => r.exited)]);
  results.reference = { processes: alive.length, rssMb: rss, fds, rssPerStreamMb: rss / Math.max(1, alive.length) };
  printTable(
    `Reference: FFmpeg alone, ${publishers} RTMP listeners copying to /dev/null (one process per stream)`,
    ['', 'processes', 'fds (sum)', 'RSS MB (sum)', 'RSS MB per stream'],
    [['FFmpeg alone', alive.length, fds, rss, rss / Math.max(1, alive.length)]],
  );
}

// ---------------------------------------------------------------------------------------------
/** Watches each stream's first rendition; on time = media advanced ≥ 90 % of wall time. */
async function onTime(urls: string[]): Promise<{ ok: number; medianRatio: number }> {
  const seen = urls.map(() => new Set<string>());
  const advanced = urls.map(() => 0);
  const segs = (text: string) => {
    const out: Array<[string, number]> = [];
    const lines = text.split('\n');
    for (let i = 0; i < lines.length; i++) {
      const m = /^#EXTINF:([\d.]+)/.exec(lines[i]!);
      if (m) out.push([lines[i + 1]!.trim(), Number(m[1])]);
    }
    return out;
  };
  for (const [i, u] of urls.entries()) for (const [k] of segs((await fetchText(u)).text)) seen[i]!.add(k);
  const t0 = Date.now();
  while (Date.now() - t0 < windowS * 1000) {
    await Promise.all(
      urls.map(async (u, i) => {
        for (const [k, d] of segs((await fetchText(u)).text)) {
          if (!seen[i]!.has(k)) {
            seen[i]!.add(k);
            advanced[i]! += d;
          }
        }
      }),
    );
    await sleep(500);
  }
  const wall = (Date.now() - t0) / 1000;
  const ratios = advanced.map((a) => (a + 2) / wall);
  return { ok: ratios.filter((r) => r >= 0.9).length, medianRatio: median(ratios) };
}

async function capacity(label: string, env: Record<string, string>, clip: string, counts: number[]): Promise<Array<Record<string, unknown>>> {
  const out: Array<Record<string, unknown>> = [];
  await withServer(env, async (server) => {
    const pid = server.process.pid!;
    await sleep(2000);
    const idleRss = rssMb(pid);
    for (const n of counts) {
      const { pubs, live } = await publishClips(server, clip, n, 200);
      const a = await onTime(live);
      const serverRss = rssMb(pid);
      const ffmpegPids = descendants(pid, 'ffmpeg');
      const ffmpegRss = ffmpegPids.reduce((acc, p) => acc + rssMb(p), 0);
      const row = {
        setup: label,
        publishers: n,
        onTime: a.ok,
        medianRatio: a.medianRatio,
        serverRssMb: serverRss,
        serverMbPerSession: (serverRss - idleRss) / n,
        ffmpegMbPerSession: ffmpegRss / Math.max(1, ffmpegPids.length),
      };
      out.push(row);
      process.stdout.write(`  ${label} ${n}: ${a.ok}/${n} on time\n`);
      for (const p of pubs) p.child.kill('SIGKILL');
      await Promise.all(pubs.map((p) => p.exited));
      await pollUntil(() => (descendants(pid, 'ffmpeg').length === 0 ? true : undefined), 60_000, 200);
    }
  });
  return out;
}

try {
  process.stdout.write(`encoding the clips into ${work}\n`);
  await makeClip(smallClip, { width: 426, height: 240, seconds: 30, gop: 30, videoKbps: 400 });
  process.stdout.write(`soak: ${publishers} publishers for ${minutes} min, sampling every ${sampleS} s\n`);
  await soak();
  await reference();
  if (!values['skip-capacity']) {
    await makeClip(hdClip, { width: 1280, height: 720, seconds: 30, gop: 30, videoKbps: 2500 });
    const copyCounts = values['copy-counts'].split(',').map(Number);
    const ladderCounts = values['ladder-counts'].split(',').map(Number);
    const rows = [
      ...(await capacity('copy-only, 426x240', COPY_ONLY, smallClip, copyCounts)),
      // The default ladder on a 720p source: source copy + 480p + 360p encoded.
      ...(await capacity('default ladder, 1280x720', { TRIBUTARY_LIMITS_AUTH_FAILURES_MAX: '0' }, hdClip, ladderCounts)),
    ];
    results.capacity = rows;
    printTable(
      `Publishers per node and memory per live session (on time = media advanced ≥ 90 % of wall time over ${windowS} s)`,
      ['setup', 'publishers', 'on time', 'median ratio', 'server RSS MB', 'server MB / session', 'ffmpeg MB / session'],
      rows.map((r) => [String(r.setup), Number(r.publishers), `${Number(r.onTime)}/${Number(r.publishers)}`, Number(r.medianRatio), Number(r.serverRssMb), Number(r.serverMbPerSession), Number(r.ffmpegMbPerSession)]),
    );
  }
  // Figures are upper bounds on a shared machine: the load at the end as well as at the start.
  results.loadavgEnd = os.loadavg();
  process.stdout.write(`\nload average at the end: ${os.loadavg().map((l) => l.toFixed(2)).join(' ')}\n`);
  process.stdout.write(`\n${JSON.stringify({ bench: 'soak-publishers', ...results })}\n`);
  const soakResult = results.soak as { checks: Record<string, boolean> } | undefined;
  if (soakResult && Object.values(soakResult.checks).some((ok) => !ok)) process.exitCode = 1;
} finally {
  rmSync(work, { recursive: true, force: true });
}
