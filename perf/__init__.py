"""Performance models of the chip: cycles (`cycles`), energy, area, design-space sweeps and reports."""
