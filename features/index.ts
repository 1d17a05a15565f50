export {
  createFeatureEngine,
  NO_PREVIOUS_EVENT_S,
  type FeatureEngine,
  type FeatureEngineOptions,
  type FeatureBatch,
} from './engine.js';
export { FEATURES, FEATURE_NAMES, specHash, ENGINE_SEMANTICS_VERSION, type FeatureDef } from './spec.js';
