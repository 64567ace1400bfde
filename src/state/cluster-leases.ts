import { randomBytes, timingSafeEqual } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { Logger } from '../observability/logger.ts';
import type { RedisKeys } from './keys.ts';

/** Who holds a live input's session: the node, how to reach it, and which session. */
export interface LiveLease {
  node: string;
  url: string;
  session: string;
  /** False once the broadcast ended (the owner still serves its last playlists, with ENDLIST). */
  live: boolean;
}

export interface NodeHeartbeat {
  url: string;
  roles: string[];
  startedAt: number;
}

export interface ClusterLeasesOptions {
  redis: Redis;
  keys: RedisKeys;
  nodeId: string;
  roles: readonly string[];
  /** Heartbeat and lease TTL; both are renewed every third of it. */
  ttlMs: number;
  logger: Logger;
}

// Renew, replace or delete a key only while it still holds our value: a node never touches another's lease.
const CAS_DEL = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0`;
const CAS_REPLACE = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3]) end return 0`;
// KEYS: lock. ARGV: token.
const LOCK_RELEASE = CAS_DEL;
// Renews a lease we still hold and, in the same step, publishes (or clears) the session's live
// status, so a status is never written for a lease another node took.
// KEYS: lease, status. ARGV: lease value, ttl, status JSON ('' clears it).
const RENEW_WITH_STATUS = `if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
if ARGV[3] == '' then redis.call('DEL', KEYS[2]) else redis.call('SET', KEYS[2], ARGV[3], 'PX', ARGV[2]) end
return 1`;
// Deletes the lease (and its status) only while it holds our value. KEYS: lease, status. ARGV: value.
const CAS_DEL_WITH_STATUS = `if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[2]) return redis.call('DEL', KEYS[1]) end return 0`;

interface HeldLease {
  value: string;
  /** False once the session is gone from this node: the lease is then released. */
  current: () => boolean;
  /** The session's live status for the API of other nodes (undefined: none to show). */
  status: (() => object | undefined) | undefined;
}

/**
 * This node's presence in the cluster: a heartbeat key that expires when the node dies, and one
 * lease per live session it ingests, renewed on the same timer. Plain `SET … PX` keys in the
 * shared Redis; renewals and releases compare the value first (Lua), so a node that lost a lease
 * to another (the publisher reconnected elsewhere) never renews or deletes the new owner's.
 */
export class ClusterLeases {
  readonly #opts: ClusterLeasesOptions;
  readonly #log: Logger;
  readonly #held = new Map<string, HeldLease>();
  #heartbeat = '';
  #advertiseUrl = '';
  /** Claims made before start (a publish racing the HTTP listener): written at start. */
  readonly #pending: Array<() => Promise<void>> = [];
  #timer: NodeJS.Timeout | undefined;
  #renewing: Promise<void> | undefined;
  #secret: Buffer | undefined;
  #closed = false;

  constructor(opts: ClusterLeasesOptions) {
    this.#opts = opts;
    this.#log = opts.logger.child({ component: 'cluster' });
  }

  get nodeId(): string {
    return this.#opts.nodeId;
  }

  get advertiseUrl(): string {
    return this.#advertiseUrl;
  }

  /**
   * Joins the cluster once this node's HTTP listener is up (`advertiseUrl` reaches it):
   * heartbeat, membership, the shared secret; then renews every ttl/3.
   */
  async start(advertiseUrl: string): Promise<void> {
    const { redis, keys, nodeId, ttlMs } = this.#opts;
    this.#advertiseUrl = advertiseUrl;
    const beat: NodeHeartbeat = { url: advertiseUrl, roles: [...this.#opts.roles], startedAt: Date.now() };
    this.#heartbeat = JSON.stringify(beat);
    await redis.multi().sadd(keys.clusterNodes(), nodeId).set(keys.nodeHeartbeat(nodeId), this.#heartbeat, 'PX', ttlMs).exec();
    // The first node to start picks the secret; every other node reads the same one.
    await redis.set(keys.clusterSecret(), randomBytes(32).toString('hex'), 'NX');
    const secret = await redis.get(keys.clusterSecret());
    if (!secret) throw new Error('cluster secret missing from Redis');
    this.#secret = Buffer.from(secret);
    this.#timer = setInterval(() => {
      this.#renewing ??= this.#renew().finally(() => {
        this.#renewing = undefined;
      });
    }, Math.max(100, Math.floor(ttlMs / 3)));
    this.#timer.unref();
    for (const claim of this.#pending.splice(0)) await claim();
    this.#log.info({ node: nodeId, url: advertiseUrl, roles: this.#opts.roles }, 'joined the cluster');
  }

  /** The credential node-to-node requests carry (shared by every node through Redis). */
  get secret(): string {
    if (!this.#secret) throw new Error('cluster leases not started');
    return this.#secret.toString();
  }

  /** Constant-time check of a presented internal credential. */
  isSecret(presented: string | string[] | undefined): boolean {
    if (!this.#secret || typeof presented !== 'string') return false;
    const given = Buffer.from(presented);
    return given.length === this.#secret.length && timingSafeEqual(given, this.#secret);
  }

  async #renew(): Promise<void> {
    const { redis, keys, nodeId, ttlMs } = this.#opts;
    try {
      await redis.set(keys.nodeHeartbeat(nodeId), this.#heartbeat, 'PX', ttlMs);
    } catch (error) {
      this.#log.warn({ err: error }, 'could not renew the node heartbeat');
    }
    for (const [uid, held] of [...this.#held]) {
      if (!held.current()) {
        await this.release(uid);
        continue;
      }
      try {
        const ok = await redis.eval(RENEW_WITH_STATUS, 2, keys.liveLease(uid), keys.liveStatus(uid), held.value, String(ttlMs), statusJson(held));
        if (ok !== 1 && this.#held.get(uid) === held) {
          this.#held.delete(uid);
          await redis.srem(keys.nodeLiveInputs(nodeId), uid);
          this.#log.info({ liveInput: uid }, 'live session lease taken over by another node');
        }
      } catch (error) {
        this.#log.warn({ err: error, liveInput: uid }, 'could not renew a live session lease');
      }
    }
  }

  /**
   * Records this node as the owner of a live input's session (replacing any previous owner: the
   * newest publish wins). Renewed while `current()` holds, released once it does not.
   */
  async claim(liveInputUid: string, sessionId: string, current: () => boolean, status?: () => object | undefined): Promise<void> {
    if (this.#closed) return;
    if (!this.#heartbeat) {
      this.#pending.push(() => this.claim(liveInputUid, sessionId, current, status));
      return;
    }
    const { redis, keys, nodeId, ttlMs } = this.#opts;
    const lease: LiveLease = { node: nodeId, url: this.#advertiseUrl, session: sessionId, live: true };
    const value = JSON.stringify(lease);
    this.#held.set(liveInputUid, { value, current, status });
    await redis
      .multi()
      .set(keys.liveLease(liveInputUid), value, 'PX', ttlMs)
      // A previous owner's status is not this session's (it is published at the next renewal).
      .del(keys.liveStatus(liveInputUid))
      .sadd(keys.nodeLiveInputs(nodeId), liveInputUid)
      .exec();
  }

  /** The live status the owner of an input's session published (another node's, or ours). */
  async liveStatus(liveInputUid: string): Promise<unknown> {
    const raw = await this.#opts.redis.get(this.#opts.keys.liveStatus(liveInputUid));
    if (!raw) return undefined;
    try {
      return JSON.parse(raw) as unknown;
    } catch {
      return undefined;
    }
  }

  /** The broadcast ended: the lease stays (viewers still get the ended playlists) but says so. */
  async ended(liveInputUid: string): Promise<void> {
    const held = this.#held.get(liveInputUid);
    if (!held) return;
    const lease = parseLease(held.value);
    if (!lease?.live) return;
    const value = JSON.stringify({ ...lease, live: false });
    const { redis, keys, ttlMs } = this.#opts;
    const ok = await redis.eval(CAS_REPLACE, 1, keys.liveLease(liveInputUid), held.value, value, String(ttlMs));
    if (ok === 'OK' && this.#held.get(liveInputUid) === held) {
      held.value = value;
      // No live status once the broadcast ended: the stored status (with its reason) applies.
      held.status = undefined;
      await redis.del(keys.liveStatus(liveInputUid));
    }
  }

  /** Gives up this node's lease on an input (if it still holds it). */
  async release(liveInputUid: string): Promise<void> {
    const held = this.#held.get(liveInputUid);
    if (!held) return;
    this.#held.delete(liveInputUid);
    const { redis, keys, nodeId } = this.#opts;
    try {
      await redis.eval(CAS_DEL_WITH_STATUS, 2, keys.liveLease(liveInputUid), keys.liveStatus(liveInputUid), held.value);
      await redis.srem(keys.nodeLiveInputs(nodeId), liveInputUid);
    } catch (error) {
      this.#log.warn({ err: error, liveInput: liveInputUid }, 'could not release a live session lease; it will expire');
    }
  }

  /** The current owner of a live input's session, if any node holds one. */
  async lease(liveInputUid: string): Promise<LiveLease | undefined> {
    const raw = await this.#opts.redis.get(this.#opts.keys.liveLease(liveInputUid));
    return raw ? parseLease(raw) : undefined;
  }

  /** Every node that joined and was not yet swept, with whether its heartbeat is alive. */
  async members(): Promise<Array<{ node: string; alive: boolean }>> {
    const { redis, keys } = this.#opts;
    const nodes = await redis.smembers(keys.clusterNodes());
    if (nodes.length === 0) return [];
    const beats = await redis.mget(nodes.map((n) => keys.nodeHeartbeat(n)));
    return nodes.map((node, i) => ({ node, alive: beats[i] !== null }));
  }

  /** Live inputs a node held sessions of (read for a dead node by the failover sweeper). */
  liveInputsOf(nodeId: string): Promise<string[]> {
    return this.#opts.redis.smembers(this.#opts.keys.nodeLiveInputs(nodeId));
  }

  async forgetLiveInput(nodeId: string, liveInputUid: string): Promise<void> {
    await this.#opts.redis.srem(this.#opts.keys.nodeLiveInputs(nodeId), liveInputUid);
  }

  /** Drops a dead node from the membership once nothing of it is left to take over. */
  async forgetNode(nodeId: string): Promise<void> {
    await this.#opts.redis.srem(this.#opts.keys.clusterNodes(), nodeId);
  }

  /**
   * Runs `fn` under a cluster-wide lock (`SET NX PX`), or returns undefined when another node
   * holds it. The lock expires by itself if this node dies holding it.
   */
  async withLock<T>(name: string, ttlMs: number, fn: () => Promise<T>): Promise<{ value: T } | undefined> {
    const { redis, keys } = this.#opts;
    const token = randomBytes(12).toString('hex');
    const got = await redis.set(keys.clusterLock(name), token, 'PX', ttlMs, 'NX');
    if (got !== 'OK') return undefined;
    try {
      return { value: await fn() };
    } finally {
      await redis.eval(LOCK_RELEASE, 1, keys.clusterLock(name), token).catch(() => undefined);
    }
  }

  /** Stops renewing and releases every lease and the heartbeat (a clean leave, not a death). */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#timer) clearInterval(this.#timer);
    await this.#renewing;
    for (const uid of [...this.#held.keys()]) await this.release(uid);
    const { redis, keys, nodeId } = this.#opts;
    if (!this.#heartbeat) return;
    try {
      await redis.eval(CAS_DEL, 1, keys.nodeHeartbeat(nodeId), this.#heartbeat);
    } catch (error) {
      this.#log.warn({ err: error }, 'could not remove the node heartbeat; it will expire');
    }
  }
}

function statusJson(held: HeldLease): string {
  const status = held.status?.();
  return status === undefined ? '' : JSON.stringify(status);
}

export function parseLease(raw: string): LiveLease | undefined {
  try {
    const v = JSON.parse(raw) as Partial<LiveLease>;
    if (typeof v.node === 'string' && typeof v.url === 'string' && typeof v.session === 'string') {
      return { node: v.node, url: v.url, session: v.session, live: v.live === true };
    }
  } catch {
    // A malformed lease names no owner.
  }
  return undefined;
}
