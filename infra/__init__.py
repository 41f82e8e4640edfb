"""AWS CDK (v2) infrastructure of the usage-billing system: see ``infra.stack``."""
