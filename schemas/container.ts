import { once } from 'node:events';
import { createReadStream, createWriteStream } from 'node:fs';
import { finished } from 'node:stream/promises';
import zlib from 'node:zlib';
import avro from 'avsc';
import { fail } from '../lib/errors.js';
import type { AvroType } from './catalog.js';

/** Avro Object Container Files: how historical streams are stored (one file per stream). */

export interface ContainerWriter<T> {
  append(value: T): Promise<void>;
  /** Appends the values in order; one wait for the file at most (replay's batches: no promise per record). */
  appendAll(values: readonly T[]): Promise<void>;
  close(): Promise<void>;
}

export interface ContainerWriterOptions {
  /** 16 bytes. Fix it (e.g. from a seed) to make files byte-identical across runs. */
  syncMarker?: Buffer;
  codec?: 'null' | 'deflate';
  /**
   * zlib level for deflate, 1 (fastest) to 9; default zlib's 6. Replay's decisions.avro takes 1: about
   * a quarter bigger, and a third of the compression CPU (docs/replay.md).
   */
  deflateLevel?: number;
}

type Codec = (buf: Buffer, cb: (err: Error | null, out?: Buffer) => void) => void;

/**
 * A block codec that runs on the calling thread. avsc's own hand each block to zlib's thread pool,
 * which on this machine cost about twice the CPU of the work itself: 140–210 µs against 72 µs to
 * inflate a 47 KB block, 213–225 against 107 µs to deflate one at level 1 (a hop to the pool and
 * back per 16 KB of output, and the stream around it). Replay inflates its input twice and deflates
 * its decisions: 1.8 s of the pool's CPU on a million events, 0.2 s on the calling threads instead.
 */
const here =
  (f: (buf: Buffer) => Buffer): Codec =>
  (buf, cb) => {
    let out: Buffer;
    try {
      out = f(buf);
    } catch (e) {
      cb(e as Error);
      return;
    }
    cb(null, out);
  };

const nullCodec: Codec = (buf, cb) => cb(null, buf);
const READ_CODECS: Record<string, Codec> = {
  null: nullCodec,
  deflate: here((buf) => zlib.inflateRawSync(buf)),
};

/** avsc's codecs (it takes the whole table), deflate at `level` (undefined: zlib's default). */
function writeCodecs(level: number | undefined): Record<string, Codec> {
  if (level !== undefined && (!Number.isInteger(level) || level < 1 || level > 9))
    fail('BAD_CONFIG', `deflate level ${level} must be a whole number from 1 to 9`);
  const options = level === undefined ? {} : { level };
  return { null: nullCodec, deflate: here((buf) => zlib.deflateRawSync(buf, options)) };
}

export function createContainerWriter<T>(
  path: string,
  type: AvroType,
  opts: ContainerWriterOptions = {},
): ContainerWriter<T> {
  const encoder = new avro.streams.BlockEncoder(type, {
    codec: opts.codec ?? 'deflate',
    // avsc's default writes the header with the first record: a file of none would be 0 bytes, which
    // no Avro reader (ours included) takes for a container file. An empty stream is a valid file.
    writeHeader: 'always',
    ...(opts.syncMarker ? { syncMarker: opts.syncMarker } : {}),
    codecs: writeCodecs(opts.deflateLevel),
  } as ConstructorParameters<typeof avro.streams.BlockEncoder>[1]);
  const out = createWriteStream(path);
  encoder.pipe(out);
  let error: Error | undefined;
  encoder.on('error', (e: Error) => (error = e));
  out.on('error', (e: Error) => (error = e));
  return {
    async append(value) {
      if (error) throw error;
      if (!encoder.write(value)) await once(encoder, 'drain');
    },
    async appendAll(values) {
      if (error) throw error;
      let room = true;
      for (const v of values) room = encoder.write(v);
      if (!room) await once(encoder, 'drain');
    },
    async close() {
      encoder.end();
      await finished(out);
      if (error) throw error;
    },
  };
}

/**
 * Records of a container file, in file order, read as `reader` (schema resolution applies). A file that
 * is not an Avro container, is truncated, or holds a record of another name fails with
 * FS_ERR_BAD_INPUT_FILE naming the file.
 */
export async function* readContainer<T>(path: string, reader?: AvroType): AsyncGenerator<T> {
  for await (const chunk of readContainerChunks<T>(path, reader)) yield* chunk;
}

/**
 * readContainer's records, a chunk at a time: every record decoded so far, in file order. One await
 * per chunk instead of per record (replay reads millions: a stream's async iterator and each generator
 * over it cost a promise and a result object per record and level). Same checks and errors.
 */
export async function* readContainerChunks<T>(path: string, reader?: AvroType): AsyncGenerator<T[]> {
  const decoder = new avro.streams.BlockDecoder({
    ...(reader ? { readerSchema: reader } : {}),
    codecs: READ_CODECS,
  } as ConstructorParameters<typeof avro.streams.BlockDecoder>[0]);
  let writerName: string | undefined;
  decoder.on('metadata', (t: AvroType) => (writerName = t.name));
  const input = createReadStream(path);
  let failure: Error | null = null;
  let ended = false;
  let wake: (() => void) | null = null;
  const poke = () => {
    const w = wake;
    wake = null;
    w?.();
  };
  input.on('error', (e) => decoder.destroy(e));
  decoder.on('readable', poke);
  decoder.on('error', (e: Error) => {
    failure = e;
    poke();
  });
  decoder.on('end', () => {
    ended = true;
    poke();
  });
  decoder.on('close', () => {
    ended = true;
    poke();
  });
  input.pipe(decoder);
  try {
    for (;;) {
      const chunk: T[] = [];
      for (let rec = decoder.read() as T | null; rec !== null; rec = decoder.read() as T | null)
        chunk.push(rec);
      if (chunk.length) {
        if (reader && writerName && writerName !== reader.name) {
          fail('BAD_INPUT_FILE', `${path} holds ${writerName} records, expected ${reader.name}`);
        }
        yield chunk;
        continue;
      }
      if (failure) throw failure;
      if (ended) break;
      // read() returned null: 'readable' (more records), 'end', 'error' or 'close' comes next.
      await new Promise<void>((resolve) => (wake = resolve));
    }
  } catch (e) {
    if ((e as { code?: string }).code?.startsWith('FS_ERR')) throw e;
    fail('BAD_INPUT_FILE', `${path}: ${(e as Error).message}`, undefined, e);
  } finally {
    input.destroy();
    decoder.destroy();
  }
  if (!writerName) fail('BAD_INPUT_FILE', `${path} is not an Avro container file (no header)`);
}
