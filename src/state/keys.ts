/**
 * Every Redis key name Tributary uses, in one place, so that a prefix change or an audit of what
 * lives in Redis never needs a grep. Each record type has its own segment after the prefix.
 */
export interface RedisKeys {
  readonly prefix: string;
  /** String: the JSON live input record. */
  liveInput(uid: string): string;
  /** Sorted set: live input uids scored by creation time (ms), for newest-first listing. */
  liveInputIndex(): string;
  /** String: live input uid, keyed by the SHA-256 (hex) of its stream key. */
  streamKeyIndex(keyHash: string): string;
  /** Hash: SHA-256 (hex) of an API key → JSON metadata. Plaintext keys are never stored. */
  apiKeys(): string;
  /** Hash: signing key id → JSON public record (public JWK only), including the internal key's. */
  signingKeys(): string;
  /** String: JSON of this deployment's internal signing key, private JWK included (server-side signing). */
  internalSigningKey(): string;
  /** Pub/sub channel: a revoked signing key id, so every node drops it and its cached tokens at once. */
  signingKeyRevocations(): string;
  /** String: the JSON video record. */
  video(uid: string): string;
  /** Sorted set: video uids scored by creation time (ms), for newest-first listing. */
  videoIndex(): string;
  /** Sorted set: video uids of one live input (its recordings), scored by creation time (ms). */
  liveInputVideos(liveInputUid: string): string;
  /** List: JSON entries (inits and segments, per rendition, in order) of a recording, to build its VOD playlists. */
  videoManifest(uid: string): string;
  /** Set: uids of the videos a node is recording (live-inprogress), finalized by it after a crash. */
  nodeRecordings(nodeId: string): string;
  /** Hash: a live input's simulcast outputs, output uid → JSON record; deleted with the input. */
  liveInputOutputs(liveInputUid: string): string;
  /** Sorted set: video uids scored by their scheduledDeletion (ms), for the deletion sweep. */
  videoDeletions(): string;
  /** String: JSON state of a video's MP4 download (default.mp4). */
  videoDownload(uid: string): string;
  /** String: JSON webhook settings (notification URL and signing secret). */
  webhook(): string;
  /** List: JSON delivery attempts, newest first, capped. */
  webhookDeliveries(): string;
  /** String: counter of events queued for one ordering key (a live input, or a video without one). */
  webhookSequence(orderKey: string): string;
  /** String: the highest sequence number delivered (or given up) for one ordering key. */
  webhookFinished(orderKey: string): string;
  /** String: the job (event) id of one ordering key's event number `seq`, so its predecessor can wake it. */
  webhookJob(orderKey: string, seq: number): string;
  /** Sorted set: playback session id → last request (ms), per live input, for the viewer count. */
  liveViewers(liveInputUid: string): string;
  /** String: JSON of a direct upload URL (video uid, expiry, used), keyed by the SHA-256 (hex) of its token. */
  uploadToken(tokenHash: string): string;
  /** Sorted set: uids of videos waiting for their upload, scored by when the wait expires (ms). */
  pendingUploads(): string;
  /** Set: ids of every node that has joined the cluster (pruned once a dead node is swept). */
  clusterNodes(): string;
  /** String (expiring): JSON heartbeat of a live node (advertise URL, roles). */
  nodeHeartbeat(nodeId: string): string;
  /** String (expiring): JSON lease of a live input's session (owner node, its URL, session id). */
  liveLease(liveInputUid: string): string;
  /** String (expiring): JSON live status (with input health) the owner of a session publishes for the other nodes. */
  liveStatus(liveInputUid: string): string;
  /** Set: live input uids whose session a node holds (to fix their status if it dies). */
  nodeLiveInputs(nodeId: string): string;
  /** String: the shared credential of node-to-node requests, generated once (SET NX). */
  clusterSecret(): string;
  /** String (expiring): a short lock that one node holds while it takes over a dead node's work. */
  clusterLock(name: string): string;
}

export const DEFAULT_KEY_PREFIX = 'trib:';

export function createRedisKeys(prefix: string = DEFAULT_KEY_PREFIX): RedisKeys {
  return {
    prefix,
    liveInput: (uid) => `${prefix}live_input:${uid}`,
    liveInputIndex: () => `${prefix}live_inputs`,
    streamKeyIndex: (keyHash) => `${prefix}stream_key:${keyHash}`,
    apiKeys: () => `${prefix}api_keys`,
    signingKeys: () => `${prefix}signing_keys`,
    internalSigningKey: () => `${prefix}signing_key_internal`,
    signingKeyRevocations: () => `${prefix}signing_key_revoked`,
    video: (uid) => `${prefix}video:${uid}`,
    videoIndex: () => `${prefix}videos`,
    liveInputVideos: (liveInputUid) => `${prefix}live_input_videos:${liveInputUid}`,
    videoManifest: (uid) => `${prefix}video_manifest:${uid}`,
    nodeRecordings: (nodeId) => `${prefix}node_recordings:${nodeId}`,
    liveInputOutputs: (liveInputUid) => `${prefix}live_input_outputs:${liveInputUid}`,
    videoDeletions: () => `${prefix}video_deletions`,
    videoDownload: (uid) => `${prefix}video_download:${uid}`,
    webhook: () => `${prefix}webhook`,
    webhookDeliveries: () => `${prefix}webhook_deliveries`,
    webhookSequence: (orderKey) => `${prefix}webhook_seq:${orderKey}`,
    webhookFinished: (orderKey) => `${prefix}webhook_done:${orderKey}`,
    webhookJob: (orderKey, seq) => `${prefix}webhook_job:${orderKey}:${seq}`,
    liveViewers: (liveInputUid) => `${prefix}live_viewers:${liveInputUid}`,
    uploadToken: (tokenHash) => `${prefix}upload_token:${tokenHash}`,
    pendingUploads: () => `${prefix}pending_uploads`,
    clusterNodes: () => `${prefix}cluster_nodes`,
    nodeHeartbeat: (nodeId) => `${prefix}node:${nodeId}`,
    liveLease: (liveInputUid) => `${prefix}live_lease:${liveInputUid}`,
    liveStatus: (liveInputUid) => `${prefix}live_status:${liveInputUid}`,
    nodeLiveInputs: (nodeId) => `${prefix}node_live_inputs:${nodeId}`,
    clusterSecret: () => `${prefix}cluster_secret`,
    clusterLock: (name) => `${prefix}cluster_lock:${name}`,
  };
}
