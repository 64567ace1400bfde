import { Redis, type RedisOptions } from 'ioredis';
import { backoffDelay } from '../lib/backoff.ts';
import type { Logger } from '../observability/logger.ts';

/**
 * Where to connect: a `redis://` / `rediss://` / `unix://` URL, or a unix socket path; or Redis
 * Sentinel: the sentinels' addresses and the monitored master's name (a `redis://` / `rediss://`
 * URL then gives only the credentials, database and TLS of the master).
 */
export interface RedisTarget {
  url?: string;
  path?: string;
  sentinels?: Array<{ host: string; port: number }>;
  sentinelName?: string;
}

/** Options shared by every connection: bounded waits so a Redis outage fails requests instead of hanging them. */
const BASE_OPTIONS: RedisOptions = {
  lazyConnect: false,
  enableOfflineQueue: true,
  // A command waits through at most this many reconnects, then fails (the request gets a 5xx).
  maxRetriesPerRequest: 5,
  connectTimeout: 5_000,
  // Reconnect forever: the embedded server restarts itself and an external one comes back.
  retryStrategy: (times) => backoffDelay(times - 1, { baseMs: 50, maxMs: 2_000 }),
};

/**
 * An ioredis client with sane defaults; logs connection state changes (never the password).
 */
export function createRedis(target: RedisTarget, logger: Logger, extra: RedisOptions = {}): Redis {
  const { options, display } = resolveTarget(target);
  const log = logger.child({ component: 'redis', target: display });
  const client = new Redis({ ...BASE_OPTIONS, ...options, ...extra });
  // Log transitions, not every failed reconnect attempt, so an outage is a few lines, not thousands.
  let lastState = '';
  let lastError = '';
  const transition = (state: string, level: 'info' | 'warn', fields: Record<string, unknown> = {}) => {
    if (state === lastState) return;
    lastState = state;
    log[level](fields, `redis ${state}`);
  };
  client.on('ready', () => {
    lastError = '';
    transition('ready', 'info');
  });
  client.on('close', () => transition('connection closed', 'warn'));
  client.on('reconnecting', (ms: number) => transition('reconnecting', 'warn', { inMs: ms }));
  client.on('end', () => transition('connection ended', 'info'));
  client.on('error', (err: Error) => {
    if (err.message === lastError) return;
    lastError = err.message;
    log.warn({ err: { message: err.message, code: (err as NodeJS.ErrnoException).code } }, 'redis error');
  });
  return client;
}

function resolveTarget(target: RedisTarget): { options: RedisOptions; display: string } {
  if (target.sentinels && target.sentinels.length > 0) return sentinelTarget(target, target.sentinels);
  if (target.path) return { options: { path: target.path }, display: `unix://${target.path}` };
  const url = target.url;
  if (!url) throw new Error('createRedis: give a url or a unix socket path');
  if (url.startsWith('/')) return { options: { path: url }, display: `unix://${url}` };
  if (url.startsWith('unix://')) {
    const path = decodeURIComponent(url.slice('unix://'.length));
    return { options: { path }, display: url };
  }
  const { parsed, options } = parseRedisUrl(url);
  options.host = parsed.hostname.replace(/^\[|\]$/g, '');
  options.port = parsed.port ? Number(parsed.port) : 6379;
  const display = `${parsed.protocol}//${parsed.host}${parsed.pathname}`;
  return { options, display };
}

/** Database, credentials and TLS of a `redis://` / `rediss://` URL (host and port left to the caller). */
function parseRedisUrl(url: string): { parsed: URL; options: RedisOptions } {
  const parsed = new URL(url);
  if (parsed.protocol !== 'redis:' && parsed.protocol !== 'rediss:') {
    throw new Error(`unsupported Redis URL scheme "${parsed.protocol}" (use redis://, rediss:// or unix://)`);
  }
  const db = parsed.pathname.length > 1 ? Number(parsed.pathname.slice(1)) : 0;
  if (!Number.isInteger(db) || db < 0) throw new Error('Redis URL database must be a non-negative integer');
  const options: RedisOptions = { db };
  if (parsed.username) options.username = decodeURIComponent(parsed.username);
  if (parsed.password) options.password = decodeURIComponent(parsed.password);
  if (parsed.protocol === 'rediss:') options.tls = { servername: parsed.hostname };
  return { parsed, options };
}

/**
 * Redis Sentinel through ioredis: it asks the sentinels for the master, follows a failover
 * (`+switch-master`, announced by the sentinels) and reconnects to the new master. A write that
 * reaches a master just demoted to replica (READONLY) reconnects and is sent again.
 */
function sentinelTarget(target: RedisTarget, sentinels: Array<{ host: string; port: number }>): { options: RedisOptions; display: string } {
  const name = target.sentinelName ?? 'mymaster';
  const base = target.url ? parseRedisUrl(target.url).options : {};
  const options: RedisOptions = {
    ...base,
    sentinels: sentinels.map(({ host, port }) => ({ host, port })),
    name,
    // Listen to the sentinels' +switch-master rather than wait for the old master to fail.
    failoverDetector: true,
    enableTLSForSentinelMode: base.tls !== undefined,
    sentinelRetryStrategy: (times) => backoffDelay(times - 1, { baseMs: 100, maxMs: 2_000 }),
    reconnectOnError: (err) => (err.message.startsWith('READONLY') ? 2 : false),
  };
  const display = `sentinel://${sentinels.map((s) => `${s.host}:${s.port}`).join(',')}/${name}`;
  return { options, display };
}
