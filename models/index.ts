export {
  createModelRunner,
  SESSION_OPTIONS,
  type ModelRunner,
  type ModelRunnerOptions,
  type ModelScores,
} from './runner.js';
export { readManifest, type ModelManifest, type ManifestPeriod } from './manifest.js';
