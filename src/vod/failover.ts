import type { ObjectStore } from '../storage/object-store.ts';
import type { VideoRecord } from '../state/video-repo.ts';
import { finalizeVideo, videoPrefix, type FinalizeDeps } from './finalize.ts';
import { parseManifestEntries, type ManifestEntry } from './vod-playlist.ts';

/**
 * The manifest entries whose files reached the store, in order. A segment after one that never
 * arrived (it was still in the dead node's spool) starts a discontinuity; a segment whose init
 * segment is missing cannot play and is left out.
 */
export function keepStored(entries: readonly ManifestEntry[], stored: (key: string) => boolean, prefix: string): ManifestEntry[] {
  const out: ManifestEntry[] = [];
  const gap = new Set<string>();
  const started = new Set<string>();
  for (const e of entries) {
    const present = stored(`${prefix}${e.r}/${e.f}`);
    if (e.t === 'init') {
      if (present) out.push(e);
      continue;
    }
    if (!present || !stored(`${prefix}${e.r}/${e.i}`)) {
      gap.add(e.r);
      continue;
    }
    // A gap before a rendition's first kept segment is no discontinuity: playback starts there.
    if (gap.delete(e.r) && started.has(e.r) && !e.disc) out.push({ ...e, disc: true });
    else out.push(e);
    started.add(e.r);
  }
  return out;
}

export interface StoreFinalizeDeps extends FinalizeDeps {
  store: ObjectStore;
}

/**
 * Finalizes another node's recording (that node died) from what its spool uploaded before it
 * died: the store is the truth, the manifest only gives order and durations. Undefined when the
 * video is gone; a video no longer recording is only taken out of the dead node's set.
 */
export async function finalizeFromStore(deps: StoreFinalizeDeps, uid: string, ownerNodeId: string): Promise<VideoRecord | undefined> {
  const record = await deps.videos.get(uid);
  if (record?.status.state !== 'live-inprogress') {
    await deps.videos.forgetRecording(ownerNodeId, uid);
    return record;
  }
  const prefix = videoPrefix(uid);
  const stored = new Set<string>();
  for await (const entry of deps.store.list(prefix)) stored.add(entry.key);
  const entries = keepStored(parseManifestEntries(await deps.videos.readManifest(uid)), (k) => stored.has(k), prefix);
  return finalizeVideo(deps, uid, { entries, ownerNodeId });
}
