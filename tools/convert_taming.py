#!/usr/bin/env python3
"""Convert a taming-transformers Lightning checkpoint into vqgpt safetensors.

usage: convert_taming.py --ckpt last.ckpt --config project.yaml --out model.safetensors
                         [--first-stage] [--disc-out disc.safetensors] [--dtype keep|f32|f16]

The checkpoint is what the reference's training wrote (`torch.load(ckpt)["state_dict"]`);
the config is its YAML (the `model:` section with `target` and `params`, as in the
reference's configs/ and logs/*/configs/*-project.yaml).

VQGAN (target taming.models.vqgan.VQModel)
  keeps encoder.*, decoder.*, quant_conv.*, post_quant_conv.*, quantize.embedding.weight;
  drops loss.* (LPIPS and the discriminator). Metadata: format "taming-vqgan", config
  {"embed_dim", "n_embed", "ddconfig"}. With --disc-out, the discriminator
  (loss.discriminator.*, prefix stripped) goes into a second file, format "taming-patchgan",
  config {"ndf", "n_layers", "in_channels"} from the loss config.

GumbelVQ (target taming.models.vqgan.GumbelVQ)
  the same, with the GumbelQuantize tensors quantize.proj.* (the code logits, a 1x1 conv
  z_channels -> n_embed) and quantize.embed.weight (the codebook); config adds
  "quantizer": "gumbel". vqgpt runs it for inference: each code is the argmax of the logits
  (the reference's encode draws a Gumbel-noised sample of them; the argmax is its mode).

Both VQGANs must read and write RGB (ddconfig in_channels = out_ch = 3): vqgpt's commands
take and give images, so other channel counts (depth, segmentation maps) are refused.

--first-stage (target taming.models.cond_transformer.Net2NetTransformer)
  writes the transformer checkpoint's VQGAN instead of its GPT: first_stage_model.* with the
  prefix stripped, converted as above with model.params.first_stage_config (VQModel or
  GumbelVQ) as its config.

GPT (target taming.models.cond_transformer.Net2NetTransformer)
  keeps transformer.* with the prefix stripped, drops the attn.mask buffers, the first and
  cond stage models. Metadata: format "taming-gpt", config {"vocab_size", "block_size",
  "n_layer", "n_head", "n_embd"} from transformer_config.params (plus the dropout rates when
  given), and the conditioning: "cond": "none" with "sos_token" for SOSProvider /
  __is_unconditional__, "cond": "class" with "n_classes" for Labelator; "n_codes" is the
  first stage's codebook size when the config names it. Other cond stages (segmentation,
  depth, __is_first_stage__) and non-identity permuters are refused: vqgpt samples one
  condition token and raster-order codes.

Tensors keep their dtype unless --dtype says otherwise (f32 or f16 for floating tensors).
The output is written to a temporary file beside the target and renamed into place.

Loading a checkpoint unpickles it. A plain weights-only load is tried first; a checkpoint
that needs more (Lightning's pickled callbacks and hyper-parameters) is then unpickled in
full, with classes of missing modules (pytorch_lightning, taming) replaced by stand-ins.
Full unpickling can run code from the file: convert only checkpoints you trust. Needs a torch
with `weights_only` (1.13 or later).

Needs python3 with torch and PyYAML (Debian: python3-torch python3-yaml python3-numpy).
Exit status: 0 on success, 1 on any error (one line on stderr).
"""

import argparse
import json
import os
import struct
import sys
import types

VQ_TARGET = "taming.models.vqgan.VQModel"
GUMBEL_TARGET = "taming.models.vqgan.GumbelVQ"
GPT_TARGET = "taming.models.cond_transformer.Net2NetTransformer"
VQ_PREFIXES = ("encoder.", "decoder.", "quant_conv.", "post_quant_conv.")
VQ_EXACT = ("quantize.embedding.weight",)
GUMBEL_EXACT = ("quantize.proj.weight", "quantize.proj.bias", "quantize.embed.weight")


class ConvertError(Exception):
    pass


# ---------------------------------------------------------------------------------------
# safetensors writer (the format: u64 little-endian header length, JSON header, raw data)

def _dtype_code(t):
    import torch
    codes = {
        torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16", torch.float64: "F64",
        torch.int64: "I64", torch.int32: "I32", torch.int8: "I8", torch.uint8: "U8",
        torch.bool: "BOOL",
    }
    if t.dtype not in codes:
        raise ConvertError(f"unsupported tensor dtype {t.dtype}")
    return codes[t.dtype]


def _tensor_bytes(t):
    import torch
    t = t.detach().cpu().contiguous()
    if t.dtype == torch.bfloat16:  # numpy has no bfloat16: same bits as int16
        t = t.view(torch.int16)
    a = t.numpy()
    return a.astype(a.dtype.newbyteorder("<"), copy=False).tobytes()


def write_safetensors(path, tensors, metadata):
    """tensors: dict name -> torch.Tensor; metadata: dict str -> str."""
    header = {}
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    blobs, offset = [], 0
    for name in sorted(tensors):
        t = tensors[name]
        data = _tensor_bytes(t)
        header[name] = {"dtype": _dtype_code(t), "shape": list(t.shape),
                        "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    text = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    text += b" " * (-len(text) % 8)  # the data section starts 8-byte aligned
    tmp = f"{path}.tmp.{os.getpid()}"
    try:
        with open(tmp, "wb") as f:
            f.write(struct.pack("<Q", len(text)))
            f.write(text)
            for b in blobs:
                f.write(b)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise ConvertError(f"{path}: cannot write: {e.strerror or e}")


# ---------------------------------------------------------------------------------------
# checkpoint loading

class _StandIn:
    """Replaces a pickled object whose class cannot be imported (Lightning callbacks...)."""

    def __init__(self, *args, **kwargs):
        self.args = args

    def __setstate__(self, state):
        self.state = state


class _StubModule(types.ModuleType):
    """A missing module (pytorch_lightning, taming) whose every attribute is a stand-in class."""

    __path__ = []  # a package, so that submodules can be stubbed under it

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        cls = type(name, (_StandIn,), {"__module__": self.__name__})
        setattr(self, name, cls)
        return cls


def _load_with_stubs(path):
    """torch.load with full unpickling; each missing module is stubbed and the load retried."""
    import torch
    added = []
    try:
        for _ in range(64):
            try:
                return torch.load(path, map_location="cpu", weights_only=False)
            except ModuleNotFoundError as e:
                if not e.name or e.name in sys.modules:
                    raise
                sys.modules[e.name] = _StubModule(e.name)
                added.append(e.name)
        raise ConvertError(f"{path}: cannot load checkpoint: too many missing modules")
    finally:
        for name in added:
            sys.modules.pop(name, None)


def load_state_dict(path):
    import torch
    if not os.path.isfile(path):
        raise ConvertError(f"{path}: no such file")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # pickled objects beyond tensors and containers
        try:
            ckpt = _load_with_stubs(path)
        except ConvertError:
            raise
        except Exception as e:
            raise ConvertError(f"{path}: cannot load checkpoint: {' '.join(str(e).split())}")
    if isinstance(ckpt, dict) and "state_dict" in ckpt:
        sd = ckpt["state_dict"]
    else:
        raise ConvertError(f"{path}: not a Lightning checkpoint (no 'state_dict')")
    if not isinstance(sd, dict) or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise ConvertError(f"{path}: 'state_dict' is not a dict of tensors")
    return sd


def load_config(path):
    import yaml
    try:
        with open(path) as f:
            cfg = yaml.safe_load(f)
    except OSError as e:
        raise ConvertError(f"{path}: cannot read: {e.strerror}")
    except yaml.YAMLError as e:
        raise ConvertError(f"{path}: invalid YAML: {' '.join(str(e).split())}")
    if isinstance(cfg, dict) and "model" in cfg:
        cfg = cfg["model"]
    if not isinstance(cfg, dict) or "target" not in cfg:
        raise ConvertError(f"{path}: no model target (expected 'model: {{target: ..., params: ...}}')")
    return cfg


# ---------------------------------------------------------------------------------------
# conversion

def _params(cfg, what, source):
    p = cfg.get("params") or {}
    if not isinstance(p, dict):
        raise ConvertError(f"{source}: {what} params is not a mapping")
    return p


def _require(params, keys, what, source):
    missing = [k for k in keys if k not in params]
    if missing:
        raise ConvertError(f"{source}: {what} is missing {', '.join(missing)}")


def _cast(tensors, dtype):
    import torch
    if dtype == "keep":
        return tensors
    to = {"f32": torch.float32, "f16": torch.float16}[dtype]
    return {k: (v.to(to) if v.is_floating_point() else v) for k, v in tensors.items()}


def _check_shape(keep, name, want, ckpt_name):
    got = list(keep[name].shape)
    if got != list(want):
        raise ConvertError(f"{ckpt_name}: {name} has shape {got}, config says {list(want)}")


def _check_rgb(dd, what, source):
    """vqgpt's commands read and write RGB images: refuse other channel counts up front."""
    chans = {k: dd.get(k) for k in ("in_channels", "out_ch")}
    if any(v != 3 for v in chans.values()):
        raise ConvertError(f"{source}: {what} has in_channels {chans['in_channels']} and out_ch "
                           f"{chans['out_ch']}; vqgpt's commands read and write RGB images, so "
                           "only 3 and 3 are supported")


def convert_vqgan(sd, cfg, source, ckpt_name):
    """VQModel or GumbelVQ: (tensors, metadata, discriminator, its config, dropped names)."""
    gumbel = cfg["target"] == GUMBEL_TARGET
    what = "GumbelVQ" if gumbel else "VQModel"
    p = _params(cfg, "model", source)
    _require(p, ["embed_dim", "n_embed", "ddconfig"], f"{what} params", source)
    if p.get("remap") is not None:
        raise ConvertError(f"{source}: {what} with remap is not supported")
    if not isinstance(p["ddconfig"], dict):
        raise ConvertError(f"{source}: {what} ddconfig is not a mapping")
    dd = dict(p["ddconfig"])
    _check_rgb(dd, what, source)
    config = {"embed_dim": p["embed_dim"], "n_embed": p["n_embed"], "ddconfig": dd}
    exact = GUMBEL_EXACT if gumbel else VQ_EXACT
    if gumbel:
        # GumbelQuantize's proj takes z_channels inputs but is fed quant_conv's embed_dim
        # outputs: the reference runs only when the two are equal.
        if dd.get("z_channels") != p["embed_dim"]:
            raise ConvertError(f"{source}: GumbelVQ with z_channels {dd.get('z_channels')} != "
                               f"embed_dim {p['embed_dim']} cannot run (its proj expects "
                               "z_channels inputs)")
        config = {"quantizer": "gumbel", **config}
    keep = {k: v for k, v in sd.items() if k.startswith(VQ_PREFIXES) or k in exact}
    for k in exact + ("encoder.conv_in.weight", "decoder.conv_out.weight", "quant_conv.weight",
                      "post_quant_conv.weight"):
        if k not in keep:
            raise ConvertError(f"{ckpt_name}: missing tensor '{k}' (is this a {what} checkpoint?)")
    n, e = p["n_embed"], p["embed_dim"]
    if gumbel:
        _check_shape(keep, "quantize.proj.weight", [n, e, 1, 1], ckpt_name)
        _check_shape(keep, "quantize.proj.bias", [n], ckpt_name)
        _check_shape(keep, "quantize.embed.weight", [n, e], ckpt_name)
    else:
        _check_shape(keep, "quantize.embedding.weight", [n, e], ckpt_name)
    disc = {k[len("loss.discriminator."):]: v for k, v in sd.items()
            if k.startswith("loss.discriminator.")}
    dropped = sorted(k for k in sd if k not in keep and not k.startswith("loss."))
    loss = _params(p.get("lossconfig") or {}, "lossconfig", source)
    disc_config = {"ndf": loss.get("disc_ndf", 64), "n_layers": loss.get("disc_num_layers", 3),
                   "in_channels": loss.get("disc_in_channels", 3)}
    if loss.get("use_actnorm"):
        disc_config["use_actnorm"] = True
    return keep, {"format": "taming-vqgan", "config": json.dumps(config)}, disc, disc_config, dropped


def _cond_info(p, source):
    """The conditioning as our config keys."""
    cond = p.get("cond_stage_config")
    if p.get("unconditional") or cond == "__is_unconditional__":
        return {"cond": "none", "sos_token": int(p.get("sos_token", 0))}
    if isinstance(cond, str):
        raise ConvertError(f"{source}: cond stage '{cond}' is not supported by vqgpt "
                           "(only unconditional and class-conditional models)")
    if not isinstance(cond, dict) or "target" not in cond:
        raise ConvertError(f"{source}: cond_stage_config has no target")
    target, cp = cond["target"], cond.get("params") or {}
    name = target.rsplit(".", 1)[-1]
    if name == "SOSProvider":
        return {"cond": "none", "sos_token": int(cp.get("sos_token", p.get("sos_token", 0)))}
    if name == "Labelator":
        if "n_classes" not in cp:
            raise ConvertError(f"{source}: Labelator without n_classes")
        return {"cond": "class", "n_classes": int(cp["n_classes"])}
    raise ConvertError(f"{source}: cond stage {target} is not supported by vqgpt "
                       "(only SOSProvider and Labelator)")


def convert_gpt(sd, cfg, source, ckpt_name):
    p = _params(cfg, "model", source)
    tc = p.get("transformer_config")
    if not isinstance(tc, dict):
        raise ConvertError(f"{source}: Net2NetTransformer without transformer_config")
    tp = _params(tc, "transformer_config", source)
    _require(tp, ["vocab_size", "block_size", "n_layer", "n_head", "n_embd"],
             "transformer_config params", source)
    perm = p.get("permuter_config")
    if isinstance(perm, dict) and not str(perm.get("target", "")).endswith(".Identity"):
        raise ConvertError(f"{source}: permuter {perm.get('target')} is not supported "
                           "(vqgpt samples codes in raster order)")
    config = {k: int(tp[k]) for k in ["vocab_size", "block_size", "n_layer", "n_head", "n_embd"]}
    for k in ["embd_pdrop", "resid_pdrop", "attn_pdrop"]:
        if k in tp:
            config[k] = float(tp[k])
    config.update(_cond_info(p, source))
    fs = p.get("first_stage_config")
    if isinstance(fs, dict) and isinstance(fs.get("params"), dict) and "n_embed" in fs["params"]:
        config["n_codes"] = int(fs["params"]["n_embed"])
    keep = {k[len("transformer."):]: v for k, v in sd.items()
            if k.startswith("transformer.") and not k.endswith(".attn.mask")}
    for k in ["tok_emb.weight", "pos_emb", "head.weight"]:
        if k not in keep:
            raise ConvertError(f"{ckpt_name}: missing tensor 'transformer.{k}' "
                               "(is this a Net2NetTransformer checkpoint?)")
    if tuple(keep["tok_emb.weight"].shape) != (config["vocab_size"], config["n_embd"]):
        raise ConvertError(f"{ckpt_name}: transformer.tok_emb.weight has shape "
                           f"{list(keep['tok_emb.weight'].shape)}, config says "
                           f"[{config['vocab_size']}, {config['n_embd']}]")
    dropped = sorted(k for k in sd if not k.startswith(("transformer.", "first_stage_model.",
                                                         "cond_stage_model.", "permuter.")))
    return keep, {"format": "taming-gpt", "config": json.dumps(config)}, dropped


def first_stage(cfg, sd, source, ckpt_name):
    """A Net2NetTransformer's VQGAN: (its config, its state_dict without the prefix)."""
    p = _params(cfg, "model", source)
    fs = p.get("first_stage_config")
    if not isinstance(fs, dict) or "target" not in fs:
        raise ConvertError(f"{source}: Net2NetTransformer without a first_stage_config target")
    if fs["target"] not in (VQ_TARGET, GUMBEL_TARGET):
        raise ConvertError(f"{source}: first stage {fs['target']} is not supported "
                           f"(supported: {VQ_TARGET}, {GUMBEL_TARGET})")
    prefix = "first_stage_model."
    sub = {k[len(prefix):]: v for k, v in sd.items() if k.startswith(prefix)}
    if not sub:
        raise ConvertError(f"{ckpt_name}: no {prefix}* tensors (is this a Net2NetTransformer "
                           "checkpoint?)")
    return fs, sub


def main(argv=None):
    ap = argparse.ArgumentParser(prog="convert_taming.py", usage=argparse.SUPPRESS,
                                 description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ckpt", required=True, help="Lightning checkpoint (.ckpt) of the reference")
    ap.add_argument("--config", required=True, help="its YAML config (model: target/params)")
    ap.add_argument("--out", required=True, help="output .safetensors")
    ap.add_argument("--first-stage", action="store_true",
                    help="Net2NetTransformer only: write its first stage (the VQGAN) instead")
    ap.add_argument("--disc-out", help="VQGAN only: also write the discriminator here")
    ap.add_argument("--dtype", choices=["keep", "f32", "f16"], default="keep",
                    help="storage type of floating tensors (default: as in the checkpoint)")
    args = ap.parse_args(argv)
    try:
        try:
            import torch  # noqa: F401
            import yaml  # noqa: F401
        except ImportError as e:
            raise ConvertError(f"needs torch and PyYAML ({e}); Debian: apt-get install "
                               "python3-torch python3-yaml python3-numpy")
        cfg = load_config(args.config)
        target = cfg["target"]
        sd = load_state_dict(args.ckpt)
        if args.first_stage:
            if target != GPT_TARGET:
                raise ConvertError(f"{args.config}: --first-stage needs a {GPT_TARGET} "
                                   f"(the model is {target})")
            if args.disc_out:
                raise ConvertError("--disc-out does not apply to --first-stage (a transformer "
                                   "checkpoint holds no discriminator)")
            cfg, sd = first_stage(cfg, sd, args.config, args.ckpt)
            target = cfg["target"]
        if target in (VQ_TARGET, GUMBEL_TARGET):
            tensors, meta, disc, disc_cfg, dropped = convert_vqgan(sd, cfg, args.config, args.ckpt)
            if args.disc_out:
                if not disc:
                    raise ConvertError(f"{args.ckpt}: no loss.discriminator.* tensors for --disc-out")
                write_safetensors(args.disc_out, _cast(disc, args.dtype),
                                  {"format": "taming-patchgan", "config": json.dumps(disc_cfg)})
        elif target == GPT_TARGET:
            if args.disc_out:
                raise ConvertError("--disc-out applies to VQModel checkpoints only")
            tensors, meta, dropped = convert_gpt(sd, cfg, args.config, args.ckpt)
        else:
            raise ConvertError(f"{args.config}: unsupported model target '{target}' "
                               f"(supported: {VQ_TARGET}, {GUMBEL_TARGET}, {GPT_TARGET})")
        write_safetensors(args.out, _cast(tensors, args.dtype), meta)
    except ConvertError as e:
        print(f"convert_taming: {e}", file=sys.stderr)
        return 1
    for k in dropped:
        print(f"convert_taming: note: dropped unexpected tensor '{k}'", file=sys.stderr)
    print(f"convert_taming: {meta['format']}: {len(tensors)} tensors -> {args.out}"
          + (f" (+ discriminator -> {args.disc_out})" if args.disc_out else ""), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
