/**
 * One registry of every error the project raises on purpose. Each carries a stable `code` (part of the
 * API: tests assert it, docs/errors.md lists it) and says whether retrying can help. The scorer uses
 * `retriable` to choose between retrying a batch and sending an event to the dead-letter topic.
 */
export interface ErrorSpec {
  readonly code: string;
  readonly message: string;
  readonly retriable: boolean;
  readonly httpStatus: number;
}

export class FraudstreamError extends Error {
  readonly code: string;
  readonly retriable: boolean;
  readonly httpStatus: number;
  readonly detail: Record<string, unknown> | undefined;

  constructor(
    spec: ErrorSpec,
    detail?: string,
    extra?: Record<string, unknown>,
    options?: { cause?: unknown },
  ) {
    super(detail ? `${spec.message}: ${detail}` : spec.message, options);
    this.name = 'FraudstreamError';
    this.code = spec.code;
    this.retriable = spec.retriable;
    this.httpStatus = spec.httpStatus;
    this.detail = extra;
  }
}

const define = (code: string, message: string, retriable: boolean, httpStatus = 500): ErrorSpec =>
  Object.freeze({ code, message, retriable, httpStatus });

export const Errors = {
  // Wire format (schemas/)
  BAD_MAGIC_BYTE: define(
    'FS_ERR_BAD_MAGIC_BYTE',
    'Payload does not start with the Confluent magic byte 0',
    false,
    400,
  ),
  TRUNCATED_PAYLOAD: define('FS_ERR_TRUNCATED_PAYLOAD', 'Payload is truncated', false, 400),
  CORRUPT_PAYLOAD: define('FS_ERR_CORRUPT_PAYLOAD', 'Avro body cannot be decoded', false, 400),
  UNKNOWN_SCHEMA_ID: define('FS_ERR_UNKNOWN_SCHEMA_ID', 'Schema id is not in the catalog', false, 400),
  INCOMPATIBLE_SCHEMA: define(
    'FS_ERR_INCOMPATIBLE_SCHEMA',
    "Writer's schema cannot be resolved to the reader's",
    false,
    400,
  ),
  UNEXPECTED_SCHEMA: define(
    'FS_ERR_UNEXPECTED_SCHEMA',
    'Record type is not the one this topic carries',
    false,
    400,
  ),
  INVALID_EVENT: define('FS_ERR_INVALID_EVENT', 'Event failed validation', false, 400),
  ENCODE_FAILED: define('FS_ERR_ENCODE_FAILED', 'Value does not match its Avro schema', false, 500),
  // Configuration
  BAD_CONFIG: define('FS_ERR_BAD_CONFIG', 'Invalid configuration', false, 500),
  // Model
  MODEL_LOAD: define('FS_ERR_MODEL_LOAD', 'Model could not be loaded', false, 500),
  MODEL_MISMATCH: define(
    'FS_ERR_MODEL_MISMATCH',
    'Model does not match its manifest or the feature spec',
    false,
    500,
  ),
  // Feature store
  FEATURE_STORE: define('FS_ERR_FEATURE_STORE', 'Feature store call failed', true, 503),
  // Policy
  BAD_POLICY: define('FS_ERR_BAD_POLICY', 'Policy file is invalid', false, 500),
  // HTTP API
  UNAUTHORIZED: define('FS_ERR_UNAUTHORIZED', 'A valid API key is required', false, 401),
  FORBIDDEN: define('FS_ERR_FORBIDDEN', "The API key's role may not call this endpoint", false, 403),
  BAD_REQUEST: define('FS_ERR_BAD_REQUEST', 'Request is invalid', false, 400),
  MALFORMED_JSON: define('FS_ERR_MALFORMED_JSON', 'Request body is not valid JSON', false, 400),
  BODY_TOO_LARGE: define('FS_ERR_BODY_TOO_LARGE', 'Request body is too large', false, 413),
  UNSUPPORTED_MEDIA_TYPE: define(
    'FS_ERR_UNSUPPORTED_MEDIA_TYPE',
    'Request body must be application/json',
    false,
    415,
  ),
  NOT_FOUND: define('FS_ERR_NOT_FOUND', 'No such route', false, 404),
  NOT_IMPLEMENTED: define('FS_ERR_NOT_IMPLEMENTED', 'This server does not offer that operation', false, 501),
  UNAVAILABLE: define('FS_ERR_UNAVAILABLE', 'A dependency did not answer; retry later', true, 503),
  // Review queue
  CASE_NOT_FOUND: define('FS_ERR_CASE_NOT_FOUND', 'No such case', false, 404),
  CASE_CLAIMED: define('FS_ERR_CASE_CLAIMED', 'Another analyst holds the lease on this case', false, 409),
  CASE_NOT_CLAIMED: define('FS_ERR_CASE_NOT_CLAIMED', 'Claim the case before resolving it', false, 409),
  LEASE_EXPIRED: define(
    'FS_ERR_LEASE_EXPIRED',
    'The lease on this case has expired; claim it again',
    false,
    409,
  ),
  CASE_RESOLVED: define('FS_ERR_CASE_RESOLVED', 'The case is already resolved', false, 409),
  // Replay / files
  BAD_INPUT_FILE: define('FS_ERR_BAD_INPUT_FILE', 'Input file cannot be read', false, 400),
  INPUT_OUT_OF_ORDER: define(
    'FS_ERR_INPUT_OUT_OF_ORDER',
    'Events of an input file are not in event-time order',
    false,
    400,
  ),
  BAD_KAFKA_RANGE: define('FS_ERR_BAD_KAFKA_RANGE', 'Kafka replay range cannot be read', false, 400),
  INTERRUPTED: define('FS_ERR_INTERRUPTED', 'Interrupted', false, 503),
} as const satisfies Record<string, ErrorSpec>;

export type ErrorName = keyof typeof Errors;

export function fail(
  name: ErrorName,
  detail?: string,
  extra?: Record<string, unknown>,
  cause?: unknown,
): never {
  throw new FraudstreamError(Errors[name], detail, extra, cause === undefined ? undefined : { cause });
}

export function isFraudstreamError(e: unknown, name?: ErrorName): e is FraudstreamError {
  return e instanceof FraudstreamError && (name === undefined || e.code === Errors[name].code);
}
