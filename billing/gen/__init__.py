"""Synthetic usage traffic: the reference mix every benchmark and the demo use."""

from billing.gen.mix import (
    SHARES,
    Line,
    account_names,
    account_shares,
    category_of,
    generate,
    generate_for_account,
    generate_lines,
    write_jsonl,
)

__all__ = [
    "SHARES",
    "Line",
    "account_names",
    "account_shares",
    "category_of",
    "generate",
    "generate_for_account",
    "generate_lines",
    "write_jsonl",
]
