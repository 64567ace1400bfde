/**
 * The simulcast outputs of every live session on this node: when a session starts, its enabled
 * outputs each get a SimulcastOutput fed from one FLV fan-out; API changes are applied to the
 * running set at once; the session's end stops them all.
 */
import type { FlvTag } from '../media/flv-tag.ts';
import type { Logger } from '../observability/logger.ts';
import { FlvFanout } from './flv-fanout.ts';
import { SimulcastOutput, type OutputRunStatus, type SimulcastOutputSettings } from './simulcast-output.ts';

/** A live session as simulcast sees it. */
export interface SimulcastSource {
  readonly liveInputUid: string;
  readonly id: string;
  /** Every FLV tag the publisher sends, from now on; returns the unsubscribe. */
  tapFlv(listener: (tag: FlvTag) => void): () => void;
  /** Called once when the session has ended. */
  onEnded(listener: () => void): void;
}

export interface OutputDefinition {
  uid: string;
  url: string;
  streamKey: string;
  enabled: boolean;
}

export interface OutputDirectory {
  list(liveInputUid: string): Promise<OutputDefinition[]>;
}

export interface SimulcastManagerOptions {
  outputs: OutputDirectory;
  settings: SimulcastOutputSettings;
  logger: Logger;
}

interface LiveSimulcast {
  source: SimulcastSource;
  fanout: FlvFanout;
  outputs: Map<string, SimulcastOutput>;
  untap: () => void;
  /** Reconciliations of this input run one after another. */
  chain: Promise<void>;
  ended: boolean;
}

export class SimulcastManager {
  readonly #opts: SimulcastManagerOptions;
  readonly #log: Logger;
  readonly #live = new Map<string, LiveSimulcast>();
  readonly #stopping = new Set<Promise<void>>();
  #closed = false;

  constructor(opts: SimulcastManagerOptions) {
    this.#opts = opts;
    this.#log = opts.logger.child({ component: 'simulcast' });
  }

  /** A session went live on this node: start its enabled outputs. */
  attach(source: SimulcastSource): void {
    if (this.#closed) return;
    const previous = this.#live.get(source.liveInputUid);
    if (previous) this.#end(previous);
    const log = this.#log.child({ liveInput: source.liveInputUid, session: source.id });
    const fanout = new FlvFanout((error) => log.error({ err: error }, 'simulcast sink failed'));
    const live: LiveSimulcast = {
      source,
      fanout,
      outputs: new Map(),
      untap: source.tapFlv((tag) => fanout.push(tag)),
      chain: Promise.resolve(),
      ended: false,
    };
    this.#live.set(source.liveInputUid, live);
    source.onEnded(() => this.#end(live));
    void this.refresh(source.liveInputUid);
  }

  /**
   * Brings the running outputs of a live input in line with its stored outputs (created, deleted,
   * enabled, disabled, retargeted). Does nothing when the input is not live on this node.
   */
  refresh(liveInputUid: string): Promise<void> {
    const live = this.#live.get(liveInputUid);
    if (!live) return Promise.resolve();
    live.chain = live.chain.then(
      () => this.#reconcile(live),
      () => this.#reconcile(live),
    );
    return live.chain;
  }

  /** The run status of an output while its input is live here, else undefined. */
  status(liveInputUid: string, outputUid: string): OutputRunStatus | undefined {
    return this.#live.get(liveInputUid)?.outputs.get(outputUid)?.status;
  }

  /** Pids of the FFmpeg processes of an input's outputs (diagnostics and tests). */
  pids(liveInputUid: string): number[] {
    const live = this.#live.get(liveInputUid);
    if (!live) return [];
    return [...live.outputs.values()].map((o) => o.pid).filter((p): p is number => p !== undefined);
  }

  /** Stops every output and waits for their FFmpeg processes to exit. Idempotent. */
  async close(): Promise<void> {
    this.#closed = true;
    for (const live of [...this.#live.values()]) this.#end(live);
    await Promise.all([...this.#stopping]);
  }

  async #reconcile(live: LiveSimulcast): Promise<void> {
    if (live.ended) return;
    const uid = live.source.liveInputUid;
    let records: OutputDefinition[];
    try {
      records = await this.#opts.outputs.list(uid);
    } catch (error) {
      this.#log.error({ err: error, liveInput: uid }, 'could not read simulcast outputs');
      return;
    }
    if (live.ended) return;
    const wanted = new Map(records.filter((r) => r.enabled).map((r) => [r.uid, r]));
    for (const [outputUid, running] of live.outputs) {
      const want = wanted.get(outputUid);
      if (!want || want.url !== running.target.url || want.streamKey !== running.target.streamKey) {
        this.#stopOutput(live, running);
      }
    }
    for (const want of wanted.values()) {
      if (live.outputs.has(want.uid)) continue;
      const output = new SimulcastOutput({
        uid: want.uid,
        target: { url: want.url, streamKey: want.streamKey },
        headers: () => live.fanout.headers(),
        settings: this.#opts.settings,
        logger: this.#log.child({ liveInput: uid, session: live.source.id }),
      });
      live.outputs.set(want.uid, output);
      live.fanout.add(output);
      output.start();
    }
    this.#log.debug({ liveInput: uid, running: live.outputs.size }, 'simulcast outputs reconciled');
  }

  #stopOutput(live: LiveSimulcast, output: SimulcastOutput): void {
    live.fanout.remove(output);
    live.outputs.delete(output.uid);
    const done = output.close().finally(() => this.#stopping.delete(done));
    this.#stopping.add(done);
  }

  #end(live: LiveSimulcast): void {
    if (live.ended) return;
    live.ended = true;
    live.untap();
    for (const output of [...live.outputs.values()]) this.#stopOutput(live, output);
    if (this.#live.get(live.source.liveInputUid) === live) this.#live.delete(live.source.liveInputUid);
  }
}
