"""Python's fastavro side of the Avro container-file interop test (test/integration/avro-interop.test.ts).

    fastavro_interop.py read FILE            -> prints {"schema": name, "records": [...]} as JSON
    fastavro_interop.py write FILE SCHEMA    -> writes the JSON records on stdin with the .avsc SCHEMA
"""

import json
import sys
from datetime import datetime

import fastavro


def main() -> None:
    mode, path = sys.argv[1], sys.argv[2]
    if mode == "read":
        with open(path, "rb") as f:
            reader = fastavro.reader(f)
            records = list(reader)
            name = reader.writer_schema["name"]
        # timestamp-millis comes back as an aware datetime: hand it over as epoch milliseconds.
        def ms(v):
            if isinstance(v, datetime):
                return round(v.timestamp() * 1000)
            raise TypeError(type(v))

        json.dump({"schema": name, "records": records, "writer_schema": reader.writer_schema}, sys.stdout, default=ms)
    elif mode == "write":
        with open(sys.argv[3]) as f:
            schema = fastavro.parse_schema(json.load(f))
        records = json.load(sys.stdin)
        with open(path, "wb") as out:
            fastavro.writer(out, schema, records, codec="deflate")
    else:
        sys.exit(f"unknown mode {mode}")


if __name__ == "__main__":
    main()
