"""Windowed business KPIs over `orders.events` (faust-streaming), served as Prometheus gauges.

A sixth process beside the five services: it owns no business data, only sums per minute
that it can rebuild from the events. Nothing in the order pipeline depends on it.
"""
