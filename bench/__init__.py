"""Benchmarks: our pipeline against raw aio-pika doing the same work, in one run.

Run ``python -m bench`` (``make bench``); see docs/performance.md. This
package is import-light on purpose: the raw baselines and the memory child
processes must not pay for importing ``pipeline``.
"""
