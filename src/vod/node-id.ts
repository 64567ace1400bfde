import { randomBytes } from 'node:crypto';
import { open, readFile } from 'node:fs/promises';
import { join } from 'node:path';

const NODE_ID = /^[0-9a-f]{16}$/;

/**
 * This node's id, kept in its data directory (next to its spool): the recordings a node leaves
 * unfinished are its to recover, and a restart on the same data directory is the same node.
 */
export async function loadNodeId(dataDir: string): Promise<string> {
  const path = join(dataDir, 'node-id');
  try {
    const text = (await readFile(path, 'utf8')).trim();
    if (NODE_ID.test(text)) return text;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
  const id = randomBytes(8).toString('hex');
  const fh = await open(path, 'w', 0o600);
  try {
    await fh.writeFile(`${id}\n`);
    await fh.sync();
  } finally {
    await fh.close();
  }
  return id;
}
