// lbkv storage engine: public surface.
export { Store } from './store';
export { Snapshot } from './snapshot';
export { compactFileOf } from './copy';
export { StoreError } from './errors';
export { isForeignFormat } from './salvage-file';
export type { StoreErrorCode } from './errors';
export type { OpenOptions, Entry, GetOptions, Loss, RangeOptions, StoreStats } from './api';
export type { FileSystem, FileHandle } from './file-io';
export { nodeFileSystem } from './file-io';
