"""``python -m bench [--only NAME]``: run the benchmarks in bench/ and print their figures."""

from __future__ import annotations

import argparse
import importlib
import json
import pkgutil
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
NOT_BENCHMARKS = {"harness", "postgres", "__main__"}


def available() -> list[str]:
    return sorted(m.name for m in pkgutil.iter_modules([str(HERE)]) if m.name not in NOT_BENCHMARKS)


def main() -> int:
    parser = argparse.ArgumentParser(prog="make bench", description=__doc__)
    parser.add_argument("--only", help=f"one benchmark: {', '.join(available())}")
    parser.add_argument("--rows", type=int, default=None, help="override the benchmark's row count")
    args = parser.parse_args()
    names = available()
    if args.only:
        if args.only not in names:
            print(f"no benchmark {args.only!r}; available: {', '.join(names)}", file=sys.stderr)
            return 2
        names = [args.only]
    for name in names:
        module = importlib.import_module(f"bench.{name}")
        path = module.run(args.rows) if args.rows else module.run()
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
        print(f"{name} ({doc['rows']:,} rows) -> {path}")
        for m in doc["metrics"]:
            print(
                f"  {m['metric']}: ours {m['ours_s']:.4f}s, {m['anchor']} {m['anchor_s']:.4f}s, "
                f"ratio {m['ratio']} (target {m['target']})"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
