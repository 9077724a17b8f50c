"""The mixer contract, checked for every registered name (a new mixer is tested the moment it registers)."""

from __future__ import annotations

import pytest
import torch
from _helpers import rel_err

import mixerzoo
from mixerzoo import registry
from mixerzoo.mixers import state_numel

NAMES = registry.list_names()
SMALL = {"d_prime": 4, "window": 5, "kernel_size": 3}  # small inline numbers so L exceeds them
D_MODEL, HEADS = 16, 2


def small_token(name: str) -> str:
    field = registry.vocabulary().layers[name].number_field
    return name if field is None else f"{name}{SMALL[field]}"


def make_mixer(name: str, dtype=torch.float32):
    torch.manual_seed(0)
    stack = mixerzoo.build(small_token(name), d_model=D_MODEL, n_heads=HEADS, mlp="none", max_len=256)
    return stack.blocks[0].mixer.to(dtype).eval()


@pytest.mark.parametrize("name", NAMES)
def test_causal(name):
    mixer = make_mixer(name)
    x = torch.randn(2, 19, D_MODEL)
    y = mixer(x)
    for t in (0, 7, 18):
        x2 = x.clone()
        x2[:, t] += 3 * torch.randn(2, D_MODEL)
        y2 = mixer(x2)
        assert torch.equal(y2[:, :t], y[:, :t]), f"{name}: output before {t} changed"
        assert not torch.allclose(y2[:, t], y[:, t]), f"{name}: token {t} does not reach its own output"


@pytest.mark.parametrize("name", NAMES)
def test_stepping_equals_the_full_forward(name):
    mixer = make_mixer(name)
    x = torch.randn(3, 17, D_MODEL)
    y = mixer(x)
    state = mixer.init_state(3, capacity=17)
    outs = []
    for t in range(17):
        out, state = mixer.step(x[:, t], state)
        outs.append(out)
    assert rel_err(torch.stack(outs, 1), y) < 2e-5
    assert int(state["position"]) == 17


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("steps", [1, 2, 5])
def test_snapshot_restores_what_the_steps_changed(name, steps):
    """``snapshot(state, n)`` then ``n`` steps then the restore: every state tensor as before, bit for bit (the CUDA
    graph capture's warm-up runs on the real state and relies on this); the steps did change it. Rings of 5 slots:
    ``n`` = 5 writes all of them, from a position that wraps."""
    mixer = make_mixer(name)
    state = mixer.init_state(2, capacity=32)
    with torch.no_grad():
        for _ in range(7):
            mixer.step(torch.randn(2, D_MODEL), state)
        before = {key: t.clone() for key, t in state.items()}
        restore = mixer.snapshot(state, steps)
        for _ in range(steps):
            mixer.step(torch.randn(2, D_MODEL), state)
    assert any(not torch.equal(state[key], t) for key, t in before.items()), f"{name}: the steps changed nothing"
    restore()
    for key, t in before.items():
        assert torch.equal(state[key], t), f"{name}: {key} not restored"


@pytest.mark.parametrize("rope_in_step", [False, True])
@pytest.mark.parametrize("kv_heads", [1, 2])
def test_attention_decode_through_the_ring_kernel_equals_the_full_forward(monkeypatch, kv_heads, rope_in_step):
    """The attn step's CUDA path (the sliding window's fused decode kernel, window = the whole cache) run here
    under the Triton interpreter: prefill + steps equal one forward; unwritten cache slots hold NaN. With
    ``ROPE_IN_STEP`` the kernel rotates q and k itself."""
    from mixerzoo.mixers import attention
    from mixerzoo.mixers.attention import Attention

    monkeypatch.setattr(attention, "ROPE_IN_STEP", rope_in_step)
    torch.manual_seed(0)
    stack = mixerzoo.build(f"attn[kv_heads={kv_heads}]", d_model=32, n_heads=2, mlp="none", max_len=64)
    mixer = stack.blocks[0].mixer.eval()
    monkeypatch.setattr(Attention, "_ring_step_backend", lambda self, device: "triton")
    x = torch.randn(2, 13, 32)
    y = mixer(x)
    state = mixer.init_state(2, capacity=20)
    state["k"].fill_(float("nan"))
    state["v"].fill_(float("nan"))
    out, state = mixer(x[:, :5], state)  # prefill 5, then 8 steps through the kernel
    outs = [out]
    for t in range(5, 13):
        o, state = mixer.step(x[:, t], state)
        outs.append(o.unsqueeze(1))
    assert rel_err(torch.cat(outs, 1), y) < 2e-5
    assert int(state["position"]) == 13


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_attention_decode_on_cuda_equals_the_full_forward(dtype):
    torch.manual_seed(0)
    stack = mixerzoo.build("attn[kv_heads=2]", d_model=256, n_heads=4, mlp="none", max_len=512)
    mixer = stack.blocks[0].mixer.to("cuda", dtype).eval()
    x = torch.randn(3, 300, 256, device="cuda", dtype=dtype)
    y = mixer(x)
    state = mixer.init_state(3, capacity=512)
    out, state = mixer(x[:, :200], state)
    outs = [out] + [mixer.step(x[:, t], state)[0].unsqueeze(1) for t in range(200, 300)]
    assert rel_err(torch.cat(outs, 1), y) < (2e-5 if dtype == torch.float32 else 2e-2)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("cut", [1, 4, 5, 6, 11])
def test_prefill_then_steps_and_split_resume_equal_one_call(name, cut):
    mixer = make_mixer(name)
    x = torch.randn(2, 16, D_MODEL)
    y = mixer(x)
    y_a, state = mixer(x[:, :cut], return_state=True)
    y_b, state = mixer(x[:, cut:], state)  # resume from the state: split anywhere ≡ one call
    assert rel_err(torch.cat([y_a, y_b], 1), y) < 2e-5
    _, state = mixer(x[:, :cut], return_state=True)
    steps = []
    for t in range(cut, 16):  # prefill, then decode
        out, state = mixer.step(x[:, t], state)
        steps.append(out)
    assert rel_err(torch.stack(steps, 1), y[:, cut:]) < 2e-5


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("seq_len", [1, 9, 40])
def test_state_size_is_the_numel_of_the_state_really_kept(name, seq_len):
    mixer = make_mixer(name)
    state = mixer.init_state(1, capacity=seq_len)
    _, state = mixer(torch.randn(1, seq_len, D_MODEL), state)
    assert mixer.state_size(seq_len) == state_numel(state)
    before = state_numel(state)
    if name != "attn":  # constant memory in the generated length (attn's cache is preallocated)
        state = mixer.init_state(1)
        for _ in range(seq_len):
            _, state = mixer.step(torch.randn(1, D_MODEL), state)
        assert state_numel(state) == before


def test_state_sizes_match_the_design_formulas():
    H, dv = HEADS, D_MODEL // HEADS
    taylor = make_mixer("taylor")
    D = 1 + 4 + 4 * 5 // 2
    assert taylor.state_size(100) == H * D * dv + H * D
    assert make_mixer("sw").state_size(100) == 2 * 5 * D_MODEL  # 2·W·D, whatever the length
    assert make_mixer("conv").state_size(100) == 2 * (2 * D_MODEL)  # (K−1)·channels, channels = 2·d_model
    assert make_mixer("attn").state_size(100) == 2 * 100 * D_MODEL


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize(("dtype", "tol"), [(torch.float32, 1e-6), (torch.bfloat16, 6e-2), (torch.float16, 1e-2)])
def test_forward_and_backward_are_finite_and_close_in_every_dtype(name, dtype, tol):
    ref_mixer = make_mixer(name)
    mixer = make_mixer(name, dtype).train()
    x = torch.randn(2, 21, D_MODEL)
    xd = x.to(dtype).requires_grad_()
    y = mixer(xd)
    assert y.dtype == dtype and torch.isfinite(y).all()
    assert rel_err(y, ref_mixer(x)) < tol
    y.float().square().sum().backward()
    assert torch.isfinite(xd.grad).all()
    assert all(torch.isfinite(p.grad).all() for p in mixer.parameters() if p.grad is not None)


@pytest.mark.parametrize("length", [4, 5, 6])  # W − 1, W, W + 1 with W = 5
def test_sliding_window_sees_exactly_its_window(length):
    mixer = make_mixer("sw")  # sw5
    x = torch.randn(1, length, D_MODEL)
    y = mixer(x)
    last = length - 1
    for t in range(length):
        x2 = x.clone()
        x2[:, t] += 1.0
        changed = not torch.allclose(mixer(x2)[:, last], y[:, last])
        assert changed == (t > last - 5), f"token {t} seen={changed} by position {last}"
    steps, state = [], mixer.init_state(1)
    for t in range(length):
        out, state = mixer.step(x[:, t], state)
        steps.append(out)
    assert rel_err(torch.stack(steps, 1), y) < 2e-5


def test_mixer_inputs_are_checked():
    mixer = make_mixer("taylor")
    with pytest.raises(ValueError, match=r"expects x \[B, L, 16\]"):
        mixer(torch.randn(2, 5, 8))
    with pytest.raises(ValueError, match=r"expects one token x \[B, 16\]"):
        mixer.step(torch.randn(2, 1, 16), mixer.init_state(2))
    attn = make_mixer("attn")
    with pytest.raises(ValueError, match="the KV cache holds 3 tokens"):
        attn(torch.randn(1, 4, D_MODEL), attn.init_state(1, capacity=3))


def test_rotary_table_equals_the_angles_of_the_positions():
    """The cached table (a forward's angles) gives the angles ``rotary_angles`` computes for the same positions, for
    ranges that grow the table, start inside it, and pass ``TABLE_MAX_POSITIONS`` (computed, not tabled)."""
    from mixerzoo.mixers import rotary

    for hd in (7, 64):
        for start, L in ((0, 5), (100, 37), (1000, 100), (3000, 2000), (rotary.TABLE_MAX_POSITIONS - 2, 4)):
            want = rotary.rotary_angles(torch.arange(start, start + L), hd)
            got = rotary.rotary_table(start, L, hd, "cpu")
            for a, b in zip(got, want):
                assert a.shape == b.shape
                torch.testing.assert_close(a, b, rtol=0, atol=1e-6)


@pytest.mark.parametrize("name", ["sw", "attn"])
def test_rotary_embeddings_are_on_by_default_and_can_be_turned_off(name):
    token = small_token(name)
    with_rope = mixerzoo.build(token, d_model=D_MODEL, n_heads=HEADS, mlp="none")
    without = mixerzoo.build(f"{token}[rope=false]", d_model=D_MODEL, n_heads=HEADS, mlp="none")
    assert with_rope.blocks[0].mixer.config.rope and not without.blocks[0].mixer.config.rope
    without.load_state_dict(with_rope.state_dict())
    x = torch.randn(1, 9, D_MODEL)
    assert not torch.allclose(with_rope(x), without(x))  # positions rotate q and k
    assert without.spec == f"{token}[rope=false]"


def test_attention_on_sdpa_flash_computes_what_auto_does():
    auto = mixerzoo.build("attn", d_model=D_MODEL, n_heads=HEADS, mlp="none")
    flash = mixerzoo.build("attn[sdpa=flash]", d_model=D_MODEL, n_heads=HEADS, mlp="none")
    flash.load_state_dict(auto.state_dict())
    x = torch.randn(2, 9, D_MODEL)
    assert rel_err(flash(x), auto(x)) < 1e-5
    assert flash.spec == "attn[sdpa=flash]" and flash.blocks[0].mixer.config.sdpa == "flash"
    with pytest.raises(mixerzoo.SpecError, match="sdpa"):
        mixerzoo.build("attn[sdpa=fa2]", d_model=D_MODEL, n_heads=HEADS)
    with pytest.raises(ValueError, match="pins a kernel of the torch backend"):
        mixerzoo.build("attn[sdpa=flash,backend=xformers]", d_model=D_MODEL, n_heads=HEADS)


@pytest.mark.gpu
@pytest.mark.parametrize("sdpa", ["flash", "cudnn", "efficient"])
def test_attention_on_each_sdpa_kernel_on_cuda_matches_auto(sdpa):
    torch.manual_seed(0)
    auto = mixerzoo.build("attn", d_model=256, n_heads=4, mlp="none").to("cuda", torch.bfloat16)
    pinned = mixerzoo.build(f"attn[sdpa={sdpa}]", d_model=256, n_heads=4, mlp="none").to("cuda", torch.bfloat16)
    pinned.load_state_dict(auto.state_dict())
    x = torch.randn(2, 300, 256, device="cuda", dtype=torch.bfloat16)
    with torch.no_grad():
        assert rel_err(pinned(x), auto(x)) < 2e-2
        compiled = torch.compile(pinned, fullgraph=True)  # sdpa_kernel inside a compiled region
        assert rel_err(compiled(x), pinned(x)) < 2e-2


def test_linear_attention_loads_a_checkpoint_with_separate_q_k_v():
    """q, k and v are one projection (``qkv_proj``, rows [q; k; v]); a state dict from before, with ``q_proj``,
    ``k_proj`` and ``v_proj``, loads into it and gives the same output as the split projections it came from."""
    mixer = make_mixer("taylor")
    w = mixer.qkv_proj.weight.detach()
    qk = mixer.heads * mixer.d_prime
    old = {k: v for k, v in mixer.state_dict().items() if not k.startswith("qkv_proj")}
    old.update({"q_proj.weight": w[:qk], "k_proj.weight": w[qk : 2 * qk], "v_proj.weight": w[2 * qk :]})
    fresh = make_mixer("taylor")
    torch.nn.init.zeros_(fresh.qkv_proj.weight)
    fresh.load_state_dict(old)
    assert torch.equal(fresh.qkv_proj.weight, w)
    x = torch.randn(2, 7, D_MODEL)
    assert torch.equal(fresh(x), mixer(x))
