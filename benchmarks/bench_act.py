"""ACT vs fixed depth at equal mean passes: measured MACs and forward wall time, side by side.

Half the positions are made to halt after `a` passes and half after `b` (the halting unit is scripted:
position parity decides), so the mean is (a + b) / 2 passes; the fixed-depth model runs exactly that
many passes everywhere. If halted positions really leave the computation, ACT's measured MACs match the
fixed model's at equal mean passes (plus the halting unit's C MACs per position-pass — the script
replaces its linear layer's output, not the layer; attention differs slightly because different query
rows run), and an ACT run where every position halts after one pass costs what one fixed pass costs.
Wall time shows the price of gathering and scattering rows.

    python benchmarks/bench_act.py [--quick]
"""

from __future__ import annotations

import argparse
import time

import torch

from nnlabs.labs.act.halting import ActConfig, RecurrentDepth
from nnlabs.labs.act.router import RoutedDepth
from nnlabs.spine.macs import count_macs
from nnlabs.spine.models import ModelConfig


def scripted_act(config: ModelConfig, max_steps: int, passes: tuple[int, int]) -> RecurrentDepth:
    """An ACT model whose even positions halt after passes[0] passes and odd ones after passes[1]."""
    m = RecurrentDepth(config, ActConfig(halting="act", max_steps=max_steps, window=2))
    step, rows_now = m.step, []

    def recording_step(state, n, rows, kv, T):
        rows_now[:] = [rows, n]
        return step(state, n, rows, kv, T)

    def halting_logit(s):
        rows, n = rows_now
        need = torch.where((rows % config.block_size) % 2 == 0, passes[0], passes[1])
        # h = sigmoid(+-30): 1 at the pass a position should stop at, 0 before
        return torch.where(n + 1 >= need, 30.0, -30.0)[:, None]

    m.step, m.halting.linear.forward = recording_step, halting_logit
    return m


def measure(model, x, repeats: int) -> tuple[float, float, float]:
    """(MACs per token, seconds per forward, mean passes per position)."""
    model.eval()
    with torch.no_grad():
        with count_macs(model) as c:
            model(x)
        model(x)  # warm-up
        t0 = time.perf_counter()
        for _ in range(repeats):
            model(x)
        dt = (time.perf_counter() - t0) / repeats
    return c.per_token(x.numel()), dt, float(model.halting.steps.float().mean())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true")
    args = p.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(1)
    T, B, C = 12, (64 if args.quick else 256), 64
    config = ModelConfig(vocab_size=15, block_size=T, n_layer=1, n_head=4, n_embd=C)
    x = torch.randint(15, (B, T))
    repeats = 5 if args.quick else 30
    rows = []
    for a, b in ((1, 1), (2, 6), (4, 4), (1, 7), (8, 8)):
        mean = (a + b) // 2
        act = scripted_act(config, 8, (a, b))
        fixed = RecurrentDepth(config, ActConfig(halting="fixed", max_steps=mean, window=2))
        rows.append((f"ACT halting at {a}/{b}", *measure(act, x, repeats)))
        rows.append((f"fixed {mean} passes", *measure(fixed, x, repeats)))
    print(f"{'model':22s} {'passes/pos':>10s} {'MACs/token':>12s} {'ms/forward':>11s}   (B={B}, T={T}, C={C})")
    for i, (name, macs, dt, steps) in enumerate(rows):
        print(f"{name:22s} {steps:10.2f} {macs:12,.0f} {1000 * dt:11.2f}")
        if i % 2 == 1:
            act_macs, act_dt = rows[i - 1][1], rows[i - 1][2]
            print(f"{'':22s} ACT / fixed: MACs x{act_macs / macs:.3f}, wall time x{act_dt / dt:.2f}")
    # The depth router (router.py) at evaluation: every example sent down the 4-pass path costs what the
    # fixed 4-pass model costs (plus the router's 3C MACs per position on pass 0): the later passes never run.
    router = RoutedDepth(config, ActConfig(halting="router", max_steps=8, window=2))
    with torch.no_grad():
        router.halting.linear.bias.copy_(torch.tensor([0.0, 9.0, 0.0]))
    fixed4 = RecurrentDepth(config, ActConfig(halting="fixed", max_steps=4, window=2))
    (r_macs, r_dt, r_steps), (f_macs, f_dt, _) = measure(router, x, repeats), measure(fixed4, x, repeats)
    print(f"{'router, 4-pass path':22s} {r_steps:10.2f} {r_macs:12,.0f} {1000 * r_dt:11.2f}")
    print(f"{'':22s} router / fixed 4: MACs x{r_macs / f_macs:.3f}, wall time x{r_dt / f_dt:.2f}")
    # PonderNet's training step reads every pass out through the LM head (sum_n p_n L(y_n)); ACT's reads the
    # p-weighted state once; the router's reads its three paths. All run 8 passes here (halting bias -3), so
    # the ratios are the readouts' price.
    y = torch.randint(15, (B, T))
    times = {}
    kinds = ("act", "ponder", "router")
    for halting in kinds + kinds:  # alternated, so drift in machine load hits all alike
        cfg = ActConfig(halting=halting, max_steps=8, window=2, halt_bias=-3.0)
        model = RoutedDepth(config, cfg) if halting == "router" else RecurrentDepth(config, cfg)
        model.train()
        _, loss = model(x, y)  # warm-up
        t0 = time.perf_counter()
        for _ in range(repeats):
            _, loss = model(x, y)
            loss.backward()
        times.setdefault(halting, []).append((time.perf_counter() - t0) / repeats)
    act_s, ponder_s, router_s = (min(times[k]) for k in kinds)
    print(f"training step, 8 passes: ACT {1000 * act_s:.2f} ms, PonderNet {1000 * ponder_s:.2f} ms "
          f"(x{ponder_s / act_s:.2f}: one LM-head readout per pass), depth router {1000 * router_s:.2f} ms "
          f"(x{router_s / act_s:.2f}: three path readouts)")


if __name__ == "__main__":
    main()
