"""Write the card of a finished ResNet run's `classifier.keras` from its results JSON.

    python papers/resnet/write_card.py results/resnet/<run>.json

Runs finished with this repository's current train script get their card when they finish; this is
for runs that finished before cards existed. The card (`classifier.json` beside the model) gives the
classifier's test accuracy, which GAN scores made with it then record (`common.metrics.score_network`).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from common.metrics import score_network
from papers.resnet.model import classifier_card


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1 or argv[0].startswith("-"):
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    record = json.loads(Path(argv[0]).read_text())
    if record.get("paper") != "resnet" or record.get("status") != "completed":
        print(f"{argv[0]} is not a completed ResNet run", file=sys.stderr)
        return 2
    model_file = record["final"].get("classifier_file")
    if not model_file or not Path(model_file).exists():
        print(f"its classifier {model_file} is not on this machine", file=sys.stderr)
        return 2
    try:
        path = score_network.write_card(model_file, classifier_card(record))
    except FileExistsError as err:
        print(err, file=sys.stderr)
        return 2
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
