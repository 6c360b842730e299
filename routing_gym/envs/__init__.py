"""Routing MDPs: outcome-table envs (no live model) and live Teacher–Student envs."""
