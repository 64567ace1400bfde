/**
 * Signed playback benchmark: what does token checking cost the origin? Requests per second for a
 * part/segment URL and a media playlist, each without a token (`/{uid}/…`), with one token reused
 * (warm: the verifier's cache answers) and with a fresh token per request (cold: every request is
 * a full ES256 verification) — side by side in one run, with wrk (apt-get install wrk), keep-alive
 * connections.
 *
 *   node scripts/bench/signed-playback.ts [--rounds 3] [--duration 5] [--connections 64] [--tokens 5000]
 *
 * The tokens are signed client-side with a `POST /v1/keys` ES256 key (the cheap way to make many)
 * for the same live input the unsigned requests read: the only difference between the columns is
 * the token check. Prints a table and, last, one JSON line with every figure.
 */
import { execFile, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs, promisify } from 'node:util';
import { importPKCS8, SignJWT } from 'jose';
import { createLiveInput, startServer, type TestServer } from '../../test/helpers/server.ts';
import { parseMaster, parseMedia } from '../../test/helpers/probe.ts';
import { makeClip, median, printTable, publishClip, sleep } from './bench-lib.ts';

const exec = promisify(execFile);

const { values } = parseArgs({
  options: {
    rounds: { type: 'string', default: '3' },
    duration: { type: 'string', default: '5' },
    connections: { type: 'string', default: '64' },
    tokens: { type: 'string', default: '5000' },
  },
});
const rounds = Number(values.rounds);
const duration = Number(values.duration);
const connections = Number(values.connections);
const coldTokens = Number(values.tokens);
const THREADS = 2;
// A thread stops after its share of the fresh tokens; requests already in flight then take spares.
const SPARE = connections * 2;

// wrk: each thread walks its own stride of the token file and, when it has had its share of
// answers, stops and drops a marker file; the script then ends wrk (SIGINT), which reports the
// rate over the time it ran. Every cold request carries a token the server has not seen.
const COLD_LUA = `
local counter = 0
function setup(thread)
  thread:set("id", counter)
  counter = counter + 1
end
function init(args)
  tokens = {}
  for line in io.lines(args[1]) do tokens[#tokens + 1] = line end
  suffix = args[2]
  step = tonumber(args[3])
  limit = math.floor(tonumber(args[4]) / step)
  marker = args[5] .. id
  i = id + 1
  done = 0
end
function request()
  local t = tokens[i] or tokens[#tokens]
  i = i + step
  return wrk.format("GET", "/" .. t .. suffix)
end
function response(status, headers, body)
  done = done + 1
  if done == limit then
    io.open(marker, "w"):close()
    wrk.thread:stop()
  end
end
`;

interface WrkResult {
  rps: number;
  requests: number;
  non2xx: number;
  latencyMs: number;
}

function parseWrk(stdout: string): WrkResult {
  const num = (re: RegExp) => Number(re.exec(stdout)?.[1] ?? NaN);
  const lat = /Latency\s+([\d.]+)(us|ms|s)/.exec(stdout);
  const scale = lat?.[2] === 'us' ? 0.001 : lat?.[2] === 's' ? 1000 : 1;
  return {
    rps: num(/Requests\/sec:\s+([\d.]+)/),
    requests: num(/(\d+) requests in/),
    non2xx: Number(/Non-2xx or 3xx responses: (\d+)/.exec(stdout)?.[1] ?? 0),
    latencyMs: lat ? Number(lat[1]) * scale : NaN,
  };
}

async function wrk(url: string, seconds: number): Promise<WrkResult> {
  const args = ['-t', String(THREADS), '-c', String(connections), '-d', `${seconds}s`, url];
  return parseWrk((await exec('wrk', args, { maxBuffer: 1024 * 1024 })).stdout);
}

/** Sends each of `count` fresh tokens once; ends wrk as soon as every thread is done. */
async function wrkCold(base: string, script: string, tokenFile: string, suffix: string, count: number): Promise<WrkResult> {
  const marker = `${tokenFile}.done-`;
  const args = ['-t', String(THREADS), '-c', String(connections), '-d', '300s', '-s', script, base];
  args.push('--', tokenFile, suffix, String(THREADS), String(count), marker);
  const child = spawn('wrk', args, { stdio: ['ignore', 'pipe', 'inherit'] });
  let stdout = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  const exited = new Promise<void>((resolve) => child.once('close', () => resolve()));
  const markers = Array.from({ length: THREADS }, (_, i) => `${marker}${i}`);
  while (child.exitCode === null && !markers.every((m) => existsSync(m))) await sleep(5);
  child.kill('SIGINT');
  await exited;
  return parseWrk(stdout);
}

async function text(url: string): Promise<{ status: number; body: string }> {
  const res = await fetch(url);
  return { status: res.status, body: await res.text() };
}

async function until<T>(fn: () => Promise<T | undefined>, timeoutMs: number): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const v = await fn();
    if (v !== undefined) return v;
    await sleep(100);
  }
  throw new Error('timed out');
}

const work = mkdtempSync(path.join(os.tmpdir(), 'trib-bench-signed-'));
let server: TestServer | undefined;
let publisher: ReturnType<typeof publishClip> | undefined;
try {
  const clip = path.join(work, 'clip.flv');
  await makeClip(clip, { width: 640, height: 360, seconds: 20, gop: 30 });
  server = await startServer({ env: { TRIBUTARY_TRANSCODE_MAX_RENDITIONS: '1'} });
  const s = server;
  const input = await createLiveInput(s, { meta: { name: 'bench' } });
  publisher = publishClip(clip, `${s.rtmpBase}/${input.streamKey}`);
  const masterUrl = `${s.httpUrl}/${input.uid}/manifest/video.m3u8`;
  const master = await until(async () => {
    const r = await text(masterUrl);
    return r.status === 200 ? r.body : undefined;
  }, 30_000);
  const mediaUri = parseMaster(master)[0]!.uri; // e.g. source/abcd.m3u8
  const rendition = mediaUri.split('/')[0]!;

  // Tokens: one ES256 key from the API, every token signed here.
  const key = await s.api<{ result: { id: string; pem: string } }>('POST', '/v1/keys', { algorithm: 'ES256' });
  const privateKey = await importPKCS8(Buffer.from(key.body.result.pem, 'base64').toString('utf8'), 'ES256');
  const sign = () =>
    new SignJWT({})
      .setProtectedHeader({ alg: 'ES256', kid: key.body.result.id })
      .setSubject(input.uid)
      .setIssuedAt()
      .setExpirationTime('2h')
      .sign(privateKey);
  const warmToken = await sign();
  const mintFile = async (name: string) => {
    const list: string[] = [];
    for (let i = 0; i < coldTokens + SPARE; i++) list.push(await sign());
    const file = path.join(work, name);
    writeFileSync(file, `${list.join('\n')}\n`);
    return file;
  };
  const script = path.join(work, 'cold.lua');
  writeFileSync(script, COLD_LUA);

  // Wait for a few segments so that the one we hammer stays in the window for a whole round.
  await until(async () => (parseMedia((await text(`${s.httpUrl}/${input.uid}/manifest/${mediaUri}`)).body).segments.length >= 3 ? true : undefined), 30_000);

  type Cell = 'unsigned' | 'warm' | 'cold';
  const targets = ['part', 'segment', 'playlist'] as const;
  const results: Record<string, Record<Cell, WrkResult[]>> = {};
  for (const t of targets) results[t] = { unsigned: [], warm: [], cold: [] };
  // Picked afresh before every measurement, so the file is still in the window when it ends.
  const suffixOf = async (target: (typeof targets)[number]) => {
    if (target === 'playlist') return `/manifest/${mediaUri}`;
    const body = (await text(`${s.httpUrl}/${input.uid}/manifest/${mediaUri}`)).body;
    if (target === 'segment') return `/manifest/${rendition}/${parseMedia(body).segments.at(-1)!}`;
    const parts = [...body.matchAll(/#EXT-X-PART:.*URI="([^"]+)"/g)].map((m) => m[1]!);
    return `/manifest/${rendition}/${parts.at(-1)!}`;
  };
  let files = 0;
  for (let round = 0; round < rounds; round++) {
    for (const target of targets) {
      const file = await mintFile(`tokens-${files++}.txt`);
      // Warm-up: connections open, JIT warm, the warm token cached.
      await wrk(`${s.httpUrl}/${warmToken}${await suffixOf(target)}`, 1);
      await wrk(`${s.httpUrl}/${input.uid}${await suffixOf(target)}`, 1);
      // Alternate which goes first: background load drifts, and the order must not pick a winner.
      const order: Array<[Cell, string]> = [
        ['unsigned', input.uid],
        ['warm', warmToken],
      ];
      if (round % 2 === 1) order.reverse();
      for (const [cell, id] of order) results[target]![cell].push(await wrk(`${s.httpUrl}/${id}${await suffixOf(target)}`, duration));
      results[target]!.cold.push(await wrkCold(s.httpUrl, script, file, await suffixOf(target), coldTokens));
    }
  }

  const summary: Record<string, unknown> = {
    machine: { cpus: os.cpus().length, model: os.cpus()[0]?.model },
    settings: { rounds, duration, connections, coldTokens, threads: THREADS, algorithm: 'ES256' },
  };
  const rows: Array<Array<string | number>> = [];
  for (const target of targets) {
    const cell = (c: Cell) => median(results[target]![c].map((r) => r.rps));
    const lat = (c: Cell) => median(results[target]![c].map((r) => r.latencyMs));
    const errors = (c: Cell) => results[target]![c].reduce((n, r) => n + r.non2xx, 0);
    const unsigned = cell('unsigned');
    const warm = cell('warm');
    const cold = cell('cold');
    rows.push([
      target,
      Math.round(unsigned),
      `${Math.round(warm)} (${((warm / unsigned) * 100).toFixed(1)} %)`,
      `${Math.round(cold)} (${((cold / unsigned) * 100).toFixed(1)} %)`,
      `${lat('unsigned').toFixed(2)} / ${lat('warm').toFixed(2)} / ${lat('cold').toFixed(2)}`,
      `${errors('unsigned')} / ${errors('warm')} / ${errors('cold')}`,
    ]);
    summary[target] = {
      unsignedRps: Math.round(unsigned),
      warmSignedRps: Math.round(warm),
      coldSignedRps: Math.round(cold),
      warmRatio: Number((warm / unsigned).toFixed(3)),
      coldRatio: Number((cold / unsigned).toFixed(3)),
      latencyMs: { unsigned: lat('unsigned'), warm: lat('warm'), cold: lat('cold') },
      non2xx: { unsigned: errors('unsigned'), warm: errors('warm'), cold: errors('cold') },
      runs: results[target],
    };
  }
  printTable(
    `Signed playback: requests/s (median of ${rounds} rounds; wrk -t${THREADS} -c${connections}; cold = ${coldTokens} fresh ES256 tokens, each used once)`,
    ['URL', 'no token', 'token, warm cache', 'token, cold cache', 'avg latency ms (none/warm/cold)', 'non-2xx (none/warm/cold)'],
    rows,
  );
  process.stdout.write(`${JSON.stringify(summary)}\n`);
} finally {
  publisher?.child.kill('SIGINT');
  await publisher?.exited;
  await server?.stop();
  await server?.cleanup();
  rmSync(work, { recursive: true, force: true });
}
