export {
  createSimulation,
  SCENARIOS,
  DAY,
  type SimEvent,
  type Scenario,
  type Simulation,
  type SimulationOptions,
} from './generate.js';
export { writeSimulationFiles, STREAM_FILES, type SimulationSummary } from './files.js';
export { produceLive, type LiveOptions } from './live.js';
export { createRng, type Rng } from './rng.js';
export { scenarioTagType, SCENARIO_TAG_SCHEMA, type ScenarioTag } from './scenarios.js';
