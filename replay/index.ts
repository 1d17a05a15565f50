export {
  runReplay,
  clearNamespace,
  cleanMarker,
  INPUT_FILES,
  type ReplayOptions,
  type ReplayResult,
  type ReplayModel,
} from './replay.js';
export { readKafkaRange, type KafkaRangeOptions, type KafkaRange } from './kafka.js';
export { countContainerRecords, readEventChunks, readEvents, readStreamChunks } from './files.js';
export { mergeChunksByEventTime } from './merge.js';
export { rocAuc, prAuc } from './metrics.js';
export {
  createOutcomeCollector,
  modelReport,
  sliceMetrics,
  thresholdSweep,
  perScenario,
  perDay,
  scoreHistogram,
  prCurve,
  SWEEP_THRESHOLDS,
  type OutcomeRow,
  type Outcomes,
  type ModelReport,
  type SliceMetrics,
} from './report.js';
export { renderReportHtml, type ReportPageMeta } from './html.js';
export {
  createFeatureFileWriter,
  featureFileSchema,
  FEATURE_FILE_FIXED_COLUMNS,
  type FeatureFileWriter,
  type FeatureRows,
} from './arrow.js';
