"""DeQA-Score in its own Python environment: a standalone worker that asymlib talks to over pipes.

DeQA-Score's remote code needs an older ``transformers`` (its authors cite 4.36.1) than the one asymlib's
environment holds for VisualQuality-R1. Install DeQA's requirements in a second environment and set
``ASYMLIB_DEQA_PYTHON`` to its interpreter: the ``deqa`` evaluator then starts

    $ASYMLIB_DEQA_PYTHON deqa_worker.py MODEL_DIR DEVICE

once and sends it batches. This file imports only the standard library, numpy, torch, Pillow and transformers
(never asymlib), so it runs in that environment as it is.

Protocol (one JSON object per line; lines of the worker's stdout without the prefix are ignored, so the
remote code may print): the worker answers ``@@asymlib {"ready": true, "transformers": "<version>"}`` once the
model is loaded; each request ``{"images": "<file.npy>"}`` names a ``(B, H, W, 3)`` uint8 array and is answered
``@@asymlib {"scores": [...]}`` (the model's ``score(list of PIL images)``, 1..5) or
``@@asymlib {"error": "<message>"}``.
"""
from __future__ import annotations

import json
import sys

PREFIX = "@@asymlib "


def _reply(obj: dict) -> None:
    sys.stdout.write(PREFIX + json.dumps(obj) + "\n")
    sys.stdout.flush()


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        sys.stderr.write("usage: deqa_worker.py MODEL_DIR DEVICE\n")
        return 2
    import numpy as np
    import torch
    import transformers
    from PIL import Image

    path, device = argv
    dtype = torch.float16 if device.startswith("cuda") else torch.float32
    model = transformers.AutoModelForCausalLM.from_pretrained(
        path, trust_remote_code=True, attn_implementation="eager", torch_dtype=dtype, local_files_only=True
    ).to(device).eval()
    _reply({"ready": True, "transformers": transformers.__version__})
    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            request = json.loads(line)
            batch = np.load(request["images"])
            with torch.no_grad():
                scores = model.score([Image.fromarray(a) for a in batch])
            _reply({"scores": torch.as_tensor(scores).double().cpu().reshape(-1).tolist()})
        except Exception as exc:  # reported to the parent, which raises it with this message
            _reply({"error": f"{type(exc).__name__}: {exc}"})
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
