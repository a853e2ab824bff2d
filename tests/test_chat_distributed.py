"""Data parallel on 2 CPU processes (torch.distributed, gloo, DDP): train-chat (with
ElasticVocab.sync; the ranks see different conversations with different new names) ends with
the same parameters and vocabulary; MNM bAbI training ends with the same model on both ranks."""
import argparse
import json
import os
import socket

import torch.multiprocessing as mp


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank, world, port, out_dir):
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    import torch
    torch.set_num_threads(1)
    from memory_ext.chat.cli import add_train_arguments, run_train
    parser = argparse.ArgumentParser()
    add_train_arguments(parser)  # the command's own defaults for every flag not given here
    args = parser.parse_args(["--out", os.path.join(out_dir, "bot.pt"), "--conversations", "24",
                              "--epochs", "1", "--batch-size", "4", "--lr", "2e-3", "--threads", "1",
                              "--eval", "0"])
    res = run_train(args)
    with open(os.path.join(out_dir, f"rank{rank}.json"), "w") as f:
        json.dump(res, f)
    os._exit(0)  # as in test_vocab_distributed: skip gloo's occasional abort at interpreter exit


def test_two_ranks_train_chat_in_step(tmp_path):
    mp.spawn(_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True)
    r0, r1 = (json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1))
    assert r0["world_size"] == r1["world_size"] == 2
    assert r0["vocab"] == r1["vocab"] > 50
    assert r0["param_checksum"] == r1["param_checksum"]  # every parameter and the vocabulary
    assert (tmp_path / "bot.pt").exists()  # rank 0 saved the checkpoint


def _babi_worker(rank, world, port, out_dir, data):
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    import torch
    torch.set_num_threads(1)
    from memory_ext.babi.mnm import train_mnm
    r = train_mnm(data, 1, split="en", epochs=1, d=16, hidden=16, memory_widths=(16, 16))
    sums = [float(p.detach().double().sum()) for p in r["model"].parameters()]
    with open(os.path.join(out_dir, f"babi{rank}.json"), "w") as f:
        json.dump({"sums": sums, "test_error": r["test_error"]}, f)
    os._exit(0)


def test_two_ranks_train_mnm_babi_in_step(tmp_path):
    data = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "babi")
    if not os.path.isdir(data):
        import pytest
        pytest.skip("shared bAbI data not found")
    mp.spawn(_babi_worker, args=(2, _free_port(), str(tmp_path), data), nprocs=2, join=True)
    r0, r1 = (json.loads((tmp_path / f"babi{r}.json").read_text()) for r in (0, 1))
    assert r0 == r1  # DDP kept the replicas identical; both evaluate the same model
