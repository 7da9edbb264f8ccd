//! Benchmarks and the latency harness for odm (see `docs/performance.md`).
