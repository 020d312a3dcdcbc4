"""Fixtures serving the real Foundry Local runtime (owned by the Foundry work)."""
