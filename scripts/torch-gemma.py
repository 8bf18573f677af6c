#!/usr/bin/python3
"""An independent float64 Gemma 1 / 2 / 3 reference in PyTorch, with autograd: the oracle of
gemma-ts's training tests (test/train-torch.test.ts). Written from the Hugging Face semantics
(config.json + safetensors), not from gemma-ts's code.

  torch-gemma.py grads --model DIR --ids 2,17,311,...             -> {"loss", "grads": {name: [...]}}
  torch-gemma.py adamw --model DIR --data F.jsonl --steps N --lr X [--weight-decay W]
                                                                   -> {"losses": [...]}
  torch-gemma.py lora-logits --model DIR --adapter DIR --ids ...   -> {"logits": [[...]]}
  torch-gemma.py lora-grads --model DIR --adapter DIR --ids ...    -> {"loss", "grads": {PEFT key: [...]}}
  torch-gemma.py peft-random --model DIR --out DIR --rank R --alpha A --targets q_proj,... [--rslora] --ids ...
      writes a random PEFT adapter (its own safetensors writer) -> {"logits": [[...]]}
Loss: mean cross-entropy of ids[t + 1] at t = 0..n-2 on the final (soft-capped) logits.
"""
import argparse
import json
import math
import os
import struct
import sys

import numpy as np
import torch

torch.set_default_dtype(torch.float64)

ST_DTYPES = {"F32": np.float32, "F16": np.float16, "F64": np.float64}


def read_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, t in header.items():
        if name == "__metadata__":
            continue
        b, e = t["data_offsets"]
        raw = data[b:e]
        if t["dtype"] == "BF16":
            u = np.frombuffer(raw, dtype=np.uint16).astype(np.uint32) << 16
            arr = u.view(np.float32)
        else:
            arr = np.frombuffer(raw, dtype=ST_DTYPES[t["dtype"]])
        out[name] = torch.tensor(arr.astype(np.float64).reshape(t["shape"]))
    return out


def read_safetensors_f32(path):
    """float32 tensors, one at a time from a memory map: peak memory = the f32 weights (the bench)."""
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
    mm = np.memmap(path, dtype=np.uint8, mode="r", offset=8 + n)
    out = {}
    for name, t in header.items():
        if name == "__metadata__":
            continue
        assert t["dtype"] == "F32", "the bench writes f32 checkpoints"
        b, e = t["data_offsets"]
        out[name] = torch.from_numpy(np.array(mm[b:e].view(np.float32).reshape(t["shape"])))
    del mm
    return out


class Config:
    def __init__(self, cfg):
        mt = cfg["model_type"]
        if mt == "gemma3":
            cfg = dict(cfg["text_config"], model_type="gemma3_text")
            mt = "gemma3_text"
        self.family = {"gemma": 1, "gemma2": 2, "gemma3_text": 3}[mt]
        self.H = cfg["hidden_size"]
        self.nH = cfg["num_attention_heads"]
        self.nKV = cfg.get("num_key_value_heads", self.nH)
        self.hd = cfg.get("head_dim", self.H // self.nH)
        self.L = cfg["num_hidden_layers"]
        self.eps = cfg.get("rms_norm_eps", 1e-6)
        self.qpas = cfg.get("query_pre_attn_scalar", self.hd) if self.family > 1 else self.hd
        self.attn_cap = cfg.get("attn_logit_softcapping") or 0
        self.final_cap = cfg.get("final_logit_softcapping") or 0
        if "layer_types" in cfg:
            sliding = [t == "sliding_attention" for t in cfg["layer_types"]]
        elif self.family == 3:
            p = cfg.get("sliding_window_pattern", 6)
            sliding = [(i + 1) % p != 0 for i in range(self.L)]
        elif self.family == 2:
            sliding = [i % 2 == 0 for i in range(self.L)]
        else:
            sliding = [False] * self.L
        self.sliding = sliding
        self.window = cfg.get("sliding_window") or 0
        theta = cfg.get("rope_theta", 10000.0)
        local = cfg.get("rope_local_base_freq", 10000.0) if self.family == 3 else theta
        rs = cfg.get("rope_scaling") or {}
        factor = rs.get("factor", 1.0) if rs.get("rope_type", rs.get("type")) == "linear" else 1.0
        self.theta = [local if s else theta for s in sliding]
        self.scaling = [1.0 if s else factor for s in sliding]


def rms(x, w, eps):
    return x / torch.sqrt((x * x).mean(-1, keepdim=True) + eps) * (1 + w)


def rope(x, theta, scaling):
    n, _, hd = x.shape
    half = hd // 2
    inv = 1.0 / (theta ** (torch.arange(0, half, dtype=torch.float64) * 2 / hd))
    ang = (torch.arange(n, dtype=torch.float64) / scaling)[:, None] * inv[None, :]
    cos, sin = torch.cos(ang)[:, None, :].to(x.dtype), torch.sin(ang)[:, None, :].to(x.dtype)
    x0, x1 = x[..., :half], x[..., half:]
    return torch.cat([x0 * cos - x1 * sin, x1 * cos + x0 * sin], dim=-1)


def gelu_tanh(x):
    return 0.5 * x * (1 + torch.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))


def linear(W, x, name, lora):
    y = x @ W.T
    if lora and name in lora:
        A, B, scale = lora[name]
        y = y + scale * ((x @ A.T) @ B.T)
    return y


def forward(c, P, prefix, ids, lora=None):
    n = len(ids)
    g = lambda name: P[prefix + name]
    E = g("embed_tokens.weight")
    x = E[torch.tensor(ids)] * math.sqrt(c.H)
    group = c.nH // c.nKV
    t = torch.arange(n)
    for i in range(c.L):
        p = f"layers.{i}."
        lin = lambda name, inp: linear(g(p + name), inp, prefix + p + name, lora)
        h = rms(x, g(p + "input_layernorm.weight"), c.eps)
        q = lin("self_attn.q_proj.weight", h).view(n, c.nH, c.hd)
        k = lin("self_attn.k_proj.weight", h).view(n, c.nKV, c.hd)
        v = lin("self_attn.v_proj.weight", h).view(n, c.nKV, c.hd)
        if c.family == 3:
            q = rms(q, g(p + "self_attn.q_norm.weight"), c.eps)
            k = rms(k, g(p + "self_attn.k_norm.weight"), c.eps)
        q = rope(q, c.theta[i], c.scaling[i])
        k = rope(k, c.theta[i], c.scaling[i])
        k = k.repeat_interleave(group, dim=1)
        v = v.repeat_interleave(group, dim=1)
        s = torch.einsum("thd,shd->hts", q, k) * c.qpas ** -0.5
        if c.attn_cap:
            s = c.attn_cap * torch.tanh(s / c.attn_cap)
        visible = t[None, :] <= t[:, None]
        if c.sliding[i] and c.window:
            visible = visible & (t[:, None] - t[None, :] < c.window)
        s = s.masked_fill(~visible[None], float("-inf"))
        att = torch.einsum("hts,shd->thd", torch.softmax(s, dim=-1), v).reshape(n, c.nH * c.hd)
        o = lin("self_attn.o_proj.weight", att)
        if c.family > 1:
            o = rms(o, g(p + "post_attention_layernorm.weight"), c.eps)
        x = x + o
        pre = "pre_feedforward_layernorm.weight" if c.family > 1 else "post_attention_layernorm.weight"
        h2 = rms(x, g(p + pre), c.eps)
        m = lin("mlp.down_proj.weight", gelu_tanh(lin("mlp.gate_proj.weight", h2)) * lin("mlp.up_proj.weight", h2))
        if c.family > 1:
            m = rms(m, g(p + "post_feedforward_layernorm.weight"), c.eps)
        x = x + m
    x = rms(x, g("norm.weight"), c.eps)
    logits = x @ E.T
    if c.final_cap:
        logits = c.final_cap * torch.tanh(logits / c.final_cap)
    return logits


def loss_of(c, P, prefix, ids, lora=None):
    logits = forward(c, P, prefix, ids, lora)
    return torch.nn.functional.cross_entropy(logits[:-1], torch.tensor(ids[1:]))


def write_safetensors(path, tensors):
    header, blobs, off = {}, [], 0
    for name, t in tensors.items():
        b = t.detach().numpy().astype(np.float32).tobytes()
        header[name] = {"dtype": "F32", "shape": list(t.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def read_adapter(adapter_dir, requires_grad=False):
    cfg = json.load(open(os.path.join(adapter_dir, "adapter_config.json")))
    A = read_safetensors(os.path.join(adapter_dir, "adapter_model.safetensors"))
    r, alpha = cfg["r"], cfg["lora_alpha"]
    scale = alpha / math.sqrt(r) if cfg.get("use_rslora") else alpha / r
    lora, keys = {}, {}
    for k in A:
        if k.endswith(".lora_A.weight"):
            base = k[: -len(".lora_A.weight")]
            name = base[len("base_model.model."):] + ".weight"
            a, b = A[k], A[base + ".lora_B.weight"]
            if requires_grad:
                a.requires_grad_(True)
                b.requires_grad_(True)
            lora[name] = (a, b, scale)
            keys[k] = a
            keys[base + ".lora_B.weight"] = b
    return lora, keys


def load(model_dir):
    c = Config(json.load(open(os.path.join(model_dir, "config.json"))))
    P = read_safetensors(os.path.join(model_dir, "model.safetensors"))
    prefix = next(k for k in P if k.endswith("embed_tokens.weight"))[: -len("embed_tokens.weight")]
    return c, P, prefix


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["grads", "adamw", "lora-logits", "lora-grads", "peft-random", "bench"])
    ap.add_argument("--seq", type=int, default=256)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--lora-rank", type=int, default=0)
    ap.add_argument("--out")
    ap.add_argument("--rank", type=int, default=4)
    ap.add_argument("--alpha", type=float, default=8)
    ap.add_argument("--targets", default="q_proj,v_proj")
    ap.add_argument("--rslora", action="store_true")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--model", required=True)
    ap.add_argument("--ids")
    ap.add_argument("--data")
    ap.add_argument("--adapter")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--weight-decay", type=float, default=0.0)
    a = ap.parse_args()
    if a.mode == "bench":
        # forward + backward tokens/s and peak RSS, float32 (what a PyTorch user would run on a CPU)
        import resource
        import time
        torch.set_default_dtype(torch.float32)
        if a.threads:
            torch.set_num_threads(a.threads)
        c = Config(json.load(open(os.path.join(a.model, "config.json"))))
        P = read_safetensors_f32(os.path.join(a.model, "model.safetensors"))
        prefix = next(k for k in P if k.endswith("embed_tokens.weight"))[: -len("embed_tokens.weight")]
        lora = None
        if a.lora_rank:
            lora = {}
            for k, v in P.items():
                if v.dim() == 2 and "embed" not in k:
                    A = (torch.rand(a.lora_rank, v.shape[1]) - 0.5) * 0.02
                    B = torch.zeros(v.shape[0], a.lora_rank)
                    lora[k] = (A.requires_grad_(True), B.requires_grad_(True), 2.0)
        else:
            for t in P.values():
                t.requires_grad_(True)
        ids = [int(x) % P[prefix + "embed_tokens.weight"].shape[0] for x in range(7, 7 + 13 * a.seq, 13)]
        times, cpus = [], []
        for _ in range(a.steps):
            t0, c0 = time.perf_counter(), time.process_time()
            loss = loss_of(c, P, prefix, ids, lora)
            loss.backward()
            times.append(time.perf_counter() - t0)
            cpus.append(time.process_time() - c0)
        best = min(times)
        json.dump({"tokens_per_s": a.seq / best, "step_s": best, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "threads": torch.get_num_threads(), "cpu_s": min(cpus)}, sys.stdout)
        return
    c, P, prefix = load(a.model)
    if a.mode == "grads":
        ids = [int(s) for s in a.ids.split(",")]
        for t in P.values():
            t.requires_grad_(True)
        loss = loss_of(c, P, prefix, ids)
        loss.backward()
        json.dump({"loss": loss.item(), "grads": {k: v.grad.flatten().tolist() for k, v in P.items()}}, sys.stdout)
    elif a.mode == "adamw":
        lines = [json.loads(l)["ids"] for l in open(a.data) if l.strip()]
        for t in P.values():
            t.requires_grad_(True)
        norms = [v for k, v in P.items() if k.endswith("norm.weight") or k.endswith("layernorm.weight")]
        others = [v for k, v in P.items() if not (k.endswith("norm.weight") or k.endswith("layernorm.weight"))]
        opt = torch.optim.AdamW([{"params": others, "weight_decay": a.weight_decay}, {"params": norms, "weight_decay": 0.0}], lr=a.lr)
        losses = []
        for step in range(a.steps):
            opt.zero_grad()
            loss = loss_of(c, P, prefix, lines[step % len(lines)])
            loss.backward()
            opt.step()
            losses.append(loss.item())
        json.dump({"losses": losses}, sys.stdout)
    elif a.mode == "lora-grads":
        lora, keys = read_adapter(a.adapter, requires_grad=True)
        ids = [int(s) for s in a.ids.split(",")]
        loss = loss_of(c, P, prefix, ids, lora)
        loss.backward()
        json.dump({"loss": loss.item(), "grads": {k: v.grad.flatten().tolist() for k, v in keys.items()}}, sys.stdout)
    else:
        if a.mode == "peft-random":
            g = torch.Generator().manual_seed(a.seed)
            paths = {"q_proj": "self_attn.q_proj", "k_proj": "self_attn.k_proj", "v_proj": "self_attn.v_proj", "o_proj": "self_attn.o_proj",
                     "gate_proj": "mlp.gate_proj", "up_proj": "mlp.up_proj", "down_proj": "mlp.down_proj"}
            targets = a.targets.split(",")
            tensors = {}
            for i in range(c.L):
                for t in targets:
                    W = P[f"{prefix}layers.{i}.{paths[t]}.weight"]
                    key = f"base_model.model.{prefix}layers.{i}.{paths[t]}"
                    tensors[key + ".lora_A.weight"] = torch.randn(a.rank, W.shape[1], generator=g) * 0.1
                    tensors[key + ".lora_B.weight"] = torch.randn(W.shape[0], a.rank, generator=g) * 0.1
            os.makedirs(a.out, exist_ok=True)
            write_safetensors(os.path.join(a.out, "adapter_model.safetensors"), tensors)
            json.dump({"peft_type": "LORA", "task_type": "CAUSAL_LM", "r": a.rank, "lora_alpha": a.alpha, "use_rslora": a.rslora,
                       "target_modules": targets, "lora_dropout": 0.0, "bias": "none"}, open(os.path.join(a.out, "adapter_config.json"), "w"))
            a.adapter = a.out
        lora, _ = read_adapter(a.adapter)
        ids = [int(s) for s in a.ids.split(",")]
        with torch.no_grad():
            logits = forward(c, P, prefix, ids, lora)
        json.dump({"logits": logits.tolist()}, sys.stdout)


if __name__ == "__main__":
    main()
