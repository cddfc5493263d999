//! The Markdown table and PNG plots `scripts/bench.sh` writes (filled in by the report work).
