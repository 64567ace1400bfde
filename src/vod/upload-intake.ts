import { randomBytes } from 'node:crypto';
import { mkdir, readdir, rename, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from '../observability/logger.ts';
import type { NewUploadVideo, VideoRecord, VideoRepository } from '../state/video-repo.ts';
import { probeUpload, UploadRejectedError } from './upload-probe.ts';
import type { UploadProcessor } from './upload-processor.ts';
import { setVideoStatus, type EmitVideoEvent } from './video-state.ts';

/**
 * Where every upload path (multipart, direct upload URL, tus) hands over a received file: it is
 * probed, refused early when it is not a usable video, else moved to a durable place under the
 * uploads directory and queued for processing (`pendingupload → queued`). Also removes videos
 * whose upload never arrived.
 */

export interface UploadIntakeOptions {
  videos: VideoRepository;
  processor: UploadProcessor;
  emit: EmitVideoEvent;
  /** The uploads directory: `incoming/` (files being received), `sources/` (files until processed). */
  dir: string;
  ffprobePath: string;
  maxDurationSeconds: number;
  cleanupIntervalMs: number;
  /** Removes what is left of an expired upload that is not in `incoming/` (a partial tus file). */
  onExpired?: (uid: string) => Promise<void>;
  /** More cleanup to run with each sweep (expired tus entries). */
  onSweep?: () => Promise<void>;
  logger: Logger;
}

export class VideoNotPendingError extends Error {
  constructor(uid: string) {
    super(`video ${uid} is not waiting for an upload`);
    this.name = 'VideoNotPendingError';
  }
}

export class UploadIntake {
  readonly #opts: UploadIntakeOptions;
  readonly #log: Logger;
  #timer: NodeJS.Timeout | undefined;
  #sweeping: Promise<void> | undefined;

  constructor(opts: UploadIntakeOptions) {
    this.#opts = opts;
    this.#log = opts.logger.child({ component: 'uploads' });
  }

  get incomingDir(): string {
    return path.join(this.#opts.dir, 'incoming');
  }

  get sourcesDir(): string {
    return path.join(this.#opts.dir, 'sources');
  }

  /** A fresh path to receive one file into. */
  incomingPath(): string {
    return path.join(this.incomingDir, randomBytes(12).toString('hex'));
  }

  async start(): Promise<void> {
    // Files half-received when the last run stopped belong to requests that failed with it.
    await rm(this.incomingDir, { recursive: true, force: true });
    await mkdir(this.incomingDir, { recursive: true });
    await mkdir(this.sourcesDir, { recursive: true });
    this.#timer = setInterval(() => void this.sweep(), this.#opts.cleanupIntervalMs);
    this.#timer.unref();
  }

  close(): Promise<void> {
    clearInterval(this.#timer);
    this.#timer = undefined;
    return this.#sweeping ?? Promise.resolve();
  }

  createPending(video: NewUploadVideo, uid?: string): Promise<VideoRecord> {
    return this.#opts.videos.createUpload(video, uid);
  }

  /**
   * Takes the received `file` (moved or removed either way): probes it and queues it, or marks
   * the video as failed and throws UploadRejectedError. `discardOnReject` removes the video
   * instead (a multipart upload, whose caller never learned its uid).
   */
  async accept(uid: string, file: string, opts: { discardOnReject?: boolean } = {}): Promise<VideoRecord> {
    const { videos, emit } = this.#opts;
    const log = this.#log.child({ video: uid });
    try {
      const record = await videos.get(uid);
      if (record?.status.state !== 'pendingupload') throw new VideoNotPendingError(uid);
      // From here the video is no longer waited for: the expiry sweep leaves it alone.
      await videos.uploadArrived(uid);
      const size = (await stat(file)).size;
      const probe = await this.#probe(file, size, record.maxDurationSeconds ?? this.#opts.maxDurationSeconds).catch(async (error: unknown) => {
        if (!(error instanceof UploadRejectedError)) throw error;
        log.info({ reason: error.reasonCode, bytes: size, msg: error.message }, 'upload refused');
        if (opts.discardOnReject) await videos.delete(uid);
        else await setVideoStatus(videos, emit, uid, { state: 'error', errorReasonCode: error.reasonCode });
        throw error;
      });
      const source = path.join(this.sourcesDir, uid);
      await rename(file, source);
      const queued = await setVideoStatus(videos, emit, uid, { state: 'queued', pctComplete: '0.000000' }, (r) => ({
        ...r,
        size,
        input: { width: probe.video.width, height: probe.video.height },
        duration: probe.duration,
      }));
      if (!queued) throw new VideoNotPendingError(uid);
      await this.#opts.processor.enqueue({ uid, file: source, probe });
      log.info({ bytes: size, duration: probe.duration, video: probe.video, audio: probe.audio }, 'upload queued');
      return queued;
    } finally {
      await rm(file, { force: true });
    }
  }

  async #probe(file: string, size: number, maxDurationSeconds: number) {
    if (size === 0) throw new UploadRejectedError('ERR_NON_VIDEO', 'The upload is empty (0 bytes)');
    return probeUpload(file, { ffprobePath: this.#opts.ffprobePath, maxDurationSeconds });
  }

  /** Removes videos still waiting for an upload past their expiry, and stray received files. */
  sweep(): Promise<void> {
    this.#sweeping ??= this.#sweep().finally(() => {
      this.#sweeping = undefined;
    });
    return this.#sweeping;
  }

  async #sweep(): Promise<void> {
    const { videos } = this.#opts;
    try {
      for (const uid of await videos.expiredUploads(Date.now())) {
        const record = await videos.get(uid);
        // Deleted while pending, or still pending: what was received of it goes either way.
        if (!record || record.status.state === 'pendingupload') await this.#opts.onExpired?.(uid);
        if (record?.status.state === 'pendingupload') {
          await videos.delete(uid);
          this.#log.info({ video: uid }, 'upload expired before it arrived; video removed');
        }
        await videos.uploadArrived(uid);
      }
      await this.#opts.onSweep?.();
      // Sources whose video is gone (deleted while queued) and whose job will find nothing.
      for (const name of await readdir(this.sourcesDir)) {
        if (/^[0-9a-f]{32}$/.test(name) && !(await videos.get(name))) await rm(path.join(this.sourcesDir, name), { force: true });
      }
    } catch (error) {
      this.#log.warn({ err: error }, 'upload cleanup failed; retrying later');
    }
  }
}
