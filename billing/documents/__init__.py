"""Invoice documents: JSON, CSV, PDF, the finance summary, the close manifest, explanations.

Every renderer is a pure function returning bytes (or text) that depend only on its
arguments: the same invoice gives the same bytes on every run.
"""
