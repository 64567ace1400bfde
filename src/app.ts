import { mkdir, readFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import fastify, { LogController, type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import type { Redis } from 'ioredis';
import { hasRole, type Config } from './config/schema.ts';
import { advertiseUrl, publicBaseUrl } from './config/load-config.ts';
import type { Logger } from './observability/logger.ts';
import { EmbeddedRedis } from './state/embedded-redis.ts';
import { createRedis, type RedisTarget } from './state/redis-client.ts';
import { JobQueues } from './jobs/job-queues.ts';
import { EventBus } from './events/event-bus.ts';
import { createRedisKeys } from './state/keys.ts';
import { LiveInputRepository } from './state/live-input-repo.ts';
import { OutputRepository } from './state/output-repo.ts';
import { SimulcastManager } from './simulcast/simulcast-manager.ts';
import { ApiKeyStore } from './state/api-key-store.ts';
import { RtmpServer } from './ingest/rtmp/rtmp-server.ts';
import { SessionRegistry, type LiveInputDirectory } from './live/session-registry.ts';
import { IngestRefusal } from './live/ingest-contract.ts';
import { originPlugin } from './origin/origin-plugin.ts';
import { apiPlugin } from './api/api-plugin.ts';
import { registerErrorHandling, frameworkErrors } from './api/errors.ts';
import { registerOpenApi } from './api/openapi.ts';
import { SigningKeyRepository } from './state/signing-key-repo.ts';
import { TokenVerifier } from './access/tokens.ts';
import { TokenSigner } from './access/token-signer.ts';
import { GeoIp } from './access/geoip.ts';
import { PlaybackGuard } from './access/playback-guard.ts';
import { AuthFailureLimiter } from './access/auth-failure-limiter.ts';
import { clientInfo, TrustedProxies } from './access/client-info.ts';
import { createObjectStore, type StorageConfig } from './storage/create-store.ts';
import type { ObjectStore } from './storage/object-store.ts';
import { Spool } from './storage/spool.ts';
import { VideoRepository } from './state/video-repo.ts';
import { Recorder } from './vod/recorder.ts';
import { VodPlayback } from './vod/vod-playback.ts';
import { loadNodeId } from './vod/node-id.ts';
import { interruptedRecordings, recoverRecordings } from './vod/recovery.ts';
import { videoPrefix, type FinalizeDeps } from './vod/finalize.ts';
import { ClusterLeases } from './state/cluster-leases.ts';
import { OwnerProxy } from './origin/owner-proxy.ts';
import { FailoverSweeper } from './vod/failover-sweeper.ts';

/** The header node-to-node playback requests carry: the cluster secret (never logged). */
const INTERNAL_HEADER = 'x-tributary-internal';

export interface AppOptions {
  config: Config;
  logger: Logger;
}

export interface StartedApp {
  httpUrl: string;
  httpPort: number;
  h2cPort: number | undefined;
  tlsPort: number | undefined;
  rtmpPort: number | undefined;
  /** Set only on the first start without a configured key: print it once. */
  generatedApiKey: string | undefined;
}

function storageConfig(config: Config): StorageConfig {
  const s = config.storage;
  if (s.kind === 'disk') return { kind: 'disk', dir: s.dir, fsync: s.fsync };
  return {
    kind: 's3',
    region: s.s3.region,
    bucket: s.s3.bucket,
    accessKeyId: s.s3.accessKeyId,
    secretAccessKey: s.s3.secretAccessKey,
    forcePathStyle: s.s3.forcePathStyle,
    ...(s.s3.endpoint ? { endpoint: s.s3.endpoint } : {}),
  };
}

/**
 * The composition root: builds every part, starts them in dependency order, and closes them in
 * reverse. One process holds every role by default.
 */
export class App {
  readonly config: Config;
  readonly log: Logger;
  #embeddedRedis: EmbeddedRedis | undefined;
  #redis: Redis | undefined;
  #jobs: JobQueues | undefined;
  readonly events: EventBus;
  #http: FastifyInstance[] = [];
  #rtmp: RtmpServer | undefined;
  #sessions: SessionRegistry | undefined;
  #simulcast: SimulcastManager | undefined;
  #tokens: TokenVerifier | undefined;
  #store: ObjectStore | undefined;
  #spool: Spool | undefined;
  #vod: VodPlayback | undefined;
  #recovery: Promise<void> | undefined;
  #cluster: ClusterLeases | undefined;
  #failover: FailoverSweeper | undefined;
  #ready = false;
  #closing: Promise<void> | undefined;

  constructor(opts: AppOptions) {
    this.config = opts.config;
    this.log = opts.logger;
    this.events = new EventBus((error, event) => this.log.error({ err: error, event: event.type }, 'event listener failed'));
  }

  get sessions(): SessionRegistry | undefined {
    return this.#sessions;
  }

  /** The running simulcast outputs of this node's live sessions. */
  get simulcast(): SimulcastManager | undefined {
    return this.#simulcast;
  }

  /** Durable job queues (BullMQ on the same Redis); set once started. */
  get jobs(): JobQueues | undefined {
    return this.#jobs;
  }

  /** This node's heartbeat and live-session leases in the shared Redis. */
  get cluster(): ClusterLeases | undefined {
    return this.#cluster;
  }

  /** Playback of finalized videos (recordings), from the object store. */
  get vod(): VodPlayback | undefined {
    return this.#vod;
  }

  async start(): Promise<StartedApp> {
    try {
      return await this.#start();
    } catch (error) {
      await this.close('start failed');
      throw error;
    }
  }

  async #start(): Promise<StartedApp> {
    const { config, log } = this;
    await mkdir(config.dataDir, { recursive: true });

    // State: an external Redis when configured, else our own redis-server child.
    let redisTarget: RedisTarget;
    if (config.redis.url) {
      redisTarget = { url: config.redis.url };
      this.#redis = createRedis(redisTarget, log);
    } else {
      this.#embeddedRedis = new EmbeddedRedis({
        dataDir: config.dataDir,
        redisServerPath: config.redis.serverPath,
        logger: log,
      });
      redisTarget = await this.#embeddedRedis.start();
      this.#redis = createRedis(redisTarget, log);
    }
    await this.#redis.ping();
    // Durable background work (webhooks, uploads, deletions) shares the same Redis.
    this.#jobs = new JobQueues({
      connect: () => createRedis(redisTarget, log, { maxRetriesPerRequest: null }),
      prefix: `${config.redis.keyPrefix}bull`,
      logger: log,
    });
    const keys = createRedisKeys(config.redis.keyPrefix);
    const liveInputs = new LiveInputRepository({ redis: this.#redis, keys });
    const apiKeys = new ApiKeyStore({ redis: this.#redis, keys });
    const initial = await apiKeys.ensureInitialKey(config.apiKey || undefined);

    // Media: every finished file passes through the spool on its way to the store. The spool
    // starts (and its initial scan queues what a crash left) before anything is recorded.
    const store = createObjectStore(storageConfig(config));
    this.#store = store;
    this.#spool = new Spool({
      dir: config.storage.spoolDir,
      store,
      logger: log,
      concurrency: config.storage.spoolConcurrency,
      fsync: config.storage.fsync,
    });
    await this.#spool.start();
    this.#vod = new VodPlayback({ store });
    const vod = this.#vod;
    const videos = new VideoRepository({ redis: this.#redis, keys });
    const nodeId = await loadNodeId(config.dataDir);
    const vodDeps: FinalizeDeps = { videos, spool: this.#spool, logger: log, nodeId };
    // Scale-out: this node's heartbeat and the leases of the sessions it ingests, so that other
    // nodes find the owner of a live stream, and notice when it dies. Joined once HTTP listens.
    const cluster = new ClusterLeases({ redis: this.#redis, keys, nodeId, roles: config.cluster.roles, ttlMs: config.cluster.leaseTtlMs, logger: log });
    this.#cluster = cluster;
    // Read before this run records anything: every recording listed now was left by a crash.
    const interrupted = await interruptedRecordings(vodDeps);
    this.#recovery = recoverRecordings(vodDeps, interrupted);
    const recorder = new Recorder(vodDeps);

    // Signed playback: keys in Redis, tokens verified locally with cached keys.
    const signingKeys = new SigningKeyRepository({ redis: this.#redis, keys });
    this.#tokens = new TokenVerifier({
      keys: signingKeys,
      cacheSize: config.access.tokenCacheSize,
      clockSkewSeconds: config.access.clockSkewSeconds,
      resyncIntervalMs: config.access.keyResyncSeconds * 1000,
      onError: (error) => log.warn({ err: error }, 'signing key reload failed; keeping the previous key set'),
    });
    await this.#tokens.start();
    const signer = new TokenSigner({ keys: signingKeys });
    const geoip = config.access.geoipDatabase === 'off' ? undefined : await GeoIp.open(config.access.geoipDatabase || undefined);
    // Failed authentications per client address, counted apart per surface.
    const limiterFor = () =>
      new AuthFailureLimiter({
        maxFailures: config.limits.authFailures.max,
        windowMs: config.limits.authFailures.windowSeconds * 1000,
        blockMs: config.limits.authFailures.blockSeconds * 1000,
        exemptCidrs: config.limits.authFailures.exemptCidrs,
      });
    const proxies = new TrustedProxies(config.access.trustedProxies);
    const apiAuthLimits = {
      limiter: limiterFor(),
      clientIp: (request: { socket: { remoteAddress?: string | undefined }; headers: Record<string, string | string[] | undefined> }) =>
        clientInfo(request.socket.remoteAddress ?? '', request.headers, { trustedProxies: proxies }).ip,
    };
    const guard = new PlaybackGuard({
      authLimiter: limiterFor(),
      tokens: this.#tokens,
      geoip,
      trustedProxies: config.access.trustedProxies,
      countryHeader: config.access.countryHeader || undefined,
      policyCacheMs: config.access.policyCacheMs,
      policyOf: async (uid) => {
        const input = await liveInputs.get(uid);
        if (input) return { requireSignedURLs: input.recording.requireSignedURLs, allowedOrigins: input.recording.allowedOrigins };
        const video = await videos.get(uid);
        return video ? { requireSignedURLs: video.requireSignedURLs, allowedOrigins: video.allowedOrigins } : undefined;
      },
    });

    const directory: LiveInputDirectory = {
      findByStreamKey: async (key) => {
        const input = await liveInputs.getByStreamKey(key);
        // Another node ingests this input right now: one publisher per input, cluster-wide.
        const lease = input ? await cluster.lease(input.uid) : undefined;
        if (input && lease?.live && lease.node !== nodeId) {
          throw new IngestRefusal('LIVE_INPUT_BUSY', 'live input already has a publisher (on another node)', input.uid);
        }
        return input
          ? {
              uid: input.uid,
              enabled: input.enabled,
              meta: input.meta,
              recording: input.recording,
              deleteRecordingAfterDays: input.deleteRecordingAfterDays,
              ladder: input.ladder ?? null,
            }
          : undefined;
      },
      setConnectionState: async (uid, state) => {
        await liveInputs.setStatus(uid, state);
      },
    };
    // Simulcast: each live session's enabled outputs restream its source (copy) to their targets.
    const outputs = new OutputRepository({ redis: this.#redis, keys, maxPerInput: config.simulcast.maxOutputsPerInput });
    const simulcast = new SimulcastManager({
      outputs,
      logger: log,
      settings: {
        ffmpegPath: config.ffmpeg.path,
        queueBytes: config.simulcast.queueBytes,
        backoff: { baseMs: config.simulcast.backoffBaseMs, maxMs: config.simulcast.backoffMaxMs },
        connectTimeoutMs: config.simulcast.connectTimeoutMs,
        stallTimeoutMs: config.simulcast.stallTimeoutMs,
      },
    });
    this.#simulcast = simulcast;
    this.#sessions = new SessionRegistry({
      directory,
      authLimiter: limiterFor(),
      ...(config.limits.maxLiveSessions > 0 ? { maxSessions: config.limits.maxLiveSessions } : {}),
      recorder,
      logger: log,
      onSession: (session) => {
        // Held while the session (live, then lingering with ENDLIST) is this node's current one.
        cluster
          .claim(session.liveInputUid, session.id, () => this.#sessions?.session(session.liveInputUid) === session)
          .catch((error: unknown) => log.warn({ err: error, liveInput: session.liveInputUid }, 'could not record the live session lease'));
        session.on('ended', () => {
          cluster.ended(session.liveInputUid).catch((error: unknown) => log.warn({ err: error }, 'could not mark the live session lease ended'));
        });
        simulcast.attach({
          liveInputUid: session.liveInputUid,
          id: session.id,
          tapFlv: (listener) => session.tapFlv(listener),
          onEnded: (listener) => session.on('ended', () => listener()),
        });
      },
      settings: {
        ffmpegPath: config.ffmpeg.path,
        ffmpegStartTimeoutMs: config.ffmpeg.startTimeoutMs,
        maxRestarts: config.ffmpeg.maxRestarts,
        ladder: config.transcode.ladder,
        includeSource: config.transcode.includeSource,
        maxRenditions: config.transcode.maxRenditions,
        gopSeconds: config.transcode.gopSeconds,
        x264Preset: config.transcode.x264Preset,
        segmentTargetSeconds: config.hls.segmentTargetSeconds,
        partTargetSeconds: config.hls.partTargetSeconds,
        windowSegments: config.hls.windowSegments,
        maxInputBitrateKbps: config.limits.maxInputBitrateKbps,
      },
    });

    // Live streams of other nodes: found through their leases, relayed from their owner.
    const ownerProxy = new OwnerProxy({
      owners: {
        ownerUrl: async (uid) => {
          const lease = await cluster.lease(uid);
          return lease && lease.node !== nodeId ? lease.url : undefined;
        },
      },
      credential: () => ({ header: INTERNAL_HEADER, value: cluster.secret }),
      timeoutMs: config.cluster.proxyTimeoutMs,
    });

    // The API hands out public URLs that carry the real ports: filled in once everything listens.
    const publicUrls = { rtmp: '', webRTC: '', playbackBase: '' };
    const sessions = this.#sessions;
    const routes = async (http: FastifyInstance) => {
      registerErrorHandling(http);
      await registerOpenApi(http);
      http.get('/healthz', { schema: { hide: true } }, async () => ({ status: 'ok' }));
      http.get('/readyz', { schema: { hide: true } }, async (_req, reply) =>
        this.#ready ? { status: 'ready' } : reply.code(503).send({ status: 'starting' }),
      );
      await http.register(apiPlugin, {
        prefix: '/v1',
        liveInputs,
        apiKeys,
        authLimits: apiAuthLimits,
        publicUrls,
        liveStatus: (uid) => sessions.status(uid),
        signingKeys,
        tokens: { signer, videoExists: async (uid) => (await videos.get(uid)) !== undefined },
        videos: {
          videos,
          deleteMedia: async (uid) => {
            await store.deletePrefix(videoPrefix(uid));
          },
          isRecording: (uid) => sessions.isRecording(uid),
          onDeleted: (uid) => {
            vod.forget(uid);
            guard.invalidate(uid);
          },
        },
        outputs: {
          outputs,
          status: (uid, outputUid) => {
            const run = simulcast.status(uid, outputUid);
            if (!run) return undefined;
            const { state, statusEnteredAt, ...rest } = run;
            return { current: { state, statusEnteredAt }, ...rest };
          },
          onChange: (uid) => simulcast.refresh(uid),
        },
        onChange: (uid, change, record) => {
          guard.invalidate(uid);
          // A live session ends when its input is deleted or disabled; a key rotation keeps it.
          if (change === 'deleted') void sessions.terminate(uid, 'input_deleted');
          else if (change === 'updated' && record && !record.enabled) void sessions.terminate(uid, 'input_disabled');
        },
      });
      await http.register(originPlugin, {
        live: sessions,
        guard,
        vod,
        cluster: {
          proxy: ownerProxy,
          isInternal: (headers) => cluster.isSecret(headers[INTERNAL_HEADER]),
          internalOnly: !hasRole(config, 'origin'),
          holdMs: 30_000,
        },
      });
    };

    let rtmpPort: number | undefined;
    if (config.rtmp.enabled && hasRole(config, 'ingest')) {
      this.#rtmp = new RtmpServer({
        host: config.host,
        port: config.rtmp.port,
        handler: sessions,
        logger: log.child({ component: 'rtmp' }),
        app: config.rtmp.app,
        authFailureDelayMs: config.rtmp.authFailureDelayMs,
        handshakeTimeoutMs: config.rtmp.handshakeTimeoutMs,
        idleTimeoutMs: config.rtmp.idleTimeoutMs,
        maxConnections: config.rtmp.maxConnections,
      });
      await this.#rtmp.start();
      rtmpPort = this.#rtmp.port;
    }

    // HTTP/1.1 always; optionally cleartext HTTP/2 (prior knowledge, for load balancers and CDNs
    // that speak h2c) and TLS with ALPN h2 + http/1.1. Every listener serves the same routes.
    const httpPort = await this.#listen('http', {}, routes, config.http.port);
    const h2cPort = config.http.h2cPort >= 0 ? await this.#listen('h2c', { http2: true }, routes, config.http.h2cPort) : undefined;
    let tlsPort: number | undefined;
    if (config.http.tls.port >= 0) {
      const [key, cert] = await Promise.all([readFile(config.http.tls.keyFile), readFile(config.http.tls.certFile)]);
      tlsPort = await this.#listen('tls', { http2: true, https: { allowHTTP1: true, key, cert } }, routes, config.http.tls.port);
    }
    await cluster.start(advertiseUrl(config, httpPort, hostname()));
    if (hasRole(config, 'worker')) {
      // Recordings of nodes that died are finalized from the store by a surviving worker.
      this.#failover = new FailoverSweeper({
        leases: cluster,
        finalize: { ...vodDeps, store },
        markLost: async (uid) => {
          const input = await liveInputs.get(uid);
          const state = input?.status?.current.state;
          if (state === 'connected' || state === 'reconnected' || state === 'reconnecting') {
            await liveInputs.setStatus(uid, 'disconnected', 'node_lost');
          }
        },
        intervalMs: config.cluster.failoverSweepMs,
        logger: log,
      });
      this.#failover.start();
    }
    const base = publicBaseUrl(config, httpPort);
    publicUrls.playbackBase = base;
    publicUrls.webRTC = `${base}/whip`;
    publicUrls.rtmp = `rtmp://${new URL(base).hostname}:${rtmpPort ?? config.rtmp.port}/${config.rtmp.app}`;

    this.#ready = true;
    log.info({ http: base, httpPort, h2cPort, tlsPort, rtmpPort }, 'tributary ready');
    return {
      httpUrl: base,
      httpPort,
      h2cPort,
      tlsPort,
      rtmpPort,
      generatedApiKey: initial.created ? initial.key : undefined,
    };
  }

  /** Builds one fastify instance with every route and listens; resolves with the bound port. */
  async #listen(
    name: string,
    serverOptions: Record<string, unknown>,
    routes: (http: FastifyInstance) => Promise<void>,
    port: number,
  ): Promise<number> {
    const http = fastify({
      ...serverOptions,
      loggerInstance: this.log.child({ component: name }) as FastifyBaseLogger,
      bodyLimit: this.config.http.bodyLimitBytes,
      // Per-request lines would drown the log under playback traffic (every part is a request).
      logController: new LogController({ disableRequestLogging: true }),
      return503OnClosing: true,
      forceCloseConnections: true,
      frameworkErrors,
      // Signed tokens stand in the path in place of the uid (a few hundred bytes, at most 8 KiB).
      routerOptions: { maxParamLength: 8192 },
    }) as unknown as FastifyInstance;
    this.#http.push(http);
    await routes(http);
    await http.listen({ host: this.config.host, port });
    return (http.server.address() as { port: number }).port;
  }

  /** Stops accepting, ends sessions, stops FFmpeg and Redis children. Idempotent. */
  close(reason = 'shutdown'): Promise<void> {
    this.#closing ??= (async () => {
      this.#ready = false;
      this.log.info({ reason }, 'shutting down');
      const step = async (name: string, fn: () => Promise<unknown> | undefined) => {
        try {
          await fn();
        } catch (error) {
          this.log.warn({ err: error, step: name }, 'shutdown step failed');
        }
      };
      await step('failover', () => this.#failover?.close());
      await step('rtmp', () => this.#rtmp?.close());
      await step('sessions', () => this.#sessions?.close());
      await step('simulcast', () => this.#simulcast?.close());
      await step('http', () => Promise.all(this.#http.map((h) => h.close())));
      await step('cluster', () => this.#cluster?.close());
      // Uploads not finished stay in the spool for the next start; so do unfinished finalizations.
      await step('jobs', () => this.#jobs?.close());
      await step('spool', () => this.#spool?.close());
      await step('recovery', () => this.#recovery);
      await step('object store', () => this.#store?.close());
      await step('token verifier', () => this.#tokens?.close());
      await step('redis client', () => this.#redis?.quit());
      await step('embedded redis', () => this.#embeddedRedis?.close());
      this.log.info('stopped');
    })();
    return this.#closing;
  }
}
