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


def float_reference(path: str | Path):
    """The float model of an ONNX file (onnxruntime) or a saved torch.export program (torch), as a
    function of (N, C, H, W) float64 inputs in the graph IR's layout returning (N, outputs)
    float64: what `aoncim cosim --reference` compares the chip's outputs with. A missing or
    unreadable file is one GraphError line."""
    import numpy as np

    p = Path(path)
    if not p.is_file():
        raise GraphError(f"--reference {p}: file not found")
    graph = load_model(p)  # validates the model and gives the IR shape
    if graph is None:
        raise GraphError(f"--reference {p}: give the ONNX file (.onnx) or torch.export program (.pt2) the image was "
                         "compiled from")
    c, h, w = graph.input_shape
    if p.suffix.lower() == ".onnx":
        import onnxruntime as ort

        sess = ort.InferenceSession(str(p), providers=["CPUExecutionProvider"])
        inp = sess.get_inputs()[0]
        rank = len(inp.shape)

        # An exported model may fix its batch (torch.onnx.export of a batch-1 example does): run in
        # batches of that size then.
        batch = inp.shape[0] if isinstance(inp.shape[0], int) and inp.shape[0] > 0 else None

        def run(x):
            x = np.asarray(x, dtype=np.float32).reshape((-1, c, h, w) if rank == 4 else (-1, c, w) if rank == 3
                                                        else (-1, c * h * w))
            step = batch or max(len(x), 1)
            outs = [sess.run(None, {inp.name: x[i : i + step]})[0] for i in range(0, len(x), step)]
            return np.concatenate(outs).astype(np.float64).reshape(len(x), -1)
        return run
    import torch

    mod = torch.export.load(str(p)).module()
    val = next(n.meta.get("val") for n in mod.graph.nodes if n.op == "placeholder") \
        if any(n.op == "placeholder" for n in mod.graph.nodes) else None
    rank = val.dim() if val is not None and hasattr(val, "dim") else 4

    def run(x):
        x = torch.as_tensor(np.asarray(x, dtype=np.float32)).reshape((-1, c, h, w) if rank == 4 else (-1, c, w)
                                                                     if rank == 3 else (-1, c * h * w))
        with torch.no_grad():
            return mod(x).double().numpy().reshape(len(x), -1)
    return run
