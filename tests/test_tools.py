"""Part 6, the tool-use lab: training sequences, the priced decision, tools inside generation, the lab end
to end at the tiny budget."""

from __future__ import annotations

import copy
import json

import pytest
import torch
import torch.nn as nn

from nnlabs.cli import lab_diff
from nnlabs.labs import tools
from nnlabs.labs.tools.experiment import load_suite
from nnlabs.labs.tools.policy import CallPolicy, ToolTokens, ToolUser, encode_pairs, make_vocab
from nnlabs.labs.tools.sampling import call_probs, generate_with_tools, read_trace, tool_splice
from nnlabs.pack import tool_suite as ts
from nnlabs.spine.models import ModelConfig
from nnlabs.spine.train import TrainConfig, train

VOCAB = make_vocab()
ROW = {"query": "12*34=", "answer": "408", "call": "calc(12*34)", "output": "408", "tool": "calc"}


def test_training_pairs_supervise_only_what_the_model_writes():
    d = encode_pairs([ROW], VOCAB, 40)
    assert d.x.shape == (1, 2, 40)
    direct, tool = (VOCAB.decode([t for t in d.y[0, b].tolist() if t > 0]) for b in (0, 1))
    # not the query, not the decision (the policy loss trains it), not what the engine writes (call, output,
    # answer): on the tool branch only the end token
    assert direct == "408" and tool == ""
    assert d.y[0, 0, 6 + 1 + 3] == 0 and d.y[0, 1].tolist().count(0) == 1  # each branch predicts its end
    assert VOCAB.decode(d.x[0, 1].tolist()) == "12*34=<CALL_TOOL>calc(12*34)<RESULT>408<ANSWER>408"
    dream = encode_pairs([ROW], VOCAB, 40, teach_direct=False)
    assert (dream.y[0, 0] == -1).all() and torch.equal(dream.y[0, 1], d.y[0, 1])


class WritesNines(nn.Module):
    """A stand-in model that never ends a row (it writes 9s): a called row is the engine's, end included."""

    def __init__(self):
        super().__init__()
        self.config = ModelConfig(vocab_size=len(VOCAB), block_size=60)

    def forward(self, idx, targets=None):
        logits = torch.full((idx.size(0), idx.size(1), len(VOCAB)), -10.0)
        logits[..., VOCAB.stoi["9"]] = 10.0
        return logits, None


@pytest.mark.parametrize("query, call, output", [
    ("12*34=", "calc(12*34)", "408"), ("987654*3+1=", "calc(987654*3+1)", "2962963"),
    ("velmor?", "lookup(velmor)", "731"), ("2^999=", "calc(2^999)", "error"),
    ("nobody?", "lookup(nobody)", "error"), ("1+=", "calc(1+)", "error"),
])
def test_the_engine_copies_the_query_into_the_call_and_splices_the_real_output_as_the_answer(query, call, output):
    splice = tool_splice(VOCAB, {"velmor": "731"})
    prompt = [0] + VOCAB.encode(query) + [VOCAB.stoi[ToolTokens.CALL]]
    (out,) = generate_with_tools(WritesNines(), [prompt], splice)
    assert VOCAB.decode(out) == f"{call}<RESULT>{output}<ANSWER>{output}" and out[-1] == 0
    trace = read_trace(VOCAB, [VOCAB.stoi[ToolTokens.CALL]] + out)
    assert (trace["call"], trace["output"], trace["answer"]) == (call, output, output)
    # a call only as the decision: a second call, or one after <NO_TOOL>, is refused
    for row in (prompt + out[:-1], prompt[:-1] + [VOCAB.stoi[ToolTokens.NO]] + VOCAB.encode("77")):
        assert VOCAB.decode(splice(row + [VOCAB.stoi[ToolTokens.CALL]])) == "<RESULT>error<ANSWER>"


def test_policy_gradient_sign_follows_the_price():
    """dL/d(log-odds of calling) > 0 (calling discouraged) iff the price exceeds what the call adds."""
    d = encode_pairs([ROW], VOCAB, 40)
    policy = CallPolicy(VOCAB.stoi[ToolTokens.CALL], VOCAB.stoi[ToolTokens.NO], 0.0)
    logits = torch.zeros(1, 2, 40, len(VOCAB), requires_grad=True)  # uniform: p_direct ≈ p_tool ≈ 0, π = 1/2
    decide = 6  # position of '=' whose next token is the decision
    signs = []
    for cost in (-0.5, 0.5):
        policy.call_cost = cost
        policy(logits.flatten(0, 1), d.x, d.y.flatten(0, 1))
        (g,) = torch.autograd.grad(policy.aux_loss, logits)  # on CALL minus on NO: the decision's own logit
        signs.append(float(g[0, 0, decide, VOCAB.stoi[ToolTokens.CALL]] - g[0, 0, decide, VOCAB.stoi[ToolTokens.NO]]))
    assert signs[0] < 0 < signs[1]
    # a dreamed query was answered by the tool itself: a wrong no-tool answer (p_direct ≈ 0) makes calling
    # worth any price below 1, even though this untrained model could not yet write the call (p_tool ≈ 0)
    dream = encode_pairs([ROW], VOCAB, 40, teach_direct=False)
    policy.call_cost = 0.5
    policy(logits.flatten(0, 1), dream.x, dream.y.flatten(0, 1))
    (g,) = torch.autograd.grad(policy.aux_loss, logits)
    assert float(g[0, 0, decide, VOCAB.stoi[ToolTokens.CALL]] - g[0, 0, decide, VOCAB.stoi[ToolTokens.NO]]) < 0


def tiny_setup(n: int = 200):
    train_rows, val_rows, test_rows, table = load_suite(0)
    rows = [r for r in train_rows if r["family"] in ("small_arith", "large_arith")][:n]
    cfg = ModelConfig(vocab_size=len(VOCAB), block_size=40, n_layer=1, n_head=2, n_embd=32)
    return rows, cfg, table


def test_the_price_changes_the_decision_on_a_tiny_trained_model(tmp_path):
    rows, cfg, table = tiny_setup()
    data = encode_pairs(rows, VOCAB, cfg.block_size)
    torch.manual_seed(0)
    base = ToolUser(cfg, VOCAB, 0.0)
    tc = TrainConfig(max_steps=50, batch_size=32, learning_rate=3e-3, warmup_steps=10, eval_interval=1000,
                     eval_train_items=50, device="cpu", threads=1)
    train(base, data, data, tc, tmp_path / "base", progress=False)
    queries = sorted({r["query"] for r in rows})
    rates = {}
    for cost in (-1.0, 1.5):  # a subsidy on calls vs a price above anything a call could add
        m = copy.deepcopy(base)
        m.policy.call_cost = cost
        train(m, data, data, TrainConfig(**{**tc.__dict__, "max_steps": 25}), tmp_path / f"c{cost}", progress=False)
        rates[cost] = sum(call_probs(m, VOCAB, queries)) / len(queries)
    assert rates[1.5] < 0.2 and rates[-1.0] > 0.8, rates


def test_batched_generation_writes_what_one_row_at_a_time_writes(tmp_path):
    """Rows of different lengths, padded and run together, decode exactly as each row alone (right padding
    keeps every position, causal attention never sees the padding); so does π read from a padded batch."""
    rows, cfg, table = tiny_setup()
    test_rows = load_suite(0)[2]
    torch.manual_seed(0)
    model = ToolUser(cfg, VOCAB, 0.5)
    tc = TrainConfig(max_steps=60, batch_size=32, learning_rate=3e-3, warmup_steps=10, eval_interval=1000,
                     eval_train_items=50, device="cpu", threads=1)
    train(model, encode_pairs(rows, VOCAB, cfg.block_size), encode_pairs(rows, VOCAB, cfg.block_size), tc,
          tmp_path / "m", progress=False)
    queries = [r["query"] for r in test_rows[::20]]  # every family, queries of 4 to 12 characters
    splice = tool_splice(VOCAB, table)
    for decision in (None, ToolTokens.CALL, ToolTokens.NO):
        prompts = [[0] + VOCAB.encode(q) + ([VOCAB.stoi[decision]] if decision else []) for q in queries]
        together = generate_with_tools(model, prompts, splice)
        assert together == generate_with_tools(model, prompts, splice, rows_per_batch=1)
        assert len({len(p) + len(g) for p, g in zip(prompts, together)}) > 1  # the rows did differ in length
    alone = [call_probs(model, VOCAB, [q])[0] for q in queries]
    assert call_probs(model, VOCAB, queries) == pytest.approx(alone, abs=1e-5)


def test_lab_end_to_end_tiny(tmp_path, render_html):
    out = tmp_path / "tools"
    assert tools.main(["--budget", "tiny", "--out", str(out), "--seed", "0"]) == 0
    for p in ("cost_0.5/config.json", "cost_0.5/metrics.jsonl", "cost_0.5/checkpoint.pt", "cost_0.5/samples.txt",
              "cost_0.5/analysis.json", "dream/analysis.json", "report.md", "tools.html",
              "figures/call_rate_by_kind.png", "figures/frontier.svg", "figures/dream_rounds.png",
              "figures/calibration.png", "figures/price_sweep.png", "figures/memorisation.png", "payoff.json"):
        assert (out / p).exists(), p
    an = json.loads((out / "cost_0.5/analysis.json").read_text())
    assert set(an["modes"]) == {"never", "always", "learned", "oracle"}
    assert an["modes"]["never"]["all"]["call_rate"] == 0 and an["modes"]["always"]["all"]["call_rate"] == 1
    table = ts.parse_table(ts.build(0)["tool_suite/table.tsv"])
    for r in an["queries"]:  # the engine copied the query into the call and spliced what the tool says
        assert r["call"] == ("calc(" if r["query"].endswith("=") else "lookup(") + r["query"][:-1] + ")"
        assert r["output"] == ts.run_call(r["call"], table)
    payoff = json.loads((out / "payoff.json").read_text())
    assert {(p["run"], p["kind"]) for p in payoff["points"]} == {
        ("cost_0.5", "routed"), ("dream", "routed"), ("cost_0.5", "baseline")}
    assert len(payoff["points"]) == 5 and all(p["seed"] == 0 for p in payoff["points"])
    metric = json.loads((out / "cost_0.5/metrics.jsonl").read_text().splitlines()[-1])
    assert {"step", "split", "loss", "tokens", "macs", "wall_s", "call_rate_needs_tool"} <= set(metric)
    # every evaluation of the base run and its continuation logs the call rate and mean π of every family
    for run in ("base", "cost_0.5"):
        evals = [json.loads(line) for line in (out / run / "metrics.jsonl").read_text().splitlines()]
        evals = [r for r in evals if r["split"] == "val"]
        assert len(evals) >= 2
        for r in evals:
            assert all(0 <= r[f"{key}_{f}"] <= 1 for f in ts.FAMILIES for key in ("call_rate", "p_call"))
    report = (out / "report.md").read_text()
    assert "| never call |" in report and "dream state" in report and "## Memorisation over training" in report
    # the report is made from the run directories alone
    (out / "report.md").unlink()
    tools.report(out)
    assert (out / "report.md").read_text() == report
    dom, shot = render_html(out / "tools.html")
    assert "P(CALL_TOOL)" in dom and "= -556" in dom  # the JS calculator: 12*(34+5)-2^10 = -556
    assert shot.exists()


def test_diff_is_short_and_real():
    d = lab_diff("tools")
    # the post's two ideas (the priced decision, the tool inside sampling) and their wiring, printed whole
    for piece in ("policy:encode_pairs", "policy:CallPolicy", "policy:ToolUser", "sampling:tool_splice"):
        assert f"+++ nnlabs.labs.tools.{piece}\n" in d
    assert len(d.splitlines()) <= 120
