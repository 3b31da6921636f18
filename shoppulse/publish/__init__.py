"""The publisher: immutable Parquet files and a catalog of views for analysts, beside the live file.

DuckDB lets one process open a database file, so analysts never open the live one. Every
`publish_interval_seconds` the service's publisher thread reads what changed since its last cycle,
in ONE read transaction (a consistent snapshot), and writes it as new Parquet files:

- `events`, `deliveries`: append-only; each cycle writes the rows after the last published
  sequence number as one part file. Small parts are merged (tiered compaction: runs of
  `COMPACT_FANOUT` parts of the same size class become one), so the file count stays small.
  A later status change of a quarantined delivery (a replay) goes into a small overrides file.
- `orders`, `refunds`, `carts`, `checkouts`: entity state, partitioned by the UTC day of
  `created_at` (`none` when unknown). Rows whose `changed_seq` is newer than the last published
  fold are merged into their day's file, which is rewritten; every other day stays untouched.
  A cycle publishes up to the cursor's `state_fold_seq`, the last fold whose state the metrics
  engine has written (it keeps recent state in memory for a few seconds).
  An entity whose `created_at` changed is dropped from its old day: the publisher's own index
  (SQLite, point lookups) knows each published entity's day.
- `sales_minute`, `funnel_minute`: per-minute aggregates, partitioned by day; days holding a
  changed minute are rewritten.

So a cycle costs what changed (and the size of the days it touches), not the whole history.
New files get unique names and are renamed into place; the catalog (`analytics.duckdb`, views
naming the exact current files) is written under a temporary name and renamed over the old
one. Replaced files are deleted only `publish_grace_seconds` later, so a query that started on
an older catalog keeps working.

One module per concept:

- `datasets`: the published datasets, their columns and where each comes from in the live file;
- `views`: the analyst views over them; `catalog`: where `analytics.duckdb` lives and writing it;
- `manifest`: the publisher's SQLite bookkeeping (which files are published, retired, how far);
- `parts`: which file a row lands in, and placing files durably under never-reused names;
- `compaction`: merging small parts of the append-only datasets;
- `heads`: how far the live file is, which a cycle publishes up to;
- `entity_states`: merging changed orders, refunds, carts and checkouts into their days' files;
- `aggregates`: rewriting the days of `sales_minute`, `funnel_minute` that folds changed;
- `publisher`: one cycle, composing the above; `worker`: its thread and its lock;
- `event_columns`, `bodies`: the columns read from stored events and raw bodies;
- `settings`: how often publishing runs and how long replaced files are kept.

This package imports none of them: callers import the module they use (`publisher.Publisher`,
`worker.PublishWorker`, ...), so reading the settings (`shoppulse --help` does, through
`shoppulse.settings`) does not load the data stack the publisher needs.

The analysts' side (opening the catalog read-only, `query`, `export`) is `shoppulse.sql`.
"""
