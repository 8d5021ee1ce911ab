"""Reconciliation: watch the tenant's live jobs and report their state changes as events."""
