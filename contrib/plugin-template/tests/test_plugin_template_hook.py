"""The engine hook, run by a real engine: two epochs write two JSON lines into the run directory."""

import json

import torch
from oml_core.engine import Engine, EngineOptions

from oml_plugin_template import CentroidLoss, TemplateCNN
from oml_plugin_template.plugin import EPOCH_LOG_NAME


class Images(torch.utils.data.Dataset):
    def __init__(self, n_labels=3, n_instances=4):
        generator = torch.Generator().manual_seed(0)
        self.labels = torch.arange(n_labels).repeat_interleave(n_instances)
        self.images = torch.rand(len(self.labels), 3, 16, 16, generator=generator)

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, index):
        return {"input_tensors": self.images[index], "labels": int(self.labels[index]), "idx": index}


class Batches:
    """Two fixed batches per epoch (a BatchSampler: __iter__, __len__, set_epoch)."""

    def __iter__(self):
        return iter([[0, 1, 4, 5, 8, 9], [2, 3, 6, 7, 10, 11]])

    def __len__(self):
        return 2

    def set_epoch(self, epoch):
        pass


def test_epoch_end_hook_records_every_epoch(tmp_path, oml_host):
    # oml_host loads the installed plugins, this one included (through its entry point)
    torch.manual_seed(0)
    model = TemplateCNN(feat_dim=8, width=4)
    options = EngineOptions(max_epochs=2, run_dir=str(tmp_path), progress_bar=False, amp=False, device="cpu")
    engine = Engine(
        model=model,
        criterion=CentroidLoss(),
        optimizer=torch.optim.SGD(model.parameters(), lr=0.1),
        train_dataset=Images(),
        batch_sampler=Batches(),
        options=options,
        host=oml_host,
    )
    state = engine.fit()
    lines = (tmp_path / EPOCH_LOG_NAME).read_text().splitlines()
    records = [json.loads(line) for line in lines]
    assert [r["epoch"] for r in records] == [1, 2]
    assert [r["step"] for r in records] == [2, 4]
    assert records[-1]["last_loss"] == state.last_loss
