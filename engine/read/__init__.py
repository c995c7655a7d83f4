"""The read side: one module per entity, shared by the CLI, the web UI, the API and /metrics.

``models`` holds the read models (pydantic) that every reader returns; ``incidents``,
``runs``, ``approvals``, ``hosts``, ``users`` read one entity each; ``fleet`` sums up the
dashboard's numbers, ``engine_stats`` and ``metrics`` what /healthz and /metrics show.
Paged lists go through ``paging``. Nothing here writes: that is engine/record.
"""
