"""Placement of every layer on the crossbar as a PNG (`aoncim inspect --png`): one labelled
rectangle per row tile on the rows x cols array, drawn to scale."""
from __future__ import annotations

from pathlib import Path

from aoncim.config import AonCimConfig
from aoncim.program import Program


def plot_placement(prog: Program, cfg: AonCimConfig, path: Path, title: str = "") -> Path:
    import matplotlib

    matplotlib.use("Agg")  # files only, no display on a build machine
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    aspect = cfg.rows / cfg.cols
    fig, ax = plt.subplots(figsize=(10, max(3.0, min(10.0, 10 * aspect)) + 0.8))
    ax.add_patch(Rectangle((0, 0), cfg.cols, cfg.rows, facecolor="0.95", edgecolor="0.3"))
    colours = plt.get_cmap("tab10")
    for n, i in enumerate(prog.mvm_layers):
        d, colour = prog.layers[i], colours(n % 10)
        tiles = prog.tile_rects(i)
        # Inside a rectangle only the layer index (and tile): narrow layers leave no room for more;
        # the legend names each layer.
        for t, (_, nrows, r0, c0) in enumerate(tiles):
            ax.add_patch(Rectangle((c0, r0), d.out_c, nrows, facecolor=colour, alpha=0.6, edgecolor="k", lw=0.6,
                                   label=None if t else f"{i}: {prog.layer_name(i)}, {d.k_rows} x {d.out_c}"
                                   + (f", {len(tiles)} row tiles" if len(tiles) > 1 else "")))
            ax.text(c0 + d.out_c / 2, r0 + nrows / 2, f"{i}" + (f".{t}" if len(tiles) > 1 else ""),
                    ha="center", va="center", fontsize=8)
    if prog.mvm_layers:
        ax.legend(loc="lower right", fontsize=7, title="layer: name, rows x columns")
    ax.set_xlim(0, cfg.cols)
    ax.set_ylim(cfg.rows, 0)  # row 0 at the top, as the array is addressed
    ax.set_xlabel(f"column (0..{cfg.cols - 1})")
    ax.set_ylabel(f"row (0..{cfg.rows - 1})")
    ax.set_title(title or f"placement on the {cfg.rows} x {cfg.cols} array")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)
