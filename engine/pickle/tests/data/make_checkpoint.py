"""Writes the small torch checkpoints used by the zip / legacy checkpoint tests.

Run with any recent torch (CPU is enough), from this folder:

    python3 make_checkpoint.py

It writes, with fixed random seeds:
  detector-tiny.pt         zip torch.save of {'model': OrderedDict(...), 'epoch': 3, ...}, laid
                           out like the ResNet-50 checkpoints of Wang et al. 2020 (conv / bn /
                           fc names, a 0-d int64 num_batches_tracked), plus tensors that share
                           a storage (a transpose with its base, a row with an offset) and
                           float16 / float64 / bool / int32 tensors
  detector-tiny-legacy.pt  the same object with _use_new_zipfile_serialization=False
                           (the pre-1.6 format)
  detector-tiny.sha256     per state-dict entry, in order: sha256 of the tensor's C-order
                           little-endian bytes (as `t.contiguous().numpy().tobytes()`), name,
                           dtype, shape
"""

import collections
import hashlib

import torch

torch.manual_seed(20200101)

sd = collections.OrderedDict()
sd["conv1.weight"] = torch.randn(8, 3, 7, 7)
sd["bn1.weight"] = torch.rand(8)
sd["bn1.bias"] = torch.randn(8)
sd["bn1.running_mean"] = torch.randn(8)
sd["bn1.running_var"] = torch.rand(8) + 0.5
sd["bn1.num_batches_tracked"] = torch.tensor(1234, dtype=torch.int64)
sd["layer1.0.conv1.weight"] = torch.randn(4, 8, 1, 1)
base = torch.randn(5, 6)
sd["views.base"] = base
sd["views.transposed"] = base.t()  # same storage, strides (1, 6)
sd["views.row"] = base[2]  # same storage, offset 12
sd["views.column"] = base[:, 3]  # offset 3, stride 6
sd["extra.half"] = torch.randn(3, 4).half()
sd["extra.double"] = torch.randn(2, 2).double()
sd["extra.mask"] = torch.tensor([True, False, True])
sd["extra.int"] = torch.arange(-3, 3, dtype=torch.int32).reshape(2, 3)
sd["fc.weight"] = torch.randn(1, 8)
sd["fc.bias"] = torch.randn(1)

obj = {"model": sd, "epoch": 3, "name": "detector-tiny"}
torch.save(obj, "detector-tiny.pt")
torch.save(obj, "detector-tiny-legacy.pt", _use_new_zipfile_serialization=False)

with open("detector-tiny.sha256", "w") as f:
    f.write("# state dict of detector-tiny.pt: sha256 of C-order little-endian bytes, name, dtype, shape\n")
    for name, t in sd.items():
        data = t.contiguous().numpy().tobytes()
        dtype = str(t.dtype).replace("torch.", "")
        f.write(f"{hashlib.sha256(data).hexdigest()}  {name}  {dtype}  {list(t.shape)}\n")
print("wrote detector-tiny.pt, detector-tiny-legacy.pt, detector-tiny.sha256")
