export { createModelRunner, type ModelRunner, type ModelRunnerOptions } from './runner.js';
export { readManifest, type ModelManifest } from './manifest.js';
