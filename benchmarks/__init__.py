"""Handshake benchmarks for channels_jwt: ``python -m benchmarks.run`` (see README.md)."""
