"""The ``mixerzoo`` command: ``list``, ``describe``, ``generate``, ``sweep``, ``report``."""

from __future__ import annotations

import argparse
import sys


def _list(args: argparse.Namespace) -> int:
    from mixerzoo import registry

    for name in registry.list_names(args.pattern):
        entry = registry.get(name)
        kind = "linear attention" if entry.kind == "feature_map" else "mixer"
        print(f"{name:<12} {kind:<17} {entry.doc}")
    return 0


def _describe(args: argparse.Namespace) -> int:
    from mixerzoo import describe

    describe(args.spec, args.d_model, args.vocab_size, seq_len=args.seq_len, mlp=args.mlp, n_heads=args.n_heads)
    return 0


def _generate(args: argparse.Namespace) -> int:
    import torch

    from mixerzoo import build

    torch.manual_seed(args.seed)
    model = build(args.spec, args.d_model, args.vocab_size, n_heads=args.n_heads, mlp=args.mlp).eval()
    prompt = torch.randint(0, args.vocab_size, (1, args.prompt_len))
    out = model.generate(prompt, args.new_tokens)
    print(f"{model.spec}: {sum(p.numel() for p in model.parameters()):,} parameters (random weights)")
    print(f"prompt    {prompt[0].tolist()}")
    print(f"generated {out[0, args.prompt_len :].tolist()}")
    print(f"recurrent state per sequence after {out.shape[1]} tokens: {model.state_size(out.shape[1]):,} elements")
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "sweep":
        from mixerzoo.sweep import sweep_main

        return sweep_main(argv[1:]) or 0
    if argv and argv[0] == "bench":
        from mixerzoo.bench import bench_main

        return bench_main(argv[1:]) or 0
    if argv and argv[0] == "report":
        from mixerzoo.report import report_main

        return report_main(argv[1:]) or 0
    parser = argparse.ArgumentParser(prog="mixerzoo", description="Sequence-mixer zoo: build, describe, ablate.")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("list", help="registered layer names")
    p.add_argument("pattern", nargs="?", default="*", help="wildcard, e.g. 'perf*'")
    p.set_defaults(func=_list)
    for name, func, helptext in (
        ("describe", _describe, "per-layer parameters and state of a spec"),
        ("generate", _generate, "build a random-weight model and generate a few tokens"),
    ):
        p = sub.add_parser(name, help=helptext)
        p.add_argument("spec", help="e.g. '(conv3-taylor16-sw128-conv3-conv3)*5-conv3*2'")
        p.add_argument("--d-model", type=int, default=None, help="model width (default 256, or the preset's)")
        p.add_argument("--n-heads", type=int, default=None)
        p.add_argument("--mlp", default="swiglu", choices=("swiglu", "gelu", "none"))
        p.add_argument("--vocab-size", type=int, default=None if name == "describe" else 1000)
        if name == "describe":
            p.add_argument("--seq-len", type=int, default=2048, help="length at which to count the state")
        else:
            p.add_argument("--prompt-len", type=int, default=16)
            p.add_argument("--new-tokens", type=int, default=16)
            p.add_argument("--seed", type=int, default=0)
        p.set_defaults(func=func)
    sub.add_parser("sweep", help="run an ablation sweep (mixerzoo sweep ABLATION.py --scale quick --db DB)")
    sub.add_parser("bench", help="generation/prefill throughput on a GPU (mixerzoo bench generate MODEL...)")
    sub.add_parser("report", help="tables and plots from a results database (mixerzoo report DB)")
    args = parser.parse_args(argv)
    from mixerzoo.spec import SpecError

    try:
        return args.func(args)
    except (SpecError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
