"""Prefect flows: thin wrappers over pipeline functions (no logic here)."""
