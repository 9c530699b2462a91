#!/usr/bin/env python3
"""Tests tools/convert_taming.py on fake taming-transformers Lightning checkpoints.

The checkpoints are built here with torch.save from the tiny fixtures' tensors (so names and
shapes are the reference's), wrapped the way Lightning does (state_dict next to epoch, optimizer
states and pickled callback objects), and extended with the tensors the converter must drop
(loss.*, attn.mask buffers, first/cond stage models). The converted files are checked with the
small safetensors reader below, independent of the C code: names, dtypes, shapes, bytes,
metadata and header layout. With --vqgpt, a converted VQGAN must also reconstruct an image
exactly as the fixture model does, and a converted GumbelVQ (fixture gumbel_tiny, made by
make_gumbel_fixture.py with the reference's GumbelVQ) must encode to the reference's argmax
codes. --first-stage takes the VQGAN (VQModel or GumbelVQ) out of a transformer checkpoint;
VQGANs that do not read and write RGB are refused.

usage: test_convert_taming.py --fixtures DIR [--vqgpt BIN]
"""

import argparse
import contextlib
import importlib.util
import io
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import types

import numpy as np
import torch
import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
CONVERTER = os.path.join(HERE, "..", "tools", "convert_taming.py")

passed = failed = 0


def check(cond, what):
    global passed, failed
    if cond:
        passed += 1
    else:
        failed += 1
        print(f"FAIL: {what}", file=sys.stderr)
    return cond


NP_DTYPES = {"F32": "<f4", "F16": "<f2", "F64": "<f8", "I64": "<i8", "I32": "<i4", "U8": "u1",
             "I8": "i1", "BOOL": "?"}


def read_safetensors(path):
    """(header length, metadata, {name: numpy array}) with the layout checked strictly."""
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n].decode("utf-8"))
    meta = header.pop("__metadata__", {})
    assert all(isinstance(v, str) for v in meta.values()), "metadata values must be strings"
    data = raw[8 + n:]
    out, spans = {}, []
    for name, e in header.items():
        b, end = e["data_offsets"]
        dt = np.dtype(NP_DTYPES[e["dtype"]])
        count = int(np.prod(e["shape"], dtype=np.int64))
        assert 0 <= b <= end <= len(data), f"{name}: offsets out of range"
        assert end - b == count * dt.itemsize, f"{name}: byte count"
        spans.append((b, end))
        out[name] = np.frombuffer(data[b:end], dtype=dt).reshape(e["shape"])
    spans.sort()
    pos = 0
    for b, end in spans:  # contiguous, as the reference safetensors library requires
        assert b == pos, "data not contiguous"
        pos = end
    assert pos == len(data), "trailing data"
    return n, meta, out


def to_torch(arrays, prefix=""):
    return {prefix + k: torch.from_numpy(np.array(v)) for k, v in arrays.items()}


# A stand-in for Lightning's pickled callback objects: its module does not exist in the
# converter's process, so loading needs the lenient unpickler.
_fake = types.ModuleType("vqgpt_fake_lightning_callbacks")


class ModelCheckpoint:
    def __init__(self):
        self.best_model_score = torch.tensor(0.25)
        self.monitor = "val/rec_loss"


ModelCheckpoint.__module__ = _fake.__name__
_fake.ModelCheckpoint = ModelCheckpoint
sys.modules[_fake.__name__] = _fake


def lightning_ckpt(path, state_dict, with_objects):
    ckpt = {"epoch": 3, "global_step": 1234, "pytorch-lightning_version": "1.0.8",
            "state_dict": state_dict,
            "optimizer_states": [{"state": {}, "param_groups": [{"lr": 4.5e-6, "params": []}]}],
            "lr_schedulers": []}
    if with_objects:
        ckpt["callbacks"] = {ModelCheckpoint: ModelCheckpoint().__dict__, "obj": ModelCheckpoint()}
    torch.save(ckpt, path)


def _load_converter():
    spec = importlib.util.spec_from_file_location("convert_taming", CONVERTER)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


CONV = _load_converter()


def convert(*args, separate_process=False):
    """Runs the converter: in this process (fast: torch is imported once) or as the command."""
    if separate_process:
        r = subprocess.run([sys.executable, CONVERTER, *args], capture_output=True, text=True)
        return r.returncode, r.stderr
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        try:
            rc = CONV.main(list(args))
        except SystemExit as e:
            rc = e.code
    return rc, err.getvalue()


def expect_fail(args, what, label):
    rc, err = convert(*args)
    lines = err.strip().splitlines()
    check(rc == 1, f"{label}: exit status {rc}, expected 1 ({err.strip()})")
    check(len(lines) == 1 and lines[0].startswith("convert_taming: ") and what in lines[0],
          f"{label}: stderr {err.strip()!r} lacks {what!r}")


def same_tensors(got, want, label, cast=None):
    check(sorted(got) == sorted(want), f"{label}: names differ: "
          f"extra {sorted(set(got) - set(want))[:5]}, missing {sorted(set(want) - set(got))[:5]}")
    bad = []
    for k in want:
        if k not in got:
            continue
        w = want[k] if cast is None or want[k].dtype.kind != "f" else want[k].astype(cast)
        if got[k].dtype != w.dtype or got[k].shape != w.shape or got[k].tobytes() != w.tobytes():
            bad.append(k)
    check(not bad, f"{label}: {len(bad)} tensors differ, e.g. {bad[:3]}")


def vq_yaml(fix_cfg, disc_ndf=8, disc_layers=2):
    return {
        "model": {
            "base_learning_rate": 4.5e-6,
            "target": "taming.models.vqgan.VQModel",
            "params": {
                "embed_dim": fix_cfg["embed_dim"], "n_embed": fix_cfg["n_embed"],
                "ddconfig": fix_cfg["ddconfig"],
                "lossconfig": {
                    "target": "taming.modules.losses.vqperceptual.VQLPIPSWithDiscriminator",
                    "params": {"disc_conditional": False, "disc_in_channels": 3,
                               "disc_start": 10000, "disc_weight": 0.8, "codebook_weight": 1.0,
                               "disc_ndf": disc_ndf, "disc_num_layers": disc_layers}}}},
        "data": {"target": "main.DataModuleFromConfig", "params": {"batch_size": 2}},
        "lightning": {"trainer": {"benchmark": True}},
    }


def gpt_yaml(gpt_cfg, vq_cfg, cond):
    params = {
        "cond_stage_key": "class_label" if isinstance(cond, dict) and "Labelator" in cond["target"]
        else "image",
        "transformer_config": {"target": "taming.modules.transformer.mingpt.GPT",
                               "params": dict(gpt_cfg, embd_pdrop=0.0, resid_pdrop=0.1,
                                              attn_pdrop=0.0)},
        "first_stage_config": {"target": "taming.models.vqgan.VQModel",
                               "params": dict(vq_cfg, lossconfig={"target": "torch.nn.Identity"})},
        "permuter_config": {"target": "taming.modules.transformer.permuter.Identity"},
        "cond_stage_config": cond,
    }
    return {"model": {"base_learning_rate": 4.5e-6,
                      "target": "taming.models.cond_transformer.Net2NetTransformer",
                      "params": params}}


def write_yaml(path, cfg):
    with open(path, "w") as f:
        yaml.safe_dump(cfg, f, sort_keys=False)


def test_vqgan(fx, tmp, vqgpt):
    _, vq_meta, vq = read_safetensors(os.path.join(fx, "vqgan_tiny.safetensors"))
    _, d_meta, disc = read_safetensors(os.path.join(fx, "disc_tiny.safetensors"))
    fix_cfg = json.loads(vq_meta["config"])
    sd = to_torch(vq)
    sd.update(to_torch(disc, "loss.discriminator."))
    g = torch.Generator().manual_seed(0)
    sd["loss.perceptual_loss.net.slice1.0.weight"] = torch.randn(64, 3, 3, 3, generator=g)
    sd["loss.perceptual_loss.lin0.model.1.weight"] = torch.randn(1, 64, 1, 1, generator=g)
    sd["loss.perceptual_loss.scaling_layer.shift"] = torch.randn(1, 3, 1, 1, generator=g)
    ckpt, conf = os.path.join(tmp, "vq.ckpt"), os.path.join(tmp, "vq.yaml")
    lightning_ckpt(ckpt, sd, with_objects=True)
    write_yaml(conf, vq_yaml(fix_cfg))

    out, dout = os.path.join(tmp, "vq.safetensors"), os.path.join(tmp, "disc.safetensors")
    # As a command, in a process where the pickled callback's module does not exist.
    rc, err = convert("--ckpt", ckpt, "--config", conf, "--out", out, "--disc-out", dout,
                      separate_process=True)
    if not check(rc == 0, f"VQGAN conversion failed: {err.strip()}"):
        return
    n, meta, got = read_safetensors(out)
    check(n % 8 == 0, f"header length {n} not a multiple of 8")
    same_tensors(got, vq, "vqgan")
    check(meta.get("format") == "taming-vqgan", f"format {meta.get('format')}")
    check(json.loads(meta.get("config", "null")) == fix_cfg, f"config {meta.get('config')}")
    check(set(meta) == {"format", "config"}, f"metadata keys {sorted(meta)}")
    _, dmeta, dgot = read_safetensors(dout)
    same_tensors(dgot, disc, "discriminator")
    check(dmeta.get("format") == "taming-patchgan", f"disc format {dmeta.get('format')}")
    check(json.loads(dmeta.get("config", "null")) == json.loads(d_meta["config"]),
          f"disc config {dmeta.get('config')} vs fixture {d_meta['config']}")
    check(got["quantize.embedding.weight"].dtype == np.float32, "F32 kept")

    # f16 storage: floats become half precision, the discriminator's I64 counters stay.
    out16 = os.path.join(tmp, "vq16.safetensors")
    rc, err = convert("--ckpt", ckpt, "--config", conf, "--out", out16, "--dtype", "f16",
                      "--disc-out", os.path.join(tmp, "disc16.safetensors"))
    if check(rc == 0, f"f16 conversion failed: {err.strip()}"):
        same_tensors(read_safetensors(out16)[2], vq, "vqgan f16", cast=np.float16)
        d16 = read_safetensors(os.path.join(tmp, "disc16.safetensors"))[2]
        same_tensors(d16, disc, "disc f16", cast=np.float16)

    # The C loader accepts the converted model and computes exactly what the fixture does.
    if vqgpt:
        png = os.path.join(fx, "vqgan_tiny_input0.png")
        outs = []
        for i, model in enumerate([out, os.path.join(fx, "vqgan_tiny.safetensors")]):
            o = os.path.join(tmp, f"rec{i}.png")
            r = subprocess.run([vqgpt, "reconstruct", "--vqgan", model, "--image", png, "--out", o],
                               capture_output=True, text=True)
            check(r.returncode == 0, f"vqgpt reconstruct with {model}: {r.stderr.strip()}")
            outs.append(open(o, "rb").read() if os.path.exists(o) else b"")
        check(outs[0] == outs[1] and outs[0], "converted model reconstructs differently")

    # Refusals, each one line on stderr.
    no_emb = {k: v for k, v in sd.items() if k != "quantize.embedding.weight"}
    bad_ckpt = os.path.join(tmp, "noemb.ckpt")
    lightning_ckpt(bad_ckpt, no_emb, with_objects=False)
    expect_fail(["--ckpt", bad_ckpt, "--config", conf, "--out", os.path.join(tmp, "x.st")],
                "missing tensor 'quantize.embedding.weight'", "missing tensor")
    wrong = vq_yaml(dict(fix_cfg, n_embed=128))
    wconf = os.path.join(tmp, "wrong.yaml")
    write_yaml(wconf, wrong)
    expect_fail(["--ckpt", ckpt, "--config", wconf, "--out", os.path.join(tmp, "x.st")],
                "quantize.embedding.weight has shape [64, 16], config says [128, 16]", "wrong shape")
    ema = vq_yaml(fix_cfg)
    ema["model"]["target"] = "taming.models.vqgan.EMAVQ"
    write_yaml(wconf, ema)
    expect_fail(["--ckpt", ckpt, "--config", wconf, "--out", os.path.join(tmp, "x.st")],
                "unsupported model target 'taming.models.vqgan.EMAVQ'", "unknown target")
    # A depth or segmentation VQGAN: no command reads or writes such images.
    for chans in ({"in_channels": 1, "out_ch": 1}, {"out_ch": 4}):
        write_yaml(wconf, vq_yaml(dict(fix_cfg, ddconfig=dict(fix_cfg["ddconfig"], **chans))))
        expect_fail(["--ckpt", ckpt, "--config", wconf, "--out", os.path.join(tmp, "x.st")],
                    "only 3 and 3 are supported", f"channels {chans}")
    with open(wconf, "w") as f:
        f.write("model: [unclosed\n")
    expect_fail(["--ckpt", ckpt, "--config", wconf, "--out", os.path.join(tmp, "x.st")],
                "invalid YAML", "bad YAML")
    plain = os.path.join(tmp, "plain.pt")
    torch.save({"weights": torch.zeros(2)}, plain)
    expect_fail(["--ckpt", plain, "--config", conf, "--out", os.path.join(tmp, "x.st")],
                "no 'state_dict'", "not a Lightning checkpoint")
    garbage = os.path.join(tmp, "garbage.ckpt")
    with open(garbage, "wb") as f:
        f.write(b"not a checkpoint at all")
    expect_fail(["--ckpt", garbage, "--config", conf, "--out", os.path.join(tmp, "x.st")],
                "cannot load checkpoint", "garbage checkpoint")
    missing_dir = os.path.join(tmp, "no", "such", "dir", "m.safetensors")
    expect_fail(["--ckpt", ckpt, "--config", conf, "--out", missing_dir], "cannot write",
                "unwritable output")
    check(not os.path.exists(os.path.join(tmp, "x.st")), "a failed conversion left an output")


def test_gpt(fx, tmp):
    _, g_meta, gpt = read_safetensors(os.path.join(fx, "gpt_tiny.safetensors"))
    _, vq_meta, vq = read_safetensors(os.path.join(fx, "vqgan_tiny.safetensors"))
    gcfg, vcfg = json.loads(g_meta["config"]), json.loads(vq_meta["config"])
    check(any(k.endswith(".attn.mask") for k in gpt), "fixture has attn.mask buffers")
    sd = to_torch(gpt, "transformer.")
    sd.update(to_torch({k: vq[k] for k in list(vq)[:5]}, "first_stage_model."))
    ckpt = os.path.join(tmp, "gpt.ckpt")
    lightning_ckpt(ckpt, sd, with_objects=False)
    want = {k: v for k, v in gpt.items() if not k.endswith(".attn.mask")}
    base = dict(gcfg, embd_pdrop=0.0, resid_pdrop=0.1, attn_pdrop=0.0, n_codes=vcfg["n_embed"])
    cases = [
        ("sos", {"target": "taming.modules.util.SOSProvider", "params": {"sos_token": 0}},
         dict(base, cond="none", sos_token=0)),
        ("class", {"target": "taming.modules.util.Labelator", "params": {"n_classes": 10}},
         dict(base, cond="class", n_classes=10)),
        ("uncond", "__is_unconditional__", dict(base, cond="none", sos_token=5)),
    ]
    for label, cond, expect in cases:
        conf = os.path.join(tmp, f"gpt_{label}.yaml")
        y = gpt_yaml(gcfg, vcfg, cond)
        if label == "uncond":
            y["model"]["params"]["sos_token"] = 5
        write_yaml(conf, y)
        out = os.path.join(tmp, f"gpt_{label}.safetensors")
        rc, err = convert("--ckpt", ckpt, "--config", conf, "--out", out)
        if not check(rc == 0, f"GPT {label} conversion failed: {err.strip()}"):
            continue
        n, meta, got = read_safetensors(out)
        check(n % 8 == 0, "GPT header padded")
        same_tensors(got, want, f"gpt {label}")
        check(meta.get("format") == "taming-gpt", f"gpt format {meta.get('format')}")
        cfg = json.loads(meta.get("config", "null"))
        check(cfg == expect, f"gpt {label} config {cfg} != {expect}")

    conf = os.path.join(tmp, "gpt_bad.yaml")
    write_yaml(conf, gpt_yaml(gcfg, vcfg, "__is_first_stage__"))
    expect_fail(["--ckpt", ckpt, "--config", conf, "--out", os.path.join(tmp, "x.st")],
                "cond stage '__is_first_stage__' is not supported", "first-stage conditioning")
    write_yaml(conf, gpt_yaml(gcfg, vcfg, {"target": "taming.models.vqgan.VQModel", "params": {}}))
    expect_fail(["--ckpt", ckpt, "--config", conf, "--out", os.path.join(tmp, "x.st")],
                "cond stage taming.models.vqgan.VQModel is not supported", "VQ conditioning")
    y = gpt_yaml(gcfg, vcfg, "__is_unconditional__")
    y["model"]["params"]["permuter_config"] = {"target": "taming.modules.transformer.permuter.Subsample",
                                              "params": {"H": 4, "W": 4}}
    write_yaml(conf, y)
    expect_fail(["--ckpt", ckpt, "--config", conf, "--out", os.path.join(tmp, "x.st")],
                "permuter taming.modules.transformer.permuter.Subsample is not supported", "permuter")
    write_yaml(conf, gpt_yaml(dict(gcfg, vocab_size=81), vcfg, "__is_unconditional__"))
    expect_fail(["--ckpt", ckpt, "--config", conf, "--out", os.path.join(tmp, "x.st")],
                "tok_emb.weight has shape [80, 32], config says [81, 32]", "GPT wrong vocab")
    write_yaml(conf, gpt_yaml(gcfg, vcfg, "__is_unconditional__"))
    expect_fail(["--ckpt", ckpt, "--config", conf, "--out", os.path.join(tmp, "x.st"),
                 "--disc-out", os.path.join(tmp, "d.st")], "VQModel checkpoints only", "GPT --disc-out")
    vq_ckpt = os.path.join(tmp, "vq_as_gpt.ckpt")
    lightning_ckpt(vq_ckpt, to_torch(vq), with_objects=False)
    expect_fail(["--ckpt", vq_ckpt, "--config", conf, "--out", os.path.join(tmp, "x.st")],
                "missing tensor 'transformer.tok_emb.weight'", "VQ checkpoint as GPT")


def gumbel_yaml(cfg):
    p = {k: cfg[k] for k in ("embed_dim", "n_embed", "ddconfig")}
    p.update(kl_weight=1e-8, lossconfig={"target": "taming.modules.losses.vqperceptual.DummyLoss"},
             temperature_scheduler_config={"target": "taming.lr_scheduler.LambdaWarmUpCosineScheduler",
                                           "params": {"warm_up_steps": 0, "max_decay_steps": 1000,
                                                      "lr_start": 0.9, "lr_max": 0.9,
                                                      "lr_min": 1.0e-06}})
    return {"model": {"base_learning_rate": 4.5e-6, "target": "taming.models.vqgan.GumbelVQ",
                      "params": p}}


def read_npy_i32(path):
    a = np.load(path)
    return a.astype(np.int32) if a.dtype.kind == "i" else a


def test_gumbel(fx, tmp, vqgpt):
    """GumbelVQ: converted from a checkpoint and from a transformer's first stage; in C, the
    converted model encodes to the reference's argmax codes and decodes like it."""
    _, g_meta, gum = read_safetensors(os.path.join(fx, "gumbel_tiny.safetensors"))
    _, _, gio = read_safetensors(os.path.join(fx, "gumbel_tiny_io.safetensors"))
    cfg = json.loads(g_meta["config"])
    check(cfg.get("quantizer") == "gumbel", "fixture is a Gumbel VQGAN")
    sd = to_torch(gum)
    sd["loss.logvar"] = torch.zeros(())  # the loss module's tensors are dropped
    ckpt, conf = os.path.join(tmp, "gumbel.ckpt"), os.path.join(tmp, "gumbel.yaml")
    lightning_ckpt(ckpt, sd, with_objects=True)
    write_yaml(conf, gumbel_yaml(cfg))
    out = os.path.join(tmp, "gumbel.safetensors")
    rc, err = convert("--ckpt", ckpt, "--config", conf, "--out", out)
    if check(rc == 0, f"GumbelVQ conversion failed: {err.strip()}"):
        _, meta, got = read_safetensors(out)
        same_tensors(got, gum, "gumbel")
        check(json.loads(meta["config"]) == cfg, f"gumbel config {meta['config']}")
        check(meta.get("format") == "taming-vqgan", "gumbel format")

    if vqgpt and rc == 0:
        png, codes = os.path.join(fx, "gumbel_tiny_input.png"), os.path.join(tmp, "g.npy")
        r = subprocess.run([vqgpt, "encode", "--vqgan", out, "--image", png, "--out", codes],
                           capture_output=True, text=True)
        if check(r.returncode == 0, f"vqgpt encode (GumbelVQ): {r.stderr.strip()}"):
            got = read_npy_i32(codes)
            want = gio["indices"]
            check(got.shape == want.shape and (got == want).all(),
                  f"GumbelVQ codes: {int((got != want).sum()) if got.shape == want.shape else got.shape} "
                  "differ from the reference's argmax")
        # Decoding: the converted model gives the fixture model's image (whose parity with
        # the reference tests/test_gumbel.c checks).
        np.save(codes, gio["indices"])
        recs = []
        for i, model in enumerate([out, os.path.join(fx, "gumbel_tiny.safetensors")]):
            rec = os.path.join(tmp, f"g{i}.png")
            r = subprocess.run([vqgpt, "decode", "--vqgan", model, "--codes", codes, "--out", rec],
                               capture_output=True, text=True)
            check(r.returncode == 0, f"vqgpt decode (GumbelVQ {model}): {r.stderr.strip()}")
            recs.append(open(rec, "rb").read() if os.path.exists(rec) else b"")
        check(recs[0] == recs[1] and recs[0], "converted GumbelVQ decodes differently")

    # The first stage of a transformer checkpoint: GumbelVQ and VQModel.
    _, gpt_meta, gpt = read_safetensors(os.path.join(fx, "gpt_tiny.safetensors"))
    _, vq_meta, vq = read_safetensors(os.path.join(fx, "vqgan_tiny.safetensors"))
    gcfg, vcfg = json.loads(gpt_meta["config"]), json.loads(vq_meta["config"])
    for label, fs_tensors, fs_cfg, fs_yaml in [
            ("gumbel", gum, cfg, gumbel_yaml(cfg)["model"]),
            ("vqmodel", vq, vcfg, vq_yaml(vcfg)["model"])]:
        net = to_torch(gpt, "transformer.")
        net.update(to_torch(fs_tensors, "first_stage_model."))
        nckpt = os.path.join(tmp, f"net_{label}.ckpt")
        lightning_ckpt(nckpt, net, with_objects=False)
        y = gpt_yaml(gcfg, vcfg, "__is_unconditional__")
        y["model"]["params"]["first_stage_config"] = fs_yaml
        nconf = os.path.join(tmp, f"net_{label}.yaml")
        write_yaml(nconf, y)
        fout = os.path.join(tmp, f"first_{label}.safetensors")
        rc, err = convert("--ckpt", nckpt, "--config", nconf, "--out", fout, "--first-stage")
        if check(rc == 0, f"--first-stage ({label}) failed: {err.strip()}"):
            _, meta, got = read_safetensors(fout)
            same_tensors(got, fs_tensors, f"first stage {label}")
            check(json.loads(meta["config"]) == fs_cfg, f"first stage {label} config {meta['config']}")
        if label == "gumbel":
            rc, err = convert("--ckpt", nckpt, "--config", nconf, "--out", fout)
            check(rc == 0 and read_safetensors(fout)[1]["format"] == "taming-gpt",
                  f"without --first-stage the GPT is converted: {err.strip()}")
            expect_fail(["--ckpt", nckpt, "--config", nconf, "--out", fout, "--first-stage",
                         "--disc-out", os.path.join(tmp, "d.st")], "--disc-out does not apply",
                        "--first-stage --disc-out")
            only_gpt = os.path.join(tmp, "only_gpt.ckpt")
            lightning_ckpt(only_gpt, to_torch(gpt, "transformer."), with_objects=False)
            expect_fail(["--ckpt", only_gpt, "--config", nconf, "--out", fout, "--first-stage"],
                        "no first_stage_model.* tensors", "--first-stage without tensors")
            y["model"]["params"]["first_stage_config"]["params"]["ddconfig"] = dict(
                cfg["ddconfig"], in_channels=1)
            write_yaml(nconf, y)
            expect_fail(["--ckpt", nckpt, "--config", nconf, "--out", fout, "--first-stage"],
                        "in_channels 1 and out_ch 3", "--first-stage depth VQGAN")

    # Refusals.
    x = os.path.join(tmp, "x.st")
    expect_fail(["--ckpt", ckpt, "--config", conf, "--out", x, "--first-stage"],
                "--first-stage needs a taming.models.cond_transformer.Net2NetTransformer",
                "--first-stage on a VQGAN")
    no_proj = {k: v for k, v in sd.items() if not k.startswith("quantize.proj.")}
    bad = os.path.join(tmp, "noproj.ckpt")
    lightning_ckpt(bad, no_proj, with_objects=False)
    expect_fail(["--ckpt", bad, "--config", conf, "--out", x],
                "missing tensor 'quantize.proj.weight' (is this a GumbelVQ checkpoint?)", "no proj")
    wconf = os.path.join(tmp, "gwrong.yaml")
    write_yaml(wconf, gumbel_yaml(dict(cfg, n_embed=48)))
    expect_fail(["--ckpt", ckpt, "--config", wconf, "--out", x],
                "quantize.proj.weight has shape [32, 16, 1, 1], config says [48, 16, 1, 1]",
                "gumbel wrong n_embed")
    write_yaml(wconf, gumbel_yaml(dict(cfg, embed_dim=8)))
    expect_fail(["--ckpt", ckpt, "--config", wconf, "--out", x],
                "z_channels 16 != embed_dim 8", "gumbel embed_dim != z_channels")
    check(not os.path.exists(x), "a failed conversion left an output")


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--fixtures", required=True)
    ap.add_argument("--vqgpt", help="the vqgpt binary, to load a converted model in C")
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="vqgpt_convert_")
    try:
        test_vqgan(args.fixtures, tmp, args.vqgpt)
        test_gpt(args.fixtures, tmp)
        test_gumbel(args.fixtures, tmp, args.vqgpt)
        leftovers = [f for f in os.listdir(tmp) if ".tmp." in f]
        check(not leftovers, f"temporary files left: {leftovers}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"test_convert_taming: {passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
