import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { loadConfig, REPO_ROOT } from '../../src/config/load-config.ts';

const run = promisify(execFile);
const composeFile = path.join(REPO_ROOT, 'docker', 'compose.yaml');

interface ComposeService {
  image?: string;
  build?: unknown;
  environment?: Record<string, string | null>;
  ports?: Array<{ published: number | string; target: number; protocol?: string }>;
  /** docker-compose 1.x prints `source:target:mode` strings, the compose v2 CLI objects. */
  volumes?: Array<string | { source?: string; target: string }>;
  depends_on?: Record<string, { condition: string }>;
}

/** docker-compose (Debian's package) validates and normalizes the file; no Docker engine needed. */
async function composeConfig(
  env: Record<string, string> = {},
  file = composeFile,
): Promise<{ services: Record<string, ComposeService> }> {
  const { stdout } = await run('docker-compose', ['-f', file, 'config'], { env: { ...process.env, ...env } });
  return parse(stdout) as { services: Record<string, ComposeService> };
}

function serviceEnv(service: ComposeService): Record<string, string> {
  return Object.fromEntries(Object.entries(service.environment ?? {}).map(([k, v]) => [k, v ?? '']));
}

describe('docker/compose.yaml and docker/Dockerfile', () => {
  it('validates with docker-compose and runs Tributary against Redis and MinIO with settings our loader accepts', async () => {
    const { services } = await composeConfig({ TRIBUTARY_API_KEY: 'compose-test-key-0123456789' });
    expect(Object.keys(services).sort()).toEqual(['minio', 'minio-bucket', 'redis', 'tributary']);
    const trib = services.tributary!;
    expect(trib.build).toBeDefined();
    expect(trib.depends_on?.redis?.condition).toBe('service_healthy');
    expect(trib.depends_on?.['minio-bucket']?.condition).toBe('service_completed_successfully');
    expect(trib.volumes?.map((v) => (typeof v === 'string' ? v.split(':')[1] : v.target))).toContain('/data');

    // Every variable the compose file sets is a real setting with a valid value: the same loader
    // the server runs refuses unknown TRIBUTARY_* names and bad values.
    const config = loadConfig({ env: { ...serviceEnv(trib), TRIBUTARY_DATA_DIR: '/data' } });
    expect(config.redis.url).toBe('redis://redis:6379/0');
    expect(config.storage.kind).toBe('s3');
    expect(config.storage.s3.endpoint).toBe('http://minio:9000');
    expect(config.storage.s3.forcePathStyle).toBe(true);
    expect(config.apiKey).toBe('compose-test-key-0123456789');

    // The published ports are the ones the server listens on by default.
    const published = (trib.ports ?? []).map((p) => p.target);
    expect(published).toContain(config.http.port);
    expect(published).toContain(config.rtmp.port);
  });

  it('would catch a misspelled setting or an invalid compose file', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'trib-compose-'));
    try {
      const original = await readFile(composeFile, 'utf8');
      const misspelled = path.join(dir, 'misspelled.yaml');
      await writeFile(misspelled, original.replace('TRIBUTARY_STORAGE_S3_BUCKET:', 'TRIBUTARY_STORAGE_S3_BUCKIT:'));
      const { services } = await composeConfig({}, misspelled);
      expect(() => loadConfig({ env: serviceEnv(services.tributary!) })).toThrow(/TRIBUTARY_STORAGE_S3_BUCKIT/);

      const invalid = path.join(dir, 'invalid.yaml');
      await writeFile(invalid, original.replace('condition: service_healthy', 'condition: when_it_feels_like_it'));
      await expect(composeConfig({}, invalid)).rejects.toThrow();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('builds the image the way scripts/start.sh sets up a machine', async () => {
    const dockerfile = await readFile(path.join(REPO_ROOT, 'docker', 'Dockerfile'), 'utf8');
    const startSh = await readFile(path.join(REPO_ROOT, 'scripts', 'start.sh'), 'utf8');
    // Node 24 on a slim Debian base.
    expect(dockerfile).toMatch(/^FROM node:24[-\w.]*slim/m);
    // The same Debian packages start.sh installs.
    const aptLine = /^ensure_apt (.+)$/m.exec(startSh)?.[1] ?? '';
    const packages = aptLine.split(/\s+/).map((spec) => spec.split(':')[0]!);
    expect(packages.length).toBeGreaterThan(0);
    for (const pkg of packages) expect(dockerfile).toMatch(new RegExp(`apt-get install[^\\n]*(\\\\\\n[^\\n]*)*\\b${pkg}\\b`));
    // npm ci from the lock file, and the same entry point.
    expect(dockerfile).toMatch(/npm ci\b/);
    expect(startSh).toMatch(/node src\/main\.ts/);
    expect(dockerfile).toMatch(/CMD \["node", "src\/main\.ts"\]/);
    // Not root, with a health check on /readyz.
    const user = /^USER (\S+)/m.exec(dockerfile)?.[1];
    expect(user).toBeDefined();
    expect(user).not.toMatch(/^(root|0)$/);
    expect(dockerfile).toMatch(/HEALTHCHECK[\s\S]*\/readyz/);
  });
});
