import { fail } from '../lib/errors.js';
import { createSchemaCatalog, type SchemaCatalog } from './catalog.js';
import { createFramedCodec, type FramedCodec } from './framing.js';
import { RecordNames, type PaymentEvent, type ScoringEvent, type WithdrawalEvent } from './types.js';
import { validatePayment, validateWithdrawal } from './validate.js';

export * from './types.js';
export { createSchemaCatalog, parseSchema, type SchemaCatalog, type AvroType } from './catalog.js';
export { createFramedCodec, MAGIC_BYTE, HEADER_BYTES, type FramedCodec, type Decoded } from './framing.js';
export {
  validatePayment,
  validateWithdrawal,
  MIN_EVENT_TIME,
  MAX_AMOUNT_MINOR,
  type ValidateOptions,
} from './validate.js';
export {
  createContainerWriter,
  readContainer,
  readContainerChunks,
  type ContainerWriter,
  type ContainerWriterOptions,
} from './container.js';

const INPUT_NAMES = [RecordNames.PaymentEvent, RecordNames.WithdrawalEvent] as const;

export interface Schemas {
  catalog: SchemaCatalog;
  codec: FramedCodec;
  /** Decode a framed input payload and validate it: a payment or a withdrawal, or a typed error. */
  decodeEvent(buf: Buffer, now: number): ScoringEvent;
}

export function createSchemas(opts: { catalog?: SchemaCatalog } = {}): Schemas {
  const catalog = opts.catalog ?? createSchemaCatalog();
  const codec = createFramedCodec(catalog);
  return {
    catalog,
    codec,
    decodeEvent(buf, now) {
      const d = codec.decode<PaymentEvent | WithdrawalEvent>(buf, INPUT_NAMES);
      if (d.name === RecordNames.PaymentEvent) {
        return { type: 'PAYMENT', event: validatePayment(d.value as PaymentEvent, { now }) };
      }
      if (d.name === RecordNames.WithdrawalEvent) {
        return { type: 'WITHDRAWAL', event: validateWithdrawal(d.value as WithdrawalEvent, { now }) };
      }
      return fail('UNEXPECTED_SCHEMA', d.name);
    },
  };
}
