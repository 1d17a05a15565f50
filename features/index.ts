export {
  createFeatureEngine,
  type FeatureEngine,
  type FeatureEngineOptions,
  type FeatureBatch,
  type WriteMode,
  type WriteOptions,
} from './engine.js';
export {
  FEATURES,
  FEATURE_NAMES,
  ENTITIES,
  WINDOWS,
  DIMENSIONS,
  LABEL_WINDOW_INDEX,
  LABEL_WINDOW_NAMES,
  NO_PREVIOUS_EVENT_S,
  specHash,
  featureTableMarkdown,
  ENGINE_SEMANTICS_VERSION,
  type FeatureDef,
  type EntityDef,
  type EntityName,
  type WindowDef,
} from './spec.js';
export { assembleRow, entityIds, haversineKm, type EntityRaw } from './assemble.js';
export { decodeState, encodeState } from './core.js';
