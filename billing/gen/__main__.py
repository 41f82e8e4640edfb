"""``python -m billing.gen --seed 1 --events 100000 --out traffic.jsonl``"""

from __future__ import annotations

import argparse
import sys

from billing.gen.mix import generate, write_jsonl


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write the reference traffic mix as JSON Lines.")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--period", default="2026-10")
    parser.add_argument("--accounts", type=int, default=50)
    parser.add_argument("--out", help="file to write (default: standard output)")
    args = parser.parse_args(argv)
    if args.out:
        write_jsonl(args.out, args.seed, args.events, args.period, args.accounts)
    else:
        for line in generate(args.seed, args.events, args.period, args.accounts):
            sys.stdout.write(line + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
