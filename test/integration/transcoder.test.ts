import { execFile } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { delay } from '../../src/lib/abort.ts';
import { silentLogger } from '../../src/observability/logger.ts';
import { buildLiveArgs } from '../../src/transcode/ffmpeg-args.ts';
import { chooseLadder, type RenditionSpec } from '../../src/transcode/ladder.ts';
import { Transcoder } from '../../src/transcode/transcoder.ts';
import { readFlvFile, splitHeaders, type FlvFileTag } from '../helpers/flv-file.ts';

const run = promisify(execFile);
const FFMPEG = '/usr/bin/ffmpeg';
const FFPROBE = '/usr/bin/ffprobe';
const INPUT_SECONDS = 6;

let dir: string;
let headers: Buffer[];
let media: FlvFileTag[];

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'tributary-transcoder-'));
  const input = join(dir, 'input.flv');
  // 720p, keyframe every second (30 frames), AAC: what OBS sends with sensible settings.
  await run(FFMPEG, [
    '-hide_banner', '-loglevel', 'error',
    '-f', 'lavfi', '-i', 'testsrc2=size=1280x720:rate=30',
    '-f', 'lavfi', '-i', 'sine=sample_rate=48000',
    '-t', String(INPUT_SECONDS),
    '-c:v', 'libx264', '-preset', 'veryfast', '-tune', 'zerolatency', '-bf', '0', '-g', '30',
    '-c:a', 'aac', '-f', 'flv', input,
  ]);
  ({ headers, media } = splitHeaders(readFlvFile(await readFile(input))));
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const ladder = (): RenditionSpec[] =>
  chooseLadder({ width: 1280, height: 720 }, [{ name: '360p', height: 360, videoBitrateKbps: 700, audioBitrateKbps: 96 }], {
    includeSource: true,
  });

function argsFor(renditions: RenditionSpec[]): string[] {
  return buildLiveArgs({ renditions, gopSeconds: 1, partDurationSeconds: 0.25, sourceAudio: 'aac', input: 'flv-stdin', threadsPerRendition: 1 });
}

/** Output bytes by process generation (0 = first process, n = after the n-th restart). */
function collect(t: Transcoder, outputs: number): Buffer[][][] {
  const generations: Buffer[][][] = [[]];
  const fresh = () => Array.from({ length: outputs }, () => [] as Buffer[]);
  generations[0] = fresh();
  t.on('restart', () => generations.push(fresh()));
  t.on('data', (index, chunk) => generations.at(-1)?.[index]?.push(chunk));
  return generations;
}

/** Writes the tags, all at once or paced like a live publisher at `speed` × real time. */
async function feed(t: Transcoder, tags: FlvFileTag[], speed?: number): Promise<void> {
  const started = performance.now();
  const first = tags[0]?.timestamp ?? 0;
  for (const tag of tags) {
    if (speed !== undefined) {
      const due = started + (tag.timestamp - first) / speed - performance.now();
      if (due > 0) await delay(due);
    }
    t.write(tag.bytes, { keyframe: tag.keyframe });
  }
}

/** Top-level MP4 boxes of a byte stream, in order. */
function topLevelBoxes(buf: Buffer): string[] {
  const types: string[] = [];
  let at = 0;
  while (at + 8 <= buf.length) {
    let size = buf.readUInt32BE(at);
    if (size === 1 && at + 16 <= buf.length) size = Number(buf.readBigUInt64BE(at + 8));
    types.push(buf.toString('latin1', at + 4, at + 8));
    if (size < 8) break;
    at += size;
  }
  return types;
}

interface Probe {
  streams: Array<{ codec_type: string; codec_name: string; width?: number; height?: number }>;
  format: { duration: string };
}

async function probe(file: string): Promise<Probe> {
  const { stdout } = await run(FFPROBE, ['-v', 'error', '-show_streams', '-show_format', '-of', 'json', file]);
  return JSON.parse(stdout) as Probe;
}

/** Presentation times (s) of the video keyframes, from the packet flags: no decoding. */
async function keyframeTimes(file: string): Promise<number[]> {
  const { stdout } = await run(FFPROBE, [
    '-v', 'error', '-select_streams', 'v:0', '-show_entries', 'packet=pts_time,flags', '-of', 'csv=p=0', file,
  ]);
  return stdout
    .split('\n')
    .map((line) => line.split(','))
    .filter(([, flags]) => flags?.includes('K'))
    .map(([pts]) => Number(pts));
}

async function writeOutputs(name: string, chunks: Buffer[][]): Promise<string[]> {
  return Promise.all(
    chunks.map(async (parts, i) => {
      const file = join(dir, `${name}-${i}.mp4`);
      await writeFile(file, Buffer.concat(parts));
      return file;
    }),
  );
}

/** CPU seconds used by this process's reaped children (utime + stime of waited-for children). */
async function childCpuSeconds(): Promise<number> {
  const stat = await readFile('/proc/self/stat', 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // Fields after the command name start at field 3; cutime and cstime are fields 16 and 17.
  return (Number(fields[16 - 3]) + Number(fields[17 - 3])) / 100;
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe('Transcoder with real FFmpeg', () => {
  it.each([
    { name: 'copy only', renditions: () => ladder().slice(0, 1) },
    { name: 'copy + 360p', renditions: ladder },
    {
      // No copy: keyframes come from -force_key_frames expr every gopSeconds (1 s here).
      name: '360p + 240p, no copy',
      renditions: () =>
        chooseLadder({ width: 1280, height: 720 }, [
          { name: '360p', height: 360, videoBitrateKbps: 700, audioBitrateKbps: 96 },
          { name: '240p', height: 240, videoBitrateKbps: 400, audioBitrateKbps: 64 },
        ], { includeSource: false }),
    },
  ])('$name: fragmented MP4 per rendition, keyframes aligned', async ({ name, renditions }) => {
    const specs = renditions();
    // The whole input arrives in one burst, so close() must let FFmpeg work through all of it.
    const t = new Transcoder({
      ffmpegPath: FFMPEG,
      args: argsFor(specs),
      outputs: specs.length,
      logger: silentLogger(),
      eofGraceMs: 60_000,
    });
    const out = collect(t, specs.length);
    t.setHeaders(headers);
    const cpuBefore = await childCpuSeconds();
    const wallStart = performance.now();
    const started = t.start();
    await feed(t, media);
    await started;
    const pid = t.pid;
    await t.close();
    const wall = (performance.now() - wallStart) / 1000;
    const cpu = (await childCpuSeconds()) - cpuBefore;
    console.log(`[transcoder] ${name}: ffmpeg CPU ${cpu.toFixed(2)} s, wall ${wall.toFixed(2)} s for ${INPUT_SECONDS} s of 720p30 input`);

    expect(pid).toBeDefined();
    expect(isAlive(pid ?? 0)).toBe(false);
    // Only what precedes the first keyframe (an audio frame) is held back from a fresh FFmpeg.
    expect(t.droppedTags).toBe(media.findIndex((tag) => tag.keyframe));
    expect(out).toHaveLength(1);
    const files = await writeOutputs(name.replace(/\W+/g, '-'), out[0] ?? []);
    const keyframes: number[][] = [];
    for (const [i, file] of files.entries()) {
      const bytes = await readFile(file);
      const boxes = topLevelBoxes(bytes);
      expect(boxes.slice(0, 2)).toEqual(['ftyp', 'moov']);
      // 6 s in parts of at most 0.25 s.
      expect(boxes.filter((b) => b === 'moof').length).toBeGreaterThanOrEqual(INPUT_SECONDS / 0.25);
      const info = await probe(file);
      const video = info.streams.find((s) => s.codec_type === 'video');
      const audio = info.streams.find((s) => s.codec_type === 'audio');
      expect(video).toMatchObject({ codec_name: 'h264', width: specs[i]?.width, height: specs[i]?.height });
      expect(audio?.codec_name).toBe('aac');
      expect(Number(info.format.duration)).toBeCloseTo(INPUT_SECONDS, 0);
      keyframes.push(await keyframeTimes(file));
    }
    // Keyframes once a second in the source: every rendition has them at the same times.
    expect(keyframes[0]?.length).toBe(INPUT_SECONDS);
    for (const times of keyframes.slice(1)) {
      expect(times.length).toBe(keyframes[0]?.length);
      times.forEach((time, k) => expect(time).toBeCloseTo(keyframes[0]?.[k] ?? Number.NaN, 3));
    }
  });

  it('restarts a killed FFmpeg: fresh init segment on every output, writes never throw', async () => {
    const specs = ladder();
    const t = new Transcoder({
      ffmpegPath: FFMPEG,
      args: argsFor(specs),
      outputs: specs.length,
      logger: silentLogger(),
      restart: { maxRestarts: 3, windowMs: 60_000, backoff: { baseMs: 50, maxMs: 200 } },
    });
    const out = collect(t, specs.length);
    const failures: Error[] = [];
    t.on('failed', (err) => failures.push(err));
    t.setHeaders(headers);
    const started = t.start();
    // Twice real time: about 3 s of feeding, the kill lands in the first second.
    const feeding = feed(t, media, 2);
    await started;
    const firstPid = t.pid ?? 0;
    const restarted = once(t, 'restart');
    // Before the replacement starts, the publisher is asked for a keyframe (WHIP sends a PLI).
    let keyframeWantedBeforeRestart = false;
    t.once('keyframeWanted', () => {
      keyframeWantedBeforeRestart = t.restarts === 0;
    });
    process.kill(firstPid, 'SIGKILL');
    const [attempt, lastError] = (await restarted) as [number, Error];
    expect(keyframeWantedBeforeRestart).toBe(true);
    expect(attempt).toBe(1);
    expect(lastError.message).toMatch(/SIGKILL/);
    const secondPid = t.pid ?? 0;
    expect(secondPid).not.toBe(firstPid);
    await feeding;
    await t.close();

    expect(failures).toEqual([]);
    expect(t.restarts).toBe(1);
    expect(isAlive(firstPid)).toBe(false);
    expect(isAlive(secondPid)).toBe(false);
    expect(out).toHaveLength(2);
    const files = await writeOutputs('after-restart', out[1] ?? []);
    for (const [i, file] of files.entries()) {
      const boxes = topLevelBoxes(await readFile(file));
      expect(boxes.slice(0, 2)).toEqual(['ftyp', 'moov']);
      expect(boxes).toContain('moof');
      const info = await probe(file);
      expect(info.streams.find((s) => s.codec_type === 'video')).toMatchObject({ width: specs[i]?.width, height: specs[i]?.height });
      expect(Number(info.format.duration)).toBeGreaterThan(0.5);
    }
    // The restarted process waited for a keyframe: what came before it was dropped and counted.
    expect(t.droppedTags).toBeGreaterThan(0);
  });

  it('fails after too many crashes within the window', async () => {
    const specs = ladder().slice(0, 1);
    const t = new Transcoder({
      ffmpegPath: FFMPEG,
      args: argsFor(specs),
      outputs: 1,
      logger: silentLogger(),
      restart: { maxRestarts: 1, windowMs: 60_000, backoff: { baseMs: 10, maxMs: 10 } },
    });
    t.setHeaders(headers);
    const started = t.start();
    const feeding = feed(t, media, 4);
    await started;
    const pids = [t.pid ?? 0];
    const restarted = once(t, 'restart');
    process.kill(pids[0] ?? 0, 'SIGKILL');
    await restarted;
    pids.push(t.pid ?? 0);
    const failed = once(t, 'failed');
    process.kill(pids[1] ?? 0, 'SIGKILL');
    const [error] = (await failed) as [Error];
    expect(error.message).toMatch(/crashed 2 times/);
    await feeding;
    await t.close();
    expect(t.restarts).toBe(1);
    for (const pid of pids) expect(isAlive(pid)).toBe(false);
  });

  it('a publisher silent after a crash does not use up the restart budget: FFmpeg restarts with its next keyframe', async () => {
    const specs = ladder().slice(0, 1);
    const t = new Transcoder({
      ffmpegPath: FFMPEG,
      args: argsFor(specs),
      outputs: 1,
      logger: silentLogger(),
      startTimeoutMs: 3000,
      restart: { maxRestarts: 1, windowMs: 60_000, backoff: { baseMs: 10, maxMs: 10 } },
    });
    const failures: Error[] = [];
    t.on('failed', (err) => failures.push(err));
    const out = collect(t, 1);
    t.setHeaders(headers);
    const started = t.start();
    const half = media.findIndex((tag) => tag.timestamp >= (INPUT_SECONDS / 2) * 1000 && tag.keyframe);
    await Promise.all([started, feed(t, media.slice(0, half), 4)]);
    const firstPid = t.pid ?? 0;
    process.kill(firstPid, 'SIGKILL');
    await expect.poll(() => t.pid, { timeout: 10_000 }).toBeUndefined();
    // Silent for over two start timeouts: processes started meanwhile would time out, one after
    // the other, and the second would use up the budget of one restart.
    await delay(7000);
    expect(failures).toEqual([]);
    expect(t.restarts).toBe(0);
    expect(t.pid).toBeUndefined();
    const restarted = once(t, 'restart');
    await feed(t, media.slice(half), 4);
    await restarted;
    expect(t.restarts).toBe(1);
    await t.close();
    expect(failures).toEqual([]);
    const files = await writeOutputs('after-silence', out[1] ?? []);
    expect(topLevelBoxes(await readFile(files[0] ?? '')).slice(0, 2)).toEqual(['ftyp', 'moov']);
  });

  it('rejects start() with FFmpeg’s stderr when the input cannot be decoded', async () => {
    const t = new Transcoder({ ffmpegPath: FFMPEG, args: argsFor(ladder()), outputs: 2, logger: silentLogger(), startTimeoutMs: 3_000 });
    t.setHeaders([headers[0] ?? Buffer.alloc(0)]);
    const started = t.start();
    const pid = t.pid ?? 0;
    // Past the FLV header, bytes that are no FLV tags at all: more than FFmpeg will probe.
    const garbage = Buffer.alloc(1024 * 1024, 0);
    for (let i = 0; i < garbage.length; i += 4) garbage.writeUInt32BE((Math.imul(i, 2654435761) >>> 0), i);
    t.write(garbage, { keyframe: true });
    const error = await started.then(() => undefined, (err: unknown) => err);
    console.log(`[transcoder] undecodable input: ${String(error)}`);
    expect(String(error)).toMatch(/ffmpeg said:\n.+/);
    expect(isAlive(pid)).toBe(false);
    await t.close();
  });

  it('drops up to the next keyframe, never queueing without bound, when FFmpeg stops reading', async () => {
    // A stand-in that produces its "first fragment" and then never reads stdin: a wedged FFmpeg.
    const t = new Transcoder({
      ffmpegPath: '/bin/sh',
      args: ['-c', 'printf x >&3; exec sleep 60'],
      outputs: 1,
      logger: silentLogger(),
      maxStdinBufferBytes: 1024 * 1024,
      eofGraceMs: 100,
    });
    await t.start();
    const pid = t.pid ?? 0;
    const tag = Buffer.alloc(64 * 1024);
    const total = 200; // 12.5 MiB
    for (let i = 0; i < total; i++) t.write(tag, { keyframe: i % 50 === 0 });
    // At most the 1 MiB bound plus what the kernel's socket buffer took (well under 2 MiB).
    const accepted = total - t.droppedTags;
    expect(accepted * tag.length).toBeGreaterThan(1024 * 1024);
    expect(accepted * tag.length).toBeLessThan(3 * 1024 * 1024);
    await t.close();
    expect(isAlive(pid)).toBe(false);
  });

  it('rejects start() clearly when the FFmpeg binary does not exist', async () => {
    const t = new Transcoder({ ffmpegPath: '/nonexistent/ffmpeg', args: ['-version'], outputs: 1, logger: silentLogger() });
    await expect(t.start()).rejects.toThrow(/cannot run ffmpeg at \/nonexistent\/ffmpeg: .*ENOENT/);
    t.write(Buffer.alloc(10), { keyframe: true });
    await t.close();
  });
});
