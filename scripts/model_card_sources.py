"""Print the Markdown table of data sources (and their licences) for a model card.

python scripts/model_card_sources.py ../shared/data/MANIFEST.csv train photos
"""

from __future__ import annotations

import csv
import sys
from collections import defaultdict


def main() -> None:
    manifest, splits = sys.argv[1], set(sys.argv[2:])
    groups: dict[tuple[str, str, str], list[str]] = defaultdict(list)
    with open(manifest, newline="") as f:
        rows = list(csv.DictReader(f))
    for row in rows:
        if row["split"] in splits:
            source = row["file"].split("/", 1)[1].split("__", 1)[0]
            groups[(row["split"], source, row["licence"])].append(row["file"].split("/", 1)[1])
    print("| split | source | files | licence |")
    print("|---|---|---|---|")
    for (split, source, licence), files in sorted(groups.items()):
        print(f"| {split} | {source} | {len(files)} | {licence} |")


if __name__ == "__main__":
    main()
