import { readFileSync, existsSync } from 'node:fs';
import path from 'node:path';
import { parse as parseYaml } from 'yaml';
import Value from 'typebox/value';
import { ConfigSchema, type Config } from './schema.ts';

/** A setting that stops start-up. The message names the key and where it came from. */
export class ConfigError extends Error {
  override name = 'ConfigError';
}

export const ENV_PREFIX = 'TRIBUTARY_';
/** Env variables that are not settings but are still ours. */
const RESERVED_ENV = new Set(['TRIBUTARY_CONFIG']);

export const REPO_ROOT = path.resolve(import.meta.dirname, '..', '..');

export interface LoadConfigOptions {
  env?: Record<string, string | undefined>;
  /** Config files in order; later ones win. Default: config/default.yaml, then $TRIBUTARY_CONFIG. */
  files?: string[];
  cwd?: string;
}

type Leaf = { path: string[]; kind: 'string' | 'integer' | 'number' | 'boolean' | 'array' | 'union' };

/** Every settable leaf of the schema, for env mapping and documentation. */
export function configLeaves(schema: unknown = ConfigSchema, prefix: string[] = []): Leaf[] {
  const s = schema as { type?: string; properties?: Record<string, unknown>; anyOf?: unknown[] };
  if (s.type === 'object' && s.properties) {
    return Object.entries(s.properties).flatMap(([k, v]) => configLeaves(v, [...prefix, k]));
  }
  const kind = s.anyOf ? 'union' : ((s.type ?? 'string') as Leaf['kind']);
  return [{ path: prefix, kind }];
}

export function envName(keyPath: string[]): string {
  return ENV_PREFIX + keyPath.map((k) => k.replace(/([a-z0-9])([A-Z])/g, '$1_$2').toUpperCase()).join('_');
}

function coerce(leaf: Leaf, raw: string, name: string): unknown {
  switch (leaf.kind) {
    case 'integer':
    case 'number': {
      const n = Number(raw.trim());
      if (raw.trim() === '' || !Number.isFinite(n)) throw new ConfigError(`${name}: expected a number, got "${raw}"`);
      return n;
    }
    case 'boolean': {
      const v = raw.trim().toLowerCase();
      if (['1', 'true', 'yes', 'on'].includes(v)) return true;
      if (['0', 'false', 'no', 'off'].includes(v)) return false;
      throw new ConfigError(`${name}: expected true or false, got "${raw}"`);
    }
    case 'array':
      try {
        return JSON.parse(raw);
      } catch {
        throw new ConfigError(`${name}: expected a JSON array`);
      }
    default:
      return raw;
  }
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function deepMerge(base: Record<string, unknown>, over: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...base };
  for (const [k, v] of Object.entries(over)) {
    const b = out[k];
    out[k] = isObject(b) && isObject(v) ? deepMerge(b, v) : v;
  }
  return out;
}

function setPath(target: Record<string, unknown>, keyPath: string[], value: unknown): void {
  let node = target;
  for (const k of keyPath.slice(0, -1)) {
    if (!isObject(node[k])) node[k] = {};
    node = node[k] as Record<string, unknown>;
  }
  node[keyPath[keyPath.length - 1]!] = value;
}

function readYaml(file: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError(`cannot read config file ${file}: ${(err as Error).message}`);
  }
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (err) {
    throw new ConfigError(`config file ${file} is not valid YAML: ${(err as Error).message}`);
  }
  if (doc == null) return {};
  if (!isObject(doc)) throw new ConfigError(`config file ${file} must hold a mapping at the top level`);
  return doc;
}

function formatErrors(value: unknown): string[] {
  const lines: string[] = [];
  for (const e of Value.Errors(ConfigSchema, value)) {
    const at = e.instancePath.replace(/^\//, '').replaceAll('/', '.');
    if (e.keyword === 'additionalProperties') {
      const extra = (e.params as { additionalProperties?: string[] }).additionalProperties ?? [];
      for (const k of extra) lines.push(`unknown key "${at ? `${at}.` : ''}${k}"`);
    } else if (e.keyword === 'boolean' && e.message === 'schema is false') {
      continue; // reported by the additionalProperties entry
    } else if (e.keyword === 'anyOf' || e.keyword === 'const') {
      if (!lines.some((l) => l.startsWith(`${at}:`))) lines.push(`${at}: not one of the allowed values`);
    } else {
      lines.push(`${at || '(root)'}: ${e.message}`);
    }
  }
  return [...new Set(lines)];
}

/** Defaults → config files → TRIBUTARY_* env → validation → cross-field checks. */
export function loadConfig(options: LoadConfigOptions = {}): Config {
  const env = options.env ?? process.env;
  const cwd = options.cwd ?? process.cwd();
  const files =
    options.files ??
    [path.join(REPO_ROOT, 'config', 'default.yaml'), ...(env.TRIBUTARY_CONFIG ? [env.TRIBUTARY_CONFIG] : [])];

  let merged: Record<string, unknown> = {};
  for (const file of files) {
    const abs = path.resolve(cwd, file);
    if (!existsSync(abs) && file === path.join(REPO_ROOT, 'config', 'default.yaml')) continue;
    merged = deepMerge(merged, readYaml(abs));
  }

  const leaves = new Map(configLeaves().map((l) => [envName(l.path), l]));
  for (const [name, raw] of Object.entries(env)) {
    if (!name.startsWith(ENV_PREFIX) || raw === undefined || RESERVED_ENV.has(name)) continue;
    const leaf = leaves.get(name);
    if (!leaf) throw new ConfigError(`unknown environment variable ${name} (see config/default.yaml for settings)`);
    setPath(merged, leaf.path, coerce(leaf, raw, name));
  }

  const withDefaults = Value.Default(ConfigSchema, structuredClone(merged));
  const errors = formatErrors(withDefaults);
  if (errors.length > 0) throw new ConfigError(`invalid configuration:\n  ${errors.join('\n  ')}`);
  const config = withDefaults as Config;

  // Cross-field rules.
  if (config.hls.partTargetSeconds * 2 > config.hls.segmentTargetSeconds) {
    throw new ConfigError('hls.partTargetSeconds must be at most half of hls.segmentTargetSeconds');
  }
  if (config.simulcast.backoffMaxMs < config.simulcast.backoffBaseMs) {
    throw new ConfigError('simulcast.backoffMaxMs must be at least simulcast.backoffBaseMs');
  }
  if (config.http.port !== 0 && config.rtmp.enabled && config.http.port === config.rtmp.port) {
    throw new ConfigError('http.port and rtmp.port must differ');
  }
  if (config.http.tls.port >= 0 && (!config.http.tls.certFile || !config.http.tls.keyFile)) {
    throw new ConfigError('http.tls.certFile and http.tls.keyFile are required when http.tls.port is set');
  }
  if (config.storage.kind === 's3') {
    for (const k of ['bucket', 'accessKeyId', 'secretAccessKey'] as const) {
      if (!config.storage.s3[k]) throw new ConfigError(`storage.s3.${k} is required when storage.kind is s3`);
    }
  }
  const names = config.transcode.ladder.map((r) => r.name);
  if (new Set(names).size !== names.length || names.includes('source')) {
    throw new ConfigError('transcode.ladder: rendition names must be unique and not "source"');
  }
  if (config.publicUrl) {
    let url: URL;
    try {
      url = new URL(config.publicUrl);
    } catch {
      throw new ConfigError(`publicUrl: "${config.publicUrl}" is not a URL`);
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new ConfigError('publicUrl: must be http(s)');
    config.publicUrl = url.toString().replace(/\/$/, '');
  }
  if (config.cluster.advertiseUrl) {
    let url: URL;
    try {
      url = new URL(config.cluster.advertiseUrl);
    } catch {
      throw new ConfigError(`cluster.advertiseUrl: "${config.cluster.advertiseUrl}" is not a URL`);
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new ConfigError('cluster.advertiseUrl: must be http(s)');
    config.cluster.advertiseUrl = url.toString().replace(/\/$/, '');
  }
  config.dataDir = path.resolve(cwd, config.dataDir);
  config.storage.dir = path.resolve(config.dataDir, config.storage.dir || 'media');
  config.storage.spoolDir = path.resolve(config.dataDir, config.storage.spoolDir || 'spool');
  config.uploads.dir = path.resolve(config.dataDir, config.uploads.dir || 'uploads');
  return config;
}

/** The public base URL: the configured one, or one derived from the bind address and port. */
export function publicBaseUrl(config: Config, httpPort: number): string {
  if (config.publicUrl) return config.publicUrl;
  const host = config.host === '0.0.0.0' || config.host === '::' ? 'localhost' : config.host;
  return `http://${host.includes(':') ? `[${host}]` : host}:${httpPort}`;
}

/**
 * How other nodes reach this node's HTTP listener: the configured URL, or one derived from the
 * bind address and port (a wildcard bind advertises the host name).
 */
export function advertiseUrl(config: Config, httpPort: number, hostname: string): string {
  if (config.cluster.advertiseUrl) return config.cluster.advertiseUrl;
  const host = config.host === '0.0.0.0' || config.host === '::' ? hostname : config.host;
  return `http://${host.includes(':') ? `[${host}]` : host}:${httpPort}`;
}
