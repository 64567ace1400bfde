import type { Redis } from 'ioredis';
import type { RedisKeys } from './keys.ts';
import { isUid } from './live-input-record.ts';
import { applyOutputChanges, buildOutput, parseOutput, type OutputChanges, type OutputRecord } from './output-record.ts';

export interface OutputRepositoryOptions {
  redis: Redis;
  keys: RedisKeys;
  /** Outputs allowed per live input. */
  maxPerInput: number;
  now?: () => Date;
}

/** Why a create was refused, for the API's error table. */
export type OutputCreateResult =
  | { ok: true; record: OutputRecord }
  | { ok: false; reason: 'live_input_not_found' | 'limit_reached' };

// The cap and the input's existence are checked in the same step as the write, so concurrent
// creates can never exceed the cap or attach outputs to an input being deleted.
const CREATE = `
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
if redis.call('HLEN', KEYS[2]) >= tonumber(ARGV[3]) then return -2 end
if redis.call('HSETNX', KEYS[2], ARGV[1], ARGV[2]) == 0 then return 0 end
return 1`;
const CAS_SET = `
if redis.call('HGET', KEYS[1], ARGV[1]) ~= ARGV[2] then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
return 1`;

const MAX_ATTEMPTS = 8;

/**
 * Outputs in Redis: one hash per live input (output uid → JSON record). The live input
 * repository deletes the hash together with its input.
 */
export class OutputRepository {
  readonly #redis: Redis;
  readonly #keys: RedisKeys;
  readonly #max: number;
  readonly #now: () => Date;

  constructor(opts: OutputRepositoryOptions) {
    this.#redis = opts.redis;
    this.#keys = opts.keys;
    this.#max = opts.maxPerInput;
    this.#now = opts.now ?? (() => new Date());
  }

  get maxPerInput(): number {
    return this.#max;
  }

  async create(liveInput: string, changes: Required<Pick<OutputChanges, 'url'>> & OutputChanges): Promise<OutputCreateResult> {
    if (!isUid(liveInput)) return { ok: false, reason: 'live_input_not_found' };
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      const record = buildOutput(liveInput, changes, this.#now());
      const result = await this.#redis.eval(
        CREATE,
        2,
        this.#keys.liveInput(liveInput),
        this.#keys.liveInputOutputs(liveInput),
        record.uid,
        JSON.stringify(record),
        this.#max,
      );
      if (result === 1) return { ok: true, record };
      if (result === -1) return { ok: false, reason: 'live_input_not_found' };
      if (result === -2) return { ok: false, reason: 'limit_reached' };
    }
    throw new Error('could not allocate a unique output id');
  }

  /** Oldest first (the order they were added). */
  async list(liveInput: string): Promise<OutputRecord[]> {
    if (!isUid(liveInput)) return [];
    const key = this.#keys.liveInputOutputs(liveInput);
    const all = await this.#redis.hvals(key);
    return all.map((raw) => parseOutput(key, raw)).sort((a, b) => a.created.localeCompare(b.created) || a.uid.localeCompare(b.uid));
  }

  async get(liveInput: string, uid: string): Promise<OutputRecord | undefined> {
    if (!isUid(liveInput) || !isUid(uid)) return undefined;
    return (await this.#read(liveInput, uid))?.record;
  }

  async update(liveInput: string, uid: string, changes: OutputChanges): Promise<OutputRecord | undefined> {
    if (!isUid(liveInput) || !isUid(uid)) return undefined;
    const key = this.#keys.liveInputOutputs(liveInput);
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      const current = await this.#read(liveInput, uid);
      if (!current) return undefined;
      const next = applyOutputChanges(current.record, changes, this.#now());
      const ok = await this.#redis.eval(CAS_SET, 1, key, uid, current.raw, JSON.stringify(next));
      if (ok === 1) return next;
    }
    throw new Error(`output ${uid} is being modified concurrently; gave up after ${MAX_ATTEMPTS} attempts`);
  }

  async liveInputExists(liveInput: string): Promise<boolean> {
    return isUid(liveInput) && (await this.#redis.exists(this.#keys.liveInput(liveInput))) === 1;
  }

  async delete(liveInput: string, uid: string): Promise<boolean> {
    if (!isUid(liveInput) || !isUid(uid)) return false;
    return (await this.#redis.hdel(this.#keys.liveInputOutputs(liveInput), uid)) === 1;
  }

  async #read(liveInput: string, uid: string): Promise<{ record: OutputRecord; raw: string } | undefined> {
    const key = this.#keys.liveInputOutputs(liveInput);
    const raw = await this.#redis.hget(key, uid);
    if (raw === null) return undefined;
    return { record: parseOutput(key, raw), raw };
  }
}
