"""The weight-bearing operations of a SpeechLM, read from its modules once, for FLOP counting.

Why a list of ops instead of a closed formula: the model mixes frozen, LoRA-adapted and fully trained
parts, and what a backward pass costs depends on both. A matmul with a frozen weight still needs an
input gradient when something trained sits before it (the LLM base behind a trained projector), but no
gradient at all when nothing before it trains (a frozen encoder). Walking the modules in dataflow order
with a "does a gradient flow here" flag gets each case right without per-architecture formulas.

Every op is "FLOPs per position" times a position count that the batch decides later:
    linear / conv  forward 2*in*out (per output position; a conv's `in` is kernel*C_in/groups)
                   backward +2*in*out for the weight gradient (weight trains)
                            +2*in*out for the input gradient (a gradient flows into its input)
    attention      forward 4*S^2*width per sequence (QK^T and AV; width = heads*head_dim)
                   backward = `attention_backward_factor` x forward (2.5 for fused SDPA/flash kernels,
                   which recompute the scores, 2.0 for eager attention), only when a gradient flows
Sizes come from the loaded modules (in/out features, kernel sizes, heads), never from config fields.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

# Sibling projections that read the same input (a gradient reaches all of them or none of them).
PARALLEL_GROUPS: tuple[frozenset[str], ...] = (
    frozenset({"q_proj", "k_proj", "v_proj"}),
    frozenset({"gate_proj", "up_proj"}),
    frozenset({"query", "key", "value"}),
)
ATTENTION_OUTPUTS = ("o_proj", "out_proj")
# Backward cost of the score/value matmuls relative to their forward, by attention kernel.
ATTENTION_BACKWARD_FACTOR = {"eager": 2.0, "sdpa": 2.5, "flash_attention_2": 2.5, "flex_attention": 2.5}


@dataclass(frozen=True)
class MatmulOp:
    """A weight matmul (Linear, or Conv1d per output position).

    Args:
        name: module path, for reports.
        flops_per_position: forward FLOPs per output position (2*in*out).
        trains: its weight receives a gradient.
        grad_in: a gradient flows into its input (an input-gradient matmul runs in backward).
        where: which position count applies ("frames", "conv<i>", "tokens", "llm").
    """

    name: str
    flops_per_position: int
    trains: bool
    grad_in: bool
    where: str

    def backward_factor(self) -> int:
        return int(self.trains) + int(self.grad_in)


@dataclass(frozen=True)
class AttentionOp:
    """Score and value matmuls of one attention layer: forward 4*S^2*width per sequence.

    Args:
        name: module path.
        width: query heads x head dim.
        backward: backward FLOPs / forward FLOPs (0 when no gradient flows through it).
        where: "frames" (encoder rows) or "llm" (LLM sequences).
    """

    name: str
    width: int
    backward: float
    where: str


def _lora_parts(module: nn.Module) -> tuple[nn.Linear, list[tuple[nn.Linear, nn.Linear]]] | None:
    """(base linear, [(A, B) per active adapter]) for a peft LoRA layer, else None."""
    base, a_dict, b_dict = (getattr(module, n, None) for n in ("base_layer", "lora_A", "lora_B"))
    if not isinstance(base, nn.Linear) or not isinstance(a_dict, nn.ModuleDict):
        return None
    return base, [(a_dict[k], b_dict[k]) for k in a_dict if k in b_dict]


def _trains(module: nn.Module) -> bool:
    return any(p.requires_grad for p in module.parameters(recurse=False))


def _linear_flops(layer: nn.Linear) -> int:
    return 2 * layer.in_features * layer.out_features


def _conv_flops(conv: nn.Conv1d) -> int:
    return 2 * conv.kernel_size[0] * (conv.in_channels // conv.groups) * conv.out_channels


class _Walker:
    """Visits Linear / Conv1d / LoRA layers in registration order, tracking whether a gradient flows."""

    def __init__(self, grad: bool, where: str, attention_factor: float, conv_where=None):
        self.grad = grad  # a gradient flows in the residual stream at this point
        self.where = where
        self.attention_factor = attention_factor
        self.conv_where = conv_where or (lambda conv, i: where)
        self.ops: list[MatmulOp | AttentionOp] = []
        self._group: tuple[str, frozenset[str], bool] | None = None  # (parent, names, input grad)
        self._convs = 0

    def _input_grad(self, name: str) -> bool:
        parent, _, leaf = name.rpartition(".")
        group = next((g for g in PARALLEL_GROUPS if leaf in g), None)
        if group is None:
            self._group = None
            return self.grad
        if self._group is not None and self._group[0] == parent and self._group[1] == group:
            return self._group[2]
        self._group = (parent, group, self.grad)
        return self.grad

    def _add(self, name: str, flops: int, trains: bool, grad_in: bool, where: str) -> bool:
        self.ops.append(MatmulOp(name, flops, trains, grad_in, where))
        return trains or grad_in

    def run(self, root: nn.Module, prefix: str) -> list[MatmulOp | AttentionOp]:
        """Walk `root` (names reported under `prefix`); returns the ops in dataflow order."""
        queries = {n: m.q_proj for n, m in root.named_modules() if hasattr(m, "q_proj")}
        inside_lora = None
        for rel, module in root.named_modules():
            if inside_lora is not None and rel.startswith(inside_lora):
                continue
            name = f"{prefix}.{rel}" if rel else prefix
            lora = _lora_parts(module)
            if lora is not None or isinstance(module, nn.Linear):
                self._attention_before(rel, name, queries)
            if lora is not None:
                inside_lora = rel + "."
                self._visit_lora(name, *lora)
            elif isinstance(module, nn.Linear):
                grad_in = self._input_grad(name)
                self.grad |= self._add(name, _linear_flops(module), _trains(module), grad_in, self.where)
            elif isinstance(module, nn.Conv1d):
                grad_in = self._input_grad(name)
                where = self.conv_where(module, self._convs)
                self._convs += 1
                self.grad |= self._add(name, _conv_flops(module), _trains(module), grad_in, where)
        return self.ops

    def _attention_before(self, rel: str, name: str, queries: dict[str, nn.Module]) -> None:
        """Before an attention output projection: the score/value matmuls of that attention."""
        parent, _, leaf = rel.rpartition(".")
        q = queries.get(parent)
        if leaf in ATTENTION_OUTPUTS and q is not None:
            width = (q.base_layer if hasattr(q, "base_layer") else q).out_features
            backward = self.attention_factor if self.grad else 0.0
            self.ops.append(AttentionOp(name.rpartition(".")[0], int(width), backward, self.where))

    def _visit_lora(self, name: str, base: nn.Linear, adapters) -> None:
        grad_in = self._input_grad(name)
        out_grad = self._add(f"{name}.base_layer", _linear_flops(base), _trains(base), grad_in, self.where)
        for a, b in adapters:
            a_out = self._add(f"{name}.lora_A", _linear_flops(a), _trains(a), grad_in, self.where)
            out_grad |= self._add(f"{name}.lora_B", _linear_flops(b), _trains(b), a_out, self.where)
        self.grad |= out_grad


def attention_factor(module: nn.Module) -> float:
    """Backward/forward ratio of attention for the kernel the module's config selects."""
    config = getattr(module, "config", None)
    impl = getattr(config, "_attn_implementation", None) or "sdpa"
    return ATTENTION_BACKWARD_FACTOR.get(impl, ATTENTION_BACKWARD_FACTOR["sdpa"])


def component_ops(root: nn.Module, prefix: str, grad: bool, where: str, conv_where=None,
                  config_holder: nn.Module | None = None) -> tuple[list[MatmulOp | AttentionOp], bool]:
    """Ops of one component and whether a gradient flows out of it (into the next component)."""
    walker = _Walker(grad, where, attention_factor(config_holder or root), conv_where)
    return walker.run(root, prefix), walker.grad
