export { runReplay, clearNamespace, INPUT_FILES, type ReplayOptions, type ReplayResult } from './replay.js';
export { mergeByEventTime } from './merge.js';
export { rocAuc, prAuc } from './metrics.js';
