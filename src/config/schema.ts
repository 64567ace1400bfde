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
        listenBacklog: Type.Integer({
          default: 4096,
          minimum: 1,
          maximum: 65_535,
          description: 'Pending TCP connections the kernel queues per HTTP listener (capped by net.core.somaxconn); Node defaults to 511, which a burst of viewers overflows.',
        }),
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
    rtmps: Type.Object(
      {
        enabled: Type.Boolean({ default: true, description: 'Also needs certFile and keyFile; without them RTMPS stays off.' }),
        port: Type.Integer({ default: 1936, minimum: 0, maximum: 65535 }),
        certFile: Type.String({ default: '', description: 'PEM certificate chain; reloaded when it changes.' }),
        keyFile: Type.String({ default: '', description: 'PEM private key; reloaded when it changes.' }),
      },
      closed,
    ),
    srt: Type.Object(
      {
        enabled: Type.Boolean({ default: true }),
        port: Type.Integer({ default: 9000, minimum: 0, maximum: 65535, description: 'UDP port of the SRT listener.' }),
        latencyMs: Type.Integer({ default: 120, minimum: 20, maximum: 8000, description: 'SRT receive latency (buffer).' }),
        handshakeTimeoutMs: Type.Integer({ default: 5000, minimum: 500, maximum: 60_000 }),
        idleTimeoutMs: Type.Integer({ default: 10_000, minimum: 1000, maximum: 600_000 }),
        maxConnections: Type.Integer({ default: 100, minimum: 1, maximum: 10_000 }),
      },
      closed,
    ),
    whip: Type.Object(
      {
        enabled: Type.Boolean({ default: true, description: 'WHIP ingest at POST /whip/<uid>.' }),
        udpPortMin: Type.Integer({ default: 0, minimum: 0, maximum: 65535, description: 'ICE UDP port range; 0/0: any port.' }),
        udpPortMax: Type.Integer({ default: 0, minimum: 0, maximum: 65535 }),
        ipv4: Type.Boolean({ default: true }),
        ipv6: Type.Boolean({ default: true }),
        publicIps: Type.Array(Type.String({ minLength: 2, maxLength: 64 }), {
          default: [],
          maxItems: 16,
          description: 'Announced as extra host candidates with the same ports (server behind 1:1 NAT).',
        }),
        additionalHostAddresses: Type.Array(Type.String({ minLength: 2, maxLength: 64 }), {
          default: [],
          maxItems: 16,
          description: 'Local addresses to gather on that are skipped by default (loopback, tunnels).',
        }),
        connectTimeoutMs: Type.Integer({ default: 15_000, minimum: 1000, maximum: 120_000 }),
        consentTimeoutMs: Type.Integer({ default: 10_000, minimum: 1000, maximum: 120_000 }),
        keyframeIntervalMs: Type.Integer({ default: 2000, minimum: 500, maximum: 60_000 }),
        allowedOrigins: Type.Array(Type.String({ minLength: 1, maxLength: 256 }), { default: ['*'], maxItems: 256 }),
        maxPendingPerAddress: Type.Integer({ default: 4, minimum: 1, maximum: 1000 }),
        maxSessions: Type.Integer({ default: 100, minimum: 1, maximum: 10_000 }),
        authFailureDelayMs: Type.Integer({ default: 1000, minimum: 0, maximum: 30_000 }),
        maxSdpBytes: Type.Integer({ default: 32_768, minimum: 1024, maximum: 1_048_576 }),
      },
      closed,
    ),
    whep: Type.Object(
      {
        enabled: Type.Boolean({ default: true, description: 'WHEP playback at POST /{id}/webRTC/play (uses the whip section\'s UDP ports and addresses).' }),
        maxViewersPerSession: Type.Integer({ default: 200, minimum: 1, maximum: 100_000, description: 'WHEP viewers of one live input on this node.' }),
        maxViewers: Type.Integer({ default: 500, minimum: 1, maximum: 100_000, description: 'WHEP viewers on this node.' }),
        keyframeRequestMinIntervalMs: Type.Integer({ default: 1000, minimum: 100, maximum: 60_000, description: 'Keyframe requests to a WHIP publisher (PLI) for new viewers are at least this far apart.' }),
        connectTimeoutMs: Type.Integer({ default: 15_000, minimum: 1000, maximum: 120_000, description: 'ICE + DTLS must complete within this after the answer.' }),
        consentTimeoutMs: Type.Integer({ default: 10_000, minimum: 1000, maximum: 120_000, description: 'A viewer with no consent check (STUN) for this long is dropped.' }),
        maxInFlightPackets: Type.Integer({ default: 512, minimum: 16, maximum: 65_536, description: 'RTP packets a viewer may have queued in its transport before it is dropped as too slow.' }),
        feedIdleMs: Type.Integer({ default: 10_000, minimum: 0, maximum: 600_000, description: 'A session\'s WHEP feed (and its Opus encoder) lingers this long after its last viewer.' }),
        opusBitrateKbps: Type.Integer({ default: 96, minimum: 16, maximum: 510, description: 'Bitrate of the shared AAC → Opus transcode.' }),
        maxPayloadBytes: Type.Integer({ default: 1200, minimum: 200, maximum: 1400, description: 'Largest RTP payload sent (H.264 NAL units above it are fragmented, FU-A).' }),
        renditionGopSeconds: Type.Number({ default: 1, minimum: 0.25, maximum: 10, description: 'Keyframe interval of the low-latency rendition made for sources with B-frames (a new viewer waits at most this).' }),
        renditionMaxBitrateKbps: Type.Integer({ default: 2500, minimum: 100, maximum: 50_000, description: 'Bitrate of that rendition (same size as the source).' }),
        maxSdpBytes: Type.Integer({ default: 32_768, minimum: 1024, maximum: 1_048_576, description: 'Largest offer accepted (413 above).' }),
      },
      closed,
    ),
    redis: Type.Object(
      {
        url: Type.String({ default: '', description: 'External Redis. Empty: start an embedded redis-server.' }),
        keyPrefix: Type.String({ default: 'trib:', pattern: '^[A-Za-z0-9:_-]{0,32}$' }),
        serverPath: Type.String({ default: 'redis-server', minLength: 1 }),
        sentinels: Type.Array(
          Type.Object({ host: Type.String({ minLength: 1, maxLength: 253 }), port: Type.Integer({ minimum: 1, maximum: 65_535 }) }, { additionalProperties: false }),
          {
            default: [],
            maxItems: 16,
            description: 'Redis Sentinel addresses; when set, the master named sentinelName is found through them (url then only gives password, db, TLS).',
          },
        ),
        sentinelName: Type.String({ default: 'mymaster', minLength: 1, maxLength: 128, description: 'The master group name the sentinels monitor.' }),
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
        spoolMaxBytes: Type.Integer({
          default: 0,
          minimum: 0,
          description: 'Bytes the spool may hold not yet uploaded (store down); beyond it recording drops segments. 0: the disk is the limit.',
        }),
        recordBufferBytes: Type.Integer({
          default: 64 * 1024 * 1024,
          minimum: 1024 * 1024,
          maximum: 4 * 1024 * 1024 * 1024,
          description: 'Segments held in memory waiting for the spool (a stalled disk); beyond it they are dropped from the recording.',
        }),
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
        maxViewersPerStream: Type.Integer({
          default: 0,
          minimum: 0,
          maximum: 10_000_000,
          description: 'Viewers (playback sessions, counted cluster-wide) per live stream; a new one past it gets 429 TOO_MANY_VIEWERS; 0: no limit.',
        }),
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
    vod: Type.Object(
      {
        thumbnailConcurrency: Type.Integer({ default: 2, minimum: 1, maximum: 64, description: 'FFmpeg thumbnail renders at once per node.' }),
        thumbnailQueue: Type.Integer({ default: 32, minimum: 0, maximum: 10_000, description: 'Renders waiting; past this: 503.' }),
        downloadConcurrency: Type.Integer({ default: 1, minimum: 1, maximum: 16, description: 'MP4 download builds at once per node.' }),
        deletionSweepSeconds: Type.Integer({ default: 60, minimum: 1, maximum: 86_400, description: 'How often scheduled deletions run.' }),
      },
      closed,
    ),
    metrics: Type.Object(
      {
        enabled: Type.Boolean({ default: true, description: 'Serve GET /metrics (Prometheus text format).' }),
        token: Type.String({ default: '', description: 'When set, scrapes must send Authorization: Bearer <token>.' }),
        port: Type.Integer({
          default: -1,
          minimum: -1,
          maximum: 65535,
          description: 'A separate listener for /metrics only; -1: served on the main HTTP listeners instead.',
        }),
        host: Type.String({ default: '', description: 'Bind address of the separate metrics listener; empty: host.' }),
      },
      closed,
    ),
    uploads: Type.Object(
      {
        dir: Type.String({ default: '', description: 'Uploaded files until processed (tus parts too); empty: <dataDir>/uploads.' }),
        maxSizeBytes: Type.Integer({
          default: 4 * 1024 ** 3,
          minimum: 1024,
          maximum: 1024 ** 4,
          description: 'Largest upload accepted; larger ones get 413 (before the body is read when the size is declared).',
        }),
        maxDurationSeconds: Type.Integer({ default: 21_600, minimum: 1, maximum: 86_400, description: 'Longest video accepted.' }),
        concurrency: Type.Integer({ default: 1, minimum: 1, maximum: 64, description: 'Uploads transcoded at once on this node.' }),
        directUploadExpirySeconds: Type.Integer({
          default: 1800,
          minimum: 60,
          maximum: 21_600,
          description: 'Lifetime of a direct upload URL when the request names no expiry.',
        }),
        directUploadMinExpirySeconds: Type.Integer({
          default: 120,
          minimum: 1,
          maximum: 3600,
          description: 'Shortest expiry a direct upload request may ask for (Cloudflare: 2 minutes).',
        }),
        tusExpirySeconds: Type.Integer({
          default: 86_400,
          minimum: 1,
          maximum: 604_800,
          description: 'A tus upload not finished this long after its creation is removed, with its video.',
        }),
        cleanupIntervalSeconds: Type.Integer({ default: 60, minimum: 1, maximum: 3600, description: 'How often expired uploads are removed.' }),
        attempts: Type.Integer({ default: 3, minimum: 1, maximum: 20, description: 'Processing attempts before a video is marked as failed.' }),
      },
      closed,
    ),
    hls: Type.Object(
      {
        segmentTargetSeconds: Type.Number({ default: 2, minimum: 0.5, maximum: 12 }),
        partTargetSeconds: Type.Number({
          default: 0.21,
          minimum: 0.1,
          maximum: 2,
          description: 'LL-HLS PART-TARGET, seconds; PART-HOLD-BACK (where players start) is three times it. 0.21: whole frames make 0.2 s parts at 25/30/50/60 fps and 0.208 s at 24 fps, all within 85–100 % of it.',
        }),
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
    webhooks: Type.Object(
      {
        allowPrivateTargets: Type.Boolean({
          default: false,
          description: 'Deliver to loopback/private/link-local addresses (off: refused, against SSRF).',
        }),
        privateTargetAllowlist: Type.Array(Type.String({ minLength: 1, maxLength: 64 }), {
          default: [],
          maxItems: 64,
          description: 'CIDRs allowed as targets even though private (e.g. an in-cluster receiver).',
        }),
        timeoutMs: Type.Integer({ default: 10_000, minimum: 100, maximum: 120_000, description: 'Per delivery attempt.' }),
        initialBackoffMs: Type.Integer({ default: 1000, minimum: 10, maximum: 600_000 }),
        maxBackoffMs: Type.Integer({ default: 300_000, minimum: 10, maximum: 3_600_000 }),
        maxRetrySeconds: Type.Integer({
          default: 86_400,
          minimum: 1,
          maximum: 7 * 86_400,
          description: 'An event not delivered this long after it happened is given up (and logged).',
        }),
        concurrency: Type.Integer({ default: 4, minimum: 1, maximum: 64 }),
        deliveriesKept: Type.Integer({ default: 200, minimum: 1, maximum: 10_000, description: 'Attempts kept in the log.' }),
      },
      closed,
    ),
    views: Type.Object(
      {
        windowSeconds: Type.Integer({ default: 30, minimum: 5, maximum: 600, description: 'A viewer counts this long after its last request.' }),
        refreshSeconds: Type.Integer({ default: 5, minimum: 1, maximum: 60, description: 'Per viewer, at most one Redis write this often.' }),
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
        relayHoldMs: Type.Integer({
          default: 30_000,
          minimum: 1000,
          maximum: 120_000,
          description: 'Longest an owner may hold a relayed blocking request (the owner answers 503 at its own limit first).',
        }),
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
