"""The pure domain core: event contract, rules, usage, price plans, rating, invoices.

Nothing in this package performs I/O or imports boto3; tests run it in microseconds.
"""
