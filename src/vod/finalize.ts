import type { Logger } from '../observability/logger.ts';
import type { Spool } from '../storage/spool.ts';
import type { VideoRecord, VideoRepository } from '../state/video-repo.ts';
import type { TributaryEvent } from '../events/event-bus.ts';
import { buildVodPlaylists, parseManifestEntries, type ManifestEntry } from './vod-playlist.ts';

export interface FinalizeDeps {
  videos: VideoRepository;
  spool: Spool;
  logger: Logger;
  /** This node: the video leaves its set of recordings once final. */
  nodeId: string;
  /** Told when a video has become ready (derived files, such as the default thumbnail, warm up). */
  onReady?: (record: VideoRecord) => void;
  /** Told when a recording's video changes state (webhooks). Must not throw. */
  onEvent?: (event: TributaryEvent) => void;
}

const M3U8 = 'application/vnd.apple.mpegurl';

export interface FinalizeOptions {
  /** The manifest entries to publish; default: the whole manifest in Redis. */
  entries?: readonly ManifestEntry[];
  /** The node whose recording this is (another node's, on failover); default: this node. */
  ownerNodeId?: string;
}

/** Object key prefix of a video's media and playlists. */
export function videoPrefix(uid: string): string {
  return `videos/${uid}/`;
}

/**
 * Turns a recording into a VOD asset, with no re-encoding: VOD playlists built from its manifest
 * go into the spool after its segments (`after:`, which holds across a crash too), and once
 * everything under the video has landed in the store it becomes `ready`. Safe to repeat (the
 * playlists are rewritten with the same text). Throws when the spool closes first: the video
 * then stays `live-inprogress` and recovery finishes it at the next start.
 */
export async function finalizeVideo(
  deps: FinalizeDeps,
  uid: string,
  opts: FinalizeOptions = {},
): Promise<VideoRecord | undefined> {
  const started = Date.now();
  const log = deps.logger.child({ video: uid });
  const nodeId = opts.ownerNodeId ?? deps.nodeId;
  const vod = buildVodPlaylists(opts.entries ?? parseManifestEntries(await deps.videos.readManifest(uid)));
  if (!vod) {
    log.warn('recording has no complete segment; the video is marked as failed');
    const failed = await deps.videos.update(
      uid,
      (r) => ({ ...r, status: { state: 'error', errorReasonCode: 'ERR_NO_MEDIA' }, readyToStream: false, duration: 0 }),
      { nodeId, done: true },
    );
    emitVideoState(deps, failed);
    return failed;
  }
  const prefix = videoPrefix(uid);
  for (const [name, text] of vod.media) {
    await deps.spool.add(`${prefix}${name}/index.m3u8`, Buffer.from(text), { contentType: M3U8, after: prefix });
  }
  // Last of all: a player that finds the master finds everything it names.
  await deps.spool.add(`${prefix}master.m3u8`, Buffer.from(vod.master), { contentType: M3U8, after: prefix });
  await deps.spool.flush(prefix);
  const record = await deps.videos.update(
    uid,
    (r) => ({
      ...r,
      status: { state: 'ready', pctComplete: '100.000000' },
      readyToStream: true,
      duration: vod.duration,
      size: vod.size,
      input: vod.input,
      renditions: vod.renditions.map((x) => ({
        name: x.name,
        width: x.width,
        height: x.height,
        bandwidth: x.bandwidth,
        codecs: x.codecs,
      })),
    }),
    { nodeId, done: true },
  );
  log.info(
    { duration: vod.duration, size: vod.size, renditions: vod.renditions.map((r) => r.name), ms: Date.now() - started },
    'recording finalized',
  );
  emitVideoState(deps, record);
  if (record) deps.onReady?.(record);
  return record;
}

function emitVideoState(deps: FinalizeDeps, record: VideoRecord | undefined): void {
  if (!record || !deps.onEvent) return;
  deps.onEvent({
    type: 'video.state',
    videoUid: record.uid,
    state: record.status.state,
    ...(record.liveInput ? { liveInputUid: record.liveInput } : {}),
    ...(record.status.errorReasonCode ? { errorReasonCode: record.status.errorReasonCode } : {}),
  });
}
