"""Checkpointed runs killed with SIGKILL and restarted end bitwise where uninterrupted runs end."""

import importlib.util
import os
import pickle
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import optimizers as opt
from optimizers import checkpoint as ckpt

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
WORKER = os.path.join(HERE, "resume_worker.py")

_spec = importlib.util.spec_from_file_location("optim_resume_worker", WORKER)
worker = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(worker)


class Interrupt(Exception):
    """Raised from a callback: the run dies mid-way, as a killed process would."""


def _interrupted_at(k, *args, **kwargs):
    """Run opt.minimize(*args, **kwargs) with a callback that raises at iteration k."""
    def stop(it, x, f, g):
        if it == k:
            raise Interrupt

    with pytest.raises(Interrupt):
        opt.minimize(*args, callback=stop, **kwargs)


def _start(scenario, path, out, sleep):
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""),
               # scipy's L-BFGS-B on 6 parameters is ~30x slower when OpenBLAS threads compete
               # for a busy CPU; one thread changes the speed, not the (tiny, unsplit) BLAS sums
               OPENBLAS_NUM_THREADS="1")
    return subprocess.Popen([sys.executable, WORKER, scenario, str(path), str(out), str(sleep)],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _saved_iteration(path):
    payload = ckpt.load(path)  # never torn: checkpoints are replaced atomically
    return None if payload is None else payload["top"]["it"]


def _kill_after_checkpoint(proc, path, min_iteration, timeout=60.0):
    """SIGKILL ``proc`` once its checkpoint holds iteration >= ``min_iteration``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        it = _saved_iteration(path)
        if it is not None and it >= min_iteration:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            return it
        if proc.poll() is not None:
            raise AssertionError(f"worker ended before it was killed: {proc.communicate()}")
        time.sleep(0.005)
    proc.kill()
    raise AssertionError("no checkpoint appeared in time")


@pytest.mark.parametrize("scenario,min_iteration",
                         [("adam", 14), ("minibatch", 10), ("lbfgs", 8)])
def test_sigkill_and_restart_is_bitwise_identical(tmp_path, scenario, min_iteration):
    reference, reference_calls = worker.run(scenario)
    path, out = tmp_path / "run.ckpt", tmp_path / "out.pkl"

    proc = _start(scenario, path, out, sleep=0.02)
    killed_at = _kill_after_checkpoint(proc, path, min_iteration)
    assert proc.returncode == -signal.SIGKILL
    assert not out.exists()  # it really was interrupted
    payload = ckpt.load(path)
    assert payload["result"] is None and 0 < killed_at < reference.nit
    names = sorted(p.name for p in tmp_path.iterdir())  # no temporary files left behind
    assert names == (["run.ckpt", "run.ckpt.tape"] if scenario == "lbfgs" else ["run.ckpt"])

    proc = _start(scenario, path, out, sleep=0.0)  # the same call, restarted
    _stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 0, stderr.decode()
    with open(out, "rb") as f:
        resumed = pickle.load(f)
    res = resumed["result"]
    np.testing.assert_array_equal(res.x, reference.x)
    assert res.x.tobytes() == reference.x.tobytes()
    for key in ("loss", "grad_norm"):
        assert res.history[key].tobytes() == reference.history[key].tobytes()
    assert (res.fun, res.nit, res.nfev) == (reference.fun, reference.nit, reference.nfev)
    assert res.jac.tobytes() == reference.jac.tobytes()
    if scenario != "lbfgs":  # it resumed rather than starting over
        # plus one evaluation at x0, which checks that the checkpoint is this objective's
        assert resumed["calls"] == reference_calls - killed_at + 1
    else:  # L-BFGS replays the tape instead of calling the objective
        assert resumed["calls"] < reference_calls


@pytest.mark.parametrize("scenario", ["minibatch_own_seed", "noisy"])
def test_interrupted_in_process_resume(tmp_path, scenario):
    reference, _ = worker.run(scenario)
    objective, x0, kwargs = worker.problem(scenario)
    path = tmp_path / "mb.ckpt"

    _interrupted_at(33, objective, x0, checkpoint=path, **kwargs)
    assert ckpt.load(path)["top"]["it"] == 30
    objective, x0, kwargs = worker.problem(scenario)  # as a fresh process would
    res = opt.minimize(objective, x0, checkpoint=path, **kwargs)
    assert res.x.tobytes() == reference.x.tobytes()
    assert res.history["loss"].tobytes() == reference.history["loss"].tobytes()


@pytest.mark.parametrize("scenario,iters", [("adam", 100), ("lbfgs", 30)])
def test_finished_checkpoint_is_returned_or_extended(tmp_path, scenario, iters):
    path = tmp_path / "done.ckpt"
    objective, x0, kwargs = worker.problem(scenario)
    kwargs["iters"] = iters
    calls = []

    def counted(x):
        calls.append(1)
        return objective(x)

    first = opt.minimize(counted, x0, checkpoint=path, **kwargs)
    assert first.message.startswith(f"reached iters = {iters}") and first.reason == "budget"
    # Adam has no convergence test: its budget is the end asked for; L-BFGS's was not converged
    assert first.success == (scenario == "adam"), first.message
    del calls[:]
    again = opt.minimize(counted, x0, checkpoint=path, **kwargs)
    assert len(calls) == 1  # a finished run is returned; one evaluation at x0 checks it is this objective's
    assert again.x.tobytes() == first.x.tobytes() and again.message == first.message

    # a run that ended on its budget continues when the budget grows
    kwargs["iters"] = iters + 10
    longer = opt.minimize(counted, x0, checkpoint=path, **kwargs)
    straight = opt.minimize(objective, x0, **kwargs)
    assert longer.nit == straight.nit == iters + 10
    assert longer.x.tobytes() == straight.x.tobytes()
    assert longer.history["loss"].tobytes() == straight.history["loss"].tobytes()
    assert longer.nfev == straight.nfev


def test_checkpoint_of_another_problem_is_refused(tmp_path):
    path = tmp_path / "a.ckpt"
    objective, x0, kwargs = worker.problem("adam")
    opt.minimize(objective, x0, checkpoint=path, **dict(kwargs, iters=3))
    with pytest.raises(opt.CheckpointError, match="belongs to another run"):
        opt.minimize(objective, x0 + 1.0, checkpoint=path, **kwargs)
    with pytest.raises(opt.CheckpointError, match="another run"):
        opt.minimize(objective, x0, checkpoint=path, **dict(kwargs, method="sgd"))
    with pytest.raises(opt.CheckpointError, match="another run"):
        opt.minimize(objective, x0, checkpoint=path, **dict(kwargs, seed=1))


def test_lbfgs_restart_mode_resumes_from_the_last_iterate(tmp_path):
    path = tmp_path / "r.ckpt"
    objective, x0, _ = worker.problem("lbfgs")

    method = opt.LBFGS(resume="restart")
    _interrupted_at(10, objective, x0, method, 200, checkpoint=path, checkpoint_every=5)
    payload = ckpt.load(path)
    assert "tape_len" not in payload and not os.path.exists(f"{path}.tape")
    with pytest.raises(opt.CheckpointError, match="no tape to replay"):
        opt.minimize(objective, x0, opt.LBFGS(), 200, checkpoint=path, checkpoint_every=5)
    res = opt.minimize(objective, x0, method, 200, checkpoint=path, checkpoint_every=5)
    np.testing.assert_allclose(res.x, np.ones(6), atol=1e-5)
    assert len(res.history["loss"]) == res.nit + 1
    np.testing.assert_array_equal(res.history["loss"][:11], payload["history"][0][:11])


def test_atomic_save_keeps_the_old_file_when_writing_fails(tmp_path, monkeypatch):
    path = tmp_path / "x.ckpt"
    ckpt.save(path, {"value": 1})

    def broken_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        ckpt.save(path, {"value": 2})
    monkeypatch.undo()
    assert ckpt.load(path)["value"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["x.ckpt"]  # the temporary file is gone
    (tmp_path / "junk.ckpt").write_bytes(pickle.dumps({"not": "ours"}))
    with pytest.raises(opt.CheckpointError, match="not an optimizers checkpoint"):
        ckpt.load(tmp_path / "junk.ckpt")


def test_evaluation_tape_drops_records_after_the_checkpointed_count(tmp_path):
    path = tmp_path / "t.tape"
    tape = ckpt.EvaluationTape(path, 2)
    for i in range(3):
        tape.append(tape.key(np.full(2, i, dtype=float)), float(i), np.array([i, -i], float))
    assert tape.commit() == 3
    tape.append(tape.key(np.zeros(2)), 9.0, np.zeros(2))
    tape.commit()  # a record the checkpoint never counted (killed before saving it)
    tape.close()
    assert path.stat().st_size == 4 * (16 + 8 + 16)
    tape = ckpt.EvaluationTape(path, 2, committed=3)
    assert path.stat().st_size == 3 * (16 + 8 + 16)
    key, loss, grad = tape.read(2)
    assert key == tape.key(np.full(2, 2.0)) and loss == 2.0
    np.testing.assert_array_equal(grad, [2.0, -2.0])
    tape.close()
    with pytest.raises(opt.CheckpointError, match="fewer evaluations"):
        ckpt.EvaluationTape(path, 2, committed=5)
    with pytest.raises(opt.CheckpointError, match="missing"):
        ckpt.EvaluationTape(tmp_path / "none.tape", 2, committed=1)


def test_lbfgs_replay_that_leaves_the_tape_continues_live(tmp_path):
    path = tmp_path / "l.ckpt"
    objective, x0, kwargs = worker.problem("lbfgs")
    reference = opt.minimize(objective, x0, **kwargs)

    _interrupted_at(9, objective, x0, checkpoint=path, **kwargs)
    size = 16 + 8 + 8 * x0.size
    with open(f"{path}.tape", "r+b") as f:  # corrupt the key of the 6th evaluation
        f.seek(5 * size)
        f.write(b"\0" * 16)
    with pytest.warns(RuntimeWarning, match="after 5 of"):
        res = opt.minimize(objective, x0, checkpoint=path, **kwargs)
    np.testing.assert_allclose(res.x, reference.x, atol=1e-6)  # right answer, recomputed
    assert res.nfev == reference.nfev


@pytest.mark.parametrize("scenario,stop_at,saved_at,backoffs",
                         [("lbfgs_nan", 10, 8, 7), ("lbfgs_restart", 3, 2, 4)])
def test_lbfgs_that_backed_off_resumes_bitwise(tmp_path, scenario, stop_at, saved_at, backoffs):
    # lbfgs_nan: seven NaN trials in the line searches from iterations 0 and 2, before the
    # checkpoint at 8. lbfgs_restart: NaN trials at iterations 0, 1, 3 and 4, each restarting
    # L-BFGS-B (max_backoffs=0), two before the checkpoint at 2 and two after. The tape holds the
    # NaN evaluations as they were, and the replay backs off and restarts the same way.
    reference, _ = worker.run(scenario)
    assert reference.success and reference.nbackoff == backoffs
    objective, x0, kwargs = worker.problem(scenario)
    path = tmp_path / "nan.ckpt"
    _interrupted_at(stop_at, objective, x0, checkpoint=path, **kwargs)
    assert ckpt.load(path)["top"]["it"] == saved_at
    calls = []

    def counted(x):
        calls.append(1)
        return objective(x)

    res = opt.minimize(counted, x0, checkpoint=path, **kwargs)
    assert res.x.tobytes() == reference.x.tobytes()
    assert res.history["loss"].tobytes() == reference.history["loss"].tobytes()
    assert (res.fun, res.nit, res.nfev, res.nbackoff) == (reference.fun, reference.nit,
                                                          reference.nfev, reference.nbackoff)
    assert len(calls) < reference.nfev  # replayed, not recomputed


@pytest.mark.parametrize("method", ["adam", "lbfgs"])
def test_checkpoint_of_another_objective_with_the_same_options_is_refused(tmp_path, method):
    """Same x0, method, iters and seed, but another target: the loss at x0 tells them apart."""
    def quadratic(target):
        return lambda x: (float(np.sum((x - target) ** 2)), 2.0 * (x - target))

    path = tmp_path / f"{method}.ckpt"
    x0 = np.zeros(3)
    first = opt.minimize(quadratic(1.0), x0, method=method, iters=4, checkpoint=path)
    with pytest.raises(opt.CheckpointError, match="loss at x0 was 3; this objective gives 12"):
        opt.minimize(quadratic(2.0), x0, method=method, iters=4, checkpoint=path)
    again = opt.minimize(quadratic(1.0), x0, method=method, iters=4, checkpoint=path)
    assert again.x.tobytes() == first.x.tobytes()  # the right objective still gets its result


def test_a_checkpoint_path_that_cannot_be_written_is_refused_before_any_work(tmp_path):
    calls = []

    def bowl(x):
        calls.append(1)
        return float(x @ x), 2.0 * x

    with pytest.raises(opt.CheckpointError, match="is a directory; give a file path"):
        opt.minimize(bowl, np.ones(2), iters=3, checkpoint=tmp_path)
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    with pytest.raises(opt.CheckpointError, match="cannot be written"):
        opt.minimize(bowl, np.ones(2), iters=3, checkpoint=blocker / "fit.ckpt")
    assert not calls
