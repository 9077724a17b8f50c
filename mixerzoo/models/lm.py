"""The language model: embedding → blocks → norm → head, with recurrent generation.

``generate`` prefills the prompt through the parallel path (each mixer returns its state), then
runs one ``step`` per new token through every layer's state: memory stays constant in the number
of generated tokens for every mixer but ``attn``, whose KV cache is preallocated for the whole run.
"""

from __future__ import annotations

import os
import types
import weakref
from collections.abc import Callable

import torch
from torch import Tensor, nn

from mixerzoo.kernels.decode_linear import Linear
from mixerzoo.mixers.base import State
from mixerzoo.models.block import RMSNorm, Stack

__all__ = ["LanguageModel"]

# The head's output rows are padded to a multiple of this (its logits sliced back to vocab_size): for an odd width
# cuBLAS falls back to an unaligned kernel (H200, decode step at batch 128, vocab 50,277: 162 µs, 7× its bytes over
# copy bandwidth, in `benchmarks/results/decode_profile.json`). The padded rows are never read.
HEAD_ALIGN = 64

# Each model's captured prefill (``prefill(cuda_graph=True)``): outside the module, so a deep copy of the model never
# inherits (and replays) the original's graph, and the graph is freed with the model.
_PREFILL_GRAPHS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

# torch.compile modes that wrap the step in inductor's own CUDA graphs: they cannot be captured in ours.
_CUDA_GRAPH_MODES = ("reduce-overhead", "max-autotune")


def _compile_mode(compile: bool | str, name: str) -> str | None:
    """None (eager), or the torch.compile mode of ``compile`` (``True``: ``"default"``); clear errors otherwise."""
    if not compile:
        return None
    mode = "default" if compile is True else compile
    if not isinstance(mode, str) or mode in _CUDA_GRAPH_MODES:
        raise ValueError(
            f"{name}={compile!r}: use True or a torch.compile mode without its own CUDA graphs "
            f"(e.g. 'default', 'max-autotune-no-cudagraphs'); generate(cuda_graph=True) captures the decode step"
        )
    return mode


# The compiled decode step's inductor kernels with programmatic dependent launch (``triton.enable_pdl``; inductor
# emits it on sm_90+ only): each waits for the kernel before it at its first dependent access and lets the next one
# launch after its last load, so a kernel's launch and ramp overlap the one before. H200, session 12
# (``benchmarks/results/session12/call5``, compiled and graphed step, 128 tokens after a 1,024-token prompt): Based-360M
# 1.157 -> 1.038 ms at batch 1 and 1.439 -> 1.324 ms at batch 128, Transformer-360M 1.224 -> 1.084 ms at batch 1 (the
# mixers' step kernels with PDL in both). With the batch-1 GEMV (``kernels.decode_linear``, which loads its weights
# before its wait), session 13: Based-360M at batch 1, 0.775 ms off (``session13/call8``), 0.570–0.579 ms on; an eager
# graphed step run earlier in the process takes part of that away (0.653–0.664 ms, not understood;
# ``notes/generation.md``). ``MIXERZOO_STEP_INDUCTOR_PDL=0`` turns it off.
STEP_INDUCTOR_PDL: bool = os.environ.get("MIXERZOO_STEP_INDUCTOR_PDL", "1") != "0"


def _compile_kwargs(mode: str, pdl: bool) -> dict:
    """``torch.compile``'s ``mode`` or, with ``pdl`` (where this torch has inductor's PDL switch), the mode's own
    options plus ``triton.enable_pdl`` (torch.compile takes a mode or options, not both)."""
    import torch._inductor.config as inductor_config

    if not pdl or not hasattr(inductor_config.triton, "enable_pdl"):
        return dict(mode=None if mode == "default" else mode)
    return dict(options={**torch._inductor.list_mode_options(mode), "triton.enable_pdl": True})


WARM_UPS = 2  # calls of the captured function before its capture

# How the decode step's capture keeps its warm-up from advancing the states: True, the warm-up runs on the real states
# and `Mixer.snapshot` puts back what it changed (the sw and attn rings save only the slots written: no copy of a KV
# cache); False, it runs on a scratch copy of every state. On the H200 (session 6, 2026-11-29) the model GPU tests
# passed with it (7, including graphed == eager) and the Transformer-360M's largest batch went 265 → 530 sequences
# (compiled step 1.11× its floor). ``MIXERZOO_CAPTURE_IN_PLACE=0``: the copy.
CAPTURE_IN_PLACE: bool = os.environ.get("MIXERZOO_CAPTURE_IN_PLACE", "1") != "0"


def _capture(warm_up: Callable[[], object], record: Callable[[], object]) -> tuple[torch.cuda.CUDAGraph, object]:
    """``(graph, outputs)``: ``warm_up()`` ``WARM_UPS`` times on a side stream (the compile if any, Triton kernels,
    library handles, cached tables), then ``record()`` captured in a CUDA graph: recorded, not run, so what it writes
    is untouched until the first replay."""
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        for _ in range(WARM_UPS):
            warm_up()
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        outputs = record()
    return graph, outputs


def _shapes(states: list[State]) -> tuple:
    """What a compiled function specializes on: every state tensor's shape, dtype and device (ints as they are)."""
    return tuple(
        tuple((k, (tuple(t.shape), t.dtype, t.device) if isinstance(t, Tensor) else t) for k, t in s.items())
        for s in states
    )


class LanguageModel(nn.Module):
    """``forward(input_ids [B, L]) -> logits [B, L, vocab]`` (or at masked positions); ``generate`` decodes."""

    def __init__(self, stack: Stack, vocab_size: int, max_len: int) -> None:
        super().__init__()
        self.vocab_size, self.max_len = vocab_size, max_len
        self.embed = nn.Embedding(vocab_size, stack.d_model)
        self.stack = stack
        self.norm = RMSNorm(stack.d_model)
        self.head = Linear(stack.d_model, -(-vocab_size // HEAD_ALIGN) * HEAD_ALIGN, bias=False)

    @property
    def spec(self) -> str:
        """The canonical spec of the layer stack."""
        return self.stack.spec

    @property
    def layer_configs(self) -> list[dict]:
        return self.stack.layer_configs

    def _check_ids(self, input_ids: Tensor) -> None:
        if (
            not isinstance(input_ids, Tensor)
            or input_ids.ndim != 2
            or input_ids.dtype not in (torch.int64, torch.int32)
        ):
            got = f"{tuple(input_ids.shape)} {input_ids.dtype}" if isinstance(input_ids, Tensor) else type(input_ids)
            raise ValueError(f"LanguageModel expects input_ids as an int64 tensor [B, L], got {got}")
        if input_ids.shape[1] < 1:
            raise ValueError("LanguageModel got an empty sequence (L = 0)")
        if input_ids.numel() and input_ids.device.type == "cpu":
            lo, hi = int(input_ids.min()), int(input_ids.max())
            if lo < 0 or hi >= self.vocab_size:
                raise ValueError(f"token ids must lie in [0, {self.vocab_size}), got values in [{lo}, {hi}]")

    def forward(self, input_ids: Tensor, positions: Tensor | None = None) -> Tensor:
        """Logits ``[B, L, V]``; with a bool mask ``positions [B, L]``, only those rows ``[N, V]``.

        The mask form runs the head (the largest matmul of a small model with a large vocabulary)
        only where a loss or a prediction is needed: MQAR scores a few positions per example.
        Rows come in row-major order of the mask, the order of ``labels[positions]``.
        """
        self._check_ids(input_ids)
        x = self.norm(self.stack(self.embed(input_ids)))  # [B, L, D]
        if positions is None:
            return self._logits(x)  # [B, L, V]
        if positions.dtype != torch.bool or positions.shape != input_ids.shape:
            raise ValueError(
                f"positions must be a bool mask shaped like input_ids {tuple(input_ids.shape)}, "
                f"got {positions.dtype} {tuple(positions.shape)}"
            )
        return self._logits(x[positions])  # [N, V]

    def _logits(self, x: Tensor) -> Tensor:
        """The head over ``x [..., D]``: ``[..., vocab_size]`` (a view that drops the padded rows, ``HEAD_ALIGN``)."""
        logits = self.head(x)
        return logits if logits.shape[-1] == self.vocab_size else logits[..., : self.vocab_size]

    def prefill(
        self,
        input_ids: Tensor,
        capacity: int | None = None,
        batch_chunk: int | None = None,
        compile: bool | str = False,
        cuda_graph: bool = False,
    ) -> tuple[Tensor, list[State]]:
        """Run the prompt in parallel; returns the last position's logits ``[B, V]`` and the layer states.

        Args:
            input_ids: ``[B, L]`` prompt.
            capacity: tokens the states must hold (attention's KV cache); default L.
            batch_chunk: run at most this many sequences at a time (bounds activation memory at large
                batch); each slice writes its rows of the full preallocated states in place.
            compile: run each slice (embedding, blocks with their states, final norm, head at the last position)
                through ``torch.compile(dynamic=False, fullgraph=True)`` without autograd; ``True`` for the default
                mode or a mode name (not one with its own CUDA graphs). Compiled once per model, mode, slice shape
                and capacity, cached on the model. Inductor fuses the elementwise work between the GEMMs (norms,
                residual adds, SiLU·mul, rotary, casts); attention and the mixers' Triton kernels stay opaque ops.
            cuda_graph: replay the whole prefill (state allocation included) from one CUDA graph, captured at the
                first call of each (shape, capacity, batch_chunk, compile) and kept for the next: no host work per
                layer, so a prefill bound by its launches runs at its kernels' pace. No autograd. The model keeps one
                captured prefill (its memory pool holds the activations of one call); a new shape replaces it. The
                logits and states returned are copies, which a later call never overwrites. CUDA only.
        """
        self._check_ids(input_ids)
        mode = _compile_mode(compile, "compile")
        if cuda_graph:
            if not input_ids.is_cuda:
                raise ValueError("prefill: cuda_graph=True needs the model and input_ids on a CUDA device")
            return self._graphed_prefill(input_ids, capacity, batch_chunk, mode)
        return self._prefill(input_ids, capacity, batch_chunk, mode)

    def _prefill(
        self, input_ids: Tensor, capacity: int | None, batch_chunk: int | None, mode: str | None
    ) -> tuple[Tensor, list[State]]:
        B, L = input_ids.shape
        param = next(self.parameters())
        states = self.stack.init_state(B, device=input_ids.device, dtype=param.dtype, capacity=capacity or L)
        chunk = B if batch_chunk is None else max(1, batch_chunk)
        logits = []
        for lo in range(0, B, chunk):
            # views: in-place updates land in the full states. The position is the Python int 0 (fresh states), so
            # no mixer reads a tensor on the host (a sync per layer in eager, a graph break under compile)
            rows = [{k: (0 if k == "position" else t[lo : lo + chunk]) for k, t in s.items()} for s in states]
            ids = input_ids[lo : lo + chunk]
            if mode is None:
                logits.append(self._prefill_logits(ids, rows))
                continue
            key = ("prefill", tuple(ids.shape), capacity or L, _shapes(rows))
            with torch.no_grad():
                logits.append(self._compiled(LanguageModel._prefill_logits, mode, key)(ids, rows))
        torch._foreach_add_([s["position"] for s in states], L)  # fresh zeros → L, one launch for all layers on CUDA
        return torch.cat(logits) if len(logits) > 1 else logits[0], states

    @torch.no_grad()
    def _graphed_prefill(
        self, input_ids: Tensor, capacity: int | None, batch_chunk: int | None, mode: str | None
    ) -> tuple[Tensor, list[State]]:
        """``_prefill`` replayed from a CUDA graph kept on the model (one at a time), copies of its outputs."""
        key = (tuple(input_ids.shape), input_ids.dtype, input_ids.device, capacity, batch_chunk, mode)
        entry = _PREFILL_GRAPHS.get(self)
        if entry is None or entry[0] != key:
            _PREFILL_GRAPHS.pop(self, None)  # free the old graph's pool before capturing a new one
            static_ids = input_ids.clone()
            run = lambda: self._prefill(static_ids, capacity, batch_chunk, mode)  # noqa: E731
            entry = _PREFILL_GRAPHS[self] = (key, *_capture(run, run), static_ids)
        _, graph, (logits, states), static_ids = entry
        static_ids.copy_(input_ids)
        graph.replay()
        return logits.clone(), [{k: t.clone() if isinstance(t, Tensor) else t for k, t in s.items()} for s in states]

    def _prefill_logits(self, input_ids: Tensor, rows: list[State]) -> Tensor:
        """One batch slice from fresh states ``rows`` (updated in place): the last position's logits ``[b, V]``."""
        x, _ = self.stack(self.embed(input_ids), rows)  # [b, L, D]
        return self._logits(self.norm(x[:, -1]))  # [b, V]

    def step(self, tokens: Tensor, states: list[State]) -> tuple[Tensor, list[State]]:
        """One token per sequence, ``tokens [B]`` → logits ``[B, V]``; states updated in place."""
        x, states = self.stack.step(self.embed(tokens), states)
        return self._logits(self.norm(x)), states

    def _step_logits(self, tokens: Tensor, states: list[State]) -> Tensor:
        return self.step(tokens, states)[0]  # [B, V]

    def decode_step(self, states: list[State], compile_step: bool | str = False) -> Callable[..., Tensor]:
        """The function ``(tokens [B], states) -> logits [B, V]`` that ``generate`` runs per token.

        With ``compile_step`` it is ``torch.compile(dynamic=False, fullgraph=True)`` of ``step`` (``True``: the
        default mode; a string: that mode, e.g. ``"max-autotune-no-cudagraphs"``), compiled once per model, mode
        and state shapes (batch, cache capacity) and cached on the model. Inductor fuses the elementwise work
        between the projections (norms, residual adds, SiLU·mul, rotary); the mixers' Triton step kernels stay
        opaque custom ops that update the state in place.
        """
        if not compile_step:
            return self._step_logits
        mode = _compile_mode(compile_step, "compile_step")
        return self._compiled(LanguageModel._step_logits, mode, ("step", _shapes(states)), pdl=STEP_INDUCTOR_PDL)

    def _compiled(self, base: Callable, mode: str, key: tuple, pdl: bool = False) -> Callable:
        """``torch.compile(dynamic=False, fullgraph=True)`` of the method ``base`` bound to this model, cached per
        (model, mode, key, pdl); ``pdl``: inductor's kernels with programmatic dependent launch
        (``STEP_INDUCTOR_PDL``)."""
        # id: a deep copy of the model inherits the dict, never its compiled functions
        key = (id(self), mode, pdl, *key)
        cache = self.__dict__.setdefault("_compiled_fns", {})
        if key not in cache:
            # dynamo keeps its compiled graphs (and its recompile limit) per code object: a fresh copy of the
            # method's code per model and shape never shares them, so no recompile limit is ever hit
            code = base.__code__.replace(co_name=f"{base.__name__}_{len(cache)}")
            fn = types.FunctionType(code, base.__globals__, code.co_name, base.__defaults__, base.__closure__)
            cache[key] = torch.compile(
                types.MethodType(fn, self), dynamic=False, fullgraph=True, **_compile_kwargs(mode, pdl)
            )
        return cache[key]

    @torch.no_grad()
    def generate(
        self,
        input_ids: Tensor,
        max_new_tokens: int,
        temperature: float = 0.0,
        top_k: int | None = None,
        generator: torch.Generator | None = None,
        cuda_graph: bool | None = None,
        compile_step: bool | str = False,
        compile_prefill: bool | str = False,
    ) -> Tensor:
        """Prefill the prompt, then decode ``max_new_tokens`` tokens one step at a time.

        Args:
            input_ids: ``[B, L]`` prompt.
            max_new_tokens: tokens to generate (>= 0).
            temperature: 0 for greedy (argmax); otherwise sample from ``softmax(logits / temperature)``.
            top_k: sample only among the k most likely tokens.
            generator: random generator for sampling.
            cuda_graph: capture the decode step (every layer's step, the norm and the head) in one CUDA
                graph and replay it per token: static token and state buffers, no host synchronization
                per token. Default: on for CUDA inputs.
            compile_step: run the step through ``torch.compile`` (see ``decode_step``), captured in the same
                CUDA graph when ``cuda_graph``; ``True`` for the default mode or a mode name. Default off.
            compile_prefill: run the prompt through the compiled prefill (``prefill(compile=...)``). Default off.

        Returns:
            ``[B, L + max_new_tokens]``: the prompt followed by the generated tokens.
        """
        if max_new_tokens < 0 or temperature < 0 or (top_k is not None and top_k < 1):
            raise ValueError("generate: need max_new_tokens >= 0, temperature >= 0 and top_k >= 1 (or None)")
        for value, name in ((compile_step, "compile_step"), (compile_prefill, "compile_prefill")):
            _compile_mode(value, name)  # a bad mode raises before any work
        if max_new_tokens == 0:
            return input_ids
        use_graph = input_ids.is_cuda if cuda_graph is None else cuda_graph
        if use_graph and not input_ids.is_cuda:
            raise ValueError("generate: cuda_graph=True needs the model and input_ids on a CUDA device")
        B, L = input_ids.shape
        logits, states = self.prefill(input_ids, capacity=L + max_new_tokens, compile=compile_prefill)
        out = torch.empty(B, L + max_new_tokens, dtype=input_ids.dtype, device=input_ids.device)
        out[:, :L] = input_ids
        step = self._graphed_step(states, B, compile_step) if use_graph and max_new_tokens > 1 else None
        decode = self.decode_step(states, compile_step) if step is None and max_new_tokens > 1 else None
        for i in range(max_new_tokens):
            token = self._sample(logits, temperature, top_k, generator)  # [B]
            out[:, L + i] = token
            if i + 1 < max_new_tokens:
                logits = step(token) if step is not None else decode(token, states)
        return out

    def _graphed_step(self, states: list[State], batch_size: int, compile_step: bool | str = False):
        """A function ``token [B] -> logits [B, V]`` that replays one captured decode step over ``states``."""
        decode = self.decode_step(states, compile_step)
        static_token = torch.zeros(batch_size, dtype=torch.long, device=states[0]["position"].device)
        if CAPTURE_IN_PLACE:  # warm up on the real states, then put back what the warm-up changed
            restores = [block.mixer.snapshot(s, WARM_UPS) for block, s in zip(self.stack.blocks, states)]
            warm = states
        else:  # warm up on a copy: the real states stay untouched
            restores = []
            warm = [{k: t.clone() for k, t in s.items()} for s in states]
        graph, static_logits = _capture(lambda: decode(static_token, warm), lambda: decode(static_token, states))
        for restore in restores:
            restore()

        def replay(token: Tensor) -> Tensor:
            static_token.copy_(token)
            graph.replay()
            return static_logits

        return replay

    @staticmethod
    def _sample(logits: Tensor, temperature: float, top_k: int | None, generator) -> Tensor:
        if temperature == 0:
            return logits.argmax(-1)
        logits = logits.float() / temperature
        if top_k is not None:
            kth = logits.topk(min(top_k, logits.shape[-1]), dim=-1).values[..., -1:]
            logits = logits.masked_fill(logits < kth, float("-inf"))
        return torch.multinomial(torch.softmax(logits, -1), 1, generator=generator).squeeze(1)

    def state_size(self, seq_len: int) -> int:
        """Recurrent-state elements per sequence after ``seq_len`` tokens, summed over layers."""
        return self.stack.state_size(seq_len)
