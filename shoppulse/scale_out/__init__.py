"""Scale-out on NATS JetStream: stateless intake replicas publish to a replicated log; the store
consumes it into the DuckDB file. See docs/scale-out.md."""
