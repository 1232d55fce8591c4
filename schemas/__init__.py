"""Pandera (polars backend) models, one per data boundary: raw tables, the analysis cohort."""
