import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import avro from 'avsc';
import { fail } from '../lib/errors.js';
import { projectRoot } from '../lib/paths.js';

export type AvroType = avro.Type;

interface CatalogEntry {
  id: number;
  name: string;
  type: AvroType;
}

/**
 * Schema ids <-> Avro types. The local catalog (schemas/catalog.json) is the default source of ids; a
 * Schema Registry client can `register` what it fetches. The reader schema for a record name is the
 * entry with the highest id of that name.
 */
export interface SchemaCatalog {
  /** The type registered under an id (the writer's schema of a payload), or FS_ERR_UNKNOWN_SCHEMA_ID. */
  byId(id: number): AvroType;
  /** The newest id registered for a full record name. */
  idOf(name: string): number;
  /** The newest (reader) type for a full record name. */
  reader(name: string): AvroType;
  register(id: number, schema: object | string): AvroType;
  ids(): number[];
}

/**
 * timestamp-millis as a plain number of epoch milliseconds (time is event time, an integer), kept as a
 * logical type so the schemas the project writes into container files still say what the long means.
 */
class EpochMillis extends avro.types.LogicalType {
  override _fromValue(v: unknown) {
    return v;
  }
  override _toValue(v: unknown) {
    return v;
  }
  override _resolve(type: AvroType) {
    if (avro.Type.isType(type, 'long', 'int', 'logical:timestamp-millis')) return (v: unknown) => v;
    return undefined;
  }
}

export function parseSchema(schema: object | string): AvroType {
  const json = typeof schema === 'string' ? (JSON.parse(schema) as object) : schema;
  // A fresh registry per schema, so two versions of the same named record never collide.
  return avro.Type.forSchema(json as avro.Schema, {
    registry: {},
    logicalTypes: { 'timestamp-millis': EpochMillis },
  });
}

export function createSchemaCatalog(
  opts: { dir?: string; entries?: { id: number; schema: object }[] } = {},
): SchemaCatalog {
  const byId = new Map<number, CatalogEntry>();
  const newest = new Map<string, CatalogEntry>();

  const register = (id: number, schema: object | string): AvroType => {
    if (!Number.isInteger(id) || id < 0 || id > 0x7fffffff)
      fail('BAD_CONFIG', `schema id ${id} is not a 31-bit integer`);
    const type = parseSchema(schema);
    const name = type.name;
    if (!name) fail('BAD_CONFIG', `schema id ${id} is not a named type`);
    const entry = { id, name, type };
    byId.set(id, entry);
    const cur = newest.get(name);
    if (!cur || cur.id < id) newest.set(name, entry);
    return type;
  };

  if (opts.entries) {
    for (const e of opts.entries) register(e.id, e.schema);
  } else {
    const dir = opts.dir ?? join(projectRoot(), 'schemas');
    const catalog = JSON.parse(readFileSync(join(dir, 'catalog.json'), 'utf8')) as {
      schemas: { id: number; name: string; file: string }[];
    };
    for (const s of catalog.schemas) {
      const type = register(s.id, readFileSync(join(dir, s.file), 'utf8'));
      if (type.name !== s.name)
        fail('BAD_CONFIG', `catalog.json: ${s.file} defines ${type.name}, not ${s.name}`);
    }
  }

  return {
    byId(id) {
      const e = byId.get(id);
      if (!e) fail('UNKNOWN_SCHEMA_ID', `id ${id}`, { schemaId: id });
      return e.type;
    },
    idOf(name) {
      const e = newest.get(name);
      if (!e) fail('UNKNOWN_SCHEMA_ID', `no schema named ${name}`);
      return e.id;
    },
    reader(name) {
      const e = newest.get(name);
      if (!e) fail('UNKNOWN_SCHEMA_ID', `no schema named ${name}`);
      return e.type;
    },
    register,
    ids: () => [...byId.keys()].sort((a, b) => a - b),
  };
}
