"""Top entries of a py-spy profile in collapsed-stack form (``py-spy record --format raw``).

    .venv/bin/python -m benchmarks.profile_top /tmp/spy/cluster-a.txt [--top 25] [--match bot/]

Prints each function's share of the samples twice: *self* (the sample's innermost frame) and *total*
(anywhere on the stack, counted once per sample). ``--match`` limits the total list to frames whose
file contains the text (``bot/`` for Common Ground's own code).
"""

from __future__ import annotations

import argparse
import re
from collections import Counter

# py-spy frames look like "function (path/to/file.py:123)"; the line number is dropped to group by function.
_LINE = re.compile(r":\d+\)$")


def read(path: str) -> tuple[Counter[str], Counter[str], int]:
    own: Counter[str] = Counter()
    total: Counter[str] = Counter()
    samples = 0
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            stack, _, count = line.rstrip("\n").rpartition(" ")
            if not stack or not count.isdigit():
                continue
            n = int(count)
            frames = [_LINE.sub(")", fr) for fr in stack.split(";") if fr]
            # py-spy puts the thread (and process) first; the innermost frame is last.
            samples += n
            if frames:
                own[frames[-1]] += n
            for fr in set(frames):
                total[fr] += n
    return own, total, samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--match", default="", help="total list: only frames whose text contains this")
    args = parser.parse_args()
    own, total, samples = read(args.path)
    print(f"{args.path}: {samples:,} samples")
    print("self:")
    for frame, n in own.most_common(args.top):
        print(f"  {100 * n / samples:5.1f}%  {frame}")
    print("total" + (f" (frames matching {args.match!r})" if args.match else "") + ":")
    shown = [(fr, n) for fr, n in total.most_common() if args.match in fr and not fr.startswith(("thread", "process"))]
    for frame, n in shown[: args.top]:
        print(f"  {100 * n / samples:5.1f}%  {frame}")


if __name__ == "__main__":
    main()
