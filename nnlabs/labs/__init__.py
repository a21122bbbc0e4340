"""One module per post. Each is a small patch on the spine (see `nnlabs diff <lab>`), its experiment,
its metrics, and a `report(out)` that rebuilds figures, report.md and the explorable from run files."""
