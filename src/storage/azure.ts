// PLACEHOLDER: replaced by the real backend.
import { UsageError } from '../errors.js';
import type { OpenCloudStore } from './cloud.js';

export const openAzure: OpenCloudStore = async (uri) => {
  throw new UsageError(`${uri.scheme}:// storage is not implemented yet`);
};
