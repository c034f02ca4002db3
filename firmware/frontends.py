"""Which front end reads a model file: by its suffix, so the command line takes any of them."""
from __future__ import annotations

from pathlib import Path

from .graph import Graph, GraphError


def load_model(path: str | Path) -> Graph | None:
    """`.onnx` -> the ONNX front end, `.pt2` -> a saved torch.export program; anything else is an
    aoncim checkpoint, which the caller loads (None). GraphError (one line) for a missing file."""
    p = Path(path)
    if not p.is_file():
        raise GraphError(f"model file {p} not found")
    suffix = p.suffix.lower()
    # Imported here: each front end pulls in its framework, which a checkpoint never needs.
    if suffix == ".onnx":
        from .onnx_import import graph_from_onnx
        return graph_from_onnx(p)
    if suffix == ".pt2":
        from .torch_import import graph_from_pt2
        return graph_from_pt2(p)
    return None
