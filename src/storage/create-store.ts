import { DiskStore } from './disk-store.ts';
import type { ObjectStore } from './object-store.ts';
import { S3Store, type S3StoreOptions } from './s3-store.ts';

/**
 * Storage settings as the config schema will hold them (`storage.*`, env `TRIBUTARY_STORAGE_*`).
 * `dir` for disk is normally `<dataDir>/media`.
 */
export type StorageConfig =
  | { kind: 'disk'; dir: string; fsync?: boolean }
  | ({ kind: 's3' } & S3StoreOptions);

export function createObjectStore(config: StorageConfig): ObjectStore {
  switch (config.kind) {
    case 'disk':
      return new DiskStore({ dir: config.dir, ...(config.fsync === undefined ? {} : { fsync: config.fsync }) });
    case 's3': {
      const { kind: _kind, ...opts } = config;
      return new S3Store(opts);
    }
    default: {
      const kind: never = config;
      throw new Error(`unknown storage kind ${String((kind as { kind?: unknown }).kind)}`);
    }
  }
}
