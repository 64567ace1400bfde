import { describe, it, expect } from 'vitest';
import { mkdtempSync, writeFileSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parse as parseYaml } from 'yaml';
import Value from 'typebox/value';
import { loadConfig, ConfigError, envName, configLeaves, REPO_ROOT, advertiseUrl } from '../../../src/config/load-config.ts';
import { ConfigSchema, hasRole } from '../../../src/config/schema.ts';

function tmpYaml(text: string): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'trib-config-'));
  const file = path.join(dir, 'c.yaml');
  writeFileSync(file, text);
  return file;
}

describe('loadConfig', () => {
  it('config/default.yaml documents exactly the schema defaults', () => {
    const doc = parseYaml(readFileSync(path.join(REPO_ROOT, 'config/default.yaml'), 'utf8'));
    expect(doc).toEqual(Value.Default(ConfigSchema, {}));
  });

  it('gives defaults with no file and no env', () => {
    const c = loadConfig({ env: {}, files: [], cwd: '/srv' });
    expect(c.http.port).toBe(8080);
    expect(c.rtmp.port).toBe(1935);
    expect(c.dataDir).toBe('/srv/data');
    expect(c.transcode.ladder.map((r) => r.name)).toEqual(['1080p', '720p', '480p', '360p']);
  });

  it('maps the documented environment names', () => {
    const c = loadConfig({
      files: [],
      env: {
        TRIBUTARY_HOST: '127.0.0.1',
        TRIBUTARY_HTTP_PORT: '9000',
        TRIBUTARY_RTMP_PORT: '1940',
        TRIBUTARY_PUBLIC_URL: 'https://live.example.com/',
        TRIBUTARY_DATA_DIR: '/var/lib/trib',
        TRIBUTARY_REDIS_URL: 'redis://10.0.0.1:6379',
        TRIBUTARY_API_KEY: 'k',
        TRIBUTARY_LOG_LEVEL: 'debug',
        TRIBUTARY_HLS_SEGMENT_TARGET_SECONDS: '4',
        TRIBUTARY_RTMP_ENABLED: 'false',
        PATH: '/bin',
      },
    });
    expect(c).toMatchObject({
      host: '127.0.0.1',
      http: { port: 9000 },
      rtmp: { port: 1940, enabled: false },
      publicUrl: 'https://live.example.com',
      dataDir: '/var/lib/trib',
      redis: { url: 'redis://10.0.0.1:6379' },
      apiKey: 'k',
      logLevel: 'debug',
      hls: { segmentTargetSeconds: 4 },
    });
  });

  it('cluster roles default to all three; the advertise URL is configured or derived', () => {
    const all = loadConfig({ files: [], env: {} });
    expect(all.cluster.roles).toEqual(['ingest', 'origin', 'worker']);
    expect(hasRole(all, 'worker')).toBe(true);
    const ingest = loadConfig({ files: [], env: { TRIBUTARY_CLUSTER_ROLES: '["ingest"]', TRIBUTARY_HOST: '127.0.0.1' } });
    expect(hasRole(ingest, 'origin')).toBe(false);
    expect(advertiseUrl(ingest, 8080, 'box')).toBe('http://127.0.0.1:8080');
    expect(advertiseUrl(all, 8080, 'box')).toBe('http://box:8080');
    const set = loadConfig({ files: [], env: { TRIBUTARY_CLUSTER_ADVERTISE_URL: 'http://10.0.0.5:8080/' } });
    expect(advertiseUrl(set, 1, 'box')).toBe('http://10.0.0.5:8080');
  });

  it('viewer limit, relay hold and Redis Sentinel settings: read from env, bad values refused with the key named', () => {
    const c = loadConfig({
      files: [],
      env: {
        TRIBUTARY_LIMITS_MAX_VIEWERS_PER_STREAM: '500',
        TRIBUTARY_CLUSTER_RELAY_HOLD_MS: '12000',
        TRIBUTARY_REDIS_SENTINELS: '[{"host":"10.0.0.7","port":26379},{"host":"10.0.0.8","port":26379}]',
        TRIBUTARY_REDIS_SENTINEL_NAME: 'tributary',
      },
    });
    expect(c.limits.maxViewersPerStream).toBe(500);
    expect(c.cluster.relayHoldMs).toBe(12_000);
    expect(c.redis.sentinels).toEqual([{ host: '10.0.0.7', port: 26379 }, { host: '10.0.0.8', port: 26379 }]);
    expect(c.redis.sentinelName).toBe('tributary');
    const defaults = loadConfig({ files: [], env: {} });
    expect([defaults.limits.maxViewersPerStream, defaults.redis.sentinels, defaults.cluster.relayHoldMs]).toEqual([0, [], 30_000]);
    const bad: Array<[string, string]> = [
      ['TRIBUTARY_LIMITS_MAX_VIEWERS_PER_STREAM', '-1'],
      ['TRIBUTARY_LIMITS_MAX_VIEWERS_PER_STREAM', 'lots'],
      ['TRIBUTARY_CLUSTER_RELAY_HOLD_MS', '10'],
      ['TRIBUTARY_REDIS_SENTINELS', '[{"host":"10.0.0.7","port":0}]'],
      ['TRIBUTARY_REDIS_SENTINELS', '[{"host":"10.0.0.7","port":26379,"password":"x"}]'],
      ['TRIBUTARY_REDIS_SENTINELS', '[{"port":26379}]'],
      ['TRIBUTARY_REDIS_SENTINELS', '{"host":"10.0.0.7"'],
      ['TRIBUTARY_REDIS_SENTINELS', JSON.stringify(Array.from({ length: 17 }, () => ({ host: 'h', port: 1 })))],
      ['TRIBUTARY_REDIS_SENTINEL_NAME', ''],
    ];
    for (const [name, value] of bad) expect(() => loadConfig({ files: [], env: { [name]: value } }), `${name}=${value}`).toThrow(ConfigError);
  });

  it('every leaf has a distinct env name', () => {
    const names = configLeaves().map((l) => envName(l.path));
    expect(new Set(names).size).toBe(names.length);
    expect(names).toContain('TRIBUTARY_HTTP_PORT');
  });

  it('env overrides the file, the file overrides defaults', () => {
    const file = tmpYaml('http:\n  port: 7000\nrtmp:\n  port: 7001\n');
    const c = loadConfig({ files: [file], env: { TRIBUTARY_HTTP_PORT: '7002' } });
    expect(c.http.port).toBe(7002);
    expect(c.rtmp.port).toBe(7001);
  });

  const bad: Array<[string, { env?: Record<string, string>; yaml?: string }, RegExp]> = [
    ['unknown file key', { yaml: 'htp:\n  port: 1\n' }, /unknown key "htp"/],
    ['unknown nested key', { yaml: 'http:\n  prot: 1\n' }, /unknown key "http.prot"/],
    ['unknown env variable', { env: { TRIBUTARY_HTTP_PROT: '1' } }, /TRIBUTARY_HTTP_PROT/],
    ['non-numeric port', { env: { TRIBUTARY_HTTP_PORT: 'eighty' } }, /TRIBUTARY_HTTP_PORT: expected a number/],
    ['port out of range', { env: { TRIBUTARY_HTTP_PORT: '70000' } }, /http\.port: must be <= 65535/],
    ['bad log level', { env: { TRIBUTARY_LOG_LEVEL: 'loud' } }, /logLevel: not one of the allowed values/],
    ['bad boolean', { env: { TRIBUTARY_RTMP_ENABLED: 'maybe' } }, /expected true or false/],
    ['bad url', { env: { TRIBUTARY_PUBLIC_URL: 'not a url' } }, /publicUrl/],
    ['ftp url', { env: { TRIBUTARY_PUBLIC_URL: 'ftp://x' } }, /publicUrl: must be http/],
    ['same ports', { env: { TRIBUTARY_HTTP_PORT: '1935' } }, /must differ/],
    ['part too long', { yaml: 'hls:\n  partTargetSeconds: 1.5\n  segmentTargetSeconds: 2\n' }, /partTargetSeconds/],
    ['not a mapping', { yaml: '- 1\n- 2\n' }, /mapping/],
    ['invalid yaml', { yaml: 'http: [\n' }, /not valid YAML/],
    ['duplicate rung', { yaml: 'transcode:\n  ladder:\n    - {name: a, height: 360, videoBitrateKbps: 500, audioBitrateKbps: 64}\n    - {name: a, height: 240, videoBitrateKbps: 300, audioBitrateKbps: 64}\n' }, /unique/],
    ['ladder json env', { env: { TRIBUTARY_TRANSCODE_LADDER: '[{' } }, /JSON array/],
    ['simulcast backoff bounds', { env: { TRIBUTARY_SIMULCAST_BACKOFF_BASE_MS: '5000', TRIBUTARY_SIMULCAST_BACKOFF_MAX_MS: '1000' } }, /simulcast\.backoffMaxMs/],
    ['too many outputs', { env: { TRIBUTARY_SIMULCAST_MAX_OUTPUTS_PER_INPUT: '51' } }, /simulcast\.maxOutputsPerInput/],
    ['unknown cluster role', { env: { TRIBUTARY_CLUSTER_ROLES: '["ingest","edge"]' } }, /cluster\.roles/],
    ['no cluster role', { env: { TRIBUTARY_CLUSTER_ROLES: '[]' } }, /cluster\.roles/],
    ['repeated cluster role', { env: { TRIBUTARY_CLUSTER_ROLES: '["origin","origin"]' } }, /cluster\.roles/],
    ['roles not JSON', { env: { TRIBUTARY_CLUSTER_ROLES: 'ingest,origin' } }, /JSON array/],
    ['bad advertise url', { env: { TRIBUTARY_CLUSTER_ADVERTISE_URL: 'node-a:8080' } }, /cluster\.advertiseUrl/],
    ['ftp advertise url', { env: { TRIBUTARY_CLUSTER_ADVERTISE_URL: 'ftp://10.0.0.5' } }, /cluster\.advertiseUrl: must be http/],
    ['lease ttl too short', { env: { TRIBUTARY_CLUSTER_LEASE_TTL_MS: '10' } }, /cluster\.leaseTtlMs/],
  ];
  it.each(bad)('refuses %s with a message naming the key', (_name, input, message) => {
    const files = input.yaml ? [tmpYaml(input.yaml)] : [];
    let error: unknown;
    try {
      loadConfig({ files, env: input.env ?? {} });
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as Error).message).toMatch(message);
  });
});
