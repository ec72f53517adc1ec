import json
import logging
import os
import signal
import subprocess
import sys
import warnings
from contextlib import nullcontext
from types import SimpleNamespace

import ase.io
import numpy as np
import pytest
import torch
import torch.distributed as dist
from process_pairs import run_pair
from small_runs import SMALL, train

from gaunt_tp.data import Configuration, ElementTable, to_graph
from gaunt_tp.errors import InputError, InputWarning
from gaunt_tp.training.batching import batches_of, evaluation_shares, graph_cost, process_shares
from gaunt_tp.training.checkpoint import latest_checkpoint, load_checkpoint
from gaunt_tp.training.cli import main
from gaunt_tp.training.config import config_from_args
from gaunt_tp.training.distributed import first_process_speaks, from_first
from gaunt_tp.training.evaluation import final_errors
from gaunt_tp.training.loop import run_training
from gaunt_tp.training.metrics import ErrorAccumulator, label_counts, weighted_loss
from gaunt_tp.training.records import read_history

ARGS = ["--num_channels", "4", "--max_L", "1", "--max_ell", "2", "--r_max", "4.0", "--batch_size", "5",
        "--num_radial_basis", "4", "--E0s", "average", "--plots", "false", "--max_num_epochs", "2"]  # fmt: skip


def _run_group(cmd: list[str], env: dict, timeout: float) -> subprocess.CompletedProcess:
    """``cmd`` in a session of its own, the whole session killed when it overruns ``timeout`` (torchrun's workers
    would outlive torchrun itself)."""
    with subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          start_new_session=True) as proc:  # fmt: skip
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            out, err = proc.communicate()
            pytest.fail(f"torchrun overran {timeout} s: {err[-3000:]}")
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


def _assert_tables_close(got: dict, expected: dict, rtol: float) -> None:
    """Every value of the error tables ``expected`` (split, config_type, column) is in ``got``, equal to ``rtol``."""
    for split, kinds in expected.items():
        for kind, row in kinds.items():
            for column, value in row.items():
                np.testing.assert_allclose(
                    got[split][kind][column], value, rtol=rtol, err_msg=f"{split} {kind} {column}"
                )


def _labelled_graphs(count: int, seed: int) -> list:
    """``count`` graphs of 1-6 atoms in cells with a volume, random labels, some energies, forces and stresses
    missing (NaN), weights 0.5-2."""
    rng = np.random.default_rng(seed)
    graphs = []
    for i in range(count):
        n = int(rng.integers(1, 7))
        forces = rng.standard_normal((n, 3))
        if i % 3 == 1:
            forces[0] = np.nan
        config = Configuration(
            atomic_numbers=rng.choice([1, 6, 8], n), positions=3 * rng.random((n, 3)), cell=4 * np.eye(3),
            energy=None if i % 4 == 2 else float(rng.standard_normal()), forces=forces,
            stress=None if i % 2 else rng.standard_normal((3, 3)), weight=float(rng.uniform(0.5, 2.0)),
        )  # fmt: skip
        graphs.append(to_graph(config, ElementTable([1, 6, 8]), 3.0))
    return graphs


def _predictions(batch, seed: int) -> dict:
    """Random stand-ins for a model's outputs on ``batch``."""
    n = batch.positions.shape[0]
    gen = torch.Generator().manual_seed(seed)
    return {"energy": torch.randn(batch.num_graphs, generator=gen, dtype=torch.float64),
            "forces": torch.randn(n, 3, generator=gen, dtype=torch.float64),
            "stress": torch.randn(batch.num_graphs, 3, 3, generator=gen, dtype=torch.float64)}  # fmt: skip


@pytest.mark.parametrize(("size", "world"), [(5, 2), (4, 2), (3, 4), (7, 3)])
def test_process_shares_deal_out_the_global_batches_and_their_losses_add_up(size, world):
    """Each global batch of one process is dealt out between ``world`` processes whatever ``size``: the shares
    hold its graphs once each, and their losses, with the global label counts, add up to the global batch's loss
    (energy, forces, stress and virials terms, missing labels and weights included); empty shares are stand-ins."""
    graphs = _labelled_graphs(11, seed=size * 10 + world)
    counts = [label_counts(g) for g in graphs]
    costs = [graph_cost(g) for g in graphs]
    whole = batches_of(graphs, size, torch.Generator().manual_seed(7))
    shares = [
        process_shares(graphs, counts, costs, size, torch.Generator().manual_seed(7), r, world) for r in range(world)
    ]
    assert all(len(s) == len(whole) for s in shares)  # every process takes every step
    weights = (1.0, 10.0, 3.0, 2.0)
    for b, batch in enumerate(whole):
        parts = [shares[r][b] for r in range(world)]
        real = [(g, share) for g, share in parts if not share.stand_in]
        assert sum(g.num_graphs for g, _ in real) == batch.num_graphs
        assert len(real) == min(world, batch.num_graphs)
        single_costs = [graph_cost(b) for b in _singles(batch)]
        loads = [graph_cost(g) for g, _ in real] + [0] * (world - len(real))
        assert max(loads) - min(loads) <= max(single_costs)  # dealt out by cost, not by count
        order = _graph_order(batch, [g for g, _ in real])
        assert sorted(order) == list(range(batch.num_graphs))  # each of its graphs in one share
        assert all(share.counts == label_counts(batch) and share.processes == world for _, share in parts)
        out = _predictions(batch, seed=b)  # each share's outputs cut from these
        start = 0
        total = torch.zeros((), dtype=torch.float64)
        for g, share in real:
            picked = order[start : start + g.num_graphs]
            start += g.num_graphs
            atoms = torch.cat([torch.arange(batch.ptr[i], batch.ptr[i + 1]) for i in picked])
            part = {"energy": out["energy"][picked], "forces": out["forces"][atoms], "stress": out["stress"][picked]}
            total += weighted_loss(g, part, *weights, counts=share.counts)
        torch.testing.assert_close(total, weighted_loss(batch, out, *weights), rtol=1e-13, atol=0)


@pytest.mark.parametrize("world", [2, 3, 16])
def test_evaluation_shares_deal_each_batch_once_by_cost_and_merge_to_one_processs_errors(world):
    """The evaluation batches, dealt out between ``world`` processes (more than batches included), each go to one
    process, the loads differ by at most one batch's cost, and the processes' errors and kept values, merged in
    rank order, give one process's tables and values."""
    batches = batches_of(_labelled_graphs(23, seed=world), 2)
    shares = evaluation_shares(batches, world)
    assert sorted(i for share in shares for i in share) == list(range(len(batches)))
    assert all(share == sorted(share) for share in shares)
    costs = [graph_cost(b) for b in batches]
    loads = [sum(costs[i] for i in share) for share in shares]
    assert max(loads) - min(loads) <= max(costs)
    if world == 2:  # by cost, not by index: batch k to process k % 2 would differ here
        assert shares != [list(range(0, len(batches), 2)), list(range(1, len(batches), 2))]
    whole = ErrorAccumulator(keep_values=True)
    parts = [ErrorAccumulator(keep_values=True) for _ in shares]
    for b, batch in enumerate(batches):
        out = _predictions(batch, seed=b)
        whole.add(batch, out)
        parts[next(r for r, share in enumerate(shares) if b in share)].add(batch, out)
    merged = ErrorAccumulator.merged(parts)
    for kind, row in whole.table().items():
        for column, value in row.items():
            np.testing.assert_allclose(merged.table()[kind][column], value, rtol=1e-12, err_msg=f"{kind} {column}")
    for name, (ref, pred) in whole.values().items():
        got_ref, got_pred = merged.values()[name]
        order, got_order = np.lexsort((pred, ref)), np.lexsort((got_pred, got_ref))
        np.testing.assert_array_equal(got_ref[got_order], ref[order])
        np.testing.assert_array_equal(got_pred[got_order], pred[order])
    parts[0] = ErrorAccumulator()  # one part without values: the merged accumulator keeps none
    with pytest.raises(RuntimeError, match="keep_values"):
        ErrorAccumulator.merged(parts).values()


def _singles(batch) -> list:
    """The graphs of ``batch`` one by one (their atoms and edges alone)."""
    out = []
    for i in range(batch.num_graphs):
        atoms = slice(int(batch.ptr[i]), int(batch.ptr[i + 1]))
        edges = (batch.edge_index[1] >= atoms.start) & (batch.edge_index[1] < atoms.stop)
        out.append(SimpleNamespace(positions=batch.positions[atoms], edge_index=batch.edge_index[:, edges]))
    return out


def _graph_order(batch, parts: list) -> list[int]:
    """The global batch's graph indices in the order the shares hold them (graphs matched by their positions)."""
    keys = [batch.positions[batch.ptr[i] : batch.ptr[i + 1]] for i in range(batch.num_graphs)]
    order = []
    for part in parts:
        for j in range(part.num_graphs):
            mine = part.positions[part.ptr[j] : part.ptr[j + 1]]
            order.append(next(i for i, k in enumerate(keys) if k.shape == mine.shape and torch.equal(k, mine)))
    return order


def test_two_processes_match_one_with_the_same_global_batch(tmp_path, shared_data):
    """Molecules of 27 and 9 atoms, a global batch of 5 (3 + 2 per step) and a last batch of one configuration
    (the second process takes a stand-in), the validation batches split between the processes: the weights after
    two epochs and the logged losses and errors equal one process's. At this learning rate the second epoch validates
    worse, so the final tables are those of the first epoch's model, read by the first process and sent to the
    other."""
    frames = ase.io.read(shared_data / "ethanol" / "train.xyz", index=":9")
    frames += ase.io.read(shared_data / "3bpa" / "train_300K.xyz", index=":5")
    ase.io.write(tmp_path / "train.xyz", frames[0:4] + frames[9:12] + frames[4:8])  # 11: batches of 5, 5 and 1
    ase.io.write(tmp_path / "valid.xyz", [frames[8], frames[12]])
    common = ["--train_file", str(tmp_path / "train.xyz"), "--valid_file", str(tmp_path / "valid.xyz"),
              "--work_dir", str(tmp_path), "--valid_batch_size", "1", *ARGS, "--lr", "0.2"]  # fmt: skip
    assert main(["train", "--name", "single", *common]) == 0
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    # --standalone: torchrun binds a free port itself (a port found free beforehand may be taken by then)
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    cmd = [*launcher, "-m", "gaunt_tp.training.cli", "train", "--name", "ddp", *common]
    done = _run_group(cmd, env, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    a = load_checkpoint(latest_checkpoint(tmp_path / "single" / "checkpoints"))
    b = load_checkpoint(latest_checkpoint(tmp_path / "ddp" / "checkpoints"))
    assert a["epoch"] == b["epoch"] == 2
    for key in a["model"]:
        torch.testing.assert_close(a["model"][key], b["model"][key], rtol=0, atol=1e-10)
    one, two = (read_history(tmp_path / name / "metrics.csv") for name in ("single", "ddp"))
    assert list(one) == list(two) and one["epoch"] == [1, 2]
    for column in one.keys() - {"time_s"}:  # the training loss is the global batches' mean too
        np.testing.assert_allclose(one[column], two[column], rtol=1e-9, atol=0, err_msg=column)
    assert one["valid_loss"][0] < one["valid_loss"][1]  # the best model is not the last one
    tables = [json.loads((tmp_path / name / "errors.json").read_text()) for name in ("single", "ddp")]  # shared
    for column in ("rmse_f_meV_per_A", "mae_e_meV"):  # the best model's, shared out
        np.testing.assert_allclose(tables[1]["valid"]["all"][column], one[column][0], rtol=1e-9, err_msg=column)
    assert tables[0].keys() == tables[1].keys() == {"train", "valid"}
    _assert_tables_close(tables[1], tables[0], rtol=1e-9)


def test_each_torchrun_process_takes_its_local_gpu(monkeypatch):
    """``--device cuda`` under torchrun: process LOCAL_RANK=k runs on cuda:k (all on cuda:0 would clash in NCCL);
    without torchrun the current GPU, by index, which ``torch.cuda.set_device`` needs (a bare ``cuda`` stopped the
    first training on an H200); an explicit index or a CPU keep the device given."""
    from torch.cuda._utils import _get_device_index  # what torch.cuda.set_device parses its argument with

    from gaunt_tp.training.distributed import local_device

    monkeypatch.setattr(torch.cuda, "current_device", lambda: 2)  # no GPU needed
    cuda, cpu = torch.device("cuda"), torch.device("cpu")
    assert local_device(cuda, {"LOCAL_RANK": "3"}) == torch.device("cuda", 3)
    assert local_device(torch.device("cuda", 1), {"LOCAL_RANK": "3"}) == torch.device("cuda", 1)
    assert local_device(cuda, {}) == torch.device("cuda", 2) and local_device(cpu, {"LOCAL_RANK": "1"}) == cpu
    assert _get_device_index(local_device(cuda, {})) == 2
    with pytest.raises(ValueError):  # the failure mended
        _get_device_index(cuda)


def test_a_global_batch_smaller_than_the_processes_is_a_warning(tmp_path, shared_data, monkeypatch, caplog):
    """Under 8 processes a batch of 5 leaves 3 standing by at every step: said before anything else happens (the
    run stops next here, at its missing foundation model)."""
    from gaunt_tp.training import loop

    monkeypatch.setattr(loop, "process_group", lambda device: nullcontext((0, 8)))
    train = ["--train_file", str(shared_data / "ethanol" / "train.xyz"), "--work_dir", str(tmp_path)]
    with caplog.at_level("WARNING", logger="gaunt_tp.train"):
        code = main(["train", *train, "--batch_size", "5", "--foundation_model", str(tmp_path / "missing.model")])
    assert code != 0
    assert "batch_size 5 is smaller than the 8 processes: 3 of them only stand by" in caplog.text
    caplog.clear()
    monkeypatch.setattr(loop, "process_group", lambda device: nullcontext((0, 5)))
    with caplog.at_level("WARNING", logger="gaunt_tp.train"):
        main(["train", *train, "--batch_size", "5", "--foundation_model", str(tmp_path / "missing.model")])
    assert "smaller than" not in caplog.text


def _from_first(rank: int, failure: str | None) -> object:
    """What ``from_first`` gives process ``rank`` of work that returns its rank, or raises ``failure``."""

    def work() -> object:
        if failure == "input":
            raise InputError("data.xyz: configuration 3 has no forces")
        if failure == "other":
            raise ValueError("a bug")
        return {"made_by": rank}

    return from_first(work, rank, 2, torch.device("cpu"))


def test_what_the_first_process_decides_or_fails_at_reaches_the_other(tmp_path):
    """The first process's result reaches the other (which does not do the work); its failure stops both: the same
    InputError, or a RuntimeError naming the error, not a wait in a collective until the group times out."""
    for case, failure in enumerate((None, "input", "other")):
        (tmp_path / str(case)).mkdir()
        first, second = run_pair(_from_first, tmp_path / str(case), failure)
        if failure is None:
            assert first == second == {"value": {"made_by": 0}}
        elif failure == "input":
            assert first == second == {"error": "InputError", "message": "data.xyz: configuration 3 has no forces"}
        else:
            assert first == {"error": "ValueError", "message": "a bug"}
            assert second == {
                "error": "RuntimeError",
                "message": "the first process (rank 0) stopped: ValueError: a bug",
            }


def _resume_on_own_disks(rank: int, data: str, folder: str) -> dict:
    """Process ``rank`` resumes run ``run`` to epoch 3 in a folder of its own: ``folder/first`` (which holds the
    run) for the first, an empty ``folder/second`` for the other, as if each saw only its own disk."""
    work_dir = os.path.join(folder, "first" if rank == 0 else "second")
    argv = ["--train_file", data, "--work_dir", work_dir, "--name", "run", *SMALL, "--max_num_epochs", "3",
            "--restart_latest"]  # fmt: skip
    return {"tables": run_training(config_from_args(argv)), "in_group": dist.is_initialized()}


def test_a_restart_under_torchrun_needs_the_run_folder_on_the_first_processs_disk_only(tmp_path, data):
    """A run of one process "killed" after epoch 2 is resumed by two processes, the second on a disk without the
    run folder: the first reads the checkpoint and sends it, the second writes nothing; the weights and final
    errors after epoch 3 equal an uninterrupted run's of one process. Both join the process group themselves, as
    under torchrun, and leave it at the end."""
    straight = train(tmp_path, data, "straight", "--max_num_epochs", "3")
    train(tmp_path / "first", data, "run", "--max_num_epochs", "2")
    first, second = run_pair(_resume_on_own_disks, tmp_path, str(data), str(tmp_path), joined=False)
    assert "error" not in first and second == {"value": {"tables": {}, "in_group": False}}, (first, second)
    assert not first["value"]["in_group"]
    assert not (tmp_path / "second").exists()
    resumed = tmp_path / "first" / "run"
    a = load_checkpoint(latest_checkpoint(straight / "checkpoints"))
    b = load_checkpoint(latest_checkpoint(resumed / "checkpoints"))
    assert a["epoch"] == b["epoch"] == 3
    for key in a["model"]:
        torch.testing.assert_close(a["model"][key], b["model"][key], rtol=0, atol=1e-10)
    assert read_history(resumed / "metrics.csv")["epoch"] == [1, 2, 3]
    tables = [json.loads((run / "errors.json").read_text()) for run in (straight, resumed)]
    _assert_tables_close(tables[1], tables[0], rtol=1e-9)
    assert tables[1] == first["value"]["tables"]


class _StandIn(torch.nn.Module):
    """A model's outputs made of each graph's own positions (float64), whatever the batch it is in."""

    def forward(self, batch, compute_forces: bool = True, compute_stress: bool = False) -> dict:
        pos = batch.positions.double()
        graph = torch.repeat_interleave(torch.arange(batch.num_graphs), batch.ptr.diff())
        energy = torch.zeros(batch.num_graphs, dtype=torch.float64).index_add_(0, graph, pos.sum(1).sin())
        out = {"energy": energy, "forces": pos.cos()}
        if compute_stress:
            out["stress"] = energy[:, None, None] * torch.linspace(-1.0, 1.0, 9, dtype=torch.float64).view(3, 3)
        return out


def _final_values(rank: int) -> dict:
    """The final tables and kept values (for --plots) of the stand-in model on two splits, shared out between two
    processes; on the first, also those of one process alone."""
    graphs = _labelled_graphs(17, seed=3)
    splits = [("valid", graphs[:9]), ("test", graphs[9:])]
    plain = lambda tables, values: {  # noqa: E731
        "tables": tables,
        "values": {s: {k: [r.tolist(), p.tolist()] for k, (r, p) in v.items()} for s, v in values.items()},
    }
    shared = plain(*final_errors(_StandIn(), splits, 2, rank, 2, torch.device("cpu"), keep_values=True))
    alone = (
        plain(*final_errors(_StandIn(), splits, 2, 0, 1, torch.device("cpu"), keep_values=True)) if rank == 0 else None
    )
    return {"shared": shared, "alone": alone}


def test_the_final_tables_and_plotted_values_gather_to_the_first_process(tmp_path):
    """Shared out between two processes, the best model's final errors and the (reference, predicted) pairs that
    --plots draws reach the first process whole: equal to one process's up to order (the second gets none)."""
    first, second = run_pair(_final_values, tmp_path)
    assert second == {"value": {"shared": {"tables": {}, "values": {}}, "alone": None}}, second
    shared, alone = first["value"]["shared"], first["value"]["alone"]
    assert shared["tables"].keys() == alone["tables"].keys() == {"valid", "test"}
    _assert_tables_close(shared["tables"], alone["tables"], rtol=1e-12)
    assert {s: set(v) for s, v in shared["values"].items()} == {
        s: {"energy", "forces", "stress"} for s in alone["values"]
    }
    for split, kept in alone["values"].items():
        for name, (ref, pred) in kept.items():
            got_ref, got_pred = shared["values"][split][name]
            assert len(got_ref) == len(ref) > 0
            assert sorted(zip(got_ref, got_pred)) == sorted(zip(ref, pred)), (split, name)


def test_only_the_first_process_logs_info_and_warnings(caplog):
    """The other processes' info lines and input warnings would repeat the first's; their errors still show, and so
    do other Python warnings (torch's, attributed to gaunt-tp's calling module; those about gaunt-tp's kernels)."""

    log = logging.getLogger("gaunt_tp.train")
    for rank in (0, 1):
        caplog.clear()
        with caplog.at_level("INFO", logger="gaunt_tp.train"), warnings.catch_warnings(record=True) as shown:
            warnings.simplefilter("always")
            with first_process_speaks(rank, log):
                log.info("epoch 1")
                log.warning("a warning")
                log.error("stopped")
                warnings.warn_explicit("of the data", InputWarning, "readers.py", 1, module="gaunt_tp.data.readers")
                # attributed to gaunt-tp's calling module (stacklevel), as torch's warnings are
                warnings.warn_explicit("of torch", UserWarning, "model.py", 1, module="gaunt_tp.nn.model")
                warnings.warn_explicit("of a kernel", RuntimeWarning, "model.py", 1, module="gaunt_tp.nn.model")
        assert [r.getMessage() for r in caplog.records] == (
            ["epoch 1", "a warning", "stopped"] if rank == 0 else ["stopped"]
        )
        kept = ["of torch", "of a kernel"]
        assert [str(w.message) for w in shown] == (["of the data", *kept] if rank == 0 else kept)
    log.warning("after")  # the filter is gone
    assert caplog.records[-1].getMessage() == "after"


def test_the_other_processes_repeat_no_warning_of_the_options_or_the_data(tmp_path, data, monkeypatch, caplog, capsys):
    """Under torchrun every process reads the options and the data: what they warn of (here --model MACE's first
    layer and a misspelt --energy_key) shows once, from the first process (``RANK`` 0); the error that stops the
    run (no stress labels for --loss stress) shows on every process, which it names."""
    argv = ["train", "--train_file", str(data), "--work_dir", str(tmp_path), *SMALL, "--model", "MACE",
            "--interaction_first", "RealAgnosticResidualInteractionBlock", "--energy_key", "REF_enrgy", "--loss",
            "stress"]  # fmt: skip
    for rank in (0, 1):
        monkeypatch.setenv("RANK", str(rank))
        caplog.clear()
        with caplog.at_level("INFO", logger="gaunt_tp.train"), warnings.catch_warnings(record=True) as shown:
            warnings.simplefilter("always")
            assert main([*argv, "--name", f"rank{rank}"]) == 2
        assert f"gaunt-tp train (rank {rank}): error: --loss stress, but no configuration" in capsys.readouterr().err
        said = [r.getMessage() for r in caplog.records] + [str(w.message) for w in shown]
        for words in ("the first layer has no self-connection", "energy key 'REF_enrgy' is in none of its 12"):
            assert any(words in line for line in said) == (rank == 0), (rank, words, said)
