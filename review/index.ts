export {
  createCaseStore,
  type CaseStore,
  type CaseStoreOptions,
  type CaseView,
  type CaseDetail,
  type CaseStatus,
  type ListQuery,
  type AuditEntry,
  type CaseResolution,
} from './store.js';
export { createReviewConsumer, type ReviewConsumer, type ReviewConsumerOptions } from './consumer.js';
export { createReviewApi, type ReviewApi, type ReviewApiOptions } from './service.js';
export { webRoot } from './web.js';
export {
  startReviewThread,
  type CaseStoreClient,
  type ReviewThread,
  type ReviewThreadInput,
} from './thread.js';
