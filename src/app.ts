import { mkdir, readFile, rm } from 'node:fs/promises';
import { hostname } from 'node:os';
import path, { join } from 'node:path';
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
import { SrtServer } from './ingest/srt/srt-server.ts';
import { CertificateWatcher, readCertificatePair } from './ingest/rtmp/certificate-watcher.ts';
import { WhipIngest } from './ingest/whip/whip-ingest.ts';
import { whipRoutes } from './ingest/whip/whip-routes.ts';
import { WhepPlayback } from './whep/whep-playback.ts';
import type { IceNetworkSettings } from './webrtc/ice-network.ts';
import { SessionRegistry, type LiveInputDirectory, type LiveStatusView } from './live/session-registry.ts';
import { IngestRefusal } from './live/ingest-contract.ts';
import { originPlugin } from './origin/origin-plugin.ts';
import { apiPlugin, type PublicUrls } from './api/api-plugin.ts';
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
import { VodSource } from './vod/vod-source.ts';
import { ThumbnailService } from './vod/thumbnails.ts';
import { DownloadService } from './vod/downloads.ts';
import { DeletionSweep } from './vod/deletion-sweep.ts';
import { DownloadRepository } from './state/download-repo.ts';

/** An upload lag beyond this marks the spool degraded in /readyz. */
const SPOOL_LAG_DEGRADED_MS = 30_000;
import { Metrics } from './observability/metrics.ts';
import { instrumentHttp, metricsRoute } from './observability/metrics-http.ts';
import { consolePlugin } from './console/console-plugin.ts';
import { WebhookStore } from './webhooks/webhook-store.ts';
import { TargetGuard } from './webhooks/target-guard.ts';
import { WebhookWorker } from './webhooks/webhook-worker.ts';
import { WebhookDispatcher } from './webhooks/webhook-dispatcher.ts';
import { ViewerCounter } from './state/viewer-counter.ts';
import { RedisViewerAdmission, type ViewerAdmission } from './state/viewer-admission.ts';
import { ReportedViewerAdmission } from './state/reported-viewer-admission.ts';
import { readLifecycle } from './state/live-lifecycle.ts';
import { videoView } from './api/video-routes.ts';
import { UploadProcessor } from './vod/upload-processor.ts';
import { UploadIntake } from './vod/upload-intake.ts';
import { ffprobePathFor } from './vod/upload-probe.ts';
import { UploadTokenRepository } from './state/upload-token-repo.ts';
import { createTusServer } from './api/tus-routes.ts';
import { directUploadTargetRoutes, type UploadRoutesOptions } from './api/upload-routes.ts';
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
  /** The separate metrics listener, when `metrics.port` is configured. */
  metricsPort: number | undefined;
  rtmpsPort: number | undefined;
  srtPort: number | undefined;
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
  #rtmps: RtmpServer | undefined;
  #rtmpsCertificate: CertificateWatcher | undefined;
  #srt: SrtServer | undefined;
  #whip: WhipIngest | undefined;
  #whep: WhepPlayback | undefined;
  #sessions: SessionRegistry | undefined;
  #simulcast: SimulcastManager | undefined;
  #tokens: TokenVerifier | undefined;
  #store: ObjectStore | undefined;
  #spool: Spool | undefined;
  #vod: VodPlayback | undefined;
  #recovery: Promise<void> | undefined;
  #metrics: Metrics | undefined;
  #webhooks: WebhookDispatcher | undefined;
  #uploadProcessor: UploadProcessor | undefined;
  #uploadIntake: UploadIntake | undefined;
  #cluster: ClusterLeases | undefined;
  #viewerAdmission: ViewerAdmission | undefined;
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

  /** Every Prometheus series (set once started, unless `metrics.enabled` is false). */
  get metrics(): Metrics | undefined {
    return this.#metrics;
  }

  /** This node's heartbeat and live-session leases in the shared Redis. */
  get cluster(): ClusterLeases | undefined {
    return this.#cluster;
  }

  /** The per-stream viewer limit (and count), for every playback path that starts a viewer; set once started. */
  get viewerAdmission(): ViewerAdmission | undefined {
    return this.#viewerAdmission;
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
    this.#metrics = config.metrics.enabled ? new Metrics() : undefined;
    const metrics = this.#metrics;

    // State: an external Redis when configured, else our own redis-server child.
    let redisTarget: RedisTarget;
    if (config.redis.sentinels.length > 0) {
      // Redis Sentinel: the master is found (and followed through failovers) by asking them.
      redisTarget = { sentinels: config.redis.sentinels, sentinelName: config.redis.sentinelName, ...(config.redis.url ? { url: config.redis.url } : {}) };
      this.#redis = createRedis(redisTarget, log);
    } else if (config.redis.url) {
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
      maxBytes: config.storage.spoolMaxBytes,
    });
    await this.#spool.start();
    metrics?.observeSpool(this.#spool);
    this.#vod = new VodPlayback({ store });
    const vod = this.#vod;
    const videos = new VideoRepository({ redis: this.#redis, keys });
    const nodeId = await loadNodeId(config.dataDir);
    // The API hands out public URLs that carry the real ports: filled in once everything listens.
    const publicUrls: PublicUrls = { rtmp: '', webRTC: '', playbackBase: '' };

    // Webhooks: events become durable delivery jobs from here on (recovery below emits some).
    const wh = config.webhooks;
    const webhookStore = new WebhookStore({
      redis: this.#redis,
      keys,
      deliveriesKept: wh.deliveriesKept,
      sequenceTtlSeconds: wh.maxRetrySeconds + 86_400,
    });
    const targetGuard = new TargetGuard(wh);
    // Job workers (webhook deliveries, downloads, uploads, deletions) run on nodes with the worker role.
    const isWorker = hasRole(config, 'worker');
    const webhookWorker = new WebhookWorker({
      jobs: this.#jobs,
      store: webhookStore,
      guard: targetGuard,
      settings: wh,
      logger: log,
      onAttempt: (outcome) => this.#metrics?.webhookDelivery(outcome),
    });
    if (isWorker) webhookWorker.start();
    this.#webhooks = new WebhookDispatcher({
      events: this.events,
      jobs: this.#jobs,
      store: webhookStore,
      logger: log,
      renderVideo: async (uid) => {
        const video = await videos.get(uid);
        return video && videoView(publicUrls, video);
      },
    });
    this.#webhooks.start();
    const emit = (event: Parameters<EventBus['emit']>[0]) => this.events.emit(event);

    // Derived files (thumbnails, MP4 downloads) are made from the stored VOD in scratch space that
    // a crash may leave behind: it is cleared at each start.
    const tmpDir = join(config.dataDir, 'tmp');
    await rm(tmpDir, { recursive: true, force: true });
    const source = new VodSource(store, vod);
    const thumbnails = new ThumbnailService({
      store,
      source,
      logger: log,
      ffmpegPath: config.ffmpeg.path,
      tmpDir,
      maxConcurrent: config.vod.thumbnailConcurrency,
      maxQueued: config.vod.thumbnailQueue,
      defaultFraction: async (uid) => (await videos.get(uid))?.thumbnailTimestampPct ?? 0,
    });
    const downloadRepo = new DownloadRepository({ redis: this.#redis, keys });
    const downloads = new DownloadService({
      store,
      source,
      repo: downloadRepo,
      jobs: this.#jobs,
      logger: log,
      ffmpegPath: config.ffmpeg.path,
      tmpDir,
      concurrency: config.vod.downloadConcurrency,
    });
    if (isWorker) downloads.start();
    const vodDeps: FinalizeDeps = {
      videos,
      spool: this.#spool,
      logger: log,
      nodeId,
      onEvent: emit,
      // The default thumbnail is rendered once, now, rather than by the first viewer.
      onReady: (record) => {
        void thumbnails
          .get(record.uid, { format: 'jpg', time: undefined, width: undefined, height: undefined, fit: 'crop' })
          .then(
            (r) => (r.ok && 'destroy' in r.body ? r.body.destroy() : undefined),
            (error: unknown) => log.warn({ err: error, video: record.uid }, 'could not render the default thumbnail'),
          );
      },
    };
    // Scale-out: this node's heartbeat and the leases of the sessions it ingests, so that other
    // nodes find the owner of a live stream, and notice when it dies. Joined once HTTP listens.
    const cluster = new ClusterLeases({ redis: this.#redis, keys, nodeId, roles: config.cluster.roles, ttlMs: config.cluster.leaseTtlMs, logger: log });
    this.#cluster = cluster;
    // Read before this run records anything: every recording listed now was left by a crash.
    const interrupted = await interruptedRecordings(vodDeps);
    this.#recovery = recoverRecordings(vodDeps, interrupted);
    const recorder = new Recorder({
      ...vodDeps,
      maxBufferedBytes: config.storage.recordBufferBytes,
      // Shown on the input's status while it lasts, and announced once as live_input.errored.
      onStorageIssue: (liveInputUid, issue) => {
        const health = this.#sessions?.session(liveInputUid)?.health;
        if (!issue) {
          health?.clear('ERR_STORAGE_QUOTA_EXHAUSTED');
          return;
        }
        health?.raise(issue);
        log.warn({ liveInput: liveInputUid, code: issue.code }, 'live input errored');
        this.events.emit({ type: 'live_input.errored', liveInputUid, code: issue.code, message: issue.message });
      },
    });

    // Uploads: received files are probed and queued on the durable `video-processing` queue,
    // transcoded by the live ladder code and stored exactly like recordings.
    // Live sessions and uploads transcode and segment with the same settings.
    const ladderSettings = {
      ladder: config.transcode.ladder,
      includeSource: config.transcode.includeSource,
      maxRenditions: config.transcode.maxRenditions,
      gopSeconds: config.transcode.gopSeconds,
      x264Preset: config.transcode.x264Preset,
      segmentTargetSeconds: config.hls.segmentTargetSeconds,
      partTargetSeconds: config.hls.partTargetSeconds,
    };
    const up = config.uploads;
    this.#uploadProcessor = new UploadProcessor({
      jobs: this.#jobs,
      deps: vodDeps,
      emit: (event) => this.events.emit(event),
      settings: {
        ffmpegPath: config.ffmpeg.path,
        ...ladderSettings,
        startTimeoutMs: config.ffmpeg.startTimeoutMs,
      },
      concurrency: up.concurrency,
      attempts: up.attempts,
      deleteMedia: async (uid) => {
        await store.deletePrefix(videoPrefix(uid));
      },
      logger: log,
    });
    // The intake removes expired tus uploads; the tus server hands finished ones to the intake.
    const tusRef: { current?: ReturnType<typeof createTusServer> } = {};
    const intake = new UploadIntake({
      videos,
      processor: this.#uploadProcessor,
      emit: (event) => this.events.emit(event),
      dir: up.dir,
      ffprobePath: ffprobePathFor(config.ffmpeg.path),
      maxDurationSeconds: up.maxDurationSeconds,
      cleanupIntervalMs: up.cleanupIntervalSeconds * 1000,
      onExpired: async (uid) => tusRef.current?.removeUpload(uid),
      onSweep: async () => tusRef.current?.removeExpired(),
      logger: log,
    });
    this.#uploadIntake = intake;
    const tus = createTusServer({
      intake,
      dir: path.join(up.dir, 'tus'),
      maxSizeBytes: up.maxSizeBytes,
      maxDurationSeconds: up.maxDurationSeconds,
      expirySeconds: up.tusExpirySeconds,
      path: '/v1/videos/tus',
    });
    tusRef.current = tus;
    const uploadRoutesOptions: Omit<UploadRoutesOptions, 'publicUrls'> = {
      intake,
      tokens: new UploadTokenRepository({ redis: this.#redis, keys }),
      maxSizeBytes: up.maxSizeBytes,
      maxDurationSeconds: up.maxDurationSeconds,
      directUploadExpirySeconds: up.directUploadExpirySeconds,
      directUploadMinExpirySeconds: up.directUploadMinExpirySeconds,
      pendingExpirySeconds: up.tusExpirySeconds,
    };
    await intake.start();
    this.#uploadProcessor.start({ work: isWorker });

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
      metrics,
      policyOf: async (uid) => {
        const input = await liveInputs.get(uid);
        if (input) return { requireSignedURLs: input.recording.requireSignedURLs, allowedOrigins: input.recording.allowedOrigins };
        const video = await videos.get(uid);
        return video ? { requireSignedURLs: video.requireSignedURLs, allowedOrigins: video.allowedOrigins } : undefined;
      },
    });

    // Deleting a video, by the API or when its scheduledDeletion comes: media, download, record, caches.
    const deleteMedia = async (uid: string) => {
      await store.deletePrefix(videoPrefix(uid));
      await downloadRepo.delete(uid);
    };
    const forgetVideo = (uid: string) => {
      vod.forget(uid);
      guard.invalidate(uid);
    };
    const sweep = new DeletionSweep({
      videos,
      jobs: this.#jobs,
      logger: log,
      intervalMs: config.vod.deletionSweepSeconds * 1000,
      remove: async (uid) => {
        await deleteMedia(uid);
        await videos.delete(uid);
        forgetVideo(uid);
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
      setConnectionState: async (uid, state, reason) => {
        await liveInputs.setStatus(uid, state, reason);
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
          .claim(
            session.liveInputUid,
            session.id,
            () => this.#sessions?.session(session.liveInputUid) === session,
            // The API of every other node shows the same live status (input health) as this one.
            () => (this.#sessions?.session(session.liveInputUid) === session ? this.#sessions.status(session.liveInputUid) : undefined),
          )
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
      ...(metrics ? { metrics } : {}),
      onEvent: emit,
      settings: {
        ffmpegPath: config.ffmpeg.path,
        ffmpegStartTimeoutMs: config.ffmpeg.startTimeoutMs,
        maxRestarts: config.ffmpeg.maxRestarts,
        ...ladderSettings,
        windowSegments: config.hls.windowSegments,
        maxInputBitrateKbps: config.limits.maxInputBitrateKbps,
      },
    });

    // WHIP: one werift peer and one bridge FFmpeg per publisher; its media joins the same sessions.
    const w = config.whip;
    // WHIP publishers and WHEP viewers share the WebRTC network settings (the whip.* UDP range).
    const iceNetwork: IceNetworkSettings = {
      portMin: w.udpPortMin,
      portMax: w.udpPortMax,
      ipv4: w.ipv4,
      ipv6: w.ipv6,
      publicIps: w.publicIps,
      additionalHostAddresses: w.additionalHostAddresses,
    };
    const whip = w.enabled && hasRole(config, 'ingest')
      ? new WhipIngest({
          handler: this.#sessions,
          logger: log.child({ component: 'whip' }),
          maxPendingPerAddress: w.maxPendingPerAddress,
          maxSessions: w.maxSessions,
          authFailureDelayMs: w.authFailureDelayMs,
          session: {
            network: iceNetwork,
            ffmpegPath: config.ffmpeg.path,
            maxRestarts: config.ffmpeg.maxRestarts,
            gopSeconds: config.transcode.gopSeconds,
            x264Preset: config.transcode.x264Preset,
            connectTimeoutMs: w.connectTimeoutMs,
            consentTimeoutMs: w.consentTimeoutMs,
            keyframeIntervalMs: w.keyframeIntervalMs,
          },
        })
      : undefined;
    this.#whip = whip;

    // WHEP: WebRTC playback of this node's live sessions (copied H.264, one Opus encoder per session).
    const wp = config.whep;
    const liveSessions = this.#sessions;
    // Bound once the viewer counter exists (below): WHEP viewers count like HLS ones.
    let touchWhepViewer: (uid: string, viewerId: string) => void = () => {};
    let admitWhepViewer: (uid: string, viewerKey: string) => Promise<boolean> = async () => true;
    const whep = wp.enabled && hasRole(config, 'origin')
      ? new WhepPlayback({
          touchViewer: (uid, viewerId) => touchWhepViewer(uid, viewerId),
          admitViewer: (uid, viewerKey) => admitWhepViewer(uid, viewerKey),
          logger: log.child({ component: 'whep' }),
          sources: {
            live: (uid) => {
              const s = liveSessions.session(uid);
              if (!s || s.state === 'ended') return undefined;
              return {
                liveInputUid: s.liveInputUid,
                id: s.id,
                tapFlv: (listener) => s.tapFlv(listener),
                sequenceHeaders: () => s.sequenceHeaders(),
                requestKeyframe: () => s.requestKeyframe(),
                hasBframes: () => s.health.report.bframes,
                onEnded: (listener) => s.on('ended', () => listener()),
              };
            },
          },
          settings: {
            viewer: {
              network: iceNetwork,
              connectTimeoutMs: wp.connectTimeoutMs,
              consentTimeoutMs: wp.consentTimeoutMs,
            },
            feed: {
              ffmpegPath: config.ffmpeg.path,
              maxRestarts: config.ffmpeg.maxRestarts,
              opusBitrateKbps: wp.opusBitrateKbps,
              maxInFlightPackets: wp.maxInFlightPackets,
              keyframeRequestMinIntervalMs: wp.keyframeRequestMinIntervalMs,
              maxPayloadBytes: wp.maxPayloadBytes,
              rendition: { gopSeconds: wp.renditionGopSeconds, x264Preset: config.transcode.x264Preset, maxBitrateKbps: wp.renditionMaxBitrateKbps },
            },
            maxViewersPerSession: wp.maxViewersPerSession,
            maxViewers: wp.maxViewers,
            feedIdleMs: wp.feedIdleMs,
          },
          ...(metrics ? { metrics: { viewerEnded: (reason: string) => metrics.whepViewerEnded(reason) } } : {}),
        })
      : undefined;
    this.#whep = whep;

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

    const sessions = this.#sessions;
    metrics?.observeLive(sessions);
    const metricsOnMainListeners = metrics !== undefined && config.metrics.port < 0;
    const viewers = new ViewerCounter({
      redis: this.#redis,
      keys,
      windowSeconds: config.views.windowSeconds,
      refreshSeconds: config.views.refreshSeconds,
      onError: (error) => log.warn({ err: error }, 'could not count a viewer'),
    });
    metrics?.observeViewers((uid) => viewers.count(uid));
    // Every playback path that starts a viewer asks it (with no limit it only counts the viewer).
    const admission = new ReportedViewerAdmission(
      new RedisViewerAdmission({
        redis: this.#redis,
        keys,
        maxViewers: config.limits.maxViewersPerStream,
        windowSeconds: config.views.windowSeconds,
        refreshSeconds: config.views.refreshSeconds,
        onError: (error) => log.warn({ err: error }, 'could not check the viewer limit; viewer let in'),
      }),
      { logger: log, maxViewers: config.limits.maxViewersPerStream, ...(metrics ? { onRefused: (reason: string) => metrics.viewerRefused(reason) } : {}) },
    );
    this.#viewerAdmission = admission;
    // WHEP viewers take a slot of the same per-stream limit as LL-HLS ones.
    if (config.limits.maxViewersPerStream > 0) admitWhepViewer = (uid, viewerKey) => admission.admit(uid, viewerKey);
    touchWhepViewer = (uid, viewerId) => viewers.touch(uid, viewerId);
    if (whip) metrics?.observeWhip(() => whip.sessionCount);
    if (whep) metrics?.observeWhep(() => whep.viewerCount);
    const routes = async (http: FastifyInstance) => {
      registerErrorHandling(http);
      if (metrics) instrumentHttp(http, metrics);
      if (metricsOnMainListeners) metricsRoute(http, { metrics, token: config.metrics.token });
      await registerOpenApi(http);
      http.get('/healthz', { schema: { hide: true } }, async () => ({ status: 'ok' }));
      http.get('/readyz', { schema: { hide: true } }, async (_req, reply) =>
        this.#ready ? { status: 'ready', spool: this.#spoolHealth() } : reply.code(503).send({ status: 'starting' }),
      );
      await http.register(apiPlugin, {
        prefix: '/v1',
        liveInputs,
        apiKeys,
        authLimits: apiAuthLimits,
        publicUrls,
        liveStatus: async (uid) => {
          const here = sessions.status(uid);
          if (here) return here;
          // Live on another node: the status its owner published with the lease.
          try {
            return (await cluster.liveStatus(uid)) as LiveStatusView | undefined;
          } catch (error) {
            log.warn({ err: error, liveInput: uid }, 'could not read the live status of another node; the stored one is shown');
            return undefined;
          }
        },
        signingKeys,
        tokens: { signer, videoExists: async (uid) => (await videos.get(uid)) !== undefined },
        webhooks: { store: webhookStore, guard: targetGuard },
        videos: {
          videos,
          deleteMedia,
          isRecording: (uid) => sessions.isRecording(uid),
          onDeleted: forgetVideo,
          onUpdated: (uid) => guard.invalidate(uid),
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
        downloads,
        uploads: { routes: uploadRoutesOptions, tus: tus.server },
        onChange: (uid, change, record) => {
          guard.invalidate(uid);
          // A live session ends when its input is deleted or disabled; a key rotation keeps it.
          if (change === 'deleted') void sessions.terminate(uid, 'input_deleted');
          else if (change === 'updated' && record && !record.enabled) void sessions.terminate(uid, 'input_disabled');
        },
      });
      await http.register(directUploadTargetRoutes, { ...uploadRoutesOptions, publicUrls });
      await http.register(originPlugin, {
        live: sessions,
        guard,
        vod,
        thumbnails,
        downloads,
        liveInfo: {
          lifecycle: (uid) => readLifecycle(liveInputs, videos, uid),
          touchViewer: (uid, session) => viewers.touch(uid, session),
          viewers: (uid) => viewers.count(uid),
          // HLS viewers are counted by touchViewer; the admission is only asked when there is a limit.
          ...(config.limits.maxViewersPerStream > 0
            ? { admitViewer: (uid: string, session: string) => admission.admit(uid, session), admitRetryAfterSeconds: admission.retryAfterSeconds }
            : {}),
        },
        ...(whep
          ? {
              whep: {
                maxSdpBytes: wp.maxSdpBytes,
                tooManyViewersRetryAfterSeconds: admission.retryAfterSeconds,
                service: {
                  play: (req: { liveInputUid: string; sdp: string; remoteAddress: string }) => whep.play(req),
                  isLive: (uid: string) => sessions.session(uid)?.state !== undefined && sessions.session(uid)?.state !== 'ended',
                  end: (uid: string, viewerId: string) => whep.end(uid, viewerId),
                },
              },
            }
          : {}),
        cluster: {
          proxy: ownerProxy,
          isInternal: (headers) => cluster.isSecret(headers[INTERNAL_HEADER]),
          internalOnly: !hasRole(config, 'origin'),
          holdMs: config.cluster.relayHoldMs,
        },
      });
      await http.register(consolePlugin);
      if (whip) await http.register(whipRoutes, { ingest: whip, allowedOrigins: w.allowedOrigins, maxSdpBytes: w.maxSdpBytes });
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
    const rtmpsPort = await this.#startRtmps();
    let srtPort: number | undefined;
    if (config.srt.enabled && hasRole(config, 'ingest')) {
      this.#srt = new SrtServer({
        host: config.host,
        port: config.srt.port,
        handler: sessions,
        passphraseOf: async (streamKey) => {
          const input = await liveInputs.getByStreamKey(streamKey);
          return input ? (input.srtPassphrase ?? null) : undefined;
        },
        logger: log.child({ component: 'srt' }),
        ffmpegPath: config.ffmpeg.path,
        latencyMs: config.srt.latencyMs,
        handshakeTimeoutMs: config.srt.handshakeTimeoutMs,
        idleTimeoutMs: config.srt.idleTimeoutMs,
        maxConnections: config.srt.maxConnections,
        authFailureDelayMs: config.rtmp.authFailureDelayMs,
      });
      await this.#srt.start();
      srtPort = this.#srt.port;
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
    // Metrics on a listener of their own (e.g. bound to a private interface), when configured.
    let metricsPort: number | undefined;
    if (metrics && config.metrics.port >= 0) {
      const metricsRoutes = async (http: FastifyInstance) => {
        registerErrorHandling(http);
        instrumentHttp(http, metrics);
        metricsRoute(http, { metrics, token: config.metrics.token });
      };
      metricsPort = await this.#listen('metrics', {}, metricsRoutes, config.metrics.port, config.metrics.host || config.host);
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
    if (whep) publicUrls.webRTCPlayback = base;
    const publicHost = new URL(base).hostname;
    publicUrls.rtmp = `rtmp://${publicHost}:${rtmpPort ?? config.rtmp.port}/${config.rtmp.app}`;
    if (rtmpsPort !== undefined) publicUrls.rtmps = `rtmps://${publicHost}:${rtmpsPort}/${config.rtmp.app}`;
    if (srtPort !== undefined) publicUrls.srt = `srt://${publicHost}:${srtPort}`;

    // Background work that readiness does not wait for (BullMQ loads its scripts on first use).
    if (isWorker) sweep.start().catch((error: unknown) => {
      if (!this.#closing) log.error({ err: error }, 'could not start the scheduled deletion sweep');
    });

    this.#ready = true;
    log.info({ http: base, httpPort, h2cPort, tlsPort, rtmpPort, rtmpsPort, srtPort, metricsPort }, 'tributary ready');
    return {
      httpUrl: base,
      httpPort,
      h2cPort,
      tlsPort,
      rtmpPort,
      metricsPort,
      rtmpsPort,
      srtPort,
      generatedApiKey: initial.created ? initial.key : undefined,
    };
  }

  /**
   * The spool's backlog for /readyz: a node whose store is away stays ready (it records into the
   * spool and loses nothing) but says so, for dashboards and alerts.
   */
  #spoolHealth(): Record<string, unknown> | undefined {
    const spool = this.#spool;
    if (!spool) return undefined;
    const oldestPendingAgeMs = spool.oldestPendingAgeMs;
    const lastError = spool.lastError;
    const recentError = lastError !== undefined && Date.now() - lastError.at < 60_000;
    return {
      degraded: oldestPendingAgeMs > SPOOL_LAG_DEGRADED_MS || (recentError && spool.pendingFiles > 0),
      pendingFiles: spool.pendingFiles,
      pendingBytes: spool.pendingBytes,
      oldestPendingAgeMs,
      failedAttempts: spool.failedAttempts,
      ...(lastError ? { lastError: { message: lastError.message, at: new Date(lastError.at).toISOString() } } : {}),
    };
  }

  /**
   * RTMPS: the same RTMP sessions behind TLS, on its own port. Off without a certificate; the
   * certificate and key are watched and swapped in for new connections, live ones are untouched.
   */
  async #startRtmps(): Promise<number | undefined> {
    const { config, log } = this;
    const { enabled, port, certFile, keyFile } = config.rtmps;
    if (!enabled || !this.#sessions || !hasRole(config, 'ingest')) return undefined;
    const logger = log.child({ component: 'rtmps' });
    if (!certFile || !keyFile) {
      logger.info('rtmps off: set rtmps.certFile and rtmps.keyFile (TRIBUTARY_RTMPS_CERT_FILE, TRIBUTARY_RTMPS_KEY_FILE) to enable it');
      return undefined;
    }
    const server = new RtmpServer({
      host: config.host,
      port,
      handler: this.#sessions,
      logger,
      app: config.rtmp.app,
      authFailureDelayMs: config.rtmp.authFailureDelayMs,
      handshakeTimeoutMs: config.rtmp.handshakeTimeoutMs,
      idleTimeoutMs: config.rtmp.idleTimeoutMs,
      maxConnections: config.rtmp.maxConnections,
      tls: await readCertificatePair(certFile, keyFile).catch((error: unknown) => {
        throw new Error(`rtmps: cannot read the certificate or key (${(error as Error).message})`);
      }),
    });
    this.#rtmps = server;
    await server.start().catch((error: unknown) => {
      throw new Error(`rtmps: cannot start with ${certFile} and ${keyFile} (${(error as Error).message})`);
    });
    this.#rtmpsCertificate = new CertificateWatcher({ certFile, keyFile, logger, apply: (pair) => server.setCertificate(pair) });
    await this.#rtmpsCertificate.start();
    return server.port;
  }

  /** Builds one fastify instance with every route and listens; resolves with the bound port. */
  async #listen(
    name: string,
    serverOptions: Record<string, unknown>,
    routes: (http: FastifyInstance) => Promise<void>,
    port: number,
    host = this.config.host,
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
    // A burst of viewers (a stream going viral, a CDN refilling) must queue, not be refused.
    await http.listen({ host, port, backlog: this.config.http.listenBacklog });
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
      await step('rtmps', () => Promise.all([this.#rtmpsCertificate?.close(), this.#rtmps?.close()]));
      await step('srt', () => this.#srt?.close());
      await step('whep', () => this.#whep?.close());
      await step('whip', () => this.#whip?.close());
      await step('sessions', () => this.#sessions?.close());
      await step('simulcast', () => this.#simulcast?.close());
      await step('http', () => Promise.all(this.#http.map((h) => h.close())));
      // Running transcodes stop and their jobs go back to the queue, for the next start.
      await step('uploads', () => {
        this.#uploadProcessor?.close();
        return this.#uploadIntake?.close();
      });
      await step('cluster', () => this.#cluster?.close());
      // Uploads not finished stay in the spool for the next start; so do unfinished finalizations.
      await step('webhooks', () => this.#webhooks?.close());
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
