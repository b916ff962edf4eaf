"""Trains OML 4.0's recipe for bench_quality.py inside the peers' venv (never imported by OML).

    python peer_worker.py DATA.npz STEPS SEED THREADS OUT.npy

DATA.npz holds ``train_x`` (N, 3, S, S float32, normalised), ``train_y``, ``val_x``: the same tensors the bench
gives this project's runs. OML's recipe: ResNet-18 from scratch (OML's ``ResnetExtractor``), ``TripletLossWithMiner(
0.2, HardTripletsMiner())``, ``BalanceSampler(16, 4)``, Adam 3e-4. Trains with bench_quality.train_loop (the loop of this
project's runs) and prints its JSON line (wall and CPU time of the training steps); writes the validation embeddings to OUT.npy.
"""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

sys.path.insert(0, "/work/shared/peers")
sys.path.insert(0, str(Path(__file__).resolve().parent))
import tv_shim  # noqa: E402
from bench_quality import train_loop  # noqa: E402  (the same loop as this project's runs; no OML import in it)

tv_shim.ensure_torchvision()

import numpy as np  # noqa: E402
import torch  # noqa: E402


def main() -> None:
    data_path, steps, seed, threads, out_path = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
    torch.set_num_threads(threads)
    from oml.losses.triplet import TripletLossWithMiner
    from oml.miners.inbatch_hard_tri import HardTripletsMiner
    from oml.models import ResnetExtractor
    from oml.samplers.balance import BalanceSampler

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    data = np.load(data_path)
    train_y, val_x = data["train_y"], torch.from_numpy(data["val_x"])
    model = ResnetExtractor(weights=None, arch="resnet18", gem_p=None, remove_fc=True, normalise_features=False)
    criterion = TripletLossWithMiner(margin=0.2, miner=HardTripletsMiner())
    sampler = BalanceSampler(train_y.tolist(), n_labels=16, n_instances=4)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-4)
    info = train_loop(model, criterion, sampler, optimizer, None, {"train_x": data["train_x"], "train_y": train_y}, steps)
    model.eval()
    with torch.no_grad():
        embeddings = torch.cat([model(val_x[i : i + 512]) for i in range(0, len(val_x), 512)])
    np.save(out_path, embeddings.numpy())
    print(json.dumps(info))


if __name__ == "__main__":
    main()
