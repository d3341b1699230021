"""Adapters for the stores (ClickHouse metrics, Elasticsearch search, blobs): the only code
that knows a store's client library. See metrics.py and search.py."""
