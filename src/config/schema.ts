import Type, { type Static } from 'typebox';

// One schema for every setting. Defaults live here and nowhere else; config/default.yaml
// documents them (a unit test keeps the two equal). Every leaf is also settable from the
// environment as TRIBUTARY_<PATH_IN_SNAKE_CASE>, e.g. http.port → TRIBUTARY_HTTP_PORT.

const closed = { additionalProperties: false, default: {} } as const;

/** The roles a node can hold (`cluster.roles`); every node holds all three by default. */
export const CLUSTER_ROLES = ['ingest', 'origin', 'worker'] as const;
export type ClusterRole = (typeof CLUSTER_ROLES)[number];

const LadderRung = Type.Object(
  {
    name: Type.String({ pattern: '^[a-z0-9][a-z0-9_-]{0,31}$' }),
    height: Type.Integer({ minimum: 144, maximum: 4320 }),
    videoBitrateKbps: Type.Integer({ minimum: 100, maximum: 100_000 }),
    audioBitrateKbps: Type.Integer({ minimum: 32, maximum: 512 }),
  },
  { additionalProperties: false },
);

export const ConfigSchema = Type.Object(
  {
    host: Type.String({ default: '0.0.0.0', minLength: 1, description: 'Bind address of every listener.' }),
    publicUrl: Type.String({
      default: '',
      description: 'Base URL viewers and publishers use (http://host:port). Empty: derived from host and port.',
    }),
    dataDir: Type.String({ default: './data', minLength: 1, description: 'Media, spool and embedded Redis data.' }),
    logLevel: Type.Union(
      ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'].map((l) => Type.Literal(l)),
      { default: 'info' },
    ),
    apiKey: Type.String({
      default: '',
      description: 'When set, the API key accepted (instead of one generated at first start).',
    }),
    http: Type.Object(
      {
        port: Type.Integer({ default: 8080, minimum: 0, maximum: 65535 }),
        bodyLimitBytes: Type.Integer({ default: 65_536, minimum: 1024, maximum: 16 * 1024 * 1024 }),
        shutdownGraceMs: Type.Integer({ default: 5000, minimum: 0, maximum: 120_000 }),
        h2cPort: Type.Integer({ default: -1, minimum: -1, maximum: 65535, description: 'Cleartext HTTP/2; -1 off.' }),
        tls: Type.Object(
          {
            port: Type.Integer({ default: -1, minimum: -1, maximum: 65535, description: 'HTTPS (h2 + http/1.1); -1 off.' }),
            certFile: Type.String({ default: '' }),
            keyFile: Type.String({ default: '' }),
          },
          closed,
        ),
      },
      closed,
    ),
    rtmp: Type.Object(
      {
        enabled: Type.Boolean({ default: true }),
        port: Type.Integer({ default: 1935, minimum: 0, maximum: 65535 }),
        app: Type.String({ default: 'live', pattern: '^[A-Za-z0-9_-]{1,64}$' }),
        authFailureDelayMs: Type.Integer({ default: 1000, minimum: 0, maximum: 30_000 }),
        handshakeTimeoutMs: Type.Integer({ default: 10_000, minimum: 100, maximum: 120_000 }),
        idleTimeoutMs: Type.Integer({ default: 30_000, minimum: 1000, maximum: 600_000 }),
        maxConnections: Type.Integer({ default: 1000, minimum: 1, maximum: 100_000 }),
      },
      closed,
    ),
    redis: Type.Object(
      {
        url: Type.String({ default: '', description: 'External Redis. Empty: start an embedded redis-server.' }),
        keyPrefix: Type.String({ default: 'trib:', pattern: '^[A-Za-z0-9:_-]{0,32}$' }),
        serverPath: Type.String({ default: 'redis-server', minLength: 1 }),
      },
      closed,
    ),
    ffmpeg: Type.Object(
      {
        path: Type.String({ default: 'ffmpeg', minLength: 1 }),
        startTimeoutMs: Type.Integer({ default: 15_000, minimum: 1000, maximum: 120_000 }),
        maxRestarts: Type.Integer({ default: 5, minimum: 0, maximum: 100 }),
      },
      closed,
    ),
    transcode: Type.Object(
      {
        includeSource: Type.Boolean({ default: true, description: 'Offer the source as a copy rendition.' }),
        maxRenditions: Type.Integer({ default: 4, minimum: 1, maximum: 8 }),
        gopSeconds: Type.Number({ default: 1, minimum: 0.5, maximum: 10 }),
        x264Preset: Type.Union(
          ['ultrafast', 'superfast', 'veryfast', 'faster', 'fast', 'medium'].map((p) => Type.Literal(p)),
          { default: 'veryfast' },
        ),
        ladder: Type.Array(LadderRung, {
          maxItems: 8,
          default: [
            { name: '1080p', height: 1080, videoBitrateKbps: 4500, audioBitrateKbps: 128 },
            { name: '720p', height: 720, videoBitrateKbps: 2500, audioBitrateKbps: 128 },
            { name: '480p', height: 480, videoBitrateKbps: 1200, audioBitrateKbps: 96 },
            { name: '360p', height: 360, videoBitrateKbps: 700, audioBitrateKbps: 96 },
          ],
        }),
      },
      closed,
    ),
    storage: Type.Object(
      {
        kind: Type.Union([Type.Literal('disk'), Type.Literal('s3')], { default: 'disk' }),
        dir: Type.String({ default: '', description: 'Disk store; empty: <dataDir>/media.' }),
        spoolDir: Type.String({ default: '', description: 'Spool; empty: <dataDir>/spool.' }),
        spoolConcurrency: Type.Integer({ default: 4, minimum: 1, maximum: 64 }),
        fsync: Type.Boolean({ default: true }),
        s3: Type.Object(
          {
            endpoint: Type.String({ default: '', description: 'Empty: AWS. R2/MinIO: their URL.' }),
            region: Type.String({ default: 'us-east-1' }),
            bucket: Type.String({ default: '' }),
            accessKeyId: Type.String({ default: '' }),
            secretAccessKey: Type.String({ default: '' }),
            forcePathStyle: Type.Boolean({ default: false }),
          },
          closed,
        ),
      },
      closed,
    ),
    access: Type.Object(
      {
        trustedProxies: Type.Array(Type.String({ minLength: 1, maxLength: 64 }), {
          default: [],
          maxItems: 256,
          description: 'CIDRs whose X-Forwarded-For and country header are believed.',
        }),
        countryHeader: Type.String({ default: '', description: 'e.g. CF-IPCountry, from trusted proxies only.' }),
        geoipDatabase: Type.String({
          default: '',
          description: 'MaxMind-format country DB; empty: the bundled DB-IP Lite; "off": none.',
        }),
        tokenCacheSize: Type.Integer({ default: 10_000, minimum: 0, maximum: 1_000_000 }),
        clockSkewSeconds: Type.Integer({ default: 60, minimum: 0, maximum: 300 }),
        keyResyncSeconds: Type.Integer({ default: 30, minimum: 1, maximum: 3600 }),
        policyCacheMs: Type.Integer({ default: 5000, minimum: 0, maximum: 600_000 }),
      },
      closed,
    ),
    limits: Type.Object(
      {
        maxLiveSessions: Type.Integer({ default: 0, minimum: 0, maximum: 100_000, description: 'Live sessions on this node; 0: no limit.' }),
        maxInputBitrateKbps: Type.Integer({
          default: 0,
          minimum: 0,
          maximum: 1_000_000,
          description: 'Ingest bitrate (10 s average) above which a publisher is disconnected; 0: no limit.',
        }),
        authFailures: Type.Object(
          {
            max: Type.Integer({ default: 20, minimum: 0, maximum: 100_000, description: 'Failures per address per window; 0: off.' }),
            windowSeconds: Type.Integer({ default: 60, minimum: 1, maximum: 86_400 }),
            blockSeconds: Type.Integer({ default: 300, minimum: 1, maximum: 86_400 }),
            exemptCidrs: Type.Array(Type.String({ minLength: 1, maxLength: 64 }), {
              default: ['127.0.0.0/8', '::1/128'],
              maxItems: 256,
              description: 'Never blocked (local tools). Behind a proxy set access.trustedProxies so clients are told apart.',
            }),
          },
          closed,
        ),
      },
      closed,
    ),
    hls: Type.Object(
      {
        segmentTargetSeconds: Type.Number({ default: 2, minimum: 0.5, maximum: 12 }),
        partTargetSeconds: Type.Number({ default: 0.25, minimum: 0.1, maximum: 2 }),
        windowSegments: Type.Integer({ default: 12, minimum: 3, maximum: 300 }),
      },
      closed,
    ),
    simulcast: Type.Object(
      {
        maxOutputsPerInput: Type.Integer({ default: 50, minimum: 1, maximum: 50 }),
        queueBytes: Type.Integer({ default: 4 * 1024 * 1024, minimum: 64 * 1024, maximum: 256 * 1024 * 1024 }),
        backoffBaseMs: Type.Integer({ default: 1000, minimum: 50, maximum: 60_000 }),
        backoffMaxMs: Type.Integer({ default: 30_000, minimum: 100, maximum: 600_000 }),
        connectTimeoutMs: Type.Integer({ default: 15_000, minimum: 1000, maximum: 120_000 }),
        stallTimeoutMs: Type.Integer({ default: 10_000, minimum: 1000, maximum: 120_000 }),
      },
      closed,
    ),
    cluster: Type.Object(
      {
        roles: Type.Array(Type.Union([Type.Literal('ingest'), Type.Literal('origin'), Type.Literal('worker')]), {
          default: [...CLUSTER_ROLES],
          minItems: 1,
          maxItems: 3,
          uniqueItems: true,
          description: 'What this node does: ingest (RTMP/WHIP/SRT listeners), origin (playback), worker (jobs, failover).',
        }),
        advertiseUrl: Type.String({
          default: '',
          description: "How other nodes reach this node's HTTP listener (http://10.0.0.5:8080). Empty: derived from host and port.",
        }),
        leaseTtlMs: Type.Integer({ default: 5000, minimum: 1000, maximum: 120_000, description: 'Node heartbeat and live-session lease TTL; renewed every third.' }),
        failoverSweepMs: Type.Integer({ default: 2000, minimum: 200, maximum: 600_000, description: 'How often workers look for recordings of dead nodes.' }),
        proxyTimeoutMs: Type.Integer({ default: 10_000, minimum: 500, maximum: 120_000, description: 'Origin → owner request timeout beyond a blocking hold.' }),
      },
      closed,
    ),
  },
  { additionalProperties: false },
);

export type Config = Static<typeof ConfigSchema>;

/** True when this node holds `role` (the seam other modules check before starting their part). */
export function hasRole(config: Pick<Config, 'cluster'>, role: ClusterRole): boolean {
  return config.cluster.roles.includes(role);
}
