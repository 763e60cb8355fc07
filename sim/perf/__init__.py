"""Analytic performance models (no simulation): work, traffic and cycle estimates per operator."""
