"""Models built from specs: layouts, generation, describe, the examples of DESIGN.md, and build errors."""

from __future__ import annotations

import pytest
import torch
from _helpers import rel_err

import mixerzoo as zoo
from mixerzoo import SpecError

BASED_360M = "(conv3-taylor16-sw128-conv3-conv3)*5-conv3*2"


def test_based_360m_layout():
    layers = zoo.parse(BASED_360M)
    assert len(layers) == 27
    assert [i for i, layer in enumerate(layers) if layer.name == "taylor"] == [1, 6, 11, 16, 21]
    assert [i for i, layer in enumerate(layers) if layer.name == "sw"] == [2, 7, 12, 17, 22]
    assert all(layer.token in ("conv3", "taylor16", "sw128") for layer in layers)
    desc = zoo.describe(BASED_360M, d_model=1024, n_heads=16, seq_len=2048, file=None)
    assert len(desc.rows) == 27 and 300e6 < desc.total_params < 400e6
    la = desc.rows[1]["state"]
    assert la == 16 * 153 * 64 + 16 * 153  # H·D·dv + H·D
    assert desc.rows[2]["state"] == 2 * 128 * 1024  # sw128 ring buffer
    assert desc.rows[0]["state"] == 2 * 2048  # conv3: (K−1)·channels


DESIGN_EXAMPLES = [
    "taylor16-sw64-conv3",
    BASED_360M,
    *(f"(taylor{d}-sw64-conv3)*4" for d in (8, 16, 24, 32)),
    *(f"({fm}16-sw64-conv3)*4" for fm in ("taylor", "poselu", "relu", "performer", "cosformer")),
    *(f"(taylor16-sw{w}-conv3)*4" for w in (16, 32, 64, 128, 256)),
    "mix(conv3:3,taylor16:1,sw64:1)@20",
    "(performer16[m=64]-sw64[heads=4]-conv3[mlp=none])*4",
]


@pytest.mark.parametrize("spec", DESIGN_EXAMPLES)
def test_design_examples_build_and_run(spec):
    model = zoo.build(spec, d_model=64, vocab_size=50, device="meta")
    assert model.spec == zoo.canon(spec)
    assert len(model.layer_configs) == len(zoo.parse(spec))


def test_per_layer_options_reach_the_layers():
    model = zoo.build("(performer16[m=64]-sw64[heads=4]-conv3[mlp=none])*2", d_model=64, n_heads=2)
    cfgs = model.layer_configs
    assert cfgs[0]["feature_dim"] == 64 and cfgs[0]["heads"] == 2
    assert cfgs[1]["heads"] == 4 and cfgs[1]["window"] == 64
    assert cfgs[2]["mlp"] == "none" and cfgs[0]["mlp"] == "swiglu"
    assert model.blocks[2].mlp_kind == "none" and hasattr(model.blocks[0], "mlp")


@pytest.mark.parametrize(
    "spec",
    ["taylor4-sw5-conv3", "attn-conv3", "(poselu4-relu4-square4)", "cosformer4-performer4[m=8]", "identity4-sw3"],
)
def test_greedy_generation_is_the_argmax_of_the_full_forward(spec):
    torch.manual_seed(0)
    model = zoo.build(spec, d_model=32, vocab_size=40, n_heads=2, max_len=64).eval()
    prompt = torch.randint(0, 40, (3, 7))
    out = model.generate(prompt, max_new_tokens=9)
    assert out.shape == (3, 16) and torch.equal(out[:, :7], prompt)
    with torch.no_grad():
        logits = model(out)  # the full forward over everything generated
    assert torch.equal(logits[:, 6:-1].argmax(-1), out[:, 7:])


def test_sampled_generation_is_reproducible_and_respects_top_k():
    model = zoo.build("taylor4-conv3", d_model=32, vocab_size=40, n_heads=2).eval()
    prompt = torch.randint(0, 40, (2, 5))
    a = model.generate(prompt, 6, temperature=1.0, top_k=3, generator=torch.Generator().manual_seed(1))
    b = model.generate(prompt, 6, temperature=1.0, top_k=3, generator=torch.Generator().manual_seed(1))
    assert torch.equal(a, b)
    logits, _ = model.prefill(prompt)
    assert a[0, 5] in logits[0].topk(3).indices


def test_stack_without_vocabulary_maps_hidden_states():
    stack = zoo.build("conv3-sw8", d_model=24, n_heads=3)
    assert isinstance(stack, zoo.Stack)
    assert stack(torch.randn(2, 10, 24)).shape == (2, 10, 24)
    assert stack.state_size(10) == 2 * 48 + 2 * 8 * 24


def test_model_state_size_sums_the_layers():
    model = zoo.build("taylor8-sw16-conv3-attn", d_model=32, vocab_size=10, n_heads=2)
    assert model.state_size(100) == sum(b.mixer.state_size(100) for b in model.stack.blocks)


def test_list_wildcards_in_natural_order():
    assert zoo.list("perf*") == ["performer"]
    assert zoo.list() == sorted(zoo.list())
    assert {"taylor", "sw", "conv", "attn"} <= set(zoo.list())


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"spec": "taylor16-sw64", "n_layers": 3}, SpecError, "expands to 2 layers"),
        ({"spec": "talyor16"}, SpecError, "did you mean 'taylor16'"),
        ({"spec": "taylor16[head=2]"}, SpecError, "did you mean 'heads'"),
        ({"spec": "sw64[heads=3]", "d_model": 64}, ValueError, r"layer 0 'sw64\[heads=3\]': sw: d_model=64 is not divisible"),
        ({"spec": "taylor16", "mlp": "relu"}, ValueError, "mlp must be one of"),
        ({"spec": "taylor16", "d_model": 0}, ValueError, "d_model must be a positive int"),
        ({"spec": "identity16[normalize=true]"}, ValueError, "cannot feed the normalized form"),
    ],
)  # fmt: skip
def test_build_errors_say_what_and_how_to_fix(kwargs, error, match):
    kwargs = {"d_model": 64, **kwargs}
    with pytest.raises(error, match=match):
        zoo.build(kwargs.pop("spec"), **kwargs)


def test_head_at_masked_positions_equals_indexing_the_full_logits():
    torch.manual_seed(0)
    model = zoo.build("conv3-taylor4-sw8", d_model=16, vocab_size=11)
    ids = torch.randint(0, 11, (3, 9))
    mask = torch.rand(3, 9) < 0.4
    torch.testing.assert_close(model(ids, mask), model(ids)[mask], rtol=1e-6, atol=1e-6)
    assert model(ids, torch.zeros(3, 9, dtype=torch.bool)).shape == (0, 11)
    with pytest.raises(ValueError, match="bool mask shaped like input_ids"):
        model(ids, mask.long())
    with pytest.raises(ValueError, match="bool mask shaped like input_ids"):
        model(ids, mask[:, :4])


def test_language_model_input_errors():
    model = zoo.build("conv3", d_model=16, vocab_size=10)
    with pytest.raises(ValueError, match=r"token ids must lie in \[0, 10\)"):
        model(torch.tensor([[3, 11]]))
    with pytest.raises(ValueError, match=r"int64 tensor \[B, L\]"):
        model(torch.randn(1, 4))
    with pytest.raises(ValueError, match="max_new_tokens >= 0"):
        model.generate(torch.tensor([[1]]), -1)


def test_cli_list_and_describe(capsys):
    from mixerzoo.cli import main

    assert main(["list", "perf*"]) == 0
    assert "performer" in capsys.readouterr().out
    assert main(["describe", "conv3-taylor16", "--d-model", "64", "--seq-len", "1024"]) == 0
    out = capsys.readouterr().out
    assert "taylor16" in out and "9,945" in out
    assert main(["describe", "based-1.3b"]) == 0  # a preset brings its own width, heads and vocabulary
    assert "(d_model=1792, 36 layers" in capsys.readouterr().out
    assert main(["describe", "talyor16"]) == 2
    assert "did you mean 'taylor16'" in capsys.readouterr().err
    assert main(["generate", "taylor4-conv3", "--d-model", "32", "--new-tokens", "4"]) == 0
    assert "generated" in capsys.readouterr().out


@pytest.mark.parametrize("name", sorted(zoo.zoo.PRESETS))
def test_presets_generate_the_argmax_of_the_full_forward_at_reduced_width(name):
    torch.manual_seed(0)
    spec = zoo.zoo.PRESETS[name].spec
    model = zoo.build(spec, d_model=32, vocab_size=30, n_heads=2, max_len=64).eval()
    prompt = torch.randint(0, 30, (2, 5))
    out = model.generate(prompt, max_new_tokens=4)
    with torch.no_grad():
        assert torch.equal(model(out)[:, 4:-1].argmax(-1), out[:, 5:])


def test_preset_layouts():
    full = zoo.build("based-1.3b", device="meta")
    assert full.stack.d_model == 1792 and full.vocab_size == 50277 and len(full.layer_configs) == 36
    names = [c["name"] for c in full.layer_configs]
    assert [i for i, n in enumerate(names) if n == "taylor"] == [1, 6, 11, 16, 21, 27, 33]
    assert [i for i, n in enumerate(names) if n == "sw"] == [2, 7, 12, 17, 22, 28, 34]
    small = zoo.build("based-360m", device="meta")
    assert small.spec == BASED_360M and small.stack.d_model == 1024
    assert zoo.build("transformer-360m", device="meta").spec == "attn*27"
    assert zoo.build("based-360m", d_model=128, n_heads=2, vocab_size=10, device="meta").stack.d_model == 128


@pytest.mark.parametrize(
    "spec,near", [("based-3b", "based-1.3b"), ("transformer-360", "transformer-360m"), ("Based-1.3B", "based-1.3b")]
)
def test_a_mistyped_preset_name_lists_the_presets(spec, near):
    with pytest.raises(SpecError) as info:
        zoo.build(spec, device="meta")
    assert f"did you mean the preset '{near}'?" in info.value.hint
    assert "presets: " + ", ".join(zoo.zoo.PRESETS) in str(info.value)
    with pytest.raises(SpecError) as info:  # a spec that is no preset's name keeps its hint alone
        zoo.build("taylor16-sww", device="meta")
    assert "preset" not in str(info.value) and "did you mean 'sw'?" in info.value.hint


def test_cuda_graph_generation_needs_cuda():
    model = zoo.build("conv3", d_model=16, vocab_size=10)
    with pytest.raises(ValueError, match="cuda_graph=True needs"):
        model.generate(torch.tensor([[1, 2]]), 3, cuda_graph=True)


@pytest.mark.gpu
@pytest.mark.parametrize("spec", ["taylor16-sw8-conv3-attn", "based-360m"])
def test_cuda_graph_generation_equals_eager(spec):
    torch.manual_seed(0)
    kwargs = {"d_model": 256, "n_heads": 4, "vocab_size": 1000} if spec.startswith("based") else {"d_model": 128}
    model = zoo.build(spec, **{"vocab_size": 1000, **kwargs}, device="cuda").eval()
    prompt = torch.randint(0, 1000, (4, 37), device="cuda")
    eager = model.generate(prompt, 24, cuda_graph=False)
    graphed = model.generate(prompt, 24, cuda_graph=True)
    assert torch.equal(eager, graphed)


def test_prefill_in_batch_slices_equals_one_prefill():
    model = zoo.build("taylor4-sw3-conv3-attn", d_model=32, vocab_size=20, n_heads=2).eval()
    ids = torch.randint(0, 20, (7, 9))
    with torch.no_grad():
        a, states_a = model.prefill(ids, capacity=12)
        b, states_b = model.prefill(ids, capacity=12, batch_chunk=3)
    assert torch.allclose(a, b, atol=1e-5)
    for sa, sb in zip(states_a, states_b):
        assert int(sb["position"]) == 9
        assert all(torch.allclose(sa[k], sb[k], atol=1e-5) for k in sa)


def test_decode_floor_counts_weights_and_state_bytes():
    from mixerzoo.bench import decode_cost, mixer_state_cost

    model = zoo.build("attn-taylor4-sw8-conv3", d_model=32, vocab_size=10, n_heads=2)
    blocks = model.stack.blocks
    weights = sum(p.numel() for n, p in model.named_parameters() if not n.startswith("embed."))
    nbytes, flops = decode_cost(model, batch=3, length=100)
    la = blocks[1].mixer
    expected = 4 * weights + 3 * 32 * 4  # fp32 weights + the B embedding rows
    expected += 3 * 2 * 100 * 32 * 4  # attn: read the KV cache of 100 tokens
    expected += 3 * 2 * la.heads * la.feature_map.out_dim * (la.head_dim + 1) * 4  # taylor: kv and z, read + write
    expected += 3 * 2 * 8 * 32 * 4  # sw8 ring
    expected += 3 * 2 * 2 * 64 * 4  # conv3: K−1 = 2 inputs of 64 channels
    assert nbytes == expected
    assert flops > 2 * 3 * weights
    state_bytes, state_flops = mixer_state_cost(model, batch=3, length=100)
    assert state_bytes == expected - (4 * weights + 3 * 32 * 4)  # the states' share: all but weights and embeddings
    assert flops == 2 * 3 * weights + state_flops


def test_prefill_floor_counts_projections_and_mixer_products():
    from mixerzoo.bench import prefill_flops

    model = zoo.build("attn-taylor4-sw8-conv3", d_model=32, vocab_size=10, n_heads=2)
    la = model.stack.blocks[1].mixer
    weights = sum(p.numel() for n, p in model.named_parameters() if not n.startswith(("embed.", "head.")))
    B, L = 2, 50
    expected = 2 * B * L * weights  # every weight once per token; the head runs at the last position only
    expected += 2 * B * L * L * 2 * 16  # causal attention: half of 4·L²·d, 2 heads of 16
    expected += 4 * B * L * la.heads * la.feature_map.out_dim * (la.head_dim + 1)  # taylor: kv and z per token
    expected += 4 * B * L * 8 * 2 * 16  # sw8: a window of 8 keys per query
    assert prefill_flops(model, B, L) == expected


# The compiled decode step (torch.compile of LanguageModel.step): traced in one graph, equal to eager token for token.
ALL_STEP_PATHS = (
    "taylor4[backend=triton]-poselu4[backend=triton]-relu4-square4-cosformer4[backend=triton]-performer4[m=8]"
    "-identity4-sw8[backend=triton]-sw8-conv3[backend=triton]-conv3-attn"
)


def test_every_mixer_step_traces_in_one_graph():
    model = zoo.build(ALL_STEP_PATHS, d_model=32, vocab_size=50, n_heads=2, max_len=64).eval()
    with torch.no_grad():
        _, states = model.prefill(torch.randint(0, 50, (2, 5)), capacity=8)
        explained = torch._dynamo.explain(model._step_logits)(torch.tensor([1, 2]), states)
    assert explained.graph_count == 1 and explained.graph_break_count == 0, explained.break_reasons


@pytest.mark.parametrize(
    "spec", ["taylor4-sw8-conv3-attn", "taylor4[backend=triton]-sw8[backend=triton]-conv3[backend=triton]-attn"]
)
def test_compiled_decode_step_generates_the_eager_tokens(spec):
    torch.manual_seed(0)
    model = zoo.build(spec, d_model=32, vocab_size=50, n_heads=2, max_len=64).eval()
    prompt = torch.randint(0, 50, (3, 7))
    eager = model.generate(prompt, 9)
    compiled = model.generate(prompt, 9, compile_step=True)
    assert torch.equal(eager, compiled)
    assert model.generate(prompt, 9, compile_step=True).equal(eager)  # the cached compiled step, run again
    assert len(model._compiled_fns) == 1


@pytest.mark.slow
def test_compiled_decode_step_of_a_preset_at_reduced_width():
    torch.manual_seed(0)
    model = zoo.build(zoo.zoo.PRESETS["based-360m"].spec, d_model=32, vocab_size=30, n_heads=2, max_len=64).eval()
    prompt = torch.randint(0, 30, (2, 5))
    assert torch.equal(model.generate(prompt, 6), model.generate(prompt, 6, compile_step=True))


def test_compiled_step_asks_inductor_for_pdl_beside_the_modes_own_options():
    """The decode step's compile (``STEP_INDUCTOR_PDL``): a mode's options plus ``triton.enable_pdl`` (torch.compile
    takes a mode or options, not both); without PDL, the mode itself."""
    from mixerzoo.models.lm import _compile_kwargs

    assert _compile_kwargs("default", False) == {"mode": None}
    assert _compile_kwargs("max-autotune-no-cudagraphs", False) == {"mode": "max-autotune-no-cudagraphs"}
    if hasattr(torch._inductor.config.triton, "enable_pdl"):
        assert _compile_kwargs("default", True) == {"options": {"triton.enable_pdl": True}}
        opts = _compile_kwargs("max-autotune-no-cudagraphs", True)["options"]
        assert opts["triton.enable_pdl"] and opts["max_autotune"] and opts["coordinate_descent_tuning"]


def test_compile_step_rejects_modes_with_their_own_cuda_graphs():
    model = zoo.build("conv3", d_model=16, vocab_size=10)
    with pytest.raises(ValueError, match="without its own CUDA graphs"):
        model.generate(torch.tensor([[1, 2]]), 3, compile_step="reduce-overhead")


@pytest.mark.gpu
@pytest.mark.parametrize(
    "spec,rope_in_step", [("taylor16-sw8-conv3-attn", False), ("taylor16-sw8-conv3-attn", True), ("based-360m", False)]
)
def test_compiled_and_graphed_generation_equals_eager(monkeypatch, spec, rope_in_step):
    """Also with the attn layer's RoPE inside its decode kernel (``ROPE_IN_STEP``)."""
    from mixerzoo.mixers import attention

    monkeypatch.setattr(attention, "ROPE_IN_STEP", rope_in_step)
    torch.manual_seed(0)
    kwargs = {"d_model": 256, "n_heads": 4} if spec.startswith("based") else {"d_model": 128}
    model = zoo.build(spec, vocab_size=1000, **kwargs, device="cuda").eval()
    prompt = torch.randint(0, 1000, (4, 37), device="cuda")
    eager = model.generate(prompt, 24, cuda_graph=False)
    assert torch.equal(eager, model.generate(prompt, 24, cuda_graph=True, compile_step=True))
    assert torch.equal(eager, model.generate(prompt, 24, cuda_graph=False, compile_step=True))


def test_bench_times_compiled_beside_eager():
    from mixerzoo.bench import bench_main, compile_steps, prefill_speedups, speedups, step_label

    assert compile_steps(None) == [False] and compile_steps("default") == [False, True]
    assert compile_steps("max-autotune-no-cudagraphs") == [False, "max-autotune-no-cudagraphs"]
    assert [step_label(s) for s in (False, True, "default", "max-autotune-no-cudagraphs")] == [
        "eager", "compiled", "compiled", "compiled:max-autotune-no-cudagraphs"
    ]  # fmt: skip
    rows = [
        {"model": "m", "batch": 1, "step": "eager", "step_ms": 3.0, "capture_s": 0.1},
        {"model": "m", "batch": 1, "step": "compiled", "step_ms": 2.0, "capture_s": 40.0},
        {"model": "m", "batch": 8, "step": "compiled", "step_ms": 2.0, "capture_s": 40.0},  # no eager row: skipped
    ]
    assert speedups(rows) == [
        {"model": "m", "batch": 1, "step": "compiled", "eager_ms": 3.0, "compiled_ms": 2.0, "speedup": 1.5,
         "capture_s": 40.0}
    ]  # fmt: skip
    pre = [
        {"model": "m", "batch": 1, "prefill": "eager", "ms": 30.0, "warmup_s": 0.5},
        {"model": "m", "batch": 1, "prefill": "compiled", "ms": 10.0, "warmup_s": 60.0},
    ]
    assert [(r["prefill"], r["speedup"], r["warmup_s"]) for r in prefill_speedups(pre + rows)] == [("compiled", 3, 60)]
    graphed = [  # a graphed compiled prefill is compared with the graphed eager one, not the host-bound eager one
        {"model": "m", "batch": 1, "prefill": "eager+graph", "ms": 12.0, "warmup_s": 0.2},
        {"model": "m", "batch": 1, "prefill": "compiled+graph", "ms": 6.0, "warmup_s": 61.0},
    ]
    assert [(r["prefill"], r["eager_ms"], r["speedup"]) for r in prefill_speedups(pre + graphed)] == [
        ("compiled", 30.0, 3), ("compiled+graph", 12.0, 2)
    ]  # fmt: skip
    assert prefill_speedups(graphed[1:] + pre[:1]) == []  # no graphed eager row: nothing to compare with
    for flag in ("--compile", "--cuda-graph"):  # the prefill's; the decode step's is --compile-step
        with pytest.raises(SystemExit):
            bench_main(["generate", "based-360m", flag])
    if not torch.cuda.is_available():  # the flags parse; the bench itself needs a GPU
        assert bench_main(["generate", "based-360m", "--compile-step"]) == 2
        assert bench_main(["prefill", "based-360m", "--compile"]) == 2
        assert bench_main(["prefill", "based-360m", "--compile", "--cuda-graph"]) == 2


@pytest.mark.parametrize("in_place", [False, True], ids=["scratch", "in_place"])
def test_largest_batch_estimate_fits_the_states_and_their_snapshots(monkeypatch, in_place):
    """The analytic largest batch: weights, a prefill workspace, every sequence's state and what the capture keeps
    beside it (a copy of every state; in place, a copy of the linear-attention and conv states, not of the key/value
    rings) within the memory given; more memory, more sequences; a constant-state model fits more sequences than one
    whose KV cache grows with the tokens."""
    from mixerzoo.bench import largest_batch
    from mixerzoo.mixers import GatedConv, LinearAttention, SlidingWindowAttention
    from mixerzoo.models import lm

    monkeypatch.setattr(lm, "CAPTURE_IN_PLACE", in_place)

    based = zoo.build("conv3-taylor8-sw16", d_model=64, vocab_size=128, n_heads=1, dtype=torch.bfloat16)
    attn = zoo.build("conv3-attn-sw16", d_model=64, vocab_size=128, n_heads=1, dtype=torch.bfloat16)
    gb = 1 << 30
    b1, b2 = largest_batch(based, 1024, 1024, total_memory=gb), largest_batch(based, 1024, 1024, total_memory=4 * gb)
    assert 1 < b1 < b2
    assert largest_batch(attn, 1024, 1024, total_memory=gb) < b1
    state = sum(
        blk.mixer.state_size(2048)
        * (4 if isinstance(blk.mixer, LinearAttention) else 2)
        * (1 if in_place and isinstance(blk.mixer, SlidingWindowAttention) else 2)
        for blk in based.stack.blocks
    )
    assert state * b1 <= 0.85 * gb
    # exact for the model with a KV cache: each sequence costs its states twice (in place: its conv state twice, its
    # ring and its cache once)
    attn_b = largest_batch(attn, 1024, 1024, total_memory=gb)
    per_seq = sum(
        blk.mixer.state_size(2048) * 2 * (2 if not in_place or isinstance(blk.mixer, GatedConv) else 1)
        for blk in attn.stack.blocks
    )
    weights = sum(p.numel() for p in attn.parameters()) * 2
    room = 0.85 * gb - weights - (128 * 1024 * 64 * 2 * 24 + 2 * 128 * 128 * 4)  # the prefill slices
    assert attn_b * per_seq <= room < (attn_b + 1) * per_seq


def test_generate_rows_compiled_first_and_largest_batch_shrinks_on_oom(monkeypatch):
    """`bench_generate_rows`: every compiled row of every model before any eager one, each step's largest-batch rows
    after its other rows (both slow a later compiled step's replay); a batch that does not fit gives an error row; the
    largest-batch search shrinks by 30% per OOM from the estimate, and the eager step starts where the compiled one
    fit (the GPU bench replaced by a fake that fits ≤ 700 sequences)."""
    import mixerzoo.bench as bench

    calls = []

    def fake_generate(name, batch, prompt_len, new_tokens, ceilings, model=None, compile_step=False):
        calls.append((batch, new_tokens, compile_step))
        if batch > 700:
            raise torch.cuda.OutOfMemoryError("fake")
        return {"model": name, "batch": batch, "step": bench.step_label(compile_step)}

    monkeypatch.setattr(bench, "bench_generate", fake_generate)
    monkeypatch.setattr(bench, "largest_batch", lambda *a, **k: 1000)
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: None)
    batches = [(1, 128), (800, 1024)]
    rows = list(bench.bench_generate_rows({"a": None, "b": None}, batches, 1024, None, "default", largest=(1024, 64)))
    compiled = [(1, 128), (800, 1024)] * 2 + [(1000, 64), (700, 64)] * 2
    eager = [(1, 128), (800, 1024)] * 2 + [(700, 64)] * 2  # the largest search starts where the compiled one fit
    assert calls == [(*c, True) for c in compiled] + [(*c, False) for c in eager]
    assert [(r["model"], r["batch"], r["step"], "error" in r) for r in rows] == [
        (m, b, step, b == 800)
        for step in ("compiled", "eager")
        for m, b in [*zip("aabb", (1, 800) * 2), *zip("ab", (700, 700))]
    ]
    rows = list(bench.bench_generate_rows({"m": None}, [], 1024, None, largest=(1024, 64)))  # eager alone
    assert [(r["batch"], r["step"]) for r in rows] == [(700, "eager")]
    monkeypatch.setattr(bench, "largest_batch", lambda *a, **k: 10**6)  # never fits in 5 tries: an error row
    (row,) = bench.bench_generate_rows({"m": None}, [], 1024, None, largest=(1024, 64))
    assert "error" in row and row["step"] == "eager"


def test_run_in_child_keeps_every_row_and_reports_how_the_child_ended():
    """`run_in_child`: the rows of a generator run in a spawned process, in order; an exception, or the process
    dying at once (a crash), ends them with an error row after the rows sent before."""
    from _helpers import rows_then

    from mixerzoo.bench import run_in_child

    assert list(run_in_child(rows_then, 3, "ok")) == [{"i": 0}, {"i": 1}, {"i": 2}]
    *rows, err = run_in_child(rows_then, 2, "raise")
    assert rows == [{"i": 0}, {"i": 1}] and err == {"error": "ValueError: boom"}
    *rows, err = run_in_child(rows_then, 2, "exit")
    assert rows == [{"i": 0}, {"i": 1}] and err == {"error": "the child process running rows_then exited with code 3"}


def test_generate_isolated_runs_each_model_in_its_own_child(monkeypatch):
    """`bench_generate_isolated`: one `run_in_child` per model, in order, with that model's arguments; an error row
    from a child names its model (the child replaced by an in-process call)."""
    import mixerzoo.bench as bench

    calls = []

    def fake_child(fn, name, *args):
        calls.append((fn, name, args))
        yield {"model": name, "batch": 1, "step": "compiled"}
        if name == "b":
            yield {"error": "the child process running _model_rows exited with code 1"}

    monkeypatch.setattr(bench, "run_in_child", fake_child)
    rows = list(bench.bench_generate_isolated(["a", "b"], [(1, 128)], 1024, None, "default", None, (4096, None, True)))
    assert [(fn, name) for fn, name, _ in calls] == [(bench._model_rows, "a"), (bench._model_rows, "b")]
    assert calls[0][2] == ([(1, 128)], 1024, None, "default", None, (4096, None, True))
    assert [(r["model"], "error" in r) for r in rows] == [("a", False), ("b", False), ("b", True)]


def test_generate_models_runs_isolated_or_in_one_process(monkeypatch):
    """`bench_generate_models`: each model in its own child by default; with ``one_process`` every model built
    first, then `bench_generate_prefill_rows` over all of them."""
    import mixerzoo.bench as bench

    monkeypatch.setattr(bench, "bench_generate_isolated", lambda names, *a: iter([("isolated", names, a)]))
    monkeypatch.setattr(bench, "bench_generate_prefill_rows", lambda models, *a: iter([("one", models, a)]))
    monkeypatch.setattr(bench, "_build", lambda name, dtype: f"model {name}")
    args = ([(1, 128)], 1024, None, "default", None, (4096, None, True))
    assert list(bench.bench_generate_models(["a", "b"], *args)) == [("isolated", ["a", "b"], args)]
    assert list(bench.bench_generate_models(["a", "b"], *args, one_process=True)) == [
        ("one", {"a": "model a", "b": "model b"}, args)
    ]  # fmt: skip


def test_generate_prefill_rows_decode_first_then_each_prefill(monkeypatch):
    """`bench_generate_prefill_rows`: the decode rows of every model, then each model's prefill (eager, compiled)."""
    import mixerzoo.bench as bench

    monkeypatch.setattr(bench, "bench_generate_rows", lambda models, *a: ({"model": m} for m in models))
    monkeypatch.setattr(
        bench, "bench_prefill", lambda name, b, L, c, model=None, compile=False, cuda_graph=False: {"p": (name, compile, cuda_graph)}
    )  # fmt: skip
    for graph in (False, True):
        rows = list(
            bench.bench_generate_prefill_rows({"a": 0, "b": 1}, [], 1024, None, prefill=(4096, "default", graph))
        )
        assert rows == [{"model": "a"}, {"model": "b"}] + [{"p": (m, c, graph)} for m in "ab" for c in (False, True)]


def test_plot_throughput_writes_one_panel_per_pair(tmp_path):
    pytest.importorskip("matplotlib")
    from mixerzoo.bench import plot_throughput

    rows = [
        {"model": m, "batch": b, "step": st, "tokens_per_s": t * b, "step_over_floor": f}
        for m, t, f in (("a", 900.0, 2.0), ("b", 300.0, 1.2))
        for st in ("eager", "compiled")
        for b in (1, 128)
    ]
    rows.append({"model": "a", "batch": 512, "step": "eager", "error": "out of memory"})  # skipped
    path = tmp_path / "generation.png"
    plot_throughput({"a vs b": rows, "a vs b again": rows[:4]}, path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# The compiled prefill (torch.compile of the stack forward from fresh states): one graph, equal to eager prefill.
PREFILL_SPECS = (
    "taylor4-cosformer4-sw3-conv3-attn",  # cosformer: a position-dependent map, reads the start position
    "taylor4[backend=triton]-cosformer4[backend=triton]-sw3[backend=triton]-conv3[backend=triton]-attn",
)
PREFILL_TOL = {"atol": 1e-5, "rtol": 1e-5}  # fp32: inductor reorders the fused elementwise sums


def test_every_mixer_prefill_traces_in_one_graph():
    model = zoo.build(ALL_STEP_PATHS, d_model=32, vocab_size=50, n_heads=2, max_len=64).eval()
    rows = [{k: (0 if k == "position" else t) for k, t in s.items()} for s in model.stack.init_state(2, capacity=8)]
    with torch.no_grad():
        explained = torch._dynamo.explain(model._prefill_logits)(torch.randint(0, 50, (2, 5)), rows)
    assert explained.graph_count == 1 and explained.graph_break_count == 0, explained.break_reasons


@pytest.mark.parametrize("spec", PREFILL_SPECS)
def test_compiled_prefill_equals_eager_prefill(spec):
    torch.manual_seed(0)
    model = zoo.build(spec, d_model=32, vocab_size=50, n_heads=2, max_len=64).eval()
    ids = torch.randint(0, 50, (5, 9))
    with torch.no_grad():
        eager, eager_states = model.prefill(ids, capacity=12, batch_chunk=2)
        for _ in range(2):  # the second call runs the cached compiled functions
            logits, states = model.prefill(ids, capacity=12, batch_chunk=2, compile=True)
            torch.testing.assert_close(logits, eager, **PREFILL_TOL)
            for s, e in zip(states, eager_states):
                assert s.keys() == e.keys() and int(s["position"]) == 9
                for k in s:
                    torch.testing.assert_close(s[k], e[k], **PREFILL_TOL)
    assert len(model._compiled_fns) == 2  # slices of 2 and of 1 sequence


@pytest.mark.parametrize("spec", PREFILL_SPECS)
def test_compiled_prefill_generates_the_eager_tokens(spec):
    torch.manual_seed(0)
    model = zoo.build(spec, d_model=32, vocab_size=50, n_heads=2, max_len=64).eval()
    prompt = torch.randint(0, 50, (3, 7))
    eager = model.generate(prompt, 9)
    assert torch.equal(model.generate(prompt, 9, compile_prefill=True), eager)
    assert torch.equal(model.generate(prompt, 9, compile_prefill=True, compile_step=True), eager)


@pytest.mark.gpu
def test_compiled_prefill_equals_eager_on_cuda():
    torch.manual_seed(0)
    model = zoo.build("taylor16-sw8-conv3-attn", vocab_size=1000, d_model=128, device="cuda").eval()
    prompt = torch.randint(0, 1000, (4, 37), device="cuda")
    with torch.no_grad():
        eager, eager_states = model.prefill(prompt, capacity=64, batch_chunk=3)
        logits, states = model.prefill(prompt, capacity=64, batch_chunk=3, compile=True)
    torch.testing.assert_close(logits, eager, atol=1e-4, rtol=1e-4)  # fp32; inductor's own reduction order
    for s, e in zip(states, eager_states):
        for k in s:
            torch.testing.assert_close(s[k], e[k], atol=1e-4, rtol=1e-4)
    assert torch.equal(model.generate(prompt, 16, compile_prefill=True), model.generate(prompt, 16))


def test_head_rows_are_padded_and_never_read():
    """The head is padded to a multiple of ``HEAD_ALIGN`` rows (aligned cuBLAS kernels for any vocabulary); every
    logits path drops the padded rows, so even huge weights there never change a prediction."""
    from mixerzoo.models.lm import HEAD_ALIGN

    torch.manual_seed(0)
    model = zoo.build("taylor4-sw3-conv3-attn", d_model=32, vocab_size=50, n_heads=2).eval()
    assert model.head.weight.shape[0] == HEAD_ALIGN == 64
    with torch.no_grad():
        model.head.weight[50:] = 1e4
        ids = torch.randint(0, 50, (2, 7))
        assert model(ids).shape == (2, 7, 50)
        assert model(ids, positions=ids > 25).shape[-1] == 50
        logits, states = model.prefill(ids, capacity=12)
        assert logits.shape == (2, 50) and model.step(ids[:, 0], states)[0].shape == (2, 50)
    out = model.generate(ids, 5)
    assert (out < 50).all()
    assert zoo.build("conv3", d_model=16, vocab_size=128).head.weight.shape[0] == 128  # aligned: no padding


def test_graphed_prefill_needs_cuda():
    model = zoo.build("conv3", d_model=16, vocab_size=10)
    with pytest.raises(ValueError, match="cuda_graph=True needs"):
        model.prefill(torch.tensor([[1, 2]]), cuda_graph=True)


def test_captured_prefill_is_not_inherited_by_a_copy():
    """The captured prefill lives outside the module: a deep copy starts without it (it would replay the original's
    weights) and it is freed with its model."""
    import copy
    import gc

    from mixerzoo.models.lm import _PREFILL_GRAPHS

    model = zoo.build("conv3", d_model=16, vocab_size=10)
    _PREFILL_GRAPHS[model] = ("key", None, None, None)  # what _graphed_prefill stores
    assert _PREFILL_GRAPHS.get(copy.deepcopy(model)) is None
    n = len(_PREFILL_GRAPHS)
    del model
    gc.collect()
    assert len(_PREFILL_GRAPHS) == n - 1


@pytest.mark.gpu
@pytest.mark.parametrize("compile", [False, True])
def test_graphed_prefill_equals_eager_on_cuda(compile):
    """The CUDA-graph prefill: equal to the eager one (bitwise when not compiled), on a second prompt of the same
    shape (a replay), with the first call's outputs untouched by the replay, and after a shape change (a recapture)."""
    torch.manual_seed(0)
    model = zoo.build("taylor16-sw8-conv3-attn", vocab_size=1000, d_model=128, device="cuda").eval()
    tol = {"atol": 1e-4, "rtol": 1e-4} if compile else {"atol": 0.0, "rtol": 0.0}
    first = None
    for shape in ((4, 37), (4, 37), (3, 20)):
        prompt = torch.randint(0, 1000, shape, device="cuda")
        with torch.no_grad():
            eager, eager_states = model.prefill(prompt, capacity=64)
            logits, states = model.prefill(prompt, capacity=64, compile=compile, cuda_graph=True)
        torch.testing.assert_close(logits, eager, **tol)
        for s, e in zip(states, eager_states):
            assert s.keys() == e.keys()
            for k in s:
                torch.testing.assert_close(s[k], e[k], **tol)
        if first is None:
            first = (logits.clone(), logits)
    assert torch.equal(first[0], first[1])  # the replays did not overwrite what the first call returned


@pytest.mark.gpu
def test_fa2_transformer_prefills_and_generates_as_the_default_one_on_cuda():
    """``transformer-*-fa2`` pins SDPA's FlashAttention-2 kernel: its compiled, graphed prefill equals the eager one,
    and its logits are the default preset's (cuDNN's kernel on an H200) within bf16 rounding."""
    torch.manual_seed(0)
    kw = dict(d_model=128, n_heads=2, vocab_size=1000, device="cuda", dtype=torch.bfloat16)
    auto = zoo.build(zoo.zoo.PRESETS["transformer-360m"].spec.replace("*27", "*3"), **kw).eval()
    fa2 = zoo.build(zoo.zoo.PRESETS["transformer-360m-fa2"].spec.replace("*27", "*3"), **kw).eval()
    fa2.load_state_dict(auto.state_dict())
    prompt = torch.randint(0, 1000, (2, 300), device="cuda")
    with torch.no_grad():
        eager, _ = fa2.prefill(prompt, capacity=320)
        graphed, _ = fa2.prefill(prompt, capacity=320, compile=True, cuda_graph=True)
        reference, _ = auto.prefill(prompt, capacity=320)
    assert rel_err(graphed, eager) < 1e-2 and rel_err(eager, reference) < 2e-2
    out = fa2.generate(prompt[:, :20], 8)
    assert out.shape == (2, 28)


@pytest.mark.parametrize("bad", [3, "reduce-overhead", "max-autotune"])
def test_compiled_prefill_rejects_bad_modes(bad):
    model = zoo.build("conv3", d_model=16, vocab_size=10)
    with pytest.raises(ValueError, match="without its own CUDA graphs"):
        model.prefill(torch.tensor([[1, 2]]), compile=bad)
    with pytest.raises(ValueError, match="compile_prefill"):
        model.generate(torch.tensor([[1, 2]]), 0, compile_prefill=bad)
