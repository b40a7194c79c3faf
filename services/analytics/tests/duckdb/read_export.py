"""Reads analytics' export (redress-analytics export --out DIR) with DuckDB, the way a
columnar deployment would: the CSV files as they are, then Parquet written by DuckDB from
them and read back. Prints JSON: received per category and month from each, and the facts'
count of received complaints."""

import json
import sys

import duckdb

d = sys.argv[1]
con = duckdb.connect()
con.execute(f"CREATE VIEW cube AS SELECT * FROM read_csv('{d}/cube_month.csv', header = true)")
con.execute(
    f"COPY (SELECT * FROM cube) TO '{d}/cube_month.parquet' (FORMAT parquet)"
)
con.execute(
    f"COPY (SELECT * FROM read_csv('{d}/facts.csv', header = true)) "
    f"TO '{d}/facts.parquet' (FORMAT parquet)"
)


def by_category_month(source):
    rows = con.execute(
        f"SELECT category, strftime(period, '%Y-%m') AS month, sum(received)::BIGINT "
        f"FROM {source} GROUP BY 1, 2 HAVING sum(received) <> 0 ORDER BY 1, 2"
    ).fetchall()
    return [[c, m, int(n)] for c, m, n in rows]


out = {
    "csv": by_category_month("cube"),
    "parquet": by_category_month(f"read_parquet('{d}/cube_month.parquet')"),
    "facts_received": con.execute(
        f"SELECT count(*) FROM read_parquet('{d}/facts.parquet') WHERE received_at IS NOT NULL"
    ).fetchone()[0],
}
print(json.dumps(out))
