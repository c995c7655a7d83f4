"""Leases for several engine replicas on one PostgreSQL store (engine/store/leases.py)."""
