"""Trains OML 4.0's recipe for bench_quality.py inside the peers' venv (never imported by OML).

    python peer_worker.py DATA.npz STEPS SEED THREADS OUT.npy

DATA.npz holds ``train_x`` (N, 3, S, S float32, normalised), ``train_y``, ``val_x``: the same tensors the bench
gives this project's runs. OML's recipe: ResNet-18 from scratch (OML's ``ResnetExtractor``), ``TripletLossWithMiner(
0.2, HardTripletsMiner())``, ``BalanceSampler(16, 4)``, Adam 3e-4. Prints one JSON line: wall and CPU time of the
training steps; writes the validation embeddings to OUT.npy.
"""

from __future__ import annotations

import json
import random
import sys
import time

sys.path.insert(0, "/work/shared/peers")
import tv_shim  # noqa: E402

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
    train_x, train_y, val_x = torch.from_numpy(data["train_x"]), data["train_y"], torch.from_numpy(data["val_x"])
    model = ResnetExtractor(weights=None, arch="resnet18", gem_p=None, remove_fc=True, normalise_features=False)
    criterion = TripletLossWithMiner(margin=0.2, miner=HardTripletsMiner())
    sampler = BalanceSampler(train_y.tolist(), n_labels=16, n_instances=4)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-4)
    labels = torch.from_numpy(train_y)
    model.train()
    done, wall, cpu = 0, 0.0, 0.0
    while done < steps:
        for batch in sampler:
            if done == steps:
                break
            idx = torch.as_tensor(batch)
            start_wall, start_cpu = time.perf_counter(), time.process_time()
            loss = criterion(model(train_x[idx]), labels[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            wall += time.perf_counter() - start_wall
            cpu += time.process_time() - start_cpu
            done += 1
    model.eval()
    with torch.no_grad():
        embeddings = torch.cat([model(val_x[i : i + 512]) for i in range(0, len(val_x), 512)])
    np.save(out_path, embeddings.numpy())
    print(json.dumps({"train_wall_s": wall, "train_cpu_s": cpu, "steps": done, "loss": float(loss)}))


if __name__ == "__main__":
    main()
