"""Benchmarks of the receiver against a bare-framework baseline, in the same run.

``python -m bench`` (see ``bench/README.md``): ingest throughput and latency against a bare
Starlette app, end-to-end latency to a NATS JetStream ack, memory under sustained load,
and enrichment API calls per 10,000 events.
"""
