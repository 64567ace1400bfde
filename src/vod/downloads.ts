import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import type { Job } from 'bullmq';
import type { JobQueues } from '../jobs/job-queues.ts';
import type { Logger } from '../observability/logger.ts';
import type { DownloadRecord, DownloadRepository } from '../state/download-repo.ts';
import type { ObjectStore } from '../storage/object-store.ts';
import { runFfmpegJob } from './ffmpeg-job.ts';
import { videoPrefix } from './finalize.ts';
import type { SourceSegment, VodSource } from './vod-source.ts';

export interface DownloadServiceOptions {
  store: ObjectStore;
  source: VodSource;
  repo: DownloadRepository;
  jobs: JobQueues;
  logger: Logger;
  ffmpegPath: string;
  tmpDir: string;
  /** Builds run at once on this node. */
  concurrency: number;
  /** Longest a remux may take (default 10 min). */
  timeoutMs?: number;
}

interface BuildJob {
  uid: string;
  build: string;
}

const QUEUE = 'video-downloads';
/** Share of percentComplete spent fetching segments; the remux and the upload take the rest. */
const FETCH_SHARE = 85;

export function downloadKey(uid: string): string {
  return `${videoPrefix(uid)}downloads/default.mp4`;
}

/** Runs of segments that concatenate as one fMP4 file: same init segment, no discontinuity. */
export function decodableRuns(segments: readonly SourceSegment[]): SourceSegment[][] {
  const runs: SourceSegment[][] = [];
  let current: SourceSegment[] = [];
  for (const s of segments) {
    const prev = current.at(-1);
    if (prev && (s.discontinuity || s.map !== prev.map)) {
      runs.push(current);
      current = [];
    }
    current.push(s);
  }
  if (current.length > 0) runs.push(current);
  return runs;
}

/**
 * MP4 downloads (`default.mp4`): built by a durable job from the video's best rendition as
 * stored, with no re-encoding (its init and segments concatenated per run, then remuxed by FFmpeg
 * with `-c copy` and the index moved to the front), and stored next to the video. The state —
 * inprogress with percentComplete, ready, error — lives in Redis, so every node answers alike.
 */
export class DownloadService {
  readonly #o: DownloadServiceOptions;
  readonly #log: Logger;

  constructor(opts: DownloadServiceOptions) {
    this.#o = opts;
    this.#log = opts.logger.child({ component: 'downloads' });
  }

  /** Starts this node's worker. */
  start(): void {
    this.#o.jobs.worker<BuildJob>(QUEUE, (job) => this.#build(job), {
      concurrency: this.#o.concurrency,
    });
  }

  get(uid: string): Promise<DownloadRecord | undefined> {
    return this.#o.repo.get(uid);
  }

  /** Queues a build unless one is under way or done (a failed one is retried). Returns the state. */
  async create(uid: string): Promise<DownloadRecord> {
    const record: DownloadRecord = {
      status: 'inprogress',
      percentComplete: 0,
      build: randomBytes(8).toString('hex'),
      created: new Date().toISOString(),
    };
    const result = await this.#o.repo.create(uid, record);
    if (result.created) {
      await this.#o.jobs.queue<BuildJob>(QUEUE).add(
        'build',
        { uid, build: record.build },
        {
          jobId: `${uid}-${record.build}`,
          attempts: 3,
          backoff: { type: 'exponential', delay: 2000 },
          removeOnComplete: true,
          removeOnFail: 1000,
        },
      );
      this.#log.info({ video: uid, build: record.build }, 'download build queued');
    }
    return result.record;
  }

  /** Size and ETag of the ready MP4 (for the origin). */
  async readyFile(uid: string): Promise<{ size: number; etag: string } | undefined> {
    const record = await this.#o.repo.get(uid);
    if (record?.status !== 'ready' || record.size === undefined || record.etag === undefined) return undefined;
    return { size: record.size, etag: record.etag };
  }

  async read(uid: string, range?: { start: number; end: number }): Promise<Readable | undefined> {
    return (await this.#o.store.get(downloadKey(uid), range))?.body;
  }

  /** Removes the download (state and file). False when there was none. */
  async delete(uid: string): Promise<boolean> {
    const had = await this.#o.repo.delete(uid);
    await this.#o.store.delete(downloadKey(uid));
    return had;
  }

  async #build(job: Job<BuildJob>): Promise<void> {
    const { uid, build } = job.data;
    const log = this.#log.child({ video: uid, build });
    const current = await this.#o.repo.get(uid);
    if (current?.build !== build || current.status === 'ready') return; // deleted or replaced meanwhile
    const base = { build, created: current.created };
    const fail = async (message: string) => {
      await this.#o.repo.update(uid, build, { ...base, status: 'error', percentComplete: 0, error: message });
    };
    const renditions = await this.#o.source.renditions(uid);
    const best = renditions?.[0];
    const segments = best ? await this.#o.source.segments(uid, best.name) : undefined;
    if (!best || !segments || segments.length === 0) {
      log.warn('the video has no media to download');
      return fail('the video has no playable media');
    }

    const started = Date.now();
    await mkdir(this.#o.tmpDir, { recursive: true });
    const dir = await mkdtemp(join(this.#o.tmpDir, 'download-'));
    try {
      const runs = decodableRuns(segments);
      const total = segments.length + runs.length;
      let done = 0;
      let reported = 0;
      const progress = async (pct: number) => {
        if (pct - reported < 2 && pct < 100) return;
        reported = pct;
        const rounded = Math.round(pct * 100) / 100;
        if (!(await this.#o.repo.update(uid, build, { ...base, status: 'inprogress', percentComplete: rounded }))) {
          throw new DownloadGoneError();
        }
        await job.updateProgress(rounded);
      };
      const list: string[] = [];
      for (const [i, run] of runs.entries()) {
        const file = join(dir, `run-${i}.mp4`);
        const head = run[0] as SourceSegment;
        let pending = Promise.resolve();
        await this.#o.source.writeFiles(uid, best.name, [head.map, ...run.map((s) => s.uri)], file, () => {
          done++;
          pending = pending.then(() => progress((done / total) * FETCH_SHARE));
        });
        await pending;
        // The concat list's quoting: a ' in the path closes, escapes and reopens the quote.
        list.push(`file '${file.replaceAll("'", "'\\''")}'`);
      }
      const listFile = join(dir, 'list.txt');
      await writeFile(listFile, `${list.join('\n')}\n`);
      const out = join(dir, 'default.mp4');
      await runFfmpegJob({
        ffmpegPath: this.#o.ffmpegPath,
        // concat joins the runs with continuous timestamps; -c copy keeps every frame as it is.
        args: ['-hide_banner', '-nostdin', '-loglevel', 'error', '-f', 'concat', '-safe', '0', '-i', listFile,
          '-map', '0', '-c', 'copy', '-movflags', '+faststart', '-f', 'mp4', out],
        timeoutMs: this.#o.timeoutMs ?? 600_000,
      });
      await progress(95);
      const size = (await stat(out)).size;
      await this.#o.store.put(downloadKey(uid), { filePath: out }, { contentType: 'video/mp4', size });
      const ready: DownloadRecord = { ...base, status: 'ready', percentComplete: 100, size, etag: `"${build}-${size.toString(16)}"` };
      if (!(await this.#o.repo.update(uid, build, ready))) {
        // Deleted while it was being stored: take the file away again.
        await this.#o.store.delete(downloadKey(uid));
        return;
      }
      log.info({ bytes: size, runs: runs.length, segments: segments.length, ms: Date.now() - started }, 'download ready');
    } catch (error) {
      if (error instanceof DownloadGoneError) return;
      log.warn({ err: error, attempt: job.attemptsMade + 1 }, 'download build failed');
      if (job.attemptsMade + 1 >= (job.opts.attempts ?? 1)) await fail('the MP4 could not be built');
      throw error;
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }
}

class DownloadGoneError extends Error {}
