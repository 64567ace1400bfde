import type { Logger } from '../observability/logger.ts';
import type { ClusterLeases } from '../state/cluster-leases.ts';
import { finalizeFromStore, type StoreFinalizeDeps } from './failover.ts';

export interface FailoverSweeperOptions {
  leases: Pick<ClusterLeases, 'nodeId' | 'members' | 'lease' | 'liveInputsOf' | 'forgetLiveInput' | 'forgetNode' | 'withLock'>;
  finalize: StoreFinalizeDeps;
  /** Records on a live input that its session ended because its node died. */
  markLost: (liveInputUid: string) => Promise<void>;
  intervalMs: number;
  /** How long one node may hold the takeover of one recording before another may retry, ms. */
  lockTtlMs?: number;
  logger: Logger;
}

/**
 * On worker nodes: finds nodes whose heartbeat expired and takes over what they left: their
 * recordings are finalized from the store (one node wins each, by a Redis lock) and their live
 * inputs' status says the session was lost. A broadcaster's reconnect, to any ingest node, starts
 * a new session (and recording) of its own.
 */
export class FailoverSweeper {
  readonly #opts: FailoverSweeperOptions;
  readonly #log: Logger;
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<void> | undefined;
  #closed = false;

  constructor(opts: FailoverSweeperOptions) {
    this.#opts = opts;
    this.#log = opts.logger.child({ component: 'failover' });
  }

  start(): void {
    this.#timer = setInterval(() => void this.sweep(), this.#opts.intervalMs);
    this.#timer.unref();
  }

  /** One pass (also called by tests); a pass still running is joined, not doubled. */
  sweep(): Promise<void> {
    if (this.#closed) return Promise.resolve();
    this.#running ??= this.#sweep()
      .catch((error: unknown) => this.#log.warn({ err: error }, 'failover sweep failed; will retry'))
      .finally(() => {
        this.#running = undefined;
      });
    return this.#running;
  }

  async #sweep(): Promise<void> {
    const { leases } = this.#opts;
    for (const { node, alive } of await leases.members()) {
      if (alive || node === leases.nodeId || this.#closed) continue;
      const inputsLeft = await this.#releaseInputs(node);
      const recordingsLeft = await this.#finalizeRecordings(node);
      if (!inputsLeft && !recordingsLeft) {
        await leases.forgetNode(node);
        this.#log.info({ node }, 'lost node swept');
      }
    }
  }

  /** True when something of the node could not be handled this pass. */
  async #releaseInputs(node: string): Promise<boolean> {
    const { leases } = this.#opts;
    let left = false;
    for (const uid of await leases.liveInputsOf(node)) {
      try {
        const lease = await leases.lease(uid);
        // A publisher that already reconnected elsewhere has a new owner: leave its status alone.
        if (lease === undefined || lease.node === node) {
          await this.#opts.markLost(uid);
          this.#log.warn({ node, liveInput: uid }, 'live session lost with its node');
        }
        await leases.forgetLiveInput(node, uid);
      } catch (error) {
        left = true;
        this.#log.warn({ err: error, node, liveInput: uid }, 'could not release a lost live session');
      }
    }
    return left;
  }

  async #finalizeRecordings(node: string): Promise<boolean> {
    const { leases, finalize } = this.#opts;
    let left = false;
    for (const uid of await finalize.videos.recordingsOf(node)) {
      if (this.#closed) return true;
      const started = Date.now();
      try {
        const outcome = await leases.withLock(`finalize:${uid}`, this.#opts.lockTtlMs ?? 120_000, () =>
          finalizeFromStore(finalize, uid, node),
        );
        if (outcome === undefined) {
          left = true; // another node is on it
          continue;
        }
        this.#log.warn(
          { node, video: uid, state: outcome.value?.status.state, ms: Date.now() - started },
          'recording of a lost node finalized',
        );
      } catch (error) {
        left = true;
        this.#log.error({ err: error, node, video: uid }, 'could not finalize a lost node’s recording; will retry');
      }
    }
    return left;
  }

  async close(): Promise<void> {
    this.#closed = true;
    if (this.#timer) clearInterval(this.#timer);
    await this.#running;
  }
}
