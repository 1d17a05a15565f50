import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { join } from 'node:path';
import { fail } from '../lib/errors.js';
import {
  readContainerChunks,
  RecordNames,
  type AvroType,
  type PaymentEvent,
  type SchemaCatalog,
  type ScoringEvent,
  type WithdrawalEvent,
} from '../schemas/index.js';
import { STREAM_FILES } from '../simulator/index.js';
import { mergeChunksByEventTime } from './merge.js';

/** Reads zig-zag varint longs from a file at a moving position, a small buffer at a time. */
class Cursor {
  private buf = Buffer.alloc(64 * 1024);
  private start = 0;
  private len = 0;
  pos = 0;
  constructor(
    private readonly fd: number,
    readonly size: number,
    private readonly path: string,
  ) {}
  private byte(): number {
    if (this.pos >= this.size)
      fail('BAD_INPUT_FILE', `${this.path} is truncated (ends inside a block header)`);
    if (this.pos < this.start || this.pos >= this.start + this.len) {
      this.start = this.pos;
      this.len = readSync(this.fd, this.buf, 0, this.buf.length, this.pos);
    }
    return this.buf[this.pos++ - this.start]!;
  }
  long(): number {
    let n = 0;
    let shift = 1;
    let b: number;
    do {
      b = this.byte();
      n += (b & 0x7f) * shift;
      shift *= 128;
    } while (b & 0x80);
    return n % 2 === 0 ? n / 2 : -(n + 1) / 2;
  }
  skip(n: number) {
    this.pos += n;
  }
}

/**
 * Number of records in an Avro container file, from its block headers alone (no decoding), so replay
 * can show an ETA. Also a cheap integrity check before a long run: a file whose last block is cut short
 * fails here with FS_ERR_BAD_INPUT_FILE, before any output is written.
 */
export function countContainerRecords(path: string): number {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (e) {
    return fail('BAD_INPUT_FILE', `${path}: ${(e as Error).message}`, undefined, e);
  }
  try {
    const size = fstatSync(fd).size;
    const c = new Cursor(fd, size, path);
    const magic = Buffer.alloc(4);
    readSync(fd, magic, 0, 4, 0);
    if (size < 4 || magic.toString('latin1') !== 'Obj\x01')
      fail('BAD_INPUT_FILE', `${path} is not an Avro container file (no header)`);
    c.pos = 4;
    // Header metadata: a map of string -> bytes, in blocks; then the 16-byte sync marker.
    for (let n = c.long(); n !== 0; n = c.long()) {
      if (n < 0) {
        c.long();
        n = -n;
      }
      for (let i = 0; i < n; i++) {
        c.skip(c.long());
        c.skip(c.long());
      }
    }
    c.skip(16);
    let records = 0;
    while (c.pos < size) {
      const count = c.long();
      const bytes = c.long();
      if (count < 0 || bytes < 0) fail('BAD_INPUT_FILE', `${path} is corrupt (negative block size)`);
      c.skip(bytes + 16);
      if (c.pos > size)
        fail('BAD_INPUT_FILE', `${path} is truncated: its last block needs ${c.pos - size} more bytes`);
      records += count;
    }
    return records;
  } finally {
    closeSync(fd);
  }
}

/**
 * The events of one stream file as scoring events, a chunk at a time, checking that event_time never
 * decreases: replay merges streams in event time, so a file out of order would silently change every
 * feature after it. Such a file fails with FS_ERR_INPUT_OUT_OF_ORDER naming the record (sort it, or
 * produce it in order).
 */
export async function* readStreamChunks(
  path: string,
  reader: AvroType,
  type: 'PAYMENT' | 'WITHDRAWAL',
): AsyncGenerator<ScoringEvent[]> {
  let last = -Infinity;
  let lastId = '';
  let i = 0;
  for await (const chunk of readContainerChunks<PaymentEvent | WithdrawalEvent>(path, reader)) {
    const out: ScoringEvent[] = new Array(chunk.length);
    for (let k = 0; k < chunk.length; k++) {
      const event = chunk[k]!;
      if (event.event_time < last)
        fail(
          'INPUT_OUT_OF_ORDER',
          `${path}: record ${i} (${event.event_id}, event_time ${event.event_time}) comes after ${lastId} (event_time ${last})`,
        );
      last = event.event_time;
      lastId = event.event_id;
      i++;
      out[k] = { type, event } as ScoringEvent;
    }
    yield out;
  }
}

/** A folder's payments and withdrawals merged in event time (ties by event_id), in chunks. */
export function readEventChunks(dir: string, catalog: SchemaCatalog): AsyncGenerator<ScoringEvent[]> {
  return mergeChunksByEventTime(
    readStreamChunks(join(dir, STREAM_FILES.payments), catalog.reader(RecordNames.PaymentEvent), 'PAYMENT'),
    readStreamChunks(
      join(dir, STREAM_FILES.withdrawals),
      catalog.reader(RecordNames.WithdrawalEvent),
      'WITHDRAWAL',
    ),
  );
}

/** readEventChunks, an event at a time. */
export async function* readEvents(dir: string, catalog: SchemaCatalog): AsyncGenerator<ScoringEvent> {
  for await (const chunk of readEventChunks(dir, catalog)) yield* chunk;
}
