"""Benchmarks that drive real clients against a real node: ``python -m xmppd.bench --help``."""
