import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { watch, type FSWatcher } from 'chokidar';
import type { Logger } from '../../observability/logger.ts';

export interface CertificatePair {
  key: Buffer;
  cert: Buffer;
}

export interface CertificateWatcherOptions {
  certFile: string;
  keyFile: string;
  /** Applies a new pair; throws if the pair is unusable (the current one then stays). */
  apply: (pair: CertificatePair) => void;
  logger: Logger;
  /** Renewal tools write the certificate and the key one after the other: wait this long for both. */
  settleMs?: number;
}

export async function readCertificatePair(certFile: string, keyFile: string): Promise<CertificatePair> {
  const [cert, key] = await Promise.all([readFile(certFile), readFile(keyFile)]);
  return { cert, key };
}

/**
 * Watches a certificate and key (their directories, so that an atomic rename or a certbot symlink
 * swap is seen) and applies the pair again when either changes. A half-written or mismatched pair
 * is logged and skipped; the next change retries.
 */
export class CertificateWatcher {
  readonly #opts: Required<CertificateWatcherOptions>;
  #watcher: FSWatcher | undefined;
  #timer: NodeJS.Timeout | undefined;
  #reloads = 0;

  constructor(opts: CertificateWatcherOptions) {
    this.#opts = { settleMs: 200, ...opts };
  }

  /** Successful reloads since start. */
  get reloadCount(): number {
    return this.#reloads;
  }

  async start(): Promise<void> {
    const files = new Set([path.resolve(this.#opts.certFile), path.resolve(this.#opts.keyFile)]);
    const dirs = [...new Set([...files].map((f) => path.dirname(f)))];
    const watcher = watch(dirs, { ignoreInitial: true, depth: 0, followSymlinks: false });
    this.#watcher = watcher;
    const onEvent = (file: string) => {
      if (files.has(path.resolve(file))) this.#schedule();
    };
    watcher.on('add', onEvent).on('change', onEvent);
    watcher.on('error', (error) => this.#opts.logger.warn({ err: error }, 'certificate watcher error'));
    await new Promise<void>((resolve) => watcher.once('ready', () => resolve()));
  }

  async close(): Promise<void> {
    clearTimeout(this.#timer);
    await this.#watcher?.close();
    this.#watcher = undefined;
  }

  #schedule(): void {
    clearTimeout(this.#timer);
    this.#timer = setTimeout(() => void this.#reload(), this.#opts.settleMs);
  }

  async #reload(): Promise<void> {
    if (!this.#watcher) return;
    try {
      this.#opts.apply(await readCertificatePair(this.#opts.certFile, this.#opts.keyFile));
      this.#reloads++;
      this.#opts.logger.info({ certFile: this.#opts.certFile }, 'tls certificate reloaded');
    } catch (error) {
      this.#opts.logger.warn({ err: error, certFile: this.#opts.certFile }, 'tls certificate reload failed; keeping the previous one');
    }
  }
}
