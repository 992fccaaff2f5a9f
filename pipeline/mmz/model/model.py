"""RWKV-7 ("Goose") predictor with modality-routing MoE (PyTorch; training and export only).

Two equivalent evaluation forms share one set of parameters:

* :meth:`RwkvMoe.forward` — parallel/chunked form for training: all projections are batched
  matmuls over ``[B, T]``; the WKV recurrence is evaluated chunk-wise (``chunk_len`` steps per
  chunk with matmuls and one triangular solve, then one ``[N, N]`` matmul per chunk carries the
  state). See SPEC.md §3 for the derivation.
* :meth:`RwkvMoe.step` — the recurrent one-token step used for inference/export.

Torch is imported at module level here on purpose: this module is never imported by
``import mmz`` or by the inference CLI.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmz.model.config import ModelConfig, VocabLayout, byte_vocab

LN_X_EPS = 64e-5
LN_EPS = 1e-5


class RepLinear(nn.Module):
    """Bias-free linear ``y = x W^T`` with an optional training-time branch ``B A`` (rank = d_in).

    The effective weight ``W + B @ A`` is formed once per call (cheap: ``d^3`` per batch instead of
    per token), so training costs the same per token as the merged layer.
    """

    def __init__(self, d_in: int, d_out: int, reparam: bool, zero: bool = False) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(d_out, d_in))
        if zero:
            nn.init.zeros_(self.weight)
        else:
            nn.init.orthogonal_(self.weight, gain=1.0)
        self.rep_a: nn.Parameter | None = None
        self.rep_b: nn.Parameter | None = None
        if reparam:
            self.rep_a = nn.Parameter(torch.randn(d_in, d_in) / math.sqrt(d_in))
            self.rep_b = nn.Parameter(torch.zeros(d_out, d_in))

    def merged_weight(self) -> Tensor:
        """``W + B A`` (or ``W`` without a branch)."""
        if self.rep_a is None or self.rep_b is None:
            return self.weight
        return self.weight + self.rep_b @ self.rep_a

    def merge_(self) -> None:
        """Fold the branch into ``weight`` in place and drop it (export)."""
        with torch.no_grad():
            self.weight.copy_(self.merged_weight())
        self.rep_a = None
        self.rep_b = None

    def forward(self, x: Tensor) -> Tensor:
        return x @ self.merged_weight().t()


class Router(nn.Module):
    """Top-k router: scores = softmax(x Wr^T + bias[modality]); top-k re-normalised.

    Ties in top-k are broken towards the lower expert index (torch.topk on CPU and the SPEC).
    """

    def __init__(self, d: int, n_experts: int, n_mod: int, top_k: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(n_experts, d))
        self.mod_bias = nn.Parameter(torch.zeros(n_mod, n_experts))
        self.top_k = top_k
        self.n_experts = n_experts

    def forward(self, x: Tensor, mod: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """x: [..., d], mod: broadcastable modality ids [...]. Returns (gates [..., E] sparse, logits, mask)."""
        logits = x @ self.weight.t() + self.mod_bias[mod]
        probs = torch.softmax(logits, dim=-1)
        top_v, top_i = torch.topk(probs, self.top_k, dim=-1)
        mask = torch.zeros_like(probs).scatter(-1, top_i, 1.0)
        gates = probs * mask
        gates = gates / gates.sum(-1, keepdim=True)
        return gates, logits, mask


def _cv2(x: Tensor) -> Tensor:
    return x.var(unbiased=False) / (x.mean() ** 2 + 1e-10)


def router_aux(logits: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
    """(z-loss, balance loss) of one router over all its tokens.

    z-loss = mean(logsumexp(logits)^2); balance = CV^2(importance) + CV^2(load) with importance the
    summed softmax probabilities and load the number of selections per expert.
    """
    lg = logits.reshape(-1, logits.shape[-1])
    z = torch.logsumexp(lg, dim=-1).pow(2).mean()
    probs = torch.softmax(lg, dim=-1)
    bal = _cv2(probs.sum(0)) + _cv2(mask.reshape(-1, mask.shape[-1]).sum(0))
    return z, bal


class TimeMix(nn.Module):
    """RWKV-7 time mixing with MoE on V and optional reparameterised R/K/V."""

    def __init__(self, cfg: ModelConfig, layer: int, n_mod: int) -> None:
        super().__init__()
        d, h, n = cfg.d_model, cfg.n_head, cfg.head_size
        self.cfg, self.layer, self.d, self.h, self.n = cfg, layer, d, h, n
        ratio_0_to_1 = layer / max(cfg.n_layer - 1, 1)
        ratio_1_to_almost0 = 1.0 - layer / cfg.n_layer
        ddd = torch.arange(d, dtype=torch.float32) / d
        self.x_r = nn.Parameter(1.0 - ddd.pow(0.2 * ratio_1_to_almost0))
        self.x_w = nn.Parameter(1.0 - ddd.pow(0.9 * ratio_1_to_almost0))
        self.x_k = nn.Parameter(1.0 - ddd.pow(0.7 * ratio_1_to_almost0))
        self.x_v = nn.Parameter(1.0 - ddd.pow(0.7 * ratio_1_to_almost0))
        self.x_a = nn.Parameter(1.0 - ddd.pow(0.9 * ratio_1_to_almost0))
        self.x_g = nn.Parameter(1.0 - ddd.pow(0.2 * ratio_1_to_almost0))
        decay_speed = torch.tensor([-7 + 5 * (i / (d - 1)) ** (0.85 + 1.0 * ratio_0_to_1 ** 0.5) for i in range(d)])
        self.w0 = nn.Parameter(decay_speed + 0.5)
        self.w1 = nn.Parameter(torch.zeros(d, cfg.decay_lora))
        self.w2 = nn.Parameter(torch.randn(cfg.decay_lora, d) * 0.1)
        self.a0 = nn.Parameter(torch.zeros(d))
        self.a1 = nn.Parameter(torch.zeros(d, cfg.aaa_lora))
        self.a2 = nn.Parameter(torch.randn(cfg.aaa_lora, d) * 0.1)
        if layer > 0:
            self.v0 = nn.Parameter(torch.ones(d))
            self.v1 = nn.Parameter(torch.zeros(d, cfg.mv_lora))
            self.v2 = nn.Parameter(torch.randn(cfg.mv_lora, d) * 0.1)
        self.g1 = nn.Parameter(torch.zeros(d, cfg.gate_lora))
        self.g2 = nn.Parameter(torch.randn(cfg.gate_lora, d) * 0.1)
        self.k_k = nn.Parameter(torch.full((d,), 0.85))
        self.k_a = nn.Parameter(torch.ones(d))
        self.r_k = nn.Parameter(torch.zeros(h, n))
        self.receptance = RepLinear(d, d, cfg.reparam)
        self.key = RepLinear(d, d, cfg.reparam)
        n_v = cfg.n_experts if cfg.moe_v else 1
        self.value = nn.ModuleList([RepLinear(d, d, cfg.reparam) for _ in range(n_v)])
        self.v_router = Router(d, cfg.n_experts, n_mod, cfg.top_k) if cfg.moe_v else None
        self.output = RepLinear(d, d, False, zero=True)
        self.ln_x = nn.GroupNorm(h, d, eps=LN_X_EPS)

    # -- shared per-token projections (any leading shape [..., d]) -----------------------------
    def _project(self, x: Tensor, xprev: Tensor, v_first: Tensor | None, mod: Tensor) -> dict[str, Tensor]:
        xx = xprev - x
        xr, xw, xk = x + xx * self.x_r, x + xx * self.x_w, x + xx * self.x_k
        xv, xa, xg = x + xx * self.x_v, x + xx * self.x_a, x + xx * self.x_g
        r = self.receptance(xr)
        w_raw = -F.softplus(-(self.w0 + torch.tanh(xw @ self.w1) @ self.w2)) - 0.5
        logdecay = -torch.exp(w_raw)  # log of the per-channel decay, in [-exp(-0.5), 0)
        k = self.key(xk)
        aux: list[tuple[Tensor, Tensor]] = []
        if self.v_router is None:
            v = self.value[0](xv)
            gates = None
        else:
            gates, logits, mask = self.v_router(x, mod)
            aux.append((logits, mask))
            wcat = torch.cat([e.merged_weight() for e in self.value], 0)  # [E*d, d]
            vall = (xv @ wcat.t()).unflatten(-1, (len(self.value), self.d))  # [..., E, d]
            v = (vall * gates.unsqueeze(-1)).sum(-2)
        if self.layer == 0:
            v_first = v
        else:
            assert v_first is not None
            v = v + (v_first - v) * torch.sigmoid(self.v0 + (xv @ self.v1) @ self.v2)
        a = torch.sigmoid(self.a0 + (xa @ self.a1) @ self.a2)
        g = torch.sigmoid(xg @ self.g1) @ self.g2
        kk = k * self.k_k
        kk = F.normalize(kk.unflatten(-1, (self.h, self.n)), dim=-1, p=2.0, eps=1e-12).flatten(-2)
        k = k * (1 + (a - 1) * self.k_a)
        return {"r": r, "logdecay": logdecay, "k": k, "v": v, "a": a, "g": g, "kk": kk,
                "v_first": v_first, "aux": aux, "gates": gates}  # type: ignore[dict-item]

    def _finish(self, y: Tensor, p: dict[str, Tensor]) -> Tensor:
        shp = y.shape
        y = self.ln_x(y.reshape(-1, self.d)).reshape(shp)
        r, k, v = (t.unflatten(-1, (self.h, self.n)) for t in (p["r"], p["k"], p["v"]))
        bonus = ((r * k * self.r_k).sum(-1, keepdim=True) * v).flatten(-2)
        return self.output((y + bonus) * p["g"])

    def forward(self, x: Tensor, v_first: Tensor | None, mod: Tensor, state: Tensor | None = None
                ) -> tuple[Tensor, Tensor, list, Tensor]:
        """Chunked form. x: [B, T, d]; mod: [B]. Returns (out, v_first, aux, final wkv state)."""
        b, t, d = x.shape
        xprev = F.pad(x, (0, 0, 1, -1))
        p = self._project(x, xprev, v_first, mod[:, None])
        y, s_final = wkv_chunked(p["r"], p["logdecay"], p["k"], p["v"], -p["kk"], p["kk"] * p["a"],
                                 self.h, self.cfg.chunk_len, state)
        return self._finish(y, p), p["v_first"], p["aux"], s_final

    def step(self, x: Tensor, xprev: Tensor, state: Tensor, v_first: Tensor | None, mod: Tensor
             ) -> tuple[Tensor, Tensor, Tensor, Tensor | None]:
        """One token. x, xprev: [B, d]; state: [B, H, N, N] (value x key).

        Returns (out, state, v_first, V-router gates [B, E] or None).
        """
        p = self._project(x, xprev, v_first, mod)
        h, n = self.h, self.n
        r, k, v = (t.view(-1, h, n) for t in (p["r"], p["k"], p["v"]))
        decay = torch.exp(p["logdecay"]).view(-1, h, 1, n)
        alpha = (-p["kk"]).view(-1, h, n, 1)
        beta = (p["kk"] * p["a"]).view(-1, h, 1, n)
        sa = state @ alpha  # [B, H, N, 1]
        state = state * decay + sa @ beta + v.unsqueeze(-1) @ k.unsqueeze(-2)
        y = (state @ r.unsqueeze(-1)).squeeze(-1).reshape(-1, self.d)
        return self._finish(y, p), state, p["v_first"], p["gates"]


def wkv_chunked(r: Tensor, logdecay: Tensor, k: Tensor, v: Tensor, alpha: Tensor, beta: Tensor,
                h: int, chunk: int, state: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """Generalised delta rule ``S_t = S_{t-1}(diag(w_t) + alpha_t beta_t^T) + v_t k_t^T``, ``y_t = S_t r_t``.

    All inputs [B, T, H*N]; returns (y [B, T, H*N], final state [B, H, N, N]). T is padded up to a
    multiple of ``chunk`` with identity steps (decay 1, zero alpha/k/v).
    """
    b, t, d = r.shape
    n = d // h
    pad = (-t) % chunk
    if pad:
        r, k, v, alpha, beta, logdecay = (F.pad(z, (0, 0, 0, pad)) for z in (r, k, v, alpha, beta, logdecay))
    nc = (t + pad) // chunk

    def shape(z: Tensor) -> Tensor:  # [B, T, H*N] -> [B, H, nc, C, N]
        return z.view(b, nc, chunk, h, n).permute(0, 3, 1, 2, 4)

    r, k, v, alpha, beta, lw = (shape(z) for z in (r, k, v, alpha, beta, logdecay))
    lg = torch.cumsum(lw, dim=3)  # log Gamma_t (inclusive)
    lg_prev = lg - lw  # log Gamma_{t-1}
    lg_end = lg[:, :, :, -1:, :]  # log Gamma_C
    r_hat = r * torch.exp(lg)
    a_hat = alpha * torch.exp(lg_prev)
    inv = torch.exp(-lg)
    k_til, b_til = k * inv, beta * inv
    to_end = torch.exp(lg_end - lg)
    k_bar, b_bar = k * to_end, beta * to_end
    strict = torch.ones(chunk, chunk, dtype=torch.bool, device=r.device).tril(-1)
    incl = torch.ones(chunk, chunk, dtype=torch.bool, device=r.device).tril(0)
    l_ab = (a_hat @ b_til.transpose(-1, -2)).masked_fill(~strict, 0.0)
    l_ak = (a_hat @ k_til.transpose(-1, -2)).masked_fill(~strict, 0.0)
    m_rb = (r_hat @ b_til.transpose(-1, -2)).masked_fill(~incl, 0.0)
    m_rk = (r_hat @ k_til.transpose(-1, -2)).masked_fill(~incl, 0.0)
    eye = torch.eye(chunk, dtype=r.dtype, device=r.device)
    rhs = torch.cat([a_hat, l_ak @ v], dim=-1)
    sol = torch.linalg.solve_triangular(eye - l_ab, rhs, upper=False, unitriangular=True)
    p_mat, q_mat = sol[..., :n], sol[..., n:]
    y_r = r_hat + m_rb @ p_mat  # multiplies S0^T
    y_c = m_rb @ q_mat + m_rk @ v
    a_mat = torch.diag_embed(torch.exp(lg_end.squeeze(-2))) + p_mat.transpose(-1, -2) @ b_bar  # [.., N, N]
    u_mat = q_mat.transpose(-1, -2) @ b_bar + v.transpose(-1, -2) @ k_bar  # [.., Nv, Nk]
    s = state if state is not None else r.new_zeros(b, h, n, n)
    starts = []
    for c in range(nc):
        starts.append(s)
        s = s @ a_mat[:, :, c] + u_mat[:, :, c]
    s0 = torch.stack(starts, dim=2)  # [B, H, nc, N, N]
    y = y_r @ s0.transpose(-1, -2) + y_c  # [B, H, nc, C, Nv]
    y = y.permute(0, 2, 3, 1, 4).reshape(b, nc * chunk, d)[:, :t]
    return y, s


class ChannelMix(nn.Module):
    """Squared-ReLU channel mix; MoE of ``n_experts`` half-width MLPs (top-k) when ``moe_ffn``."""

    def __init__(self, cfg: ModelConfig, layer: int, n_mod: int) -> None:
        super().__init__()
        d = cfg.d_model
        ratio_1_to_almost0 = 1.0 - layer / cfg.n_layer
        ddd = torch.arange(d, dtype=torch.float32) / d
        self.x_k = nn.Parameter(1.0 - ddd.pow(ratio_1_to_almost0 ** 4))
        n_e = cfg.n_experts if cfg.moe_ffn else 1
        hid = d * cfg.ffn_mult // (2 if cfg.moe_ffn else 1)
        self.hidden = hid
        self.key = nn.ParameterList([nn.Parameter(torch.empty(hid, d).uniform_(-0.5 / d ** 0.5, 0.5 / d ** 0.5))
                                     for _ in range(n_e)])
        self.value = nn.ParameterList([nn.Parameter(torch.zeros(d, hid)) for _ in range(n_e)])
        self.router = Router(d, cfg.n_experts, n_mod, cfg.top_k) if cfg.moe_ffn else None

    def _mix(self, x: Tensor, xprev: Tensor, mod: Tensor) -> tuple[Tensor, list]:
        xk = x + (xprev - x) * self.x_k
        if self.router is None:
            return torch.relu(xk @ self.key[0].t()).square() @ self.value[0].t(), []
        gates, logits, mask = self.router(x, mod)
        flat = xk.reshape(-1, xk.shape[-1])
        g = gates.reshape(-1, gates.shape[-1])
        out = torch.zeros_like(flat)
        for e in range(len(self.key)):
            idx = torch.nonzero(g[:, e] > 0, as_tuple=True)[0]
            if idx.numel() == 0:
                continue
            he = torch.relu(flat[idx] @ self.key[e].t()).square() @ self.value[e].t()
            out = out.index_add(0, idx, he * g[idx, e:e + 1])
        return out.view_as(xk), [(logits, mask)]

    def forward(self, x: Tensor, mod: Tensor) -> tuple[Tensor, list]:
        """x: [B, T, d], mod [B]."""
        return self._mix(x, F.pad(x, (0, 0, 1, -1)), mod[:, None])

    def step(self, x: Tensor, xprev: Tensor, mod: Tensor) -> tuple[Tensor, Tensor | None]:
        """x, xprev: [B, d]; mod [B]. Dense over experts (sparse gates), for export. Returns (out, gates)."""
        xk = x + (xprev - x) * self.x_k
        if self.router is None:
            return torch.relu(xk @ self.key[0].t()).square() @ self.value[0].t(), None
        gates, _, _ = self.router(x, mod)
        out = torch.zeros_like(x)
        for e in range(len(self.key)):
            out = out + (torch.relu(xk @ self.key[e].t()).square() @ self.value[e].t()) * gates[:, e:e + 1]
        return out, gates


class Fade(nn.Module):
    """FADE-style local stream beside the recurrent global stream, gated mix, then gated refiner.

    local = causal depthwise conv (kernel K) over the block input; mix = s * global + (1 - s) * local
    with s = sigmoid(x Wg^T + bg); refined = mix + (mix Wu^T) * sigmoid(mix Wv^T) (hidden d/2) Wo^T.
    """

    def __init__(self, d: int, kernel: int) -> None:
        super().__init__()
        self.kernel = kernel
        self.conv = nn.Parameter(torch.zeros(kernel, d))  # conv[j] multiplies x_{t-j}
        with torch.no_grad():
            self.conv[0].fill_(1.0)
        self.gate = nn.Linear(d, d)
        nn.init.zeros_(self.gate.weight)
        nn.init.constant_(self.gate.bias, 2.0)
        self.ref_u = nn.Linear(d, d // 2, bias=False)
        self.ref_v = nn.Linear(d, d // 2, bias=False)
        self.ref_o = nn.Linear(d // 2, d, bias=False)
        nn.init.zeros_(self.ref_o.weight)

    def combine(self, x: Tensor, local: Tensor, glob: Tensor) -> Tensor:
        s = torch.sigmoid(self.gate(x))
        m = s * glob + (1 - s) * local
        return m + self.ref_o(self.ref_u(m) * torch.sigmoid(self.ref_v(m)))

    def forward(self, x: Tensor, glob: Tensor) -> Tensor:
        """x, glob: [B, T, d]."""
        local = x * self.conv[0]
        for j in range(1, self.kernel):
            local = local + F.pad(x, (0, 0, j, -j)) * self.conv[j]
        return self.combine(x, local, glob)

    def step(self, x: Tensor, hist: Tensor, glob: Tensor) -> tuple[Tensor, Tensor]:
        """x: [B, d]; hist: [B, K-1, d] with hist[:, j-1] = x_{t-j}. Returns (out, new hist)."""
        local = x * self.conv[0]
        for j in range(1, self.kernel):
            local = local + hist[:, j - 1] * self.conv[j]
        new_hist = torch.cat([x.unsqueeze(1), hist[:, :-1]], dim=1)
        return self.combine(x, local, glob), new_hist


class Block(nn.Module):
    """Pre-LN RWKV block: x += TimeMix(ln1 x) [FADE-mixed]; x += ChannelMix(ln2 x)."""

    def __init__(self, cfg: ModelConfig, layer: int, n_mod: int) -> None:
        super().__init__()
        d = cfg.d_model
        self.layer = layer
        self.ln0 = nn.LayerNorm(d, eps=LN_EPS) if layer == 0 else None
        self.ln1 = nn.LayerNorm(d, eps=LN_EPS)
        self.ln2 = nn.LayerNorm(d, eps=LN_EPS)
        self.att = TimeMix(cfg, layer, n_mod)
        self.ffn = ChannelMix(cfg, layer, n_mod)
        self.fade = Fade(d, cfg.fade_kernel) if cfg.fade else None


class RwkvMoe(nn.Module):
    """The predictor: embedding -> blocks -> ln_out -> head restricted to the modality slice."""

    def __init__(self, cfg: ModelConfig, vocab: VocabLayout | None = None) -> None:
        super().__init__()
        self.cfg = cfg
        self.vocab = vocab or byte_vocab()
        n_mod = len(self.vocab.modalities)
        d = cfg.d_model
        self.emb = nn.Embedding(self.vocab.size, d)
        nn.init.uniform_(self.emb.weight, -1e-4, 1e-4)
        self.blocks = nn.ModuleList([Block(cfg, i, n_mod) for i in range(cfg.n_layer)])
        self.ln_out = nn.LayerNorm(d, eps=LN_EPS)
        self.head = nn.Parameter(torch.randn(self.vocab.size, d) * (0.5 / math.sqrt(d)))
        smax = self.vocab.max_slice
        idx = torch.zeros(n_mod, smax, dtype=torch.long)
        msk = torch.full((n_mod, smax), float("-inf"))
        for i, (start, size) in enumerate(self.vocab.slices):
            idx[i, :size] = torch.arange(start, start + size)
            msk[i, :size] = 0.0
        self.register_buffer("slice_index", idx, persistent=False)
        self.register_buffer("slice_mask", msk, persistent=False)

    # -- training form -----------------------------------------------------------------------
    def hidden(self, tokens: Tensor, mod: Tensor) -> tuple[Tensor, list]:
        """tokens [B, T] (global ids), mod [B] -> final normed hidden [B, T, d], router aux list."""
        x = self.emb(tokens)
        v_first = None
        aux: list = []
        for blk in self.blocks:
            if blk.ln0 is not None:
                x = blk.ln0(x)
            xa = blk.ln1(x)
            att, v_first, a1, _ = blk.att(xa, v_first, mod)
            if blk.fade is not None:
                att = blk.fade(xa, att)
            x = x + att
            f, a2 = blk.ffn(blk.ln2(x), mod)
            x = x + f
            aux += [("v", blk.layer, *a) for a in a1] + [("ffn", blk.layer, *a) for a in a2]
        return self.ln_out(x), aux

    def slice_logits(self, h: Tensor, mod: Tensor) -> Tensor:
        """Logits over each row's modality slice: h [B, ..., d], mod [B] -> [B, ..., S_max] (-inf pad)."""
        w = self.head[self.slice_index[mod]]  # [B, S, d]
        lead = h.shape[1:-1]
        lg = (h.reshape(h.shape[0], -1, h.shape[-1]) @ w.transpose(-1, -2)).reshape(h.shape[0], *lead, -1)
        return lg + self.slice_mask[mod].view(h.shape[0], *([1] * len(lead)), -1)

    def forward(self, tokens: Tensor, mod: Tensor) -> tuple[Tensor, list]:
        """Slice logits for every position of tokens [B, T] and the router aux list."""
        h, aux = self.hidden(tokens, mod)
        return self.slice_logits(h, mod), aux

    # -- recurrent form ----------------------------------------------------------------------
    def init_state(self, batch: int) -> list[Tensor]:
        """Zero state: per layer [att_x [B,d], wkv [B,H,N,N], ffn_x [B,d], (fade hist [B,K-1,d])]."""
        cfg = self.cfg
        out: list[Tensor] = []
        for _ in self.blocks:
            out += [torch.zeros(batch, cfg.d_model), torch.zeros(batch, cfg.n_head, cfg.head_size, cfg.head_size),
                    torch.zeros(batch, cfg.d_model)]
            if cfg.fade:
                out.append(torch.zeros(batch, cfg.fade_kernel - 1, cfg.d_model))
        return out

    def step(self, token: Tensor, mod: Tensor, state: list[Tensor], return_gates: bool = False
             ) -> tuple[Tensor, list[Tensor]] | tuple[Tensor, list[Tensor], Tensor]:
        """token [B] (global id), mod [B] -> (slice logits [B, S_max], new state[, gates]).

        ``gates`` [B, n_layer, 2, E]: re-normalised router weights (0 = not selected) of the V router
        ([:, :, 0]) and FFN router ([:, :, 1]) of every layer; a dense module reports all-zero gates.
        """
        per = 4 if self.cfg.fade else 3
        x = self.emb(token)
        v_first = None
        new: list[Tensor] = []
        gl: list[Tensor] = []
        e = self.cfg.n_experts
        for i, blk in enumerate(self.blocks):
            st = state[i * per:(i + 1) * per]
            if blk.ln0 is not None:
                x = blk.ln0(x)
            xa = blk.ln1(x)
            att, wkv, v_first, g_v = blk.att.step(xa, st[0], st[1], v_first, mod)
            extra = []
            if blk.fade is not None:
                att, hist = blk.fade.step(xa, st[3], att)
                extra = [hist]
            x = x + att
            xf = blk.ln2(x)
            f, g_f = blk.ffn.step(xf, st[2], mod)
            x = x + f
            new += [xa, wkv, xf, *extra]
            if return_gates:
                zero = torch.zeros(x.shape[0], e, dtype=x.dtype)
                gl.append(torch.stack([g_v if g_v is not None else zero, g_f if g_f is not None else zero], 1))
        logits = self.slice_logits(self.ln_out(x), mod)
        if return_gates:
            return logits, new, torch.stack(gl, 1)
        return logits, new

    def merge_reparam_(self) -> None:
        """Fold every training-time branch into its main weight (in place)."""
        for m in self.modules():
            if isinstance(m, RepLinear):
                m.merge_()


def count_params(model: nn.Module) -> int:
    """Number of parameters."""
    return sum(p.numel() for p in model.parameters())


def macs_per_token(cfg: ModelConfig, vocab: VocabLayout | None = None) -> dict[str, int]:
    """Multiply-adds per token of the *inference* step (active experts only, merged weights)."""
    vocab = vocab or byte_vocab()
    d, n, h = cfg.d_model, cfg.head_size, cfg.n_head
    e = len(vocab.modalities)
    del e
    per: dict[str, int] = {}
    att = 2 * d * d  # R, K
    att += (cfg.top_k if cfg.moe_v else 1) * d * d + (cfg.n_experts * d if cfg.moe_v else 0)  # V experts + router
    att += d * d  # output
    att += 2 * d * (cfg.decay_lora + cfg.aaa_lora + cfg.gate_lora)
    att_v = 2 * d * cfg.mv_lora  # layers > 0
    att += h * 4 * n * n  # state: S*w, S@alpha, (S@alpha) beta^T, v k^T, S r (~4 N^2 per head after fusing)
    hid = d * cfg.ffn_mult // (2 if cfg.moe_ffn else 1)
    ffn = (cfg.top_k if cfg.moe_ffn else 1) * 2 * d * hid + (cfg.n_experts * d if cfg.moe_ffn else 0)
    fade = (d * d + 3 * d * (d // 2) + cfg.fade_kernel * d) if cfg.fade else 0
    per["time_mix"] = cfg.n_layer * att + (cfg.n_layer - 1) * att_v
    per["channel_mix"] = cfg.n_layer * ffn
    per["fade"] = cfg.n_layer * fade
    per["head"] = d * vocab.max_slice
    per["total"] = sum(per.values())
    return per
