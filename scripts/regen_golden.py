"""Regenerate tests/golden/tiny_forward.pt: the output of a seeded `tiny` model on a seeded input.

Run only when the tiny architecture changes on purpose, and review why the numbers moved.
"""

from pathlib import Path

import torch

from centrifuge.models import build_model

SEED = 1234


def main() -> None:
    torch.manual_seed(SEED)
    model = build_model("tiny").eval()
    x = torch.rand(1, 3, 8, 32, 32, generator=torch.Generator().manual_seed(SEED + 1))
    with torch.no_grad():
        out = model(x)
    path = Path(__file__).resolve().parents[1] / "tests" / "golden" / "tiny_forward.pt"
    torch.save({"seed": SEED, "input": x, "output": out}, path)
    print(f"wrote {path} ({tuple(out.shape)})")


if __name__ == "__main__":
    main()
