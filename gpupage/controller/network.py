"""The Page Controller (Def. 11): a small permutation-equivariant network over the resident slots.

One MLP (Linear, LayerNorm, GELU) embeds every slot from its features; the
embeddings are pooled (masked mean and max) with the global features into a
context; the same scoring MLP reads each slot's embedding next to the context,
and a softmax over the resident slots gives the eviction distribution pi.  The
value head reads the (detached) context.  Permuting the slots permutes the logits and
leaves the value unchanged, and the network works for any K.

Checkpoints are plain Python types (``torch.load(weights_only=True)``):
``{"format", "config", "state_dict", "meta"}``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

import torch
from torch import nn

from .features import GLOBAL_DIM, SLOT_DIM, Obs
from ..core import limits

CHECKPOINT_FORMAT = "gpupage-controller-1"


@dataclass(frozen=True)
class ControllerConfig:
    mode: str = "blackbox"
    """'blackbox' or 'whitebox': which features the controller reads."""
    hidden: int = 48
    """Width of every hidden layer."""

    def __post_init__(self):
        if self.mode not in SLOT_DIM:
            raise ValueError(f"mode must be one of {', '.join(SLOT_DIM)}, got {self.mode!r}")
        limits.check_int("hidden", self.hidden, 1)

    @property
    def slot_dim(self) -> int:
        return SLOT_DIM[self.mode]

    @property
    def global_dim(self) -> int:
        return GLOBAL_DIM[self.mode]


class PageController(nn.Module):
    def __init__(self, config: ControllerConfig = ControllerConfig()):
        super().__init__()
        self.config = config
        h = config.hidden
        # float32 weights, their gradients and Adam's two moments
        limits.require(16 * (5 * h * h + h * (config.slot_dim + config.global_dim + 8)), f"a controller {h} wide")
        self.embed = nn.Sequential(nn.Linear(config.slot_dim, h), nn.LayerNorm(h), nn.GELU(),
                                   nn.Linear(h, h), nn.GELU())
        self.context = nn.Sequential(nn.Linear(2 * h + config.global_dim, h), nn.LayerNorm(h), nn.GELU())
        self.score = nn.Sequential(nn.Linear(2 * h, h), nn.GELU(), nn.Linear(h, 1))
        self.value_head = nn.Sequential(nn.Linear(h, h), nn.GELU(), nn.Linear(h, 1))

    def forward(self, obs: Obs) -> tuple[torch.Tensor, torch.Tensor]:
        """Returns (logits float [B, K], -inf on non-resident slots; value float [B])."""
        slots, glob, mask = obs
        e = self.embed(slots)  # [B, K, h]
        m = mask[..., None]
        mean = (e * m).sum(1) / m.sum(1).clamp(min=1)
        mx = e.masked_fill(~m, -1e4).amax(1)
        c = self.context(torch.cat([mean, mx, glob], dim=1))  # [B, h]
        logits = self.score(torch.cat([e, c[:, None, :].expand_as(e)], dim=2)).squeeze(2)
        logits = logits.masked_fill(~mask, float("-inf"))
        # the critic reads a detached context: value regression must not move the policy's features
        return logits, self.value_head(c.detach()).squeeze(1)

    @torch.no_grad()
    def act(self, obs: Obs, greedy: bool = True, generator: torch.Generator | None = None) -> torch.Tensor:
        """Slot to evict per lane (argmax, or a sample from pi)."""
        logits, _ = self(obs)
        if greedy:
            return logits.argmax(1)
        return torch.multinomial(torch.softmax(logits, 1), 1, generator=generator).squeeze(1)

    def n_params(self) -> int:
        return sum(p.numel() for p in self.parameters())


def checkpoint_dict(model: PageController, meta: dict | None = None) -> dict:
    """Weights and config as plain Python types."""
    return {
        "format": CHECKPOINT_FORMAT,
        "config": asdict(model.config),
        "state_dict": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
        "meta": dict(meta or {}),
    }


def save_controller(path, model: PageController, meta: dict | None = None) -> None:
    torch.save(checkpoint_dict(model, meta), path)


def load_checkpoint(path) -> dict:
    try:
        ck = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise OSError(f"no checkpoint at {path}") from None
    except Exception as exc:  # unpickling errors come in many types
        raise ValueError(f"{path}: not a gpupage controller checkpoint ({type(exc).__name__})") from None
    if not isinstance(ck, dict) or ck.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path}: not a gpupage controller checkpoint")
    for part in ("config", "state_dict", "meta"):
        if not isinstance(ck.get(part), dict):
            raise ValueError(f"{path}: a damaged controller checkpoint (its {part} is missing or not a dict)")
    return ck


def controller_from_checkpoint(ck: dict) -> PageController:
    """The model a checkpoint holds; a config or weights that do not fit are a one-line ValueError."""
    unknown = sorted(set(ck["config"]) - {f.name for f in fields(ControllerConfig)})
    if unknown:
        raise ValueError(f"the checkpoint's config has unknown setting(s) {', '.join(map(str, unknown))} "
                         "(written by another version of gpupage?)")
    model = PageController(ControllerConfig(**ck["config"]))
    want, got = model.state_dict(), ck["state_dict"]
    problems = {
        "missing": [k for k in want if k not in got],
        "unexpected": [str(k) for k in got if k not in want],
        "wrong shape": [k for k in want if k in got and getattr(got[k], "shape", None) != want[k].shape],
    }
    if any(problems.values()):
        listed = "; ".join(f"{what}: {', '.join(ks[:3])}{', ...' if len(ks) > 3 else ''}"
                           for what, ks in problems.items() if ks)
        raise ValueError(f"the checkpoint's weights do not fit its config ({listed})")
    model.load_state_dict(got)
    return model.eval()


def load_controller(path) -> tuple[PageController, dict]:
    """(model in eval mode, the checkpoint's meta)."""
    ck = load_checkpoint(path)
    try:
        return controller_from_checkpoint(ck), ck["meta"]
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None
