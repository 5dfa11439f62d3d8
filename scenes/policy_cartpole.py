"""A PyTorch policy trained through the simulator: cart-pole balancing from perturbed starts.

An MLP maps a cart-pole's initial state (cart position, pole angle from upright, their rates) to
the cart force sequence (N) for the next second, open loop. A batch of B cart-poles with
different starts advances in one launch per segment (``ArticulatedSystem``), and
``diffsim.torch.rollout_loss`` makes the whole rollout one differentiable PyTorch op, so
``loss.backward()`` trains the network through the physics. Needs the extra ``torch``.

Loss per robot: dt * sum_t [ 10 (theta - pi)^2 + x^2 + 0.1 (theta_dot^2 + x_dot^2) + 1e-3 F^2 ].

Goal: the held-out loss per cart-pole (16 starts never trained on) falls below 1.0 (from about
6.4 for the untrained network).
"""

import pathlib

import numpy as np

from diffsim import Rollout, StoreAll
from diffsim.articulated import ArticulatedSystem, Cost, cartpole
from scenes._config import option, resolve, scene_config
from scenes._goal import Goal, SceneResult
from scenes._plots import save_figure

DEMO_ORDER = 60


GOAL = Goal("held-out loss per cart-pole after training", 1.0)


@scene_config
class Config:
    """Options of the training (``build``, ``run`` and ``diffsim run policy_cartpole``)."""

    batch: int = option(16, "cart-poles per batch (starts per training step)")
    steps: int = option(100, "time steps per rollout")
    dt: float = option(0.01, "time step", "s")
    hidden: int = option(32, "hidden units of the MLP")
    seed: int = option(0, "seed of the network and of the starts")
    spread: float = option(0.15, "half-width of the random starts (cart m, pole rad, rates per s)")
    iters: int = option(100, "Adam steps on the network weights")
    lr: float = option(1e-2, "Adam learning rate")


DEMO = Config(iters=40)  # the demo's small size


class Problem:
    """The batched cart-pole rollout, the policy network and the training loop."""

    def __init__(self, config: Config | None = None, **overrides):
        import torch

        c = resolve(Config, config, **overrides)
        batch, steps, dt, hidden, seed, spread = c.batch, c.steps, c.dt, c.hidden, c.seed, c.spread
        self.config = c

        self.torch = torch
        torch.manual_seed(seed)
        self.rng = np.random.default_rng(seed)
        self.batch, self.steps, self.spread = batch, steps, spread
        cost = Cost(q_target=[0.0, np.pi], q_weight=[1.0, 10.0], qd_weight=[0.1, 0.1], effort=1e-3)
        self.system = ArticulatedSystem(cartpole(), batch=batch, dt=dt, cost=cost, segment=50)
        self.rollout = Rollout(self.system, steps, StoreAll())
        self.policy = torch.nn.Sequential(torch.nn.Linear(4, hidden), torch.nn.Tanh(),
                                          torch.nn.Linear(hidden, steps)).double()
        self.held_out = self.starts()

    def starts(self):
        """B random starts near upright: (q, qd), each (B, 2); angles in rad, rates in rad/s."""
        s = self.spread
        q = np.stack([self.rng.uniform(-s, s, self.batch), np.pi + self.rng.uniform(-s, s, self.batch)], 1)
        qd = self.rng.uniform(-s, s, (self.batch, 2))
        return q, qd

    def loss(self, q, qd):
        """Mean loss per cart-pole of the policy's forces from starts (q, qd), as a torch scalar."""
        import diffsim.torch as dtorch

        torch = self.torch
        features = torch.as_tensor(np.concatenate([q - [0.0, np.pi], qd], 1))
        force = 10.0 * self.policy(features)                             # (B, T), N
        tau = torch.stack([force.T, torch.zeros_like(force.T)], -1)     # (T, B, 2): hinge passive
        total = dtorch.rollout_loss(self.rollout, tau=tau, q=torch.as_tensor(q), qd=torch.as_tensor(qd))
        return total / self.batch

    def train(self, iters=None, lr=None):
        """Adam on the network weights, ``iters`` steps of learning rate ``lr`` (default: the
        config's); returns (held-out loss before, after, history)."""
        iters = self.config.iters if iters is None else iters
        lr = self.config.lr if lr is None else lr
        torch = self.torch
        opt = torch.optim.Adam(self.policy.parameters(), lr=lr)
        with torch.no_grad():
            before = self.loss(*self.held_out).item()
        history = []
        for _ in range(iters):
            opt.zero_grad()
            loss = self.loss(*self.starts())
            loss.backward()
            opt.step()
            history.append(loss.item())
        with torch.no_grad():
            after = self.loss(*self.held_out).item()
        return before, after, history


    def solve(self, iters=None, lr=None) -> SceneResult:
        """:meth:`train`, judged: ``success`` when the held-out loss ends below ``GOAL``."""
        import optimizers

        before, after, history = self.train(iters, lr)
        weights = np.concatenate([p.detach().numpy().ravel() for p in self.policy.parameters()])
        run = optimizers.OptimizeResult(x=weights, fun=after, jac=np.zeros_like(weights), nit=len(history),
                                        nfev=len(history), success=True, message=f"trained {len(history)} Adam steps",
                                        history={"loss": np.array(history)}, timings={}, method="torch.adam")
        return SceneResult.judge("policy_cartpole", GOAL, after, run, held_out_loss_before=before,
                                 held_out_loss_after=after)


def build(config: Config | None = None, **overrides) -> Problem:
    """The batched cart-poles and an untrained policy; ``overrides``: fields of :class:`Config`."""
    return Problem(config, **overrides)


def demo(outdir: pathlib.Path) -> dict:
    """Train for 40 iterations on batches of 16 starts (held-out loss 6.35 -> 0.34 with seed 0);
    plot the training loss and the held-out poles."""
    import matplotlib.pyplot as plt

    problem = build(DEMO)
    result = problem.solve(iters=DEMO.iters, lr=DEMO.lr)
    before, after, history = (result.details["held_out_loss_before"], result.figure,
                              list(result.history["loss"]))
    q = problem.rollout.trajectory("q")  # (T+1, B, 2) of the last held-out evaluation
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.5))
    a.semilogy(history, label="training batch")
    a.axhline(GOAL.tolerance, color="k", ls="--", lw=0.8, label=f"goal: held-out loss < {GOAL.tolerance:g}")
    a.set_xlabel("Adam iteration")
    a.set_ylabel("loss per cart-pole")
    a.legend(fontsize=8)
    t = np.arange(q.shape[0]) * problem.system.dt
    lines = b.plot(t, q[:, :, 1] - np.pi, lw=0.8, color="C0", alpha=0.6)
    b.axhline(0.0, color="k", lw=0.6)
    b.set_xlabel("time (s)")
    b.set_ylabel("pole angle from upright (rad)")
    b.legend(lines[:1], [f"{q.shape[1]} held-out starts, trained policy"], fontsize=8)
    fig.suptitle(result.title(f"cart-pole policy trained through the simulator: held-out loss {after:.3g}, goal reached",
                              f"cart-pole policy trained through the simulator: held-out loss {after:.3g}, goal MISSED"),
                 fontsize=10)
    path = pathlib.Path(outdir) / "policy_cartpole.png"
    save_figure(fig, path)
    return {**result.summary(), "held_out_loss_before": before, "held_out_loss_after": after, "iterations": len(history),
            "plot": str(path)}


def run(config: Config, out: pathlib.Path) -> SceneResult:
    """``diffsim run policy_cartpole``: train the policy; ``success`` when the held-out loss per
    cart-pole ends below 1.0."""
    return build(config).solve(iters=config.iters, lr=config.lr)
