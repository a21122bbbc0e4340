"""tools.html: a price slider along the swept quality-vs-calls curve, the oracle ("optimal") frontier beside
it, every shown test query redrawn with the decision taken at that price, and one query traced.

The page (explorable.{html,js,css}, the charts from report/plot.{js,css}) gets numbers the report has
already computed — the sweep's curve, oracle, area fraction and the price where needed calls stop — so the
page and report.md cannot disagree.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from nnlabs.report.explorable import write_html

# what the trace needs of each query; query, kind, family and gold are the same at every price
KEYS = ("query", "kind", "family", "gold", "p_call", "call", "output", "tool_answer", "tool_ok", "direct_answer",
        "direct_ok", "direct_macs", "tool_macs", "call_cost")


def learned_point(an: dict) -> dict:
    """The learned policy of one run as the page plots it: call rates, accuracy, compute per query."""
    s = an["modes"]["learned"]
    return {"call_rate": s["all"]["call_rate"], "accuracy": s["all"]["accuracy"],
            "compute": s["all"]["compute_per_query"],
            "call_rate_needs_tool": s.get("needs_tool", {}).get("call_rate"),
            "call_rate_memorizable": s.get("memorizable", {}).get("call_rate")}


def explorable_data(runs: list[dict], dream: dict | None, mod: dict, sweep: dict, per_fam: int) -> dict:
    """`runs`: the price runs' analyses sorted by price; `sweep`: report.price_sweep's result."""
    from nnlabs.labs.tools.experiment import per_family

    def shown(an: dict) -> list[dict]:
        return [{k: r[k] for k in KEYS} for r in per_family(an["queries"], per_fam)]

    prices = [{"cost": r["call_cost"], "learned": learned_point(r), "needed_call_rate": r.get("needed_call_rate"),
               "queries": shown(r)} for r in runs]
    baselines = {mode: {"call_rate": mod["modes"][mode]["all"]["call_rate"],
                        "accuracy": mod["modes"][mode]["all"]["accuracy"]} for mode in ("never", "always", "oracle")}
    return {"prices": prices, "moderate": runs.index(mod), "n_queries": mod["modes"]["learned"]["all"]["n"],
            "dream": None if dream is None else {"cost": dream["call_cost"], "learned": learned_point(dream),
                                                 "needed_call_rate": dream.get("needed_call_rate"),
                                                 "queries": shown(dream)},
            "oracle": sweep["oracle"], "curve": sweep["curve"], "area_fraction": sweep["area_fraction"],
            "calls_stop": sweep["calls_stop"], "baselines": baselines}


def write_explorable(out: Path, runs: list[dict], dream: dict | None, mod: dict, sweep: dict,
                     per_fam: int = 8) -> Path:
    def read(package: str, name: str) -> str:
        return (files(package) / name).read_text(encoding="utf-8")

    return write_html(out / "tools.html", "Tool use: what a price on calls buys",
                      explorable_data(runs, dream, mod, sweep, per_fam),
                      read(__package__, "explorable.html"),
                      read("nnlabs.report", "plot.js") + "\n" + read(__package__, "explorable.js"),
                      read("nnlabs.report", "plot.css") + read(__package__, "explorable.css"))
