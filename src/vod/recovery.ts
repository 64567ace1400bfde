import { finalizeVideo, type FinalizeDeps } from './finalize.ts';

/**
 * The recordings a previous run of this node left `live-inprogress` (it was killed mid-broadcast
 * or in a reconnect window). Read before this run records anything, so that none of ours is taken.
 */
export async function interruptedRecordings(deps: FinalizeDeps): Promise<string[]> {
  const out: string[] = [];
  for (const uid of await deps.videos.recordingsOf(deps.nodeId)) {
    const record = await deps.videos.get(uid);
    if (record?.status.state === 'live-inprogress') out.push(uid);
    else await deps.videos.forgetRecording(deps.nodeId, uid);
  }
  return out;
}

/**
 * Finalizes each interrupted recording from what reached the spool and the manifest: everything
 * up to the last complete segment. Run after the spool's initial scan has queued what the crash
 * left in it (finalizing waits for those uploads). Failures are logged and left for the next start.
 */
export async function recoverRecordings(deps: FinalizeDeps, uids: readonly string[]): Promise<void> {
  for (const uid of uids) {
    deps.logger.warn({ video: uid }, 'finalizing a recording interrupted by a crash');
    try {
      await finalizeVideo(deps, uid);
    } catch (error) {
      deps.logger.error({ err: error, video: uid }, 'could not finalize an interrupted recording; will retry at next start');
    }
  }
}
