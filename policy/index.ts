export {
  createPolicy,
  Reasons,
  LIST_ENTITIES,
  listReason,
  featureReason,
  type Policy,
  type PolicyOptions,
  type PolicyVerdict,
  type ListEntity,
  type DegradedMode,
  type Degradation,
} from './policy.js';
export { loadPolicyFile } from './config.js';
export { featureReasons, normsOf, type FeatureNorms } from './reasons.js';
